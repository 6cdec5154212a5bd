"""Evaluate any policy on any dataset: parallel, resumable, with a JSON summary and an HTML report.

>>> from vseek_env.evaluation import evaluate
>>> result = evaluate("oracle", "synth:tiny", "runs/oracle", workers=2)        # doctest: +SKIP
>>> result.summary["accuracy"], result.report
(1.0, PosixPath('runs/oracle/report.html'))

The same from the shell: ``vseek eval --policy oracle --dataset synth:default --out runs/oracle``.
"""

from vseek_env.evaluation.episode import EpisodeWorker, Task, WorkerSpec, build_policy
from vseek_env.evaluation.report import write_report
from vseek_env.evaluation.results import ResultsFile
from vseek_env.evaluation.run import EvalError, EvalResult, evaluate, plan_tasks
from vseek_env.evaluation.summary import summarize

__all__ = [
    "EpisodeWorker", "EvalError", "EvalResult", "ResultsFile", "Task", "WorkerSpec", "build_policy",
    "evaluate", "plan_tasks", "summarize", "write_report",
]
