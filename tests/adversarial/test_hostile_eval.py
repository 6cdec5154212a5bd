"""`vseek eval` under bad rows, changed datasets, moved and dead servers (issue 14, findings 14-15)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hostile_data import HOSTILE_ROWS

from vseek_env.data import Dataset
from vseek_env.evaluation import ResultsFile, evaluate
from vseek_env.policies.base import Policy

pytestmark = pytest.mark.usefixtures("no_judge_from_the_environment")


class ServerPolicy(Policy):
    """Answers "A" at once; takes an API client's settings (base_url, model) and ignores them."""

    def __init__(self, base_url: str = "", model: str = "m") -> None:
        self.base_url, self.model = base_url, model

    def act(self, obs, info):
        return "<think>sure</think><answer>A</answer>"


class DeadServerPolicy(Policy):
    def act(self, obs, info):
        raise ConnectionRefusedError(f"cannot reach http://127.0.0.1:9/v1 for {info['sample_id']}")


def test_a_sample_with_a_bad_duration_is_an_error_record_and_the_rest_runs(tmp_path, small_dataset):
    bad = HOSTILE_ROWS["bad_meta_duration"].change(small_dataset["s1"])
    ds = Dataset("dur", [small_dataset["s0"], bad, small_dataset["span0"]], root=small_dataset.root)
    result = evaluate("oracle", ds, tmp_path, workers=1, progress=False)
    records = {r["sample_id"]: r for r in ResultsFile(tmp_path / "results.jsonl").records()}
    assert records["s1"]["status"] == "error" and "'s1'" in records["s1"]["error"] and "about 2 min" in records["s1"]["error"]
    assert records["s0"]["status"] == records["span0"]["status"] == "ok"
    s = result.summary
    assert s["episodes"] == 3 and s["errored"] == 1 and s["correct"] == 2 and s["accuracy"] == pytest.approx(2 / 3)
    assert [e["sample_id"] for e in s["errors"]] == ["s1"]


def test_resume_recomputes_results_of_changed_dataset_rows(tmp_path, small_dataset):
    ds = Dataset("v1", [small_dataset["s0"], small_dataset["s1"]], root=small_dataset.root)
    first = evaluate("oracle", ds, tmp_path, workers=1, progress=False)
    assert first.summary["accuracy"] == 1.0
    changed = Dataset("v1", [small_dataset["s0"], dataclasses.replace(small_dataset["s1"], answer="C")],
                      root=small_dataset.root)
    again = evaluate("oracle", changed, tmp_path, workers=1, progress=False)
    assert again.ran == 1 and again.skipped == 1  # only the changed row runs again
    latest = ResultsFile(tmp_path / "results.jsonl").latest()
    assert latest["s1#0"]["truth"] == "C" and latest["s1#0"]["correct"]
    assert evaluate("oracle", changed, tmp_path, workers=1, progress=False).ran == 0


def test_a_moved_server_is_the_same_run_but_another_model_is_not(tmp_path, small_dataset):
    from vseek_env.evaluation import EvalError

    run = lambda **args: evaluate(f"{__name__}:ServerPolicy", small_dataset, tmp_path, policy_args=args, limit=1,
                                  workers=1, progress=False)
    run(base_url="http://gpu-a:8000/v1", model="qwen")
    assert run(base_url="http://gpu-b:9000/v1", model="qwen").ran == 0
    assert json.loads((tmp_path / "run.json").read_text())["endpoints"] == {"policy_args.base_url": "http://gpu-b:9000/v1"}
    with pytest.raises(EvalError, match="policy_args"):
        run(base_url="http://gpu-b:9000/v1", model="llama")


def test_a_dead_endpoint_reports_errors_as_they_happen_and_apart_from_wrong_answers(tmp_path, small_dataset, capsys):
    result = evaluate(f"{__name__}:DeadServerPolicy", small_dataset, tmp_path, workers=1, progress=True)
    err = capsys.readouterr().err
    assert err.count("failed: ConnectionRefusedError") == 1  # the first of a kind, printed when it happens
    assert "errors 3" in err or "errors=3" in err
    s = result.summary
    assert s["errored"] == 3 and s["accuracy"] == 0.0 and len(s["errors"]) == 3
    assert all("cannot reach" in e["error"] for e in s["errors"])


def test_the_cli_lists_errored_episodes(tmp_path, small_dataset, capsys):
    from vseek_env.cli import main
    from vseek_env.data.datasets import write_samples

    bad = HOSTILE_ROWS["bad_meta_duration"].change(small_dataset["s1"])
    write_samples(tmp_path / "samples.jsonl", [small_dataset["s0"], bad])
    import shutil

    shutil.copy(small_dataset.video_path(small_dataset["s0"]), tmp_path / "indexed.mp4")
    code = main(["eval", "--policy", "oracle", "--dataset", str(tmp_path / "samples.jsonl"), "--out",
                 str(tmp_path / "out"), "--workers", "1", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 1 and "errors (1 episodes" in out and "s1#0" in out and "about 2 min" in out
