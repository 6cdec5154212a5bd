"""The four-stage data pipeline: any video-QA dataset -> visual-prompt QA (DESIGN §5).

G1 text filter -> G2 video verification -> G3 masks at 1 fps -> G4 render + rewrite, each stage
recording kept/dropped with a reason per sample, resumable, locally or on Ray Data.

Example:
    >>> from vseek_env.pipeline import PipelineConfig, run_pipeline
    >>> cfg = PipelineConfig(out="out", llm_base_url="http://127.0.0.1:8000/v1", llm_model="qwen")  # doctest: +SKIP
    >>> report = run_pipeline("LLaVA-Video-178K/qa.json", "llava", cfg, videos_root="videos")       # doctest: +SKIP
    >>> import gymnasium as gym; env = gym.make("VideoSeeker-v0", dataset="out/samples.jsonl")       # doctest: +SKIP

Nothing heavy is imported here: OpenCV, torch and Ray load only when a stage needs them.
"""

from vseek_env.pipeline.adapters import FORMATS, InputError, read_items
from vseek_env.pipeline.runner import format_retention, pipeline_status, run_pipeline
from vseek_env.pipeline.stages import STAGES, ConfigError, PipelineConfig

__all__ = [
    "FORMATS", "STAGES", "ConfigError", "InputError", "PipelineConfig",
    "format_retention", "pipeline_status", "read_items", "run_pipeline",
]
