"""Structured output and tool calls through the official `openai` client (issue 18), on
Qwen2.5-Coder-0.5B-Instruct (its template renders tools in the Hermes <tool_call> format).
Outputs are validated with the `jsonschema` package; nothing here trusts glassbox's own view."""
import json
import subprocess
from pathlib import Path

import jsonschema
import openai
import pydantic
import pytest

from conftest import BIN, KEY, QWEN, ROOT, Server

CASES = json.loads((ROOT / "tests" / "fixtures" / "structured" / "schemas.json").read_text())["cases"]
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                          "required": ["city"], "additionalProperties": False}, "strict": True}}
TIME = {"type": "function", "function": {"name": "get_time", "description": "Current time in a time zone",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"], "additionalProperties": False}}}


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("qwen"), model=QWEN, name="qwen")
    yield openai.OpenAI(base_url=s.base + "/v1", api_key=KEY, max_retries=0, timeout=300)
    assert s.stop() == 0


def check(schema, text):
    v = json.loads(text)
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER).validate(v)
    return v


def test_held_out_schemas_all_validate(qwen):
    assert len(CASES) >= 30
    failures = []
    for c in CASES:
        r = qwen.chat.completions.create(model="qwen", messages=[{"role": "user", "content": c["prompt"] + " Answer in JSON."}], temperature=0, max_tokens=400,
                                         response_format={"type": "json_schema", "json_schema": {"name": c["name"], "schema": c["schema"], "strict": True}})
        ch = r.choices[0]
        try:
            assert ch.finish_reason == "stop", f"finish_reason {ch.finish_reason}"
            check(c["schema"], ch.message.content)
        except Exception as e:  # collect all, report together
            failures.append(f"{c['name']}: {e}: {ch.message.content!r}")
    assert not failures, "\n".join(failures)


def test_sampled_outputs_validate_too(qwen):
    for c in CASES[:8]:
        r = qwen.chat.completions.create(model="qwen", messages=[{"role": "user", "content": c["prompt"]}], temperature=1.0, seed=7, max_tokens=400, n=2,
                                         response_format={"type": "json_schema", "json_schema": {"name": c["name"], "schema": c["schema"], "strict": True}})
        for ch in r.choices:
            assert ch.finish_reason == "stop", (c["name"], ch.message.content)
            check(c["schema"], ch.message.content)


def test_json_object(qwen):
    r = qwen.chat.completions.create(model="qwen", messages=[{"role": "user", "content": "Return a JSON object with the keys name and diameter_km for the moon."}], temperature=0, max_tokens=300, response_format={"type": "json_object"})
    assert r.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(r.choices[0].message.content), dict)


class Step(pydantic.BaseModel):
    explanation: str = pydantic.Field(max_length=200)
    output: str = pydantic.Field(max_length=100)


class Solution(pydantic.BaseModel):
    steps: list[Step] = pydantic.Field(max_length=4)
    final_answer: int


def test_parse_with_pydantic(qwen):
    parse = qwen.chat.completions.parse if hasattr(qwen.chat.completions, "parse") else qwen.beta.chat.completions.parse
    r = parse(model="qwen", messages=[{"role": "user", "content": "Solve 8x + 7 = 31 step by step."}], response_format=Solution, temperature=0, max_tokens=500)
    sol = r.choices[0].message.parsed
    assert isinstance(sol, Solution) and sol.steps
    check(Solution.model_json_schema(), r.choices[0].message.content)


def test_streamed_structured_output_equals_whole(qwen):
    c = CASES[0]
    kw = dict(model="qwen", messages=[{"role": "user", "content": c["prompt"]}], temperature=0, max_tokens=200,
              response_format={"type": "json_schema", "json_schema": {"name": c["name"], "schema": c["schema"], "strict": True}})
    whole = qwen.chat.completions.create(**kw).choices[0].message.content
    streamed = "".join(ch.choices[0].delta.content or "" for ch in qwen.chat.completions.create(**kw, stream=True) if ch.choices)
    assert streamed == whole
    check(c["schema"], streamed)


@pytest.mark.parametrize("schema,words", [
    ({"type": "string", "pattern": "^a+$"}, ["pattern"]),
    ({"type": "object", "properties": {"a": {"not": {"type": "string"}}}}, ["not", "#/properties/a"]),
    ({"$ref": "#/$defs/N", "$defs": {"N": {"type": "object", "properties": {"n": {"$ref": "#/$defs/N"}}, "required": ["n"]}}}, ["base case"]),
    ({"$ref": "https://example.com/schema.json"}, ["not local"]),
    ({"type": "string", "format": "email"}, ["format"]),
    ({"type": "number", "minimum": 0}, ["minimum"]),
])
def test_schemas_that_cannot_be_enforced_are_400s(qwen, schema, words):
    with pytest.raises(openai.BadRequestError) as e:
        qwen.chat.completions.create(model="qwen", messages=[{"role": "user", "content": "x"}], max_tokens=5,
                                     response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}})
    err = e.value.body
    assert err["param"] == "response_format.json_schema.schema"
    for w in words:
        assert w in err["message"], err


def test_too_large_and_too_deep_schemas_are_400s(qwen):
    deep = {"type": "string"}
    for _ in range(40):
        deep = {"type": "array", "items": deep}
    wide = {"type": "object", "properties": {f"p{i}": {"type": "string", "description": "x" * 40} for i in range(2000)}}
    for schema, word in [(deep, "too deep"), (wide, "too large")]:
        with pytest.raises(openai.BadRequestError) as e:
            qwen.chat.completions.create(model="qwen", messages=[{"role": "user", "content": "x"}], max_tokens=5,
                                         response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}})
        assert word in e.value.body["message"]


def calls_of(msg):
    return [(c.function.name, json.loads(c.function.arguments)) for c in msg.tool_calls or []]


def test_tool_choice_required_and_named(qwen):
    for choice in ["required", {"type": "function", "function": {"name": "get_weather"}}]:
        r = qwen.chat.completions.create(model="qwen", messages=[{"role": "user", "content": "What's the weather in Paris?"}], tools=[WEATHER, TIME], tool_choice=choice, temperature=0, max_tokens=120)
        ch = r.choices[0]
        assert ch.finish_reason == "tool_calls" and ch.message.content is None
        calls = calls_of(ch.message)
        assert calls and all(n in ("get_weather", "get_time") for n, _ in calls)
        for n, args in calls:
            jsonschema.validate(args, (WEATHER if n == "get_weather" else TIME)["function"]["parameters"])
        if isinstance(choice, dict):
            assert [n for n, _ in calls] == ["get_weather"]
        assert all(len(c.id) == 9 and c.id.isalnum() and c.type == "function" for c in ch.message.tool_calls)


def test_parallel_calls_stream_as_openai_sends_them(qwen):
    kw = dict(model="qwen", messages=[{"role": "user", "content": "What's the weather in Paris and in Oslo?"}], tools=[WEATHER], tool_choice="required", temperature=0, max_tokens=200)
    whole = qwen.chat.completions.create(**kw).choices[0]
    acc, finish = {}, None
    for chunk in qwen.chat.completions.create(**kw, stream=True):
        for ch in chunk.choices:
            finish = ch.finish_reason or finish
            for tc in ch.delta.tool_calls or []:
                a = acc.setdefault(tc.index, {"name": "", "arguments": ""})
                a["name"] += tc.function.name or ""
                a["arguments"] += tc.function.arguments or ""
    assert finish == "tool_calls" == whole.finish_reason
    assert [(a["name"], json.loads(a["arguments"])) for _, a in sorted(acc.items())] == calls_of(whole.message)
    one = qwen.chat.completions.create(**kw, parallel_tool_calls=False).choices[0]
    assert len(one.message.tool_calls) == 1


def test_auto_calls_when_the_model_decides(qwen):
    for stream in (False, True):
        kw = dict(model="qwen", messages=[{"role": "user", "content": "What's the weather in Paris right now?"}], tools=[WEATHER, TIME], temperature=0, max_tokens=120)
        if not stream:
            ch = qwen.chat.completions.create(**kw).choices[0]
            calls = calls_of(ch.message)
            finish = ch.finish_reason
        else:
            acc, finish = {}, None
            for chunk in qwen.chat.completions.create(**kw, stream=True):
                for c in chunk.choices:
                    finish = c.finish_reason or finish
                    for tc in c.delta.tool_calls or []:
                        a = acc.setdefault(tc.index, ["", ""])
                        a[0] += tc.function.name or ""
                        a[1] += tc.function.arguments or ""
            calls = [(n, json.loads(a)) for n, a in acc.values()]
        assert finish == "tool_calls" and calls[0][0] == "get_weather" and calls[0][1]["city"] == "Paris", calls
        jsonschema.validate(calls[0][1], WEATHER["function"]["parameters"])
    # the answer after the tool's result is text
    r = qwen.chat.completions.create(**kw)
    call = r.choices[0].message.tool_calls[0]
    msgs = kw["messages"] + [r.choices[0].message.model_dump(exclude_none=True), {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temperature_c": 21, "sky": "clear"})}]
    r2 = qwen.chat.completions.create(model="qwen", messages=msgs, tools=[WEATHER, TIME], tool_choice="none", temperature=0, max_tokens=80)
    assert r2.choices[0].finish_reason == "stop" and "21" in r2.choices[0].message.content, r2.choices[0].message


def test_tool_results_go_back_to_the_model(qwen):
    r = qwen.chat.completions.create(model="qwen", messages=[{"role": "user", "content": "What's the weather in Paris?"}], tools=[WEATHER], tool_choice="required", temperature=0, max_tokens=100)
    call = r.choices[0].message.tool_calls[0]
    msgs = [{"role": "user", "content": "What's the weather in Paris?"}, r.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temperature_c": 21, "sky": "clear"})}]
    r2 = qwen.chat.completions.create(model="qwen", messages=msgs, tools=[WEATHER], tool_choice="none", temperature=0, max_tokens=60)
    assert r2.choices[0].message.content and r2.choices[0].message.tool_calls is None


def test_tool_definition_errors_are_400s(qwen):
    bad_tools = [
        ([{"type": "function", "function": {"name": "bad name"}}], "tools[0].function.name"),
        ([WEATHER, WEATHER], "tools[1].function.name"),
        ([{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"x": {"type": "frob"}}}}}], "tools[0].function.parameters"),
        ([{"type": "function", "function": {"name": "f", "strict": True, "parameters": {"type": "object", "properties": {"x": {"type": "string", "pattern": "a"}}}}}], "tools[0].function.parameters"),
        ([{"type": "retrieval"}], "tools[0].type"),
    ]
    for tools, param in bad_tools:
        with pytest.raises(openai.BadRequestError) as e:
            qwen.chat.completions.create(model="qwen", messages=[{"role": "user", "content": "x"}], tools=tools, max_tokens=5)
        assert e.value.body["param"] == param, e.value.body
    with pytest.raises(openai.BadRequestError) as e:
        qwen.chat.completions.create(model="qwen", messages=[{"role": "user", "content": "x"}], tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "nope"}}, max_tokens=5)
    assert e.value.body["param"] == "tool_choice"


def test_a_template_without_tools_refuses_them(client):
    # SmolLM2's template renders no tools: the call format is unknown, so tools are refused.
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": "x"}], tools=[WEATHER], max_tokens=5)
    assert e.value.body["param"] == "tools" and "not guessed" in e.value.body["message"]


def test_run_json_schema(tmp_path):
    schema = CASES[0]["schema"]
    f = tmp_path / "s.json"
    f.write_text(json.dumps(schema))
    out = subprocess.run([str(BIN), "run", str(QWEN), "-p", "Describe Ada Lovelace.", "--json-schema", str(f), "--temperature", "0", "-n", "200", "--json"],
                         capture_output=True, text=True, env={"GLASSBOX_TRUST_STORE": str(tmp_path / "t.toml"), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["finish_reason"] == "stop"
    check(schema, r["text"])
    f.write_text(json.dumps({"type": "string", "pattern": "x"}))
    bad = subprocess.run([str(BIN), "run", str(QWEN), "-p", "x", "--json-schema", str(f)], capture_output=True, text=True, env={"GLASSBOX_TRUST_STORE": str(tmp_path / "t.toml"), "PATH": "/usr/bin:/bin"})
    assert bad.returncode != 0 and "pattern" in bad.stderr and str(f) in bad.stderr
