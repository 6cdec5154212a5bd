"""pass@k selection: the samples a policy sometimes, but not always, solves become the RL set.

Per sample, the pass rate is the share of its finished rollouts that are correct (accuracy 1, as
in rejection sampling); episodes that failed with an error are left out of the rate (they are
retried when the rollouts are resumed) and counted apart. The selection keeps the samples whose
rate lies in ``[low, high]`` (the paper drops those always and never solved), and exports them
with :func:`vseek_env.integrations.verl.rows.export_verl` as verl RL rows.

Example:
    >>> sel = select_band(load_rollouts("runs/pixel"), low=0.125, high=0.875)     # doctest: +SKIP
    >>> print(format_passk_table(sel.stats))                                       # doctest: +SKIP
    >>> export_selection(load_rollouts("runs/pixel"), sel, "data/rl_train.parquet")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from vseek_env.coldstart.rejection import accuracy_of
from vseek_env.coldstart.rollouts import RolloutSet


@dataclass
class Selection:
    sample_ids: list[str]  # selected, in dataset order of first appearance in the rollouts
    rates: dict[str, float]  # every sample's pass rate
    stats: dict


def pass_rates(records) -> tuple[dict[str, tuple[int, int]], dict[str, str], int]:
    """``({sample_id: (correct, finished)}, {sample_id: dimension}, errored episodes)``."""
    counts: dict[str, list[int]] = {}
    dims: dict[str, str] = {}
    errored = 0
    for r in records:
        sid = r["sample_id"]
        dims.setdefault(sid, str(r.get("dimension")))
        c = counts.setdefault(sid, [0, 0])
        if r.get("status") != "ok":
            errored += 1
            continue
        c[1] += 1
        c[0] += accuracy_of(r) >= 1.0 - 1e-9
    return {k: (v[0], v[1]) for k, v in counts.items()}, dims, errored


def select_band(rollouts: RolloutSet, low: float = 0.125, high: float = 0.875) -> Selection:
    """The samples whose pass rate lies in ``[low, high]``, with the statistics table."""
    if not (0.0 <= low <= high <= 1.0):
        raise ValueError(f"the band must satisfy 0 <= low <= high <= 1, got [{low}, {high}]")
    counts, dims, errored = pass_rates(rollouts.records)
    rates = {sid: (c / n) for sid, (c, n) in counts.items() if n > 0}
    selected = [sid for sid in counts if sid in rates and low - 1e-12 <= rates[sid] <= high + 1e-12]
    per_dim: dict[str, dict] = defaultdict(lambda: {"samples": 0, "selected": 0, "never": 0, "always": 0, "rate_sum": 0.0})
    for sid, rate in rates.items():
        row = per_dim[dims[sid]]
        row["samples"] += 1
        row["selected"] += sid in selected
        row["never"] += rate == 0.0
        row["always"] += rate == 1.0
        row["rate_sum"] += rate
    table = {d: {"samples": v["samples"], "selected": v["selected"], "never_solved": v["never"],
                 "always_solved": v["always"], "mean_pass_rate": v["rate_sum"] / v["samples"]}
             for d, v in sorted(per_dim.items())}
    histogram = Counter(f"{c}/{n}" for c, n in counts.values() if n > 0)
    stats = {
        "band": [low, high],
        "samples": len(rates),
        "selected": len(selected),
        "errored_episodes": errored,
        "samples_without_finished_episodes": sorted(set(counts) - set(rates)),
        "mean_pass_rate": sum(rates.values()) / len(rates) if rates else 0.0,
        "pass_at_k": sum(1 for sid in rates if counts[sid][0] > 0) / len(rates) if rates else 0.0,
        "histogram": dict(sorted(histogram.items(), key=lambda kv: (int(kv[0].split("/")[1]), int(kv[0].split("/")[0])))),
        "per_dimension": table,
    }
    return Selection(sample_ids=selected, rates=rates, stats=stats)


def export_selection(rollouts: RolloutSet, selection: Selection, out: str | os.PathLike, *, split: str = "train",
                     embed_images: bool = False, dataset=None) -> Path:
    """Write the selected samples as verl RL rows (``vseek export-verl`` format) with the rollouts' env options.

    ``dataset`` (a name, file or Dataset) overrides the one named in the rollouts' run.json.
    """
    from vseek_env.data import Dataset
    from vseek_env.integrations.verl.rows import export_verl

    if not selection.sample_ids:
        raise ValueError(f"no sample's pass rate lies in the band {selection.stats['band']}: widen the band or change "
                         f"the policy (histogram of correct/finished: {selection.stats['histogram']})")
    full = rollouts.load_dataset(dataset)
    subset = Dataset(f"{full.name}:passk", [full[sid] for sid in selection.sample_ids], root=full.root)
    return export_verl(subset, out, split=split, env_options=rollouts.env_args, embed_images=embed_images)


def format_passk_table(stats: dict) -> str:
    """The pass-rate histogram and the per-dimension table as fixed-width text."""
    lines = [f"pass@k {stats['pass_at_k']:.3f}, mean pass rate {stats['mean_pass_rate']:.3f}, "
             f"selected {stats['selected']}/{stats['samples']} samples in band {stats['band']}"
             + (f", {stats['errored_episodes']} errored episodes left out" if stats["errored_episodes"] else ""),
             "correct/finished  samples"]
    total = max(1, stats["samples"])
    for bucket, n in stats["histogram"].items():
        lines.append(f"{bucket:>16}  {n:>7}  {'#' * max(1, round(40 * n / total))}")
    lines.append(f"{'dimension':>12} {'samples':>8} {'selected':>8} {'never':>6} {'always':>6} {'mean rate':>9}")
    for dim, row in stats["per_dimension"].items():
        lines.append(f"{dim:>12} {row['samples']:>8} {row['selected']:>8} {row['never_solved']:>6} "
                     f"{row['always_solved']:>6} {row['mean_pass_rate']:>9.3f}")
    return "\n".join(lines)
