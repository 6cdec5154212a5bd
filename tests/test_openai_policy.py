"""OpenAIChatPolicy against a local chat-completions server: native tool calls, garbage, retries, keys."""

from __future__ import annotations

import base64
import io
import json

import pytest
from fake_openai import FakeOpenAIServer, Reply
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from vseek_env.env import VideoSeekerEnv
from vseek_env.evaluation import ResultsFile, evaluate
from vseek_env.policies import make_policy
from vseek_env.policies.openai_chat import OpenAIChatPolicy, OpenAIPolicyError, tool_calls_to_text
from vseek_env.protocol import parse_response
from vseek_env.runner import run_episode

SECRET = "sk-test-very-secret"


@pytest.fixture
def env():
    e = VideoSeekerEnv(dataset="synth:tiny")
    yield e
    e.close()


def _choice_sample(env):
    return next(s for s in env.dataset.samples if s.answer_kind == "choice")


def _images(message) -> list[Image.Image]:
    out = []
    for part in message["content"] if isinstance(message["content"], list) else []:
        if part["type"] == "image_url":
            head, data = part["image_url"]["url"].split(",", 1)
            assert head == "data:image/jpeg;base64"
            out.append(Image.open(io.BytesIO(base64.b64decode(data))))
    return out


def test_native_tool_call_episode(env, monkeypatch):
    monkeypatch.setenv("VSEEK_API_KEY", SECRET)
    sample = _choice_sample(env)
    replies = iter([
        Reply.tool_calls([("crop_video", {"start_time": 1.0, "end_time": 5.0})], content="<think>look closer</think>"),
        Reply.text(f"<think>seen it</think><answer>{sample.answer}</answer>"),
    ])
    with FakeOpenAIServer(lambda req: next(replies)) as server:
        policy = make_policy("openai", model="m", base_url=server.base_url, max_retries=0)
        result = run_episode(env, policy, seed=0, sample_id=sample.id)
    assert result.terminated and result.components["accuracy"] == 1.0 and result.num_tool_calls == 1
    assert result.trajectory.turns[0].parsed.tool_calls[0].arguments == {"start_time": 1.0, "end_time": 5.0}
    first, second = server.requests
    assert first["_path"] == "/v1/chat/completions" and first["model"] == "m"
    assert first["_headers"]["Authorization"] == f"Bearer {SECRET}" and SECRET not in repr(policy)
    assert {t["function"]["name"] for t in first["tools"]} == set(env.tools)
    assert [m["role"] for m in first["messages"]] == ["system", "user"]
    assert len(_images(first["messages"][1])) == 17 and all(im.format == "JPEG" for im in _images(first["messages"][1]))
    # the native call is answered by its id; its frames follow in a user message with their time labels
    roles = [m["role"] for m in second["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "user"]
    assert second["messages"][2]["tool_calls"][0]["id"] == "call_0"
    assert second["messages"][3]["tool_call_id"] == "call_0" and second["messages"][3]["content"].strip()
    frames = _images(second["messages"][4])
    labels = [p["text"] for p in second["messages"][4]["content"] if p["type"] == "text"]
    assert len(frames) == len(result.trajectory.turns[0].tools[0].times) and any("seconds>" in t for t in labels)


def test_malformed_replies_become_env_errors(env):
    sample = _choice_sample(env)
    replies = iter([
        Reply(body="this is not json {"),  # garbage body
        Reply(body={"choices": []}),  # no choices
        Reply.tool_calls([("crop_video", {})]),  # replaced below by unparsable arguments
        Reply.text(f"<think>ok</think><answer>{sample.answer}</answer>"),
    ])

    def reply(req):
        r = next(replies)
        if isinstance(r.body, dict) and r.body.get("choices") and r.body["choices"][0]["message"].get("tool_calls"):
            r.body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = "{not json"
        return r

    with FakeOpenAIServer(reply) as server:
        policy = OpenAIChatPolicy(model="m", base_url=server.base_url, max_retries=0)
        result = run_episode(VideoSeekerEnv(dataset="synth:tiny", error_budget=5), policy, seed=0, sample_id=sample.id)
    codes = [[e.code.value for e in t.errors] for t in result.trajectory.turns]
    assert codes[0] == ["no_action"] and codes[1] == ["no_action"]
    assert codes[2] and codes[2][0] in ("bad_tool_call", "invalid_json")
    assert result.terminated and result.components["accuracy"] == 1.0 and result.components["format"] == 0.0
    assert policy.usage["malformed"] == 2
    assert "malformed server reply" in result.trajectory.turns[0].response


def test_retries_then_succeeds_and_gives_up_with_a_clear_error(env):
    sample = _choice_sample(env)
    replies = iter([Reply(status=503, body={"error": "busy"}), Reply(close=True),
                    Reply.text(f"<think>k</think><answer>{sample.answer}</answer>")])
    with FakeOpenAIServer(lambda req: next(replies)) as server:
        policy = OpenAIChatPolicy(model="m", base_url=server.base_url, max_retries=3, backoff_s=0.01)
        result = run_episode(env, policy, seed=0, sample_id=sample.id)
    assert result.components["accuracy"] == 1.0 and policy.usage["retries"] == 2

    with FakeOpenAIServer(lambda req: Reply(status=500, body={"error": "down"})) as server:
        policy = OpenAIChatPolicy(model="m", base_url=server.base_url, max_retries=1, backoff_s=0.01)
        with pytest.raises(OpenAIPolicyError, match="gave up after 2 attempts"):
            run_episode(env, policy, seed=0, sample_id=sample.id)
    with FakeOpenAIServer(lambda req: Reply(delay_s=2.0, body={})) as server:
        policy = OpenAIChatPolicy(model="m", base_url=server.base_url, max_retries=0, timeout_s=0.2)
        with pytest.raises(OpenAIPolicyError, match="cannot reach"):
            run_episode(env, policy, seed=0, sample_id=sample.id)


def test_auth_failure_is_not_retried_and_hides_the_key(env):
    with FakeOpenAIServer(lambda req: Reply(status=401, body={"error": "bad key"})) as server:
        policy = OpenAIChatPolicy(model="m", base_url=server.base_url, api_key=SECRET, max_retries=3)
        with pytest.raises(OpenAIPolicyError) as err:
            run_episode(env, policy, seed=0)
    assert len(server.requests) == 1 and "401" in str(err.value) and SECRET not in str(err.value)


def test_eval_with_the_openai_policy(tmp_path):
    """Real episodes through `evaluate`: a text-grammar model that always picks A."""
    with FakeOpenAIServer(lambda req: Reply.text("<think>guess</think><answer>A</answer>")) as server:
        result = evaluate("openai", "synth:tiny", tmp_path, policy_args={"model": "m", "base_url": server.base_url,
                          "api_key": SECRET}, workers=2, progress=False)
    records = ResultsFile(tmp_path / "results.jsonl").records()
    assert result.summary["errored"] == 0 and len(records) == result.summary["episodes"]
    assert all(r["answer"] == "A" for r in records)
    assert result.summary["correct"] == sum(1 for r in records if r["answer_kind"] == "choice" and r["truth"] == "A")
    assert SECRET not in (tmp_path / "run.json").read_text() and "<redacted>" in (tmp_path / "run.json").read_text()


_names = st.sampled_from(["crop_video", "view_visual_prompt", "zoom_in", "x"])
_args = st.dictionaries(st.text(min_size=1, max_size=8), st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8)), max_size=3)


@given(calls=st.lists(st.tuples(_names, _args), min_size=1, max_size=3))
def test_native_calls_parse_back_to_the_same_calls(calls):
    native = [{"id": f"c{i}", "type": "function", "function": {"name": n, "arguments": json.dumps(a)}} for i, (n, a) in enumerate(calls)]
    parsed = parse_response("<think>t</think>" + tool_calls_to_text(native))
    assert [(c.name, c.arguments) for c in parsed.tool_calls] == [(n, a) for n, a in calls]
    assert parsed.well_formed
