"""Drive the four stages over a QA file, locally or on Ray Data, resumably.

Output folder layout::

    OUT/run.json                 input (path, size, sha256), format and the output-relevant settings
                                 (checked on resume: an edited input is refused)
    OUT/manifests/g1..g4.jsonl   one record per sample and stage: kept / dropped + reason (+ data)
    OUT/prompts/*.png            the rendered prompt frame of every kept sample (for inspection)
    OUT/samples.jsonl            the native dataset (loadable with ``load_dataset(OUT)``)
    OUT/samples.parquet          the same, with ``parquet=True``
    OUT/retention.json           the retention table (stage, output count, relative retention)

Re-running with the same ``OUT`` skips every (sample, stage) pair already in a manifest, so a
killed run loses nothing and redoes nothing. The Ray path runs the same stage functions as Ray Data
``map_batches`` operations (actors, bounded pool; model calls run concurrently inside a batch)
and the driver writes the same files; manifests are compacted to input order at the end, so both
paths produce identical files.

Example:
    >>> report = run_pipeline("qa.json", "llava", PipelineConfig(out="out"), videos_root="videos")  # doctest: +SKIP
    >>> print(format_retention(report["retention"]))                                                # doctest: +SKIP
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from vseek_env.pipeline.adapters import read_items
from vseek_env.pipeline.stages import STAGES, ConfigError, Outcome, PipelineConfig, StageContext, process_batch
from vseek_env.pipeline.store import Manifest, atomic_write_bytes

__all__ = ["run_pipeline", "pipeline_status", "format_retention", "STAGE_TITLES"]

STAGE_TITLES = {
    "input": "Input QA",
    "g1": "G1 text filter",
    "g2": "G2 video verification",
    "g3": "G3 masks (1 fps)",
    "g4": "G4 render + rewrite",
}


def _manifests(out: Path) -> dict[str, Manifest]:
    return {stage: Manifest(out / "manifests" / f"{stage}.jsonl") for stage in STAGES}


def _file_fingerprint(path: str | os.PathLike) -> dict:
    """``{"input_size", "input_sha256"}`` of the input file (a resume must see the same bytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"input_size": os.path.getsize(path), "input_sha256": digest.hexdigest()}


def _check_run_file(out: Path, meta: dict) -> None:
    path = out / "run.json"
    if path.exists():
        old = json.loads(path.read_text())
        if "input_sha256" in old and old.get("input") == meta["input"] and (
            old["input_sha256"], old.get("input_size")) != (meta["input_sha256"], meta["input_size"]):
            raise ConfigError(
                f"{meta['input']} changed since the run in {out} started ({old.get('input_size')} -> "
                f"{meta['input_size']} bytes, sha256 {old['input_sha256'][:12]}... -> {meta['input_sha256'][:12]}...); "
                "its manifests describe the old questions: restore the file or choose a new --out"
            )
        diffs = [f"{key}: {old.get(key)!r} -> {meta.get(key)!r}" for key in ("input", "format", "videos_root") if old.get(key) != meta.get(key)]
        before, now = old.get("settings", {}), meta["settings"]
        diffs += [f"{key}: {before.get(key)!r} -> {now.get(key)!r}" for key in sorted(set(before) | set(now)) if before.get(key) != now.get(key)]
        if diffs:
            raise ConfigError(
                f"{out} holds a run with other inputs or settings ({'; '.join(diffs)}); "
                "resume with the same options or choose a new --out"
            )
        return
    atomic_write_bytes(path, (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())


def _preflight(items: list[dict], ctx: StageContext) -> None:
    """Fail before any work when the settings cannot process these items."""
    cfg = ctx.config
    names = {ctx.segmenter_name(it) for it in items}
    for name in sorted(names):
        why = ctx.segmenter(name).unavailable()
        if why:
            raise ConfigError(why)
    needs_vlm = [it["id"] for it in items if not (it.get("annotations") and cfg.use_annotations)]
    if needs_vlm and not (cfg.vlm_base_url or cfg.llm_base_url):
        raise ConfigError(
            f"{len(needs_vlm)} sample(s) (e.g. {needs_vlm[0]!r}) have no target annotations, so G2 needs a VLM: "
            "pass --llm-base-url and --llm-model (an OpenAI-compatible server such as `vllm serve`)"
        )


def run_pipeline(
    input_path: str | os.PathLike,
    fmt: str,
    config: PipelineConfig,
    *,
    videos_root: str | os.PathLike | None = None,
    use_ray: bool = False,
    ray_address: str | None = None,
    ray_num_cpus: int | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Run (or resume) the pipeline; returns ``{"retention": [...], "drops": {...}, "samples": N, ...}``."""
    config.validate()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    items = read_items(input_path, fmt, videos_root)
    order = [it["id"] for it in items]
    meta = {
        "input": str(Path(input_path).resolve()),
        **_file_fingerprint(input_path),
        "format": fmt,
        "videos_root": str(Path(videos_root).resolve()) if videos_root else None,
        "settings": config.fingerprint(),
        "n_input": len(items),
    }
    _check_run_file(out, meta)
    ctx = StageContext(config)
    _preflight(items, ctx)
    manifests = _manifests(out)
    executor = _RayExecutor(config, ray_address, ray_num_cpus) if use_ray else None
    try:
        current = items
        for stage in STAGES:
            manifest = manifests[stage]
            done = manifest.load()
            pending = [it for it in current if it["id"] not in done]
            if done:
                log(f"{stage}: {len(done)} finished earlier, {len(pending)} to do")
            if pending:
                _run_stage(stage, pending, ctx, manifest, out, executor)
            done = manifest.load()
            current = [done[it["id"]]["data"] for it in current if done.get(it["id"], {}).get("kept")]
            log(f"{STAGE_TITLES[stage]}: {len(current)} kept")
    finally:
        if executor is not None:
            executor.close()
    return _finalize(out, order, manifests, config, log)


def _run_stage(stage: str, pending: list[dict], ctx: StageContext, manifest: Manifest, out: Path, executor) -> None:
    def record(item: dict, outcome: Outcome) -> None:
        for rel, data in outcome.files.items():  # files first: a record implies its files exist
            atomic_write_bytes(out / rel, data)
        manifest.append(outcome.record(item["id"]))

    if executor is not None:
        executor.run(stage, pending, record)
        return
    size = max(1, ctx.config.batch_size)
    for i in range(0, len(pending), size):
        process_batch(stage, pending[i : i + size], ctx, record)


def _finalize(out: Path, order: list[str], manifests: dict[str, Manifest], config: PipelineConfig, log) -> dict:
    from vseek_env.data.datasets import write_samples
    from vseek_env.data.sample import Sample

    counts = {"input": len(order)}
    drops: Counter = Counter()
    for stage, manifest in manifests.items():
        manifest.compact(order)
        records = manifest.load()
        counts[stage] = sum(1 for r in records.values() if r["kept"])
        for r in records.values():
            if not r["kept"]:
                drops[_reason_key(r["reason"])] += 1
    final = manifests["g4"].load()
    samples = [Sample.from_dict(final[i]["data"]["sample"]) for i in order if final.get(i, {}).get("kept")]
    if samples:
        write_samples(out / "samples.jsonl", samples)
        if config.parquet:
            _write_parquet(out / "samples.parquet", samples)
    elif (out / "samples.jsonl").exists():
        (out / "samples.jsonl").unlink()
    retention = []
    prev = None
    for stage in ("input", *STAGES):
        n = counts[stage]
        retention.append({
            "stage": stage, "title": STAGE_TITLES[stage], "output": n,
            "relative": 1.0 if prev is None else (n / prev if prev else 0.0),
            "overall": n / counts["input"] if counts["input"] else 0.0,
        })
        prev = n
    report = {"retention": retention, "drops": dict(sorted(drops.items())), "samples": len(samples)}
    atomic_write_bytes(out / "retention.json", (json.dumps(report, indent=2, sort_keys=True) + "\n").encode())
    report["out"] = str(out)
    log(format_retention(retention))
    if drops:
        log("dropped: " + ", ".join(f"{k} x{v}" for k, v in sorted(drops.items(), key=lambda kv: -kv[1])))
    if not samples:
        log("no sample survived; see the manifests for the reasons")
    return report


def _reason_key(reason: str) -> str:
    head, _, rest = reason.partition(":")
    return f"{head}: {rest.strip()}" if head == "g1.rule" else head


def _write_parquet(path: Path, samples: list) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    for s in samples:
        row = s.to_dict()
        for key in ("prompt", "track", "meta", "answer"):  # nested / mixed-type fields as JSON text
            row[key] = json.dumps(row[key], sort_keys=True)
        rows.append(row)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(pa.Table.from_pylist(rows), tmp)
    os.replace(tmp, path)


def format_retention(rows: list[dict]) -> str:
    """The retention table as text, like the paper's Table 8.

    >>> print(format_retention([{"title": "Input QA", "output": 10, "relative": 1.0},
    ...                         {"title": "G1 text filter", "output": 4, "relative": 0.4}]))
    stage                    output  retention
    Input QA                     10     100.0%
    G1 text filter                4      40.0%
    """
    lines = [f"{'stage':<24}{'output':>7}  {'retention':>9}"]
    for r in rows:
        lines.append(f"{r['title']:<24}{r['output']:>7}  {100 * r['relative']:>8.1f}%")
    return "\n".join(lines)


def pipeline_status(out: str | os.PathLike) -> dict:
    """Progress of the run in ``out``: per stage done / kept / dropped / pending."""
    out = Path(out)
    run_file = out / "run.json"
    if not run_file.exists():
        raise FileNotFoundError(f"{out} holds no pipeline run (no run.json); start one with `vseek pipeline run`")
    meta = json.loads(run_file.read_text())
    stages = []
    upstream = meta["n_input"]
    for stage, manifest in _manifests(out).items():
        records = manifest.load()
        kept = sum(1 for r in records.values() if r["kept"])
        stages.append({
            "stage": stage, "title": STAGE_TITLES[stage], "done": len(records), "kept": kept,
            "dropped": len(records) - kept, "pending": max(0, upstream - len(records)),
        })
        upstream = kept
    finished = (out / "retention.json").exists() and all(s["pending"] == 0 for s in stages)
    return {"out": str(out), "input": meta["input"], "n_input": meta["n_input"], "stages": stages, "finished": finished}


# --------------------------------------------------------------------------- Ray Data


class _RayStageFn:
    """A Ray Data actor: one StageContext (clients, segmenter) reused across batches."""

    def __init__(self, stage: str, config: dict) -> None:
        self.stage = stage
        self.ctx = StageContext(PipelineConfig.from_dict(config))

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        items = [json.loads(s) for s in batch["item"]]
        results: dict[str, Outcome] = {}
        process_batch(self.stage, items, self.ctx, lambda it, oc: results.__setitem__(it["id"], oc))
        ids = [it["id"] for it in items]
        records = [json.dumps(results[i].record(i)) for i in ids]
        files = [json.dumps({k: base64.b64encode(v).decode() for k, v in results[i].files.items()}) for i in ids]
        return {"id": np.array(ids, dtype=object), "record": np.array(records, dtype=object), "files": np.array(files, dtype=object)}


class _RayExecutor:
    """Runs a stage's pending items as ``ray.data`` ``map_batches`` and streams results to the driver."""

    def __init__(self, config: PipelineConfig, address: str | None, num_cpus: int | None) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("--ray needs Ray: pip install 'ray[data]>=2.40'") from None
        self.config = config
        self._owns = not ray.is_initialized()
        if self._owns:
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address:
                kwargs["address"] = address
            elif num_cpus:
                kwargs["num_cpus"] = num_cpus
            ray.init(**kwargs)
        from ray.data import DataContext

        data_ctx = DataContext.get_current()
        data_ctx.enable_progress_bars = False
        data_ctx.print_on_execution_start = False

    def run(self, stage: str, pending: list[dict], record: Callable[[dict, Outcome], None]) -> None:
        import ray

        cfg = self.config
        by_id = {it["id"]: it for it in pending}
        ds = ray.data.from_items([{"id": it["id"], "item": json.dumps(it)} for it in pending])
        model_stage = stage in ("g1", "g2")
        ds = ds.map_batches(
            _RayStageFn,
            fn_constructor_kwargs={"stage": stage, "config": cfg.to_dict()},
            batch_size=max(1, cfg.batch_size),
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, cfg.concurrency)),
            # model calls wait on the network: several such actors share a CPU
            num_cpus=0.25 if model_stage else 1,
        )
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for sample_id, rec_json, files_json in zip(batch["id"], batch["record"], batch["files"]):
                rec = json.loads(rec_json)
                files = {k: base64.b64decode(v) for k, v in json.loads(files_json).items()}
                outcome = Outcome(rec["kept"], rec["reason"], rec.get("data"), files)
                record(by_id[sample_id], outcome)

    def close(self) -> None:
        if self._owns:
            import ray

            ray.shutdown()
