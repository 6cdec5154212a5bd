"""Cold-start data: rollouts, rejection sampling, SFT export, pass@k selection (the paper's two stages).

1. :func:`run_rollouts` -- k episodes per sample with any policy (parallel, resumable); every
   trajectory keeps its conversation, tool results and reward components; frames are PNG files
   written once and referenced.
2. :func:`rejection_sample` -- keep the correct, well-formed trajectories (optional tool filters),
   with the keep rate per dimension.
3. :func:`export_sft` -- verl multi-turn SFT Parquet or LLaMA-Factory ShareGPT JSON;
   :func:`verify_export` replays a file through the env and checks it.
4. :func:`select_band` + :func:`export_selection` -- samples whose success rate over their k rollouts
   lies in a band -> verl RL rows (with the unbiased pass@k reported).

From the shell: ``vseek rollouts run|filter|export-sft|verify|select`` (see ``vseek rollouts -h``).

Example:
    >>> from vseek_env.coldstart import *                                          # doctest: +SKIP
    >>> rs = run_rollouts("pixel", "synth:default", "runs/ro", k=8)
    >>> kept, stats = rejection_sample(rs.records, Criteria(min_tools=1))
    >>> export_sft(rs, select_trajectories(kept), "sft/train.parquet", fmt="verl")
    >>> export_selection(rs, select_band(rs, 0.125, 0.875), "data/rl_train.parquet")
"""

from vseek_env.coldstart.passk import Selection, export_selection, format_passk_table, pass_at_k, select_band
from vseek_env.coldstart.rejection import Criteria, format_keep_table, rejection_sample
from vseek_env.coldstart.replay import ReplayReport, verify_export
from vseek_env.coldstart.rollouts import RolloutError, RolloutSet, load_rollouts, run_rollouts
from vseek_env.coldstart.sft import export_sft, select_trajectories, validate_sharegpt

__all__ = [
    "Criteria", "ReplayReport", "RolloutError", "RolloutSet", "Selection", "export_selection", "export_sft",
    "format_keep_table", "format_passk_table", "load_rollouts", "pass_at_k", "rejection_sample", "run_rollouts",
    "select_band", "select_trajectories", "validate_sharegpt", "verify_export",
]
