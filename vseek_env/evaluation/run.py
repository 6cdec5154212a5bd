"""Run a policy over a dataset in parallel, resumably, and write results, summary and report.

Output folder::

    run.json        what was evaluated (policy, dataset, env options, protocol, reward as built, seed; secrets
                    redacted), and under "endpoints" the servers of the latest call (not part of the run's identity)
    results.jsonl   one record per finished episode, appended as they finish
    summary.json    accuracy overall / per dimension / prompt style / answer kind / duration, tools, rewards, latency
    report.html     browsable report; thumbnails under assets/

Example:
    >>> from vseek_env.evaluation import evaluate
    >>> result = evaluate("oracle", "synth:tiny", "runs/oracle", workers=2)     # doctest: +SKIP
    >>> result.summary["accuracy"]
    1.0
"""

from __future__ import annotations

import dataclasses
import json
import queue
import re
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from vseek_env.evaluation.episode import SHARED_ASSET_DIR, EpisodeWorker, Task, WorkerSpec
from vseek_env.evaluation.report import write_report
from vseek_env.evaluation.results import ResultsFile, sample_hash
from vseek_env.evaluation.summary import summarize
from vseek_env.jsonl_store import atomic_write_bytes
from vseek_env.openai_api import endpoints_in, redact_secrets, without_endpoints


class EvalError(RuntimeError):
    """An eval that cannot start as asked; the message says what to change."""


@dataclass
class EvalResult:
    out_dir: Path
    summary: dict
    ran: int  # episodes played by this call
    skipped: int  # episodes already finished in results.jsonl
    report: Path


def plan_tasks(sample_ids: Iterable[str], *, limit: int | None = None, repeats: int = 1, seed: int = 0) -> list[Task]:
    """One task per (sample, repeat). Seeds depend only on the key, so any subset replays the same."""
    if repeats < 1:
        raise EvalError(f"repeats must be >= 1, got {repeats}")
    ids = list(sample_ids)[: limit if limit is not None else None]
    tasks = []
    for sid in ids:
        for r in range(repeats):
            key = f"{sid}#{r}"
            tasks.append(Task(key=key, sample_id=sid, repeat=r, seed=(seed + zlib.crc32(key.encode())) % (2**31)))
    return tasks


def _run_identity(spec: WorkerSpec, dataset_name: str, seed: int) -> tuple[dict, dict]:
    """``(identity, endpoints)``: what must match for results to be resumed (policy, dataset, env
    options, the reward as built, seed), and the servers it used (recorded, not compared).

    The reward is recorded as built (``CompositeReward.to_spec``), so a judge resolved from
    ``"auto"`` shows its model; secrets are redacted everywhere (never the key itself). Endpoints
    (``base_url``, ...) are not part of the identity: a server that moved serves the same run.
    """
    from vseek_env.config import EnvConfig
    from vseek_env.rewards import make_reward

    fields = {f.name for f in dataclasses.fields(EnvConfig)}  # render_mode etc. are env, not config, options
    config = EnvConfig.from_kwargs(**{k: v for k, v in spec.env_args.items() if k in fields})
    reward = config.reward
    settings = redact_secrets({
        "policy": spec.policy, "policy_args": spec.policy_args, "dataset": dataset_name, "seed": seed,
        "env_args": {k: spec.env_args[k] for k in sorted(spec.env_args)},
        "protocol": config.protocol,
        "reward_name": reward if isinstance(reward, str) else "custom",
        "reward": make_reward(reward).to_spec(),
    })
    return without_endpoints(settings), endpoints_in(settings)


def _differences(previous: dict, current: dict) -> list[str]:
    """``field: before -> now`` for every top-level field of the run identity that differs."""
    return [f"{k}: {previous.get(k, '<unset>')!r} -> {current.get(k, '<unset>')!r}"
            for k in sorted(set(previous) | set(current)) if previous.get(k) != current.get(k)]


class _Progress:
    """tqdm when installed, else one updating stderr line; each new kind of episode error is printed
    when it first happens (a dead endpoint shows at once, not in the summary)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.done, self.correct, self.errors, self.enabled = total, 0, 0, 0, enabled
        self._seen: set[str] = set()
        self._bar = None
        if enabled:
            try:
                from tqdm import tqdm

                self._bar = tqdm(total=total, desc="eval", unit="ep", file=sys.stderr, dynamic_ncols=True)
            except ImportError:
                pass

    def update(self, record: dict) -> None:
        self.done += 1
        self.correct += bool(record.get("correct"))
        failed = record.get("status") != "ok"
        self.errors += failed
        if not self.enabled:
            return
        if failed:
            self._first_error(record)
        acc = self.correct / self.done
        if self._bar is not None:
            self._bar.set_postfix(acc=f"{acc:.3f}", errors=self.errors, refresh=False)
            self._bar.update(1)
        else:
            print(f"\r[eval] {self.done}/{self.total} episodes, accuracy {acc:.3f}, errors {self.errors}",
                  end="", file=sys.stderr, flush=True)

    def _first_error(self, record: dict) -> None:
        error = str(record.get("error") or "unknown error")
        kind = re.sub(r"\d+", "N", error.replace(str(record.get("sample_id", "")), "<sample>"))[:200]
        if kind in self._seen:
            return
        self._seen.add(kind)
        line = f"[eval] episode {record.get('key')} failed: {error[:500]}"
        if self._bar is not None:
            self._bar.write(line, file=sys.stderr)
        else:
            print("\r" + line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.enabled and self.total:
            print(file=sys.stderr)


def _run_threads(spec: WorkerSpec, tasks: list[Task], workers: int, sink: Callable) -> None:
    n = max(1, min(workers, len(tasks)))
    pool_of_workers: queue.Queue = queue.Queue()
    built = [EpisodeWorker(spec) for _ in range(n)]  # build errors (bad policy name, ...) surface here
    for w in built:
        pool_of_workers.put(w)

    def job(task: Task):
        worker = pool_of_workers.get()
        try:
            return worker.run(task)
        finally:
            pool_of_workers.put(worker)

    executor = ThreadPoolExecutor(n, thread_name_prefix="vseek-eval")
    try:
        futures = [executor.submit(job, t) for t in tasks]
        for fut in as_completed(futures):
            sink(*fut.result())
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        for w in built:
            w.close()


def _run_ray(spec: WorkerSpec, tasks: list[Task], workers: int, sink: Callable, address: str | None,
             num_cpus: float, num_gpus: float) -> None:
    try:
        import ray
        from ray.util import ActorPool
    except ImportError:
        raise EvalError("--ray needs Ray: pip install 'ray[default]'") from None
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, ignore_reinit_error=True)
    n = max(1, min(workers, len(tasks)))
    Actor = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus)(EpisodeWorker)
    actors = [Actor.remote(spec) for _ in range(n)]
    try:
        pool = ActorPool(actors)
        for record, assets in pool.map_unordered(lambda actor, task: actor.run.remote(task), tasks):
            sink(record, assets)
    finally:
        for actor in actors:
            ray.kill(actor)


def evaluate(
    policy: str,
    dataset: Any = "synth:default",
    out: str | Path = "vseek_runs/eval",
    *,
    policy_args: dict | None = None,
    env_args: dict | None = None,
    workers: int = 4,
    use_ray: bool = False,
    ray_address: str | None = None,
    ray_num_cpus: float = 1.0,
    ray_num_gpus: float = 0.0,
    limit: int | None = None,
    repeats: int = 1,
    seed: int = 0,
    progress: bool = True,
    title: str | None = None,
    recorder: Any = None,
) -> EvalResult:
    """Evaluate ``policy`` on ``dataset``; resume from ``out/results.jsonl`` if it exists.

    Args:
        policy: a registered policy name (``oracle``, ``openai``, ``hf``, ...) or ``"module:Class"``.
        dataset: a registered name (``synth:default``), a dataset file (native or V2P-Bench) or a Dataset.
        workers: episodes in flight (threads, or Ray actors with ``use_ray``); each has its own env
            and policy object, but policies of one process built from the same local HF model share
            that one loaded model (so threads add no GPU memory; each Ray actor loads its own).
        use_ray: distribute over Ray; connects to ``ray_address`` or starts a local Ray.
        limit: evaluate only the first ``limit`` samples; ``repeats``: episodes per sample; both may
            grow on a resumed run. ``seed`` is part of the run identity: another seed needs another folder.
            A finished episode is resumed only if its sample's content is unchanged (``sample_hash``).
        recorder: optional per-worker hook that adds fields and shared assets to each record
            (see :class:`~vseek_env.evaluation.episode.WorkerSpec`); not part of the run identity.
    """
    from vseek_env.data import load_dataset

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = load_dataset(dataset)
    # Ray workers on other machines rebuild a named dataset themselves; local ones get the object.
    worker_dataset = dataset if use_ray and isinstance(dataset, str) else data
    spec = WorkerSpec(policy=policy, policy_args=dict(policy_args or {}), dataset=worker_dataset,
                      env_args=dict(env_args or {}), recorder=recorder)
    identity, endpoints = _run_identity(spec, data.name if not isinstance(dataset, (str, Path)) else str(dataset), seed)
    identity = json.loads(json.dumps(identity, sort_keys=True, default=str))  # as it reads back from run.json
    run_file = out_dir / "run.json"
    if run_file.exists():
        previous = redact_secrets(json.loads(run_file.read_text(encoding="utf-8")))
        previous.pop("endpoints", None)
        previous = without_endpoints(previous)  # older versions recorded them inside the identity
        if previous != identity:
            raise EvalError(
                f"{out_dir} holds results of a different run ({'; '.join(_differences(previous, identity))}). "
                "Use another --out folder, or delete that one to start over."
            )
    record = {**identity, "endpoints": endpoints}  # the servers of the latest call
    atomic_write_bytes(run_file, json.dumps(record, indent=1, sort_keys=True, default=str).encode("utf-8"))

    store = ResultsFile(out_dir / "results.jsonl")
    store.repair()
    tasks = plan_tasks([s.id for s in data.samples], limit=limit, repeats=repeats, seed=seed)
    hashes = {t.key: sample_hash(data[t.sample_id]) for t in tasks}
    finished = store.finished_keys(hashes)
    stale = store.finished_keys() - finished
    todo = [t for t in tasks if t.key not in finished]
    if stale and progress:
        print(f"[eval] {len(stale)} finished episode(s) ran on dataset rows that have changed since; "
              "they run again", file=sys.stderr)
    bar = _Progress(len(todo), progress)

    def sink(record: dict, assets: dict[str, bytes]) -> None:
        for rel, blob in assets.items():  # thumbnails first: a record on disk implies its images are
            path = out_dir / rel
            if rel.startswith(SHARED_ASSET_DIR) and path.exists():
                continue  # content-addressed, already written by an earlier episode
            atomic_write_bytes(path, blob)  # a crash never leaves a torn image behind a finished record
        record["sample_hash"] = hashes[record["key"]]
        store.append(record)
        bar.update(record)

    try:
        if todo:
            if use_ray:
                _run_ray(spec, todo, workers, sink, ray_address, ray_num_cpus, ray_num_gpus)
            else:
                _run_threads(spec, todo, workers, sink)
    finally:
        bar.close()
        store.close()

    latest = store.latest()
    records = [latest[t.key] for t in tasks if t.key in latest]
    summary = summarize(records)
    summary.update(policy=policy, dataset=identity["dataset"], planned=len(tasks), ran=len(todo), resumed=len(tasks) - len(todo),
                   protocol=identity["protocol"], reward_name=identity["reward_name"], reward_spec=identity["reward"])
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True), encoding="utf-8")
    report = write_report(out_dir, records, summary, title=title or f"{policy} on {identity['dataset']}")
    return EvalResult(out_dir=out_dir, summary=summary, ran=len(todo), skipped=len(tasks) - len(todo), report=report)
