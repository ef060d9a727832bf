"""lm-evaluation-harness scores a live `glassbox serve` unchanged: its `gguf` model class
(`lm_eval --model gguf --model_args base_url=...`) posts context + continuation to
/v1/completions with `echo`, `logprobs` and `max_tokens=1`, finds the continuation by the
character offsets the server returns and sums the prompt tokens' log-probabilities. Its numbers
must equal what glassbox's own engine computes for the same tokens (`glassbox eval`)."""
import json, subprocess

import pytest
from lm_eval.models.gguf import GGUFLM

from conftest import BIN, MODEL, ROOT, Server, tokenize


class Req:
    def __init__(self, context, continuation):
        self.args = (context, continuation)


@pytest.fixture(scope="module")
def keyless(tmp_path_factory):
    # lm-eval's gguf client sends no API key; the server binds 127.0.0.1 only.
    s = Server(tmp_path_factory.mktemp("lm-eval"), api_key=False)
    yield s
    assert s.stop() == 0


def questions():
    for line in (ROOT / "tests" / "fixtures" / "eval" / "questions.jsonl").read_text().splitlines():
        q = json.loads(line)
        if q["context"]:
            yield q


def test_lm_eval_gguf_client_scores_the_server_as_glassbox_eval_does(keyless, tmp_path):
    qs = list(questions())
    lm = GGUFLM(base_url=keyless.base)
    pairs = [(q["context"], c) for q in qs for c in q["choices"]]
    got = lm.loglikelihood([Req(c, k) for c, k in pairs], disable_tqdm=True)
    # Our engine's scores for the same questions (lm-eval's _encode_pair split), where a
    # choice adds tokens of its own.
    data = tmp_path / "q.jsonl"
    data.write_text("".join(json.dumps(q) + "\n" for q in qs if q["id"] != "word-piece"))
    out = subprocess.run([str(BIN), "eval", str(MODEL), "--data", str(data), "--json", "--log-samples", "--no-cache", "-c", "1024"],
                         capture_output=True, check=True, text=True)
    ours = {i["id"]: i for i in json.loads(out.stdout)["tasks"]["q"]["items"]}
    compared = 0
    for q in qs:
        if q["id"] not in ours:
            continue
        for j, choice in enumerate(q["choices"]):
            ll, greedy = got[pairs.index((q["context"], choice))]
            ctx, whole = tokenize(q["context"].rstrip()), tokenize(q["context"] + choice)
            # The gguf client splits the joint tokenization at the context's character length;
            # where that is also lm-eval's _encode_pair split, the tokens are the same and so
            # must the scores be (the server sends f32 per token).
            if whole[: len(ctx)] != ctx or q["context"] != q["context"].rstrip():
                continue
            assert abs(ll - ours[q["id"]]["loglik"][j]) < 2e-3, (q["id"], choice, ll, ours[q["id"]]["loglik"][j])
            assert greedy == ours[q["id"]]["greedy"][j], (q["id"], choice)
            compared += 1
    assert compared >= 30, compared


def test_echo_offsets_are_characters_and_first_token_unscored(keyless):
    import urllib.request
    body = json.dumps({"model": "smollm2", "prompt": "Café au lait, s'il vous plaît", "echo": True, "logprobs": 2, "max_tokens": 1, "temperature": 0}).encode()
    req = urllib.request.Request(keyless.base + "/v1/completions", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        v = json.loads(r.read())
    c = v["choices"][0]
    lp = c["logprobs"]
    assert c["text"].startswith("Café au lait, s'il vous plaît")
    n = len(tokenize("Café au lait, s'il vous plaît"))
    assert len(lp["tokens"]) == n + 1 and lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None
    assert all(x is not None and x <= 0 for x in lp["token_logprobs"][1:])
    assert all(len(t) <= 2 for t in lp["top_logprobs"][1:])
    # Each offset is where the token's text starts in the returned text, in characters.
    for tok, off in zip(lp["tokens"], lp["text_offset"]):
        if "\ufffd" not in tok:
            assert c["text"][off:off + len(tok)] == tok, (tok, off)
    assert lp["text_offset"] == sorted(lp["text_offset"])
