"""Tool semantics pinned on a video whose frames carry their own index."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from videos import read_index

from vseek_env.config import EnvConfig
from vseek_env.protocol import ErrorCode
from vseek_env.tools import ToolArgumentError, ToolContext, get_tool
from vseek_env.video import open_video


@pytest.fixture(scope="module")
def ctx(indexed_video):
    video = open_video(indexed_video)
    yield ToolContext(video=video, sample=None, config=EnvConfig(), prompt_frame=np.zeros((28, 28, 3), np.uint8),
                      prompt_time=1.0, video_name="indexed.mp4")
    video.close()


def crop(ctx, start, end):
    tool = get_tool("crop_video")
    return tool.run(tool.validate({"start_time": start, "end_time": end}, ctx), ctx)


@given(start=st.floats(-3, 7), length=st.floats(0.01, 10))
def test_crop_frames_lie_in_the_clamped_window_and_follow_the_formula(ctx, start, length):
    end = start + length
    video, cfg = ctx.video, ctx.config
    if start >= video.duration or end <= 0:
        with pytest.raises(ToolArgumentError) as err:
            crop(ctx, start, end)
        assert err.value.code == ErrorCode.OUT_OF_RANGE
        return
    result = crop(ctx, start, end)
    lo, hi = max(0.0, start), min(video.duration, end)
    assert result.window == (lo, hi)
    times = result.times
    assert np.all(np.diff(times) > 0), "timestamps must strictly increase"
    inside = video.frame_times[(video.frame_times >= lo - 1e-9) & (video.frame_times <= hi + 1e-9)]
    if inside.size:
        assert times.min() >= lo - 1e-9 and times.max() <= hi + 1e-9
        expected = min(inside.size, max(cfg.crop_min_frames, min(cfg.crop_max_frames, math.ceil((hi - lo) * cfg.crop_fps - 1e-9))))
        assert len(times) == expected
    else:
        assert len(times) == 1 and times[0] <= lo
    # every frame is the frame displayed at its stated time
    for frame, t in zip(result.frames, times):
        assert read_index(frame) == video.index_at(t)
        assert video.frame_times[read_index(frame)] == pytest.approx(t)


def test_crop_respects_fps_min_and_max(ctx):
    assert len(crop(ctx, 0, 6).times) == 6  # 1 fps over 6 s
    assert len(crop(ctx, 0, 1).times) == 4  # min_frames
    dense = ToolContext(video=ctx.video, sample=None, config=EnvConfig(crop_fps=100, crop_max_frames=12), video_name="")
    assert len(crop(dense, 0, 6).times) == 12  # max_frames


@pytest.mark.parametrize(
    "args, code",
    [
        ({"start_time": 3, "end_time": 2}, ErrorCode.OUT_OF_RANGE),
        ({"start_time": 2, "end_time": 2}, ErrorCode.OUT_OF_RANGE),
        ({"start_time": 9, "end_time": 12}, ErrorCode.OUT_OF_RANGE),
        ({"start_time": float("nan"), "end_time": 2}, ErrorCode.INVALID_ARGUMENTS),
        ({"start_time": 0, "end_time": float("inf")}, ErrorCode.INVALID_ARGUMENTS),
        ({"start_time": 10**400, "end_time": 2}, ErrorCode.INVALID_ARGUMENTS),
        ({"start_time": "abc", "end_time": 2}, ErrorCode.INVALID_ARGUMENTS),
        ({"start_time": True, "end_time": 2}, ErrorCode.INVALID_ARGUMENTS),
        ({"start_time": [1], "end_time": 2}, ErrorCode.INVALID_ARGUMENTS),
        ({"start_time": 1}, ErrorCode.INVALID_ARGUMENTS),
        ({"start_time": 1, "end_time": 2, "fps": 30}, ErrorCode.INVALID_ARGUMENTS),
    ],
)
def test_crop_rejects_bad_arguments_with_a_code(ctx, args, code):
    with pytest.raises(ToolArgumentError) as err:
        get_tool("crop_video").validate(args, ctx)
    assert err.value.code == code and "crop_video" in str(err.value)


def test_numeric_strings_are_accepted(ctx):
    assert get_tool("crop_video").validate({"start_time": "1.5", "end_time": "3"}, ctx) == {"start_time": 1.5, "end_time": 3.0}


def test_path_arguments_are_noted_and_never_select_what_is_read(ctx):
    """(That no file is opened at all is pinned by test_adversarial's audit-hook recorder.)"""
    tool = get_tool("crop_video")
    args = {"start_time": 0, "end_time": 2, "video_path": "/etc/passwd"}
    clean = tool.validate(args, ctx)
    assert "video_path" not in clean
    result = tool.run(clean, ctx)
    assert tool.compat_notes(args, ctx) and read_index(result.frames[0]) == 0  # the episode's own video
    assert not tool.compat_notes({**args, "video_path": "indexed.mp4"}, ctx)
    view = get_tool("view_visual_prompt")
    out = view.run(view.validate({"frame_path": "../../etc/passwd"}, ctx), ctx)
    assert out.frames.shape[0] == 1 and view.compat_notes({"frame_path": "../../etc/passwd"}, ctx)


def test_view_visual_prompt_returns_the_prompt_frame(ctx):
    result = get_tool("view_visual_prompt").run({}, ctx)
    assert result.frames[0] is ctx.prompt_frame or np.array_equal(result.frames[0], ctx.prompt_frame)
    assert list(result.times) == [1.0]


def test_zoom_in_crops_the_region_at_full_detail(ctx):
    tool = get_tool("zoom_in")
    args = tool.validate({"time": 2.0, "box": [0, 0, 192, 30]}, ctx)
    result = tool.run(args, ctx)
    assert read_index(np.concatenate([result.frames[0]] * 4, axis=0)) == 20  # top band of frame 20
    with pytest.raises(ToolArgumentError) as err:
        tool.validate({"time": 2.0, "box": [10, 10, 12, 12]}, ctx)
    assert err.value.code == ErrorCode.OUT_OF_RANGE


def test_schema_prompt_and_validator_come_from_one_definition():
    tool = get_tool("crop_video")
    schema = tool.json_schema()["function"]
    assert schema["parameters"]["required"] == ["start_time", "end_time"]
    assert "video_path" not in schema["parameters"]["properties"]
    assert "video_path" in tool.json_schema(compat_paths=True)["function"]["parameters"]["properties"]
    for name in schema["parameters"]["properties"]:
        assert name in tool.prompt_text()
