"""The official `openai` client against a live `glassbox serve`, unchanged."""
import concurrent.futures as cf
import re
import threading
import time

import openai
import pytest

from conftest import KEY, NAME, Server, tokenize


def test_models_list(client):
    ids = [m.id for m in client.models.list().data]
    assert ids == [NAME]


def test_chat_completion(client):
    r = client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "Say hello."}], max_tokens=16, temperature=0)
    c = r.choices[0]
    assert c.message.role == "assistant" and c.message.content
    assert c.finish_reason in ("stop", "length")
    assert r.usage.completion_tokens <= 16
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_completion_greedy_matches_llama_cpp_and_usage_is_exact(client):
    prompt = "The capital of France is"
    r = client.completions.create(model=NAME, prompt=prompt, max_tokens=3, temperature=0)
    assert r.choices[0].text == " Paris.\n"
    assert r.usage.prompt_tokens == len(tokenize(prompt))
    assert r.usage.completion_tokens == 3 and r.choices[0].finish_reason == "length"


def test_text_parts_content(client):
    r = client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": [{"type": "text", "text": "Hi"}]}], max_tokens=4)
    assert r.choices[0].message.content is not None


def test_streaming_chat_with_usage(client):
    kw = dict(model=NAME, messages=[{"role": "user", "content": "Count to five."}], max_tokens=20, temperature=0)
    full = client.chat.completions.create(**kw)
    stream = client.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True})
    text, usage, finish = "", None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for ch in chunk.choices:
            text += ch.delta.content or ""
            finish = ch.finish_reason or finish
    assert text == full.choices[0].message.content
    assert finish == full.choices[0].finish_reason
    assert usage.completion_tokens == full.usage.completion_tokens
    assert usage.prompt_tokens == full.usage.prompt_tokens


def test_streaming_completion(client):
    chunks = list(client.completions.create(model=NAME, prompt="Once upon a time", max_tokens=8, temperature=0, stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices)
    assert chunks[-1].choices[0].finish_reason == "length"


def test_stop_sequences(client):
    r = client.completions.create(model=NAME, prompt="The capital of France is", max_tokens=30, temperature=0, stop=["United", "zzz"])
    assert r.choices[0].finish_reason == "stop"
    assert "United" not in r.choices[0].text and r.choices[0].text.startswith(" Paris.")


def test_n_choices(client):
    r = client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "Name a fruit."}], max_tokens=8, n=2, temperature=1.0, seed=3)
    assert [c.index for c in r.choices] == [0, 1]
    assert all(c.message.content is not None for c in r.choices)
    # usage counts the prompt once and the tokens of both choices
    single = client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "Name a fruit."}], max_tokens=8, n=1, temperature=1.0, seed=3)
    assert r.usage.prompt_tokens == single.usage.prompt_tokens
    assert r.usage.completion_tokens >= single.usage.completion_tokens


def test_seed_reproducibility(client):
    kw = dict(model=NAME, messages=[{"role": "user", "content": "Write a random word."}], max_tokens=12, temperature=1.0, top_p=0.9, seed=1234)
    a = client.chat.completions.create(**kw).choices[0].message.content
    b = client.chat.completions.create(**kw).choices[0].message.content
    assert a == b


def test_logprobs(client):
    r = client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "Hi"}], max_tokens=5, temperature=0, logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens or r.choices[0].finish_reason == "stop"
    for t in content:
        assert t.logprob <= 0 and len(t.top_logprobs) == 3
        assert t.top_logprobs[0].token == t.token  # greedy picks the most likely token
    r = client.completions.create(model=NAME, prompt="Hello", max_tokens=3, temperature=0, logprobs=2)
    assert len(r.choices[0].logprobs.token_logprobs) == 3


def test_errors_401_404_400(server, client):
    bad = openai.OpenAI(base_url=server.base + "/v1", api_key="wrong-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "x"}], top_p=1.5)
    assert e.value.body["param"] == "top_p"
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=NAME, prompt="word " * 1100, max_tokens=5)
    assert e.value.code == "context_length_exceeded" and re.search(r"\d+ tokens", e.value.message)
    assert server.get("/health", key=None)[0] == 200
    assert server.get("/metrics", key=None)[0] == 401


def test_disconnect_mid_stream_frees_the_slot(server, client):
    stream = client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "Tell a very long story."}], max_tokens=400, stream=True)
    for i, _ in enumerate(stream):
        if i == 3:
            break
    stream.close()
    deadline = time.time() + 10
    while time.time() < deadline:
        running = re.search(r'glassbox_running_sequences\{model="smollm2"\} (\d+)', server.get("/metrics")[1])
        if running and running.group(1) == "0":
            return
        time.sleep(0.05)
    pytest.fail("the disconnected stream's slot was not freed")


def test_32_concurrent_streams_finish_with_correct_usage(client):
    def one(i):
        kw = dict(model=NAME, messages=[{"role": "user", "content": f"Say the number {i}."}], max_tokens=16, temperature=0.7, seed=i)
        usage, n_text = None, ""
        for chunk in client.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True}):
            if chunk.usage:
                usage = chunk.usage
            for ch in chunk.choices:
                n_text += ch.delta.content or ""
        ref = client.chat.completions.create(**kw)
        return usage, n_text, ref
    with cf.ThreadPoolExecutor(32) as ex:
        results = list(ex.map(one, range(32)))
    for usage, text, ref in results:
        assert usage is not None and usage.completion_tokens == ref.usage.completion_tokens
        assert text == ref.choices[0].message.content


def test_overload_gets_429_with_retry_after(tmp_path):
    s = Server(tmp_path, "--parallel", "1", "--max-queue", "0")
    try:
        c = openai.OpenAI(base_url=s.base + "/v1", api_key=KEY, max_retries=0, timeout=120)
        started = threading.Event()

        def long_request():
            stream = c.completions.create(model=NAME, prompt="Once upon a time", max_tokens=200, stream=True)
            for _ in stream:
                started.set()
        t = threading.Thread(target=long_request)
        t.start()
        assert started.wait(30)
        t0 = time.time()
        with pytest.raises(openai.RateLimitError) as e:
            c.completions.create(model=NAME, prompt="hi", max_tokens=2)
        assert time.time() - t0 < 1.0, "429 must come immediately"
        assert e.value.response.headers.get("retry-after") == "1"
        t.join()
    finally:
        assert s.stop() == 0


def test_oversized_body_gets_413(server):
    import urllib.request
    body = b'{"model":"smollm2","prompt":"' + b"x" * (5 << 20) + b'"}'
    req = urllib.request.Request(server.base + "/v1/completions", data=body, headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=30)
    assert e.value.code == 413


def test_several_models_by_name(tmp_path):
    from conftest import ROOT
    tiny = ROOT / "tests" / "fixtures" / "tiny" / "tiny-qwen2.gguf"
    s = Server(tmp_path, str(tiny), "--alias", "tiny")
    try:
        c = openai.OpenAI(base_url=s.base + "/v1", api_key=KEY, max_retries=0)
        assert [m.id for m in c.models.list().data] == [NAME, "tiny"]
        a = c.completions.create(model=NAME, prompt="The capital of France is", max_tokens=2, temperature=0)
        b = c.completions.create(model="tiny", prompt="the", max_tokens=2, temperature=0)
        assert a.model == NAME and b.model == "tiny" and a.choices[0].text == " Paris."
        assert b.usage.completion_tokens == 2
    finally:
        assert s.stop() == 0


def test_redaction_through_the_official_client(tmp_path):
    """`--redact input,output --redact-restore`: the model is given placeholders (its prompt
    count is the redacted prompt's), streamed and unstreamed answers agree through the output
    filter, and log-probabilities (which would show redacted tokens) are refused by name."""
    s = Server(tmp_path, "--redact", "input,output", "--redact-restore")
    try:
        c = openai.OpenAI(base_url=s.base + "/v1", api_key=KEY, max_retries=0)
        msgs = [{"role": "user", "content": "My e-mail is jane.doe@example.com and my card 4111 1111 1111 1111. Say hello."}]
        a = c.chat.completions.create(model=NAME, messages=msgs, max_tokens=12, temperature=0)
        plain = [{"role": "user", "content": "My e-mail is [EMAIL_1] and my card [CARD_1]. Say hello."}]
        s2 = Server(tmp_path)
        try:
            c2 = openai.OpenAI(base_url=s2.base + "/v1", api_key=KEY, max_retries=0)
            b = c2.chat.completions.create(model=NAME, messages=plain, max_tokens=12, temperature=0)
        finally:
            assert s2.stop() == 0
        assert a.usage.prompt_tokens == b.usage.prompt_tokens
        streamed = "".join(ch.choices[0].delta.content or "" for ch in c.chat.completions.create(model=NAME, messages=msgs, max_tokens=12, temperature=0, stream=True) if ch.choices)
        assert streamed == a.choices[0].message.content
        with pytest.raises(openai.BadRequestError) as e:
            c.chat.completions.create(model=NAME, messages=msgs, max_tokens=1, logprobs=True)
        assert e.value.param == "logprobs" or "log-probabilities" in str(e.value)
    finally:
        assert s.stop() == 0
