"""Rollouts: k episodes per sample with any policy, every trajectory stored with its conversation.

This is the eval runner (:func:`vseek_env.evaluation.evaluate`, ``repeats=k``) with the
:class:`~vseek_env.coldstart.recorder.ConversationRecorder` hook, so it runs in parallel (threads
or Ray), resumes from ``results.jsonl`` and refuses a folder holding a different run. The folder::

    run.json        policy, dataset, env options, reward as built, seed (the run identity; secrets redacted),
                    and apart from it the endpoints the run used
    results.jsonl   one record per episode: reward components, turns, tool calls and results,
                    and ``conversation`` (the env's messages, images as frames/ paths)
    frames/         every frame any trajectory saw, PNG, written once
    summary.json, report.html   the eval summary and browsable report

Example:
    >>> rs = run_rollouts("pixel", "synth:tiny", "runs/pixel", k=4, workers=2)   # doctest: +SKIP
    >>> len(rs.records), rs.k
    (24, 4)
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vseek_env.coldstart.recorder import ConversationRecorder


class RolloutError(ValueError):
    """A rollout folder that cannot be used as asked; the message says what to do."""


@dataclass
class RolloutSet:
    """The finished episodes of one rollout folder."""

    root: Path
    run: dict  # run.json: policy, policy_args, dataset, env_args
    records: list[dict]  # the latest record of every episode, in file order

    @property
    def dataset(self) -> str:
        return self.run["dataset"]

    @property
    def env_args(self) -> dict:
        """The env options of the run, with the endpoints run.json keeps apart (e.g. the judge's)."""
        args = copy.deepcopy(dict(self.run.get("env_args") or {}))
        for path, value in (self.run.get("endpoints") or {}).items():
            keys = path.split(".")
            if keys[0] != "env_args" or "[" in path:
                continue
            node = args
            for key in keys[1:-1]:
                node = node.get(key) if isinstance(node, dict) else None
            if isinstance(node, dict):
                node[keys[-1]] = value
        return args

    @property
    def k(self) -> int:
        """The largest number of finished (``status == "ok"``) episodes any sample has."""
        counts: dict[str, int] = {}
        for r in self.records:
            if r.get("status") == "ok":
                counts[r["sample_id"]] = counts.get(r["sample_id"], 0) + 1
        return max(counts.values(), default=0)

    def load_dataset(self, override: Any = None):
        """The rollouts' dataset: ``override`` (name, file or Dataset) or the one named in run.json."""
        from vseek_env.data import load_dataset

        try:
            return load_dataset(override if override is not None else self.dataset)
        except (KeyError, FileNotFoundError) as exc:
            raise RolloutError(f"{self.root}: cannot load the rollouts' dataset {self.dataset!r} ({exc}); "
                               "pass the dataset explicitly (--dataset)") from None


def run_rollouts(
    policy: str,
    dataset: Any,
    out: str | Path,
    *,
    k: int = 8,
    policy_args: dict | None = None,
    env_args: dict | None = None,
    workers: int = 4,
    use_ray: bool = False,
    ray_address: str | None = None,
    limit: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> RolloutSet:
    """Play ``k`` episodes per sample of ``dataset`` with ``policy``; resume what ``out`` holds.

    Args are those of :func:`vseek_env.evaluation.evaluate` (``k`` = ``repeats``). Episodes that
    failed (policy or video error) are stored with ``status="error"`` and retried on the next call.
    """
    from vseek_env.evaluation import evaluate

    if k < 1:
        raise RolloutError(f"k must be >= 1, got {k}")
    evaluate(
        policy, dataset, out, policy_args=policy_args, env_args=env_args, workers=workers, use_ray=use_ray,
        ray_address=ray_address, limit=limit, repeats=k, seed=seed, progress=progress,
        title=f"rollouts: {policy} x{k}", recorder=ConversationRecorder,
    )
    return load_rollouts(out)


def load_rollouts(path: str | Path) -> RolloutSet:
    """The finished rollouts of a folder written by :func:`run_rollouts` (or ``vseek rollouts run``)."""
    from vseek_env.evaluation import ResultsFile

    root = Path(path)
    run_file, results = root / "run.json", root / "results.jsonl"
    if not run_file.exists() or not results.exists():
        raise RolloutError(f"{root} is not a rollout folder (no run.json/results.jsonl): run `vseek rollouts run ... --out {root}` first")
    run = json.loads(run_file.read_text(encoding="utf-8"))
    records = list(ResultsFile(results).latest().values())
    ok = [r for r in records if r.get("status") == "ok"]
    missing = [r["key"] for r in ok if "conversation" not in r]
    if missing:
        raise RolloutError(
            f"{root}: {len(missing)} episodes (e.g. {missing[0]!r}) have no stored conversation; this folder was "
            "written by `vseek eval`, not `vseek rollouts run`. Run the rollouts into a new folder."
        )
    return RolloutSet(root=root, run=run, records=records)
