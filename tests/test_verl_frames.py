"""Env frames and the real Qwen-VL processor configurations agree on what a frame costs.

The processor is transformers' own Qwen2-VL image processor (PIL backend; no torchvision here)
built from the ``preprocessor_config.json`` values published with Qwen2.5-VL and Qwen3-VL
(``tests/data/processor_configs``). Token counts are read from its ``image_grid_thw``, never from the
env's own assumption.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

transformers = pytest.importorskip("transformers", reason="needs the hf extra")

from vseek_env.integrations.verl.frames import (  # noqa: E402
    PATCH_FACTORS, env_frame_size, frame_token_mismatch, processor_kwargs, tokens_per_frame,
)

CONFIGS = Path(__file__).parent / "data" / "processor_configs"
MODELS = {"qwen2_5_vl": "Qwen2.5-VL-7B-Instruct", "qwen3_vl": "Qwen3-VL-8B-Instruct"}
RECIPE_MAX_PIXELS = 65536  # examples/verl/frame_budget.sh


def published_processor(kind: str):
    from transformers import Qwen2VLImageProcessorPil

    config = json.loads((CONFIGS / f"{MODELS[kind]}.json").read_text())
    return Qwen2VLImageProcessorPil(**{k: v for k, v in config.items() if not k.endswith(("_type", "_class"))})


def processor_tokens(image_processor, frame: np.ndarray, **kwargs) -> int:
    grid = image_processor(images=[frame], return_tensors="np", **kwargs)["image_grid_thw"]
    return int(np.prod(grid)) // image_processor.merge_size**2


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_published_configs_match_the_patch_factors(kind):
    ip = published_processor(kind)
    assert ip.patch_size * ip.merge_size == PATCH_FACTORS[kind]


@pytest.mark.parametrize("kind", sorted(MODELS))
@settings(max_examples=25, deadline=None)
@given(height=st.integers(48, 2160), width=st.integers(48, 3840), budget=st.sampled_from([16384, 65536, 112896]))
def test_aligned_kwargs_keep_every_env_frame_at_its_size(kind, height, width, budget):
    if max(height, width) / min(height, width) > 150:
        return
    factor = PATCH_FACTORS[kind]
    h, w = env_frame_size(height, width, max_pixels=budget, patch_factor=factor)
    frame = np.zeros((h, w, 3), np.uint8)
    ip = published_processor(kind)
    assert processor_tokens(ip, frame, **processor_kwargs(max_pixels=budget, patch_factor=factor)) == \
        tokens_per_frame(height, width, max_pixels=budget, patch_factor=factor) <= budget // factor**2


def test_qwen3_vl_stock_limits_upscale_a_16_9_frame_the_recipe_budgets_at_64_tokens():
    """The defect the recipe had: Qwen3-VL's 65,536-pixel minimum blows a 192x320 frame up to 77 tokens."""
    ip = published_processor("qwen3_vl")
    h, w = env_frame_size(720, 1280, max_pixels=RECIPE_MAX_PIXELS, patch_factor=32)
    frame = np.zeros((h, w, 3), np.uint8)
    stock = processor_tokens(ip, frame)
    aligned = processor_tokens(ip, frame, **processor_kwargs(max_pixels=RECIPE_MAX_PIXELS, patch_factor=32))
    assert (h, w) == (192, 320) and stock == 77 and aligned == 60 == (h // 32) * (w // 32)


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_mismatch_is_reported_with_the_fix_and_silent_when_aligned(kind):
    from types import SimpleNamespace

    factor = PATCH_FACTORS[kind]
    ip = published_processor(kind)
    processor = SimpleNamespace(image_processor=ip)
    h, w = env_frame_size(480, 640, max_pixels=RECIPE_MAX_PIXELS, patch_factor=factor)
    frames = [np.zeros((h, w, 3), np.uint8)] * 3
    kwargs = processor_kwargs(max_pixels=RECIPE_MAX_PIXELS, patch_factor=factor)
    aligned = sum(processor_tokens(ip, f, **kwargs) for f in frames)
    assert frame_token_mismatch(processor, frames, aligned, kwargs) is None
    stock = sum(processor_tokens(ip, f) for f in frames)
    if stock != aligned:  # Qwen3-VL: the published 65,536-pixel minimum upscales these frames
        message = frame_token_mismatch(processor, frames, stock, {})
        assert f"min_pixels: {factor * factor}" in message and str(stock) in message
    off_grid = [np.zeros((h + 2, w, 3), np.uint8)]
    assert "patch_factor" in frame_token_mismatch(processor, off_grid, 1, kwargs)


def test_processor_kwargs_reject_a_budget_below_one_patch():
    with pytest.raises(ValueError, match="at least one 32x32 patch"):
        processor_kwargs(max_pixels=100, patch_factor=32)
