"""A careless user's calls: clear errors naming the thing to fix, no tracebacks (findings 16, 17)."""

from __future__ import annotations

import json
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

import vseek_env  # noqa: F401  (registers the env ids)
from vseek_env.data import Dataset, SampleError
from vseek_env.env import VideoSeekerEnv
from vseek_env.video import VideoError


def test_gym_make_vec_async_works_with_gymnasiums_defaults(small_dataset):
    from conftest import make_sample

    ds = Dataset("uni", [make_sample("u0", question="Où va l'objet → ?"), make_sample("u1", answer="C")],
                 root=small_dataset.root)
    crop = '<think>a</think><tool_call>{"name": "crop_video", "arguments": {"start_time": 0, "end_time": 2}}</tool_call>'
    actions = [[crop, "bad"], ["<think>a</think><answer>B</answer>", crop], ["ignored: autoreset", "bad"]]
    runs = {}
    for mode in ("async", "sync"):
        envs = gym.make_vec("VideoSeeker-v0", num_envs=2, vectorization_mode=mode, dataset=ds)
        try:
            steps = [envs.reset(seed=3)[0]]
            steps += [envs.step(a)[0] for a in actions]
        finally:
            envs.close()
        runs[mode] = steps
    for a, s in zip(runs["async"], runs["sync"]):  # each step's own values, not the first step's again
        assert tuple(a["text"]) == tuple(s["text"]) and list(a["num_frames"]) == list(s["num_frames"])
        assert all(np.array_equal(x, y) for x, y in zip(a["frames"], s["frames"]))
    texts = [step["text"][0] for step in runs["async"]]
    assert len(set(texts)) == len(texts) and any("→" in t or "Which way" in t for t in texts)


def test_a_nul_byte_in_video_is_a_sample_error_and_skipped_when_asked(small_dataset):
    from conftest import make_sample
    from hostile_data import HOSTILE_ROWS

    bad = HOSTILE_ROWS["nul_video"].change(make_sample("nul"))
    with pytest.raises(SampleError, match="'nul'.*NUL byte"):
        VideoSeekerEnv(dataset=Dataset("n", [bad], root=small_dataset.root)).reset(seed=0)
    env = VideoSeekerEnv(dataset=Dataset("n", [bad, make_sample("ok")], root=small_dataset.root), skip_bad_samples=True)
    for seed in range(4):
        _, info = env.reset(seed=seed)
        assert info["sample_id"] == "ok"
    env.close()


@pytest.mark.parametrize("option, value", [("max_turns", "four"), ("crop_fps", "1"), ("max_pixels", 1.5e5),
                                           ("error_budget", None), ("tool_timeout_s", "60")])
def test_a_wrongly_typed_option_names_itself(option, value):
    with pytest.raises(TypeError, match=f"EnvConfig.{option} must be"):
        gym.make("VideoSeeker-v0", **{option: value})


def test_demo_with_an_unknown_policy_lists_the_policies(capsys):
    from vseek_env.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--policy", "foo", "--episodes", "1"])
    assert "unknown policy 'foo'" in str(exit_info.value) and "oracle" in str(exit_info.value)


def test_a_closed_pipe_is_no_traceback(tmp_path):
    rows = [{"video_id": f"v{i}", "question": "Q?\nA: x\nB: y", "answer": "A", "response": "A", "dimension": 1}
            for i in range(2000)]
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    # `vseek v2p-score r.jsonl | head -c 1`: the reader leaves after one byte
    proc = subprocess.Popen([sys.executable, "-m", "vseek_env.cli", "v2p-score", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.read(1)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


@pytest.mark.parametrize("row, problem", [
    ({"duration": "about 2 min"}, "row 0: duration 'about 2 min'"),
    ({"dimension": [1, 2]}, "row 0: dimension [1, 2]"),
    ({"dimension": {"a": 1}}, "row 0: dimension"),
    ({"dimension": "9" * 5000}, "row 0: dimension"),
    ({"duration": float("nan")}, "row 0: duration"),
])
def test_v2p_score_names_rows_it_cannot_read_and_scores_the_rest(tmp_path, row, problem, capsys):
    from vseek_env.cli import main

    rows = [{"video_id": "v", "question": "Q?\nA: x\nB: y", "answer": "A", "response": "A", **row},
            {"video_id": "w", "question": "Q?\nA: x\nB: y", "answer": "B", "response": "B", "duration": 30}]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(rows))
    assert main(["v2p-score", str(path)]) == 0
    captured = capsys.readouterr()
    scores = json.loads(captured.out)
    assert scores["n"] == 2 and scores["official_correct"] == 2 and problem in captured.err
    assert any(problem in p for p in scores["row_problems"])


@pytest.mark.parametrize("encoding", ["utf-16", "latin-1"])
def test_v2p_score_names_a_file_that_is_not_utf8(tmp_path, encoding, capsys):
    from vseek_env.cli import main

    path = tmp_path / "r.jsonl"
    path.write_bytes(json.dumps({"video_id": "v", "question": "Où?", "answer": "A", "response": "A"},
                                ensure_ascii=False).encode(encoding))
    assert main(["v2p-score", str(path)]) == 2
    assert "not UTF-8" in capsys.readouterr().err


def test_a_utf8_bom_is_read(tmp_path, capsys):
    from vseek_env.cli import main

    path = tmp_path / "r.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"video_id": "v", "question": "Q", "answer": "A", "response": "A"}).encode())
    assert main(["v2p-score", str(path)]) == 0 and json.loads(capsys.readouterr().out)["n"] == 1


def test_a_rerun_cleans_what_a_killed_build_left(tmp_path):
    from vseek_env.jsonl_store import atomic_write_bytes
    from vseek_env.tempfiles import temp_path

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    target = tmp_path / "run.json"
    left = [temp_path(target).with_name(temp_path(target).name.replace(f"-{__import__('os').getpid()}-", f"-{dead.pid}-"))
            for _ in range(2)]
    left[0].write_text("half")
    left[1].mkdir()
    (left[1] / "x").write_text("half")
    mine = temp_path(target)  # a live writer's (this process): kept
    mine.write_text("in progress")
    atomic_write_bytes(target, b"{}")
    assert not left[0].exists() and not left[1].exists() and mine.exists() and target.read_bytes() == b"{}"
