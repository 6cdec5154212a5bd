"""Property tests across the public surface: tool validation, observations, chat messages, samples."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vseek_env.data import ANSWER_KINDS, Sample, SampleError, Track, VisualPromptSpec
from vseek_env.env import IMAGE_PLACEHOLDER, VideoSeekerEnv
from vseek_env.protocol import ErrorCode
from vseek_env.tools import TOOLS, ToolArgumentError

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-(10**400), 10**400),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from(["1", "2.5", "-3", "nan", "inf", "1e400", "0x10", " 4 ", "../../etc/passwd", "file:///etc/passwd"]),
)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
FAKE_CTX = SimpleNamespace(video=SimpleNamespace(duration=6.0, width=192, height=120))


def tool_arguments(tool):
    """Dicts over the tool's own parameter names (so validation gets past the name check) and junk keys."""
    names = [p.name for p in tool.params]
    known = st.fixed_dictionaries({}, optional={n: json_values for n in names})
    return st.one_of(known, st.dictionaries(st.sampled_from(names) | st.text(max_size=8), json_values, max_size=5), json_values)


@pytest.mark.parametrize("name", sorted(TOOLS))
@pytest.mark.parametrize("ctx", [None, FAKE_CTX], ids=["no_ctx", "ctx"])
@given(data=st.data())
def test_tool_validation_only_raises_tool_argument_errors(name, ctx, data):
    tool = TOOLS[name]
    arguments = data.draw(tool_arguments(tool))
    try:
        clean = tool.validate(arguments, ctx)
    except ToolArgumentError as exc:
        assert isinstance(exc.code, ErrorCode) and exc.code in (ErrorCode.INVALID_ARGUMENTS, ErrorCode.OUT_OF_RANGE)
        assert name in str(exc)
        return
    visible = {p.name for p in tool.params if not p.compat_only}
    assert set(clean) <= visible
    for value in clean.values():
        for v in value if isinstance(value, tuple) else (value,):
            assert not isinstance(v, (float, int)) or math.isfinite(v)
    if name == "crop_video":
        assert clean["start_time"] < clean["end_time"]
        if ctx is not None:
            assert 0 <= clean["start_time"] < clean["end_time"] <= ctx.video.duration
    if name == "zoom_in" and ctx is not None:
        x1, y1, x2, y2 = clean["box"]
        assert 0 <= x1 < x2 <= ctx.video.width and 0 <= y1 < y2 <= ctx.video.height
        assert 0 <= clean["time"] <= ctx.video.duration


@pytest.fixture(scope="module")
def prop_env(small_dataset):
    env = VideoSeekerEnv(dataset=small_dataset, tools=tuple(TOOLS), compat_paths=True, max_turns=50, error_budget=50,
                         obs_frames=32, overview_frames=8)
    yield env
    env.close()


def _call(name, arguments) -> str:
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}) + "</tool_call>"


fragments = st.one_of(
    st.builds(lambda a: _call("crop_video", a), st.fixed_dictionaries({"start_time": json_scalars, "end_time": json_scalars})),
    st.builds(lambda s, e: _call("crop_video", {"start_time": s, "end_time": e}), st.floats(-1, 7), st.floats(-1, 7)),
    st.builds(lambda a: _call("zoom_in", a), st.fixed_dictionaries({"time": st.floats(-1, 7), "box": st.lists(st.integers(-20, 220), min_size=4, max_size=4)})),
    st.just(_call("view_visual_prompt", {})),
    st.builds(lambda n, a: _call(n, a), st.text(max_size=10).filter(lambda s: IMAGE_PLACEHOLDER not in s), json_values),
    st.sampled_from(["<think>", "</think>", "<tool_call>", "</tool_call>", "<answer>", "</answer>", "{", "}", "\x00", "\u202e"]),
    st.text(max_size=30).filter(lambda s: IMAGE_PLACEHOLDER not in s),
)
responses = st.lists(fragments, max_size=8).map(lambda parts: "<think>t</think>" + "".join(parts))


@given(response=responses)
def test_every_observation_is_in_the_space_and_messages_are_well_formed(prop_env, response):
    prop_env.reset(seed=0, options={"sample_id": "s0"})
    obs, reward, terminated, truncated, info = prop_env.step(response)
    assert prop_env.observation_space.contains(obs)
    assert math.isfinite(reward) and not (terminated and truncated)
    check_messages(prop_env, obs, info)


def check_messages(env, obs, info) -> None:
    """The chat-message form: roles, part types, uint8 HxWx3 images, one placeholder per image."""
    images = []
    for message in info["messages"]:
        assert message["role"] in ("system", "user", "tool")
        assert isinstance(message["content"], list) and message["content"]
        if message["role"] == "tool":
            assert isinstance(message["name"], str)  # the name the model called, known or not
        for part in message["content"]:
            assert set(part) == ({"type", "text"} if part["type"] == "text" else {"type", "image"})
            if part["type"] == "text":
                assert isinstance(part["text"], str)
            else:
                image = part["image"]
                assert isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
                assert image.shape[0] > 0 and image.shape[1] > 0
                images.append(image)
    assert len(images) == len(info["frames"]) == obs["num_frames"]
    assert obs["text"].count(IMAGE_PLACEHOLDER) == len(images)
    stamps = obs["timestamps"][: obs["num_frames"]]
    assert list(stamps) == [f["time"] if f["time"] is not None and f["time"] >= 0 else -1.0 for f in info["frames"]]
    assert np.all(obs["timestamps"][obs["num_frames"]:] == -1.0) and not obs["frames"][obs["num_frames"]:].any()


def test_first_observation_messages_are_well_formed(prop_env):
    for sample_id in ("s0", "s1", "span0"):
        obs, info = prop_env.reset(seed=0, options={"sample_id": sample_id})
        assert prop_env.observation_space.contains(obs)
        assert [m["role"] for m in info["messages"]] == ["system", "user"]
        check_messages(prop_env, obs, info)


# -- the Sample schema ----------------------------------------------------------------------------
finite = st.floats(-1e6, 1e6, allow_nan=False)
boxes = st.tuples(finite, finite, finite, finite)
plain_json = st.recursive(st.none() | st.booleans() | st.integers(-(2**53), 2**53) | finite | st.text(max_size=10),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                          max_leaves=8)


@st.composite
def samples(draw) -> Sample:
    kind = draw(st.sampled_from(ANSWER_KINDS))
    options: tuple[str, ...] = ()
    if kind == "choice":
        options = tuple(draw(st.lists(st.text(max_size=15), min_size=1, max_size=6)))
        answer = draw(st.sampled_from([chr(65 + i) for i in range(len(options))]))
    elif kind == "span":
        answer = draw(st.tuples(finite, finite))
    elif kind == "box":
        answer = draw(boxes)
    elif kind == "number":
        answer = draw(finite | st.integers(-1000, 1000))
    else:
        answer = draw(st.text(min_size=1, max_size=20))
    times = sorted(draw(st.lists(finite, max_size=4)))  # a track is sorted by time
    return Sample(
        id=draw(st.text(min_size=1, max_size=12)),
        video=draw(st.text(min_size=1, max_size=20)),
        question=draw(st.text(min_size=1, max_size=60)),
        answer=answer, answer_kind=kind, options=options,
        prompt=VisualPromptSpec(time=draw(st.none() | finite), style=draw(st.sampled_from(["rectangle", "ellipse", "point"])),
                                box=draw(st.none() | boxes), mask_rle=draw(st.none() | st.just({"size": [4, 4], "counts": [3, 2, 11]})),
                                image=draw(st.none() | st.text(min_size=1, max_size=10)), seed=draw(st.integers(0, 99)),
                                label=draw(st.integers(1, 9))),
        track=draw(st.none() | st.just(Track(times=tuple(times), boxes=tuple(draw(boxes) for _ in times)))),
        evidence=draw(st.none() | st.tuples(finite, finite)),
        answer_time=draw(st.none() | finite),
        dimension=draw(st.none() | st.text(max_size=4) | st.integers(0, 20)),
        source=draw(st.text(max_size=8)), needs_tools=draw(st.none() | st.booleans()),
        duration=draw(st.none() | finite), meta=draw(st.dictionaries(st.text(max_size=5), plain_json, max_size=3)),
    )


@given(sample=samples())
def test_sample_round_trips_through_dict_and_json(sample):
    assert Sample.from_dict(sample.to_dict()) == sample
    assert Sample.from_dict(json.loads(json.dumps(sample.to_dict()))) == sample


VALID_ROW = {"id": "row-7", "video": "v.mp4", "question": "q?", "answer": "A", "options": ["x", "y"]}
# prompt/track must be objects; other values are pinned by test_non_object_prompt_or_track_is_a_sample_error
FIELDS = st.sampled_from(["id", "video", "question", "answer", "answer_kind", "options", "evidence", "answer_time",
                          "dimension", "source", "needs_tools", "duration", "meta", "unknown_field"])


@given(field=FIELDS, value=json_values)
def test_a_bad_row_gives_sample_error_naming_the_sample(field, value):
    row = {**VALID_ROW, field: value}
    try:
        Sample.from_dict(row)
    except SampleError as exc:
        # a bad id cannot name the sample; the message names the field instead
        assert ("row-7" in str(exc)) if field != "id" else ("id" in str(exc))


@given(prompt=st.dictionaries(st.sampled_from(["time", "style", "box", "mask_rle", "image", "seed", "label", "bogus"]), json_values),
       track=st.none() | st.dictionaries(st.sampled_from(["times", "boxes", "bogus"]), json_values))
def test_bad_prompt_or_track_objects_give_sample_error(prompt, track):
    try:
        Sample.from_dict({**VALID_ROW, "prompt": prompt, "track": track})
    except SampleError as exc:
        assert "row-7" in str(exc)


@pytest.mark.parametrize("field,value", [("prompt", "rectangle"), ("prompt", [1, 2]), ("track", [[0, 1]]), ("track", "t")])
def test_non_object_prompt_or_track_is_a_sample_error(field, value):
    with pytest.raises(SampleError, match="row-7"):
        Sample.from_dict({**VALID_ROW, field: value})


@pytest.mark.parametrize("field,value", [("video", 5), ("question", ["q"]), ("meta", [1]), ("dimension", [1]),
                                         ("options", [{"a": 1}])])
def test_wrongly_typed_fields_are_sample_errors(field, value):
    with pytest.raises(SampleError, match="row-7"):
        Sample.from_dict({**VALID_ROW, field: value})


@pytest.mark.parametrize("max_text_chars", [1, 10, 19])
def test_tiny_text_limits_keep_observations_in_the_space(small_dataset, max_text_chars):
    env = VideoSeekerEnv(dataset=small_dataset, max_text_chars=max_text_chars)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
