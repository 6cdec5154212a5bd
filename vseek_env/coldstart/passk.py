"""pass@k selection: the samples a policy sometimes, but not always, solves become the RL set.

Per sample, ``c`` of its ``n`` finished rollouts are correct (accuracy 1, as in rejection
sampling); episodes that failed with an error are left out of ``n`` (they are retried when the
rollouts are resumed) and counted apart. The selection keeps the samples whose *success rate*
``c / n`` lies in ``[low, high]`` (the paper drops those always and never solved), and exports
them with :func:`vseek_env.integrations.verl.rows.export_verl` as verl RL rows.

The reported ``pass@k`` is the unbiased estimator ``1 - C(n-c, k) / C(n, k)`` (Chen et al., 2021)
averaged over the samples with ``n >= k``; samples with fewer finished rollouts than ``k`` are
listed apart instead of being scored on fewer tries.

Example:
    >>> pass_at_k(n=4, c=1, k=2)
    0.5
    >>> sel = select_band(load_rollouts("runs/pixel"), low=0.125, high=0.875)     # doctest: +SKIP
    >>> print(format_passk_table(sel.stats))                                       # doctest: +SKIP
    >>> export_selection(load_rollouts("runs/pixel"), sel, "data/rl_train.parquet")  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from vseek_env.coldstart.rejection import accuracy_of
from vseek_env.coldstart.rollouts import RolloutSet
from vseek_env.openai_api import redact_secrets


@dataclass
class Selection:
    sample_ids: list[str]  # selected, in dataset order of first appearance in the rollouts
    rates: dict[str, float]  # every sample's success rate c/n over its finished rollouts
    stats: dict


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k of one sample with ``c`` correct of ``n`` rollouts: ``1 - C(n-c, k) / C(n, k)``.

    >>> pass_at_k(8, 0, 4), pass_at_k(8, 8, 1), pass_at_k(4, 2, 1)
    (0.0, 1.0, 0.5)
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def success_counts(records) -> tuple[dict[str, tuple[int, int]], dict[str, str], int]:
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
    """The samples whose success rate ``c / n`` lies in ``[low, high]``, with the statistics table.

    ``stats["pass_at_k"]`` is the unbiased pass@k at ``k = rollouts.k`` (the most finished
    rollouts any sample has) over the samples that have ``k``; ``stats["samples_below_k"]`` names
    the others (resume the rollouts to complete them).
    """
    if not (0.0 <= low <= high <= 1.0):
        raise ValueError(f"the band must satisfy 0 <= low <= high <= 1, got [{low}, {high}]")
    counts, dims, errored = success_counts(rollouts.records)
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
                 "always_solved": v["always"], "mean_success_rate": v["rate_sum"] / v["samples"]}
             for d, v in sorted(per_dim.items())}
    histogram = Counter(f"{c}/{n}" for c, n in counts.values() if n > 0)
    k = rollouts.k
    full = {sid: cn for sid, cn in counts.items() if k and cn[1] >= k}
    stats = {
        "band": [low, high],
        "samples": len(rates),
        "selected": len(selected),
        "errored_episodes": errored,
        "samples_without_finished_episodes": sorted(set(counts) - set(rates)),
        "mean_success_rate": sum(rates.values()) / len(rates) if rates else 0.0,
        "k": k,
        "pass_at_k": sum(pass_at_k(n, c, k) for c, n in full.values()) / len(full) if full else 0.0,
        "pass_at_k_samples": len(full),
        "samples_below_k": sorted(sid for sid in rates if sid not in full),
        "histogram": dict(sorted(histogram.items(), key=lambda kv: (int(kv[0].split("/")[1]), int(kv[0].split("/")[0])))),
        "per_dimension": table,
    }
    return Selection(sample_ids=selected, rates=rates, stats=stats)


def export_selection(rollouts: RolloutSet, selection: Selection, out: str | os.PathLike, *, split: str = "train",
                     embed_images: bool = False, dataset=None) -> Path:
    """Write the selected samples as verl RL rows (``vseek export-verl`` format) with the rollouts' env options.

    ``dataset`` (a name, file or Dataset) overrides the one named in the rollouts' run.json.
    Secret-named env options (an API key in a judge spec) are left out of the rows: the process
    that trains on them reads the key from its environment (``VSEEK_JUDGE_API_KEY``).
    """
    from vseek_env.data import Dataset
    from vseek_env.integrations.verl.rows import export_verl

    if not selection.sample_ids:
        raise ValueError(f"no sample's success rate lies in the band {selection.stats['band']}: widen the band or change "
                         f"the policy (histogram of correct/finished: {selection.stats['histogram']})")
    full = rollouts.load_dataset(dataset)
    subset = Dataset(f"{full.name}:passk", [full[sid] for sid in selection.sample_ids], root=full.root)
    return export_verl(subset, out, split=split, env_options=redact_secrets(rollouts.env_args, drop=True),
                       embed_images=embed_images)


def format_passk_table(stats: dict) -> str:
    """The success-rate histogram and the per-dimension table as fixed-width text."""
    below = len(stats["samples_below_k"])
    lines = [f"pass@{stats['k']} {stats['pass_at_k']:.3f} (unbiased, over {stats['pass_at_k_samples']} samples"
             + (f"; {below} with fewer than {stats['k']} finished rollouts left out" if below else "") + "), "
             f"mean success rate {stats['mean_success_rate']:.3f}, "
             f"selected {stats['selected']}/{stats['samples']} samples with success rate in {stats['band']}"
             + (f", {stats['errored_episodes']} errored episodes left out" if stats["errored_episodes"] else ""),
             "correct/finished  samples"]
    total = max(1, stats["samples"])
    for bucket, n in stats["histogram"].items():
        lines.append(f"{bucket:>16}  {n:>7}  {'#' * max(1, round(40 * n / total))}")
    lines.append(f"{'dimension':>12} {'samples':>8} {'selected':>8} {'never':>6} {'always':>6} {'success':>9}")
    for dim, row in stats["per_dimension"].items():
        lines.append(f"{dim:>12} {row['samples']:>8} {row['selected']:>8} {row['never_solved']:>6} "
                     f"{row['always_solved']:>6} {row['mean_success_rate']:>9.3f}")
    return "\n".join(lines)
