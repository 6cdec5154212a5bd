"""`vseek eval`: accuracy of known policies, parallel runs, resume after a kill, Ray = threads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from vseek_env.cli import main
from vseek_env.data import load_dataset
from vseek_env.evaluation import EvalError, ResultsFile, evaluate, plan_tasks, summarize
from vseek_env.policies.base import Policy

TESTS = Path(__file__).parent


# -- scripted policies (importable as test_eval:Name, also from subprocesses and Ray workers) -------
class LoggingTruthPolicy(Policy):
    """Answers the truth after one crop; logs every episode start to ``log``; dies by SIGKILL when
    the file ``kill_file`` holds a number and that many episodes were logged before this one."""

    def __init__(self, log: str, kill_file: str | None = None) -> None:
        self.log, self.kill_file = Path(log), kill_file

    def bind_env(self, env):
        self.env = env

    def reset(self, seed=None):
        self.turn = 0

    def act(self, obs, info):
        self.turn += 1
        if self.turn == 1:
            started = len(self.log.read_text().splitlines()) if self.log.exists() else 0
            if self.kill_file and Path(self.kill_file).exists():
                limit = Path(self.kill_file).read_text().strip()
                if limit.isdigit() and started >= int(limit):
                    os.kill(os.getpid(), signal.SIGKILL)
            with open(self.log, "a") as fh:
                fh.write(info["sample_id"] + "\n")
            return '<think>look</think><tool_call>{"name": "crop_video", "arguments": {"start_time": 0, "end_time": 3}}</tool_call>'
        from vseek_env.policies.oracle import format_answer

        return f"<think>known</think><answer>{format_answer(self.env.sample)}</answer>"


class FixedAnswerPolicy(Policy):
    """Answers ``answer`` at once; takes any other keyword (an API client's settings) and ignores it."""

    def __init__(self, answer: str = "A", **settings) -> None:
        self.answer, self.settings = answer, settings

    def act(self, obs, info):
        return f"<think>sure</think><answer>{self.answer}</answer>"


SECRET = "sk-test-SECRET-123"


def _strip_timing(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("latency_s", "policy_s")}


def test_oracle_scores_100_percent(tmp_path):
    result = evaluate("oracle", "synth:tiny", tmp_path / "oracle", workers=2, progress=False)
    s = result.summary
    n = len(load_dataset("synth:tiny"))
    assert s["episodes"] == n and s["accuracy"] == 1.0 and s["parse_failures"] == 0 and s["errored"] == 0
    assert all(row["accuracy"] == 1.0 for row in s["per_dimension"].values())
    assert sum(row["n"] for row in s["per_answer_kind"].values()) == n
    records = ResultsFile(tmp_path / "oracle" / "results.jsonl").records()
    assert sorted(r["sample_id"] for r in records) == sorted(x.id for x in load_dataset("synth:tiny").samples)
    assert json.loads((tmp_path / "oracle" / "summary.json").read_text())["accuracy"] == 1.0


def test_random_is_near_chance(tmp_path):
    data = load_dataset("synth:tiny")
    repeats = 12
    result = evaluate("random", "synth:tiny", tmp_path / "random", workers=2, repeats=repeats, progress=False)
    s = result.summary
    assert s["episodes"] == len(data) * repeats and s["parse_failures"] == 0
    choice = [s_ for s_ in data.samples if s_.answer_kind == "choice"]
    chance = sum(1 / len(x.options) for x in choice) / len(choice)
    n = len(choice) * repeats
    sd = (chance * (1 - chance) / n) ** 0.5
    assert s["per_answer_kind"]["choice"]["n"] == n
    assert abs(s["per_answer_kind"]["choice"]["accuracy"] - chance) <= 4 * sd, (s["per_answer_kind"], chance)
    assert s["accuracy"] < 0.6  # far from the oracle's 1.0


def test_resume_after_sigkill_runs_only_missing_episodes(tmp_path):
    out, log, kill = tmp_path / "run", tmp_path / "starts.log", tmp_path / "kill_after"
    kill.write_text("3")
    cmd = [sys.executable, "-m", "vseek_env.cli", "eval", "--policy", "test_eval:LoggingTruthPolicy",
           "--policy-arg", f"log={log}", "--policy-arg", f"kill_file={kill}", "--dataset", "synth:tiny",
           "--out", str(out), "--workers", "1", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    done = ResultsFile(out / "results.jsonl").finished_keys()
    assert len(done) == 3 and not (out / "summary.json").exists()

    kill.write_text("never")
    log.write_text("")
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    n = len(load_dataset("synth:tiny"))
    rerun = log.read_text().split()
    assert len(rerun) == n - 3 and not set(f"{sid}#0" for sid in rerun) & done
    records = ResultsFile(out / "results.jsonl").records()
    assert len(records) == n and len({r["key"] for r in records}) == n
    assert json.loads((out / "summary.json").read_text())["accuracy"] == 1.0


def test_torn_last_line_is_repaired_and_errors_are_retried(tmp_path):
    store = ResultsFile(tmp_path / "results.jsonl")
    store.append({"key": "a#0", "status": "ok"})
    store.append({"key": "b#0", "status": "error", "error": "boom"})
    store.close()
    with open(tmp_path / "results.jsonl", "a") as fh:
        fh.write('{"key": "c#0", "sta')  # killed mid-write
    assert store.finished_keys() == {"a#0"}
    assert store.repair() > 0
    store.append({"key": "b#0", "status": "ok"})
    store.close()
    assert store.finished_keys() == {"a#0", "b#0"}
    assert store.repair() == 0


def test_ray_gives_the_same_results_as_threads(tmp_path):
    ray = pytest.importorskip("ray")
    threads = evaluate("random", "synth:tiny", tmp_path / "threads", workers=2, repeats=2, progress=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"VSEEK_CACHE_DIR": os.environ["VSEEK_CACHE_DIR"]}})
    try:
        distributed = evaluate("random", "synth:tiny", tmp_path / "ray", workers=2, repeats=2, use_ray=True, progress=False)
    finally:
        ray.shutdown()
    a = {r["key"]: _strip_timing(r) for r in ResultsFile(threads.out_dir / "results.jsonl").records()}
    b = {r["key"]: _strip_timing(r) for r in ResultsFile(distributed.out_dir / "results.jsonl").records()}
    assert a == b and len(a) == 2 * len(load_dataset("synth:tiny"))
    for r in b.values():  # the driver wrote every thumbnail the Ray workers made
        assert all((distributed.out_dir / f["image"]).exists() for t in r["turns"] for f in t["frames"])


def test_same_out_dir_with_another_policy_is_refused(tmp_path):
    evaluate("oracle", "synth:tiny", tmp_path, limit=1, progress=False)
    with pytest.raises(EvalError, match="different run"):
        evaluate("random", "synth:tiny", tmp_path, limit=1, progress=False)


def test_policy_failure_is_recorded_then_retried(tmp_path, small_dataset):
    class Boom(Policy):
        def act(self, obs, info):
            raise RuntimeError("server down")

    from vseek_env.policies import register_policy

    register_policy("test_boom", f"{__name__}:_Boom")
    globals()["_Boom"] = Boom
    result = evaluate("test_boom", small_dataset, tmp_path, workers=1, progress=False)
    assert result.summary["errored"] == len(small_dataset) and result.summary["accuracy"] == 0.0
    assert "server down" in ResultsFile(tmp_path / "results.jsonl").records()[0]["error"]
    again = evaluate("test_boom", small_dataset, tmp_path, workers=1, progress=False)
    assert again.ran == len(small_dataset)  # failed episodes are not "finished"


def test_plan_seeds_do_not_depend_on_the_subset():
    full = {t.key: t.seed for t in plan_tasks(["a", "b", "c"], repeats=3)}
    part = {t.key: t.seed for t in plan_tasks(["a", "b", "c"], limit=1, repeats=2)}
    assert part == {k: full[k] for k in part} and len(part) == 2
    assert len(set(full.values())) == len(full)


def test_summary_counts_parse_failures_and_errors_as_wrong():
    base = {"status": "ok", "dimension": 2, "prompt_style": "arrow", "answer_kind": "choice", "duration_bucket": "short",
            "num_tool_calls": 1, "tool_counts": {"crop_video": 1}, "reward": 1.0, "components": {"accuracy": 1.0},
            "latency_s": 1.0}
    records = [
        {**base, "key": "a#0", "correct": True, "parse_failure": False},
        {**base, "key": "b#0", "correct": False, "parse_failure": True, "num_tool_calls": 3, "tool_counts": {"crop_video": 3},
         "components": {"accuracy": 0.0}, "reward": 0.0},
        {"key": "c#0", "status": "error", "dimension": 5, "latency_s": 3.0},
    ]
    s = summarize(records)
    assert s["accuracy"] == pytest.approx(1 / 3) and s["parse_failures"] == 1 and s["errored"] == 1
    assert s["per_dimension"]["2"] == {"n": 2, "correct": 1, "accuracy": 0.5}
    assert s["per_dimension"]["5"]["accuracy"] == 0.0
    assert s["tool_calls"]["mean_per_episode"] == 2.0 and s["tool_calls"]["by_tool"] == {"crop_video": 4}
    assert s["reward"]["components"]["accuracy"] == 0.5
    assert s["latency_s"]["max"] == 3.0 and s["latency_s"]["p50"] == 1.0


def test_cli_eval(tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["eval", "--policy", "oracle", "--dataset", "synth:tiny", "--out", str(out), "--limit", "2",
                 "--workers", "2", "--no-progress", "--env-arg", "max_turns=4"])
    assert code == 0
    text = capsys.readouterr().out
    assert "accuracy 1.000" in text and "report.html" in text
    assert json.loads((out / "run.json").read_text())["env_args"] == {"max_turns": 4}
    assert len(ResultsFile(out / "results.jsonl").records()) == 2
    assert main(["eval", "--policy", "no_such_policy", "--dataset", "synth:tiny", "--out", str(tmp_path / "x")]) == 2


def test_secrets_never_reach_run_json_or_errors_but_changed_settings_do(tmp_path, small_dataset):
    policy_args = {"max_tokens": 8, "client": {"api_key": SECRET, "base_url": "http://h/v1"}, "hf_token": SECRET}
    judge = {"base_url": "http://127.0.0.1:9/v1", "api_key": SECRET, "retries": 0, "timeout_s": 0.5}
    env_args = {"reward": {"preset": "paper", "accuracy": {"judge": judge}}}
    run = lambda **kw: evaluate("test_eval:FixedAnswerPolicy", small_dataset, tmp_path, limit=1, workers=1,
                                progress=False, **{"policy_args": policy_args, "env_args": env_args, **kw})
    run()
    saved = (tmp_path / "run.json").read_text()
    identity = json.loads(saved)
    assert SECRET not in saved and identity["policy_args"]["max_tokens"] == 8  # not hidden as a "token"
    assert identity["policy_args"]["client"]["api_key"] == "<redacted>" and identity["policy_args"]["hf_token"] == "<redacted>"
    assert identity["endpoints"]["reward.accuracy.judge.base_url"] == judge["base_url"]  # which judge graded
    assert run(policy_args={**policy_args, "hf_token": "another key"}).ran == 0  # a new key is the same run
    with pytest.raises(EvalError) as err:
        run(policy_args={**policy_args, "max_tokens": 16})
    assert SECRET not in str(err.value) and "policy_args" in str(err.value) and "env_args" not in str(err.value)
    assert SECRET not in (tmp_path / "results.jsonl").read_text()


def test_another_seed_is_another_run(tmp_path):
    evaluate("oracle", "synth:tiny", tmp_path, limit=1, seed=1, progress=False)
    with pytest.raises(EvalError, match="seed: 1 -> 2"):
        evaluate("oracle", "synth:tiny", tmp_path, limit=1, seed=2, progress=False)
    assert evaluate("oracle", "synth:tiny", tmp_path, limit=1, seed=1, progress=False).ran == 0


def test_the_eval_grades_with_the_env_reward_settings(tmp_path, small_dataset):
    from vseek_env.data import Dataset

    span = Dataset("spans", [small_dataset["span0"]], root=small_dataset.root)  # truth [2, 4]
    args = {"answer": "from 2 to 8"}  # IoU 1/3: wrong at the default 0.5, right at 0.2
    records = {}
    for name, threshold in (("strict", 0.5), ("loose", 0.2)):
        reward = {"accuracy": {"weight": 1.0, "iou_threshold": threshold}, "format": 0.0}
        evaluate("test_eval:FixedAnswerPolicy", span, tmp_path / name, policy_args=args, env_args={"reward": reward},
                 workers=1, progress=False)
        records[name] = ResultsFile(tmp_path / name / "results.jsonl").records()[0]
    for r in records.values():
        assert r["correct"] == (r["components"]["accuracy"] == 1.0) and r["score"] == r["components"]["accuracy"]
    assert not records["strict"]["correct"] and records["loose"]["correct"]
    assert records["loose"]["match_rule"] == "tiou>=0.2" and not records["loose"]["parse_failure"]
