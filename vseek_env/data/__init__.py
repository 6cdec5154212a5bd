"""Samples and datasets."""

from vseek_env.data.datasets import Dataset, available_datasets, cache_dir, load_dataset, register_dataset
from vseek_env.data.sample import ANSWER_KINDS, Sample, SampleError, Track, VisualPromptSpec

__all__ = [
    "ANSWER_KINDS", "Dataset", "Sample", "SampleError", "Track", "VisualPromptSpec",
    "available_datasets", "cache_dir", "load_dataset", "register_dataset",
]
