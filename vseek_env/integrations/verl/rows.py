"""verl dataset rows: export a vseek dataset to Parquet, and rebuild the env from a row. No verl import.

A row follows verl's ``RLHFDataset`` format::

    data_source   "vseek/<dataset name>"
    prompt        [{"role": "system", ...}, {"role": "user", ...}]   the env's first observation
    images        [{"bytes": PNG}, ...]       only with embed_images (for verl's stock tool loop)
    ability       "video_qa"
    reward_model  {"style": "rule", "ground_truth": answer as text}
    agent_name    "vseek_agent"               which registered agent loop runs the row
    extra_info    index, split, sample_id, dimension, sample (JSON of Sample.to_dict()),
                  dataset_root, video_path, env_options (JSON), need_tools_kwargs,
                  tools_kwargs {tool: {"create_kwargs": {sample, dataset_root, env_options}}}

Nested values whose type varies between samples (the answer is a letter, a span or a box) travel
as JSON text, because Parquet needs one type per column and every row must have the same keys.

Example:
    >>> path = export_verl("synth:tiny", "train.parquet")             # doctest: +SKIP
    >>> env, sample_id = env_from_extra_info(read_rows(path)[0]["extra_info"])   # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from vseek_env.integrations.verl import AGENT_NAME
from vseek_env.openai_api import without_endpoints_and_secrets

ABILITY = "video_qa"
ROW_KEYS = ("data_source", "prompt", "ability", "reward_model", "agent_name", "extra_info")
CREATE_KWARGS_KEYS = ("sample", "dataset_root", "env_options")


def ground_truth_text(answer: Any) -> str:
    """The answer as verl's ``reward_model.ground_truth`` string: letters/words as is, numbers and lists as JSON."""
    return answer if isinstance(answer, str) else json.dumps(answer)


def make_rows(
    dataset: Any,
    *,
    split: str = "train",
    env_options: Mapping[str, Any] | None = None,
    embed_images: bool = False,
    agent_name: str = AGENT_NAME,
) -> Iterator[dict]:
    """One verl row per sample of ``dataset`` (a name, a file or a :class:`~vseek_env.data.Dataset`).

    Each sample's first observation is rendered by a real env reset, so every video is opened
    once: a sample whose video cannot be read fails here, with its id, not in the middle of a
    training step. Samples whose ``meta["overview_frames"]`` (the overview their ``needs_tools``
    label assumes, e.g. synthetic ones) differs from the env's ``overview_frames`` raise a
    :class:`UserWarning` naming them once the export is done.
    """
    from vseek_env.config import EnvConfig
    from vseek_env.data import load_dataset
    from vseek_env.env import VideoSeekerEnv
    from vseek_env.integrations.verl.messages import to_row_messages

    options = dict(env_options or {})
    config = EnvConfig.from_kwargs(**options)  # bad options fail before any video is opened
    # Rows are data: keys would leak with them, and endpoints in them are ignored where they are read.
    stored = without_endpoints_and_secrets(options, "export-verl --env-options")
    ds = load_dataset(dataset)
    env = VideoSeekerEnv(dataset=ds, config=config)
    root = str(Path(ds.root).resolve()) if ds.root is not None else ""
    options_json = json.dumps(stored, sort_keys=True, default=str)
    mismatched: list[str] = []
    try:
        for index, sample in enumerate(ds.samples):
            labelled = (sample.meta or {}).get("overview_frames")
            if labelled is not None and labelled != config.overview_frames:
                mismatched.append(f"{sample.id!r} ({labelled})")
            _, info = env.reset(options={"sample_id": sample.id})
            sample = env.sample  # as the env poses it (open_ended turns choices into open answers)
            prompt, blobs = to_row_messages(info["messages"], embed_images=embed_images)
            sample_json = json.dumps(sample.to_dict(), sort_keys=True)
            create_kwargs = {"sample": sample_json, "dataset_root": root, "env_options": options_json}
            row = {
                "data_source": f"vseek/{ds.name}",
                "prompt": prompt,
                "ability": ABILITY,
                "reward_model": {"style": "rule", "ground_truth": ground_truth_text(sample.answer)},
                "agent_name": agent_name,
                "extra_info": {
                    "index": index,
                    "split": split,
                    "sample_id": sample.id,
                    "dimension": "" if sample.dimension is None else str(sample.dimension),
                    "sample": sample_json,
                    "dataset_root": root,
                    "video_path": str(ds.video_path(sample).resolve()),
                    "env_options": options_json,
                    "need_tools_kwargs": True,
                    "tools_kwargs": {name: {"create_kwargs": dict(create_kwargs)} for name in env.config.tools},
                },
            }
            if embed_images:
                row["images"] = [{"bytes": blob} for blob in blobs]
            yield row
    finally:
        env.close()
    if mismatched:
        warnings.warn(
            f"{ds.name}: {len(mismatched)} sample(s) label needs_tools for another overview size than the env's "
            f"overview_frames={config.overview_frames}, e.g. {', '.join(mismatched[:3])}; their needs_tools label "
            f"does not describe these episodes (export with --env-options '{{\"overview_frames\": N}}' to match)",
            UserWarning, stacklevel=2,
        )


def write_parquet(rows: Iterable[dict], path: str | os.PathLike, *, chunk_rows: int = 256) -> Path:
    """Write rows to ``path`` atomically (a temporary file renamed into place), ``chunk_rows`` at a time.

    Rows are consumed lazily, so an export with embedded frames never holds every row in memory;
    every chunk must fit the schema of the first one.
    """
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError("writing Parquet needs pyarrow: pip install 'vseek-env[parquet]'") from None
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    writer = None
    try:
        for chunk in _chunks(rows, chunk_rows):
            if writer is None:
                table = pa.Table.from_pylist(chunk)
                writer = pq.ParquetWriter(tmp, table.schema)
            else:
                table = pa.Table.from_pylist(chunk, schema=writer.schema)
            writer.write_table(table)
        if writer is None:
            raise ValueError(f"no rows to write to {path}")
        writer.close()
        writer = None
        os.replace(tmp, out)
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
    return out


def _chunks(rows: Iterable[dict], size: int) -> Iterator[list[dict]]:
    chunk: list[dict] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def read_rows(path: str | os.PathLike) -> list[dict]:
    """The rows of an exported Parquet file as dicts."""
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def export_verl(
    dataset: Any,
    out: str | os.PathLike,
    *,
    split: str = "train",
    env_options: Mapping[str, Any] | None = None,
    embed_images: bool = False,
    agent_name: str = AGENT_NAME,
) -> Path:
    """Export ``dataset`` to a verl Parquet file at ``out``; returns the path."""
    rows = make_rows(dataset, split=split, env_options=env_options, embed_images=embed_images, agent_name=agent_name)
    return write_parquet(rows, out)


def env_from_extra_info(
    extra_info: Mapping[str, Any],
    *,
    env_options: Mapping[str, Any] | None = None,
    dataset_root: str | None = None,
):
    """``(env, sample_id)``: a one-sample :class:`VideoSeekerEnv` rebuilt from a row's ``extra_info``.

    Also accepts a tool's ``create_kwargs`` (same keys). ``env_options`` (the trainer's own
    configuration) override the row's; the row's may not name endpoints or keys (they are dropped
    with a warning: a row must not send the user's judge key elsewhere). ``dataset_root`` replaces
    the exported root (videos moved to shared storage on a cluster).
    """
    from vseek_env.config import EnvConfig
    from vseek_env.data import Dataset, Sample
    from vseek_env.env import VideoSeekerEnv

    if not isinstance(extra_info, Mapping) or not extra_info.get("sample"):
        where = f"row {extra_info.get('index')!r}" if isinstance(extra_info, Mapping) else "a row"
        raise ValueError(
            f"{where} has no extra_info['sample']: rows for the vseek agent loop and tools must come from "
            "`vseek export-verl DATASET OUT.parquet`"
        )
    sample = Sample.from_dict(_json(extra_info["sample"]))
    row_options = without_endpoints_and_secrets(_json(extra_info.get("env_options") or "{}"),
                                                f"verl row {extra_info.get('sample_id') or sample.id!r} env_options")
    options = {**row_options, **dict(env_options or {})}
    root = dataset_root or extra_info.get("dataset_root") or None
    ds = Dataset(f"verl:{sample.id}", [sample], root=Path(root) if root else None)
    return VideoSeekerEnv(dataset=ds, config=EnvConfig.from_kwargs(**options)), sample.id


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, (str, bytes)) else dict(value)
