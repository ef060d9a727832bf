"""lm-evaluation-harness scores a live `glassbox serve` unchanged: its `gguf` model class
(`lm_eval --model gguf --model_args base_url=...`) posts context + continuation to
/v1/completions with `echo`, `logprobs` and `max_tokens=1`, finds the continuation by the
character offsets the server returns and sums the prompt tokens' log-probabilities; its
`local-completions` class (`--model local-completions --model_args base_url=.../v1/completions`)
finds the server's /tokenizer_info and /tokenize, tokenizes through them, splits context and
continuation as its `_encode_pair` does and sends token prompts. Their numbers must equal what
glassbox's own engine computes for the same tokens (`glassbox eval`)."""
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


def test_lm_eval_local_completions_tokenizes_through_the_server(keyless, tmp_path):
    from lm_eval.models.openai_completions import LocalCompletionsAPI
    qs = [q for q in questions() if q["id"] != "word-piece"]  # glassbox eval refuses that one
    lm = LocalCompletionsAPI(base_url=keyless.base + "/v1/completions", model="smollm2", max_length=1024)
    assert lm.tokenizer_backend == "remote"  # auto-detected: /tokenizer_info and /tokenize answer
    pairs = [(q["context"], c) for q in qs for c in q["choices"]]
    got = lm.loglikelihood([Req(c, k) for c, k in pairs], disable_tqdm=True)
    data = tmp_path / "q.jsonl"
    data.write_text("".join(json.dumps(q) + "\n" for q in qs))
    out = subprocess.run([str(BIN), "eval", str(MODEL), "--data", str(data), "--json", "--log-samples", "--no-cache", "-c", "1024"],
                         capture_output=True, check=True, text=True)
    ours = {i["id"]: i for i in json.loads(out.stdout)["tasks"]["q"]["items"]}
    # Same split (lm-eval's _encode_pair on both sides), same tokens: every choice agrees.
    for q in qs:
        for j, choice in enumerate(q["choices"]):
            ll, greedy = got[pairs.index((q["context"], choice))]
            assert abs(ll - ours[q["id"]]["loglik"][j]) < 2e-3, (q["id"], choice, ll, ours[q["id"]]["loglik"][j])
            assert greedy == ours[q["id"]]["greedy"][j], (q["id"], choice)
    assert len(pairs) >= 30, len(pairs)


def test_tokenizer_endpoints_match_the_model_tokenizer_and_refuse_bad_input(keyless):
    import urllib.error, urllib.request

    def post(path, body):
        req = urllib.request.Request(keyless.base + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())
    text = "Café au lait <|im_end|> s'il vous plaît"
    st, v = post("/tokenize", {"prompt": text, "add_special_tokens": False})
    assert st == 200 and v["tokens"] == tokenize(text) and v["count"] == len(v["tokens"]) and v["max_model_len"] > 0
    st, d = post("/detokenize", {"tokens": v["tokens"]})
    assert st == 200 and d["prompt"] == text
    with urllib.request.urlopen(keyless.base + "/tokenizer_info", timeout=60) as r:
        info = json.loads(r.read())
    assert info["eos_token"] == "<|im_end|>" and info["model_max_length"] > 0
    # A token prompt scores exactly as its text does.
    body = {"model": "smollm2", "echo": True, "logprobs": 1, "max_tokens": 1, "temperature": 0}
    st, a = post("/v1/completions", {**body, "prompt": text})
    st2, b = post("/v1/completions", {**body, "prompt": [tokenize(text)]})
    assert st == st2 == 200
    assert a["choices"][0]["logprobs"]["token_logprobs"] == b["choices"][0]["logprobs"]["token_logprobs"]
    for path, bad, param in [
        ("/tokenize", {"prompt": 5}, "prompt"),
        ("/tokenize", {"prompt": "x", "add_special_tokens": "yes"}, "add_special_tokens"),
        ("/detokenize", {"tokens": [1, -2]}, "tokens"),
        ("/detokenize", {"tokens": [10**9]}, "tokens"),
        ("/v1/completions", {**body, "prompt": [[1, 2], [3]]}, "prompt"),
        ("/v1/completions", {**body, "prompt": [10**9]}, "prompt"),
        ("/v1/completions", {**body, "prompt": [1.5]}, "prompt"),
        ("/v1/completions", {**body, "prompt": []}, "prompt"),
    ]:
        st, e = post(path, bad)
        assert st == 400 and e["error"]["param"] == param, (path, bad, st, e)


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
