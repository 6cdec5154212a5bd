"""Env frame sizes and a Qwen-VL processor's pixel limits, made to agree.

The env resizes every frame it shows to at most ``max_pixels`` on a ``patch_factor`` grid
(:func:`vseek_env.video.smart_resize`). The model's processor resizes again with its own limits:
Qwen3-VL's published configuration has a minimum of 65,536 pixels per image, so a 16:9 env frame of
about 256x144 is *upscaled* (blurred, and 70-77 visual tokens instead of the 64 a recipe budgets).
With ``data.mm_processor_kwargs = {min_pixels: patch_factor**2, max_pixels: env max_pixels}``
(:func:`processor_kwargs`), which verl applies alike in the agent loop's tokenizer, the rollout
server and the trainer, the processor keeps each env frame at its size, and a frame of ``h x w``
costs exactly ``(h / patch_factor) * (w / patch_factor)`` tokens (:func:`tokens_per_frame`).

Example:
    >>> processor_kwargs(max_pixels=65536, patch_factor=32)
    {'min_pixels': 1024, 'max_pixels': 65536}
    >>> tokens_per_frame(720, 1280, max_pixels=65536, patch_factor=32)
    60
"""

from __future__ import annotations

from typing import Any

# Patch size x spatial merge of each model family's published processor configuration.
PATCH_FACTORS = {"qwen2_5_vl": 28, "qwen3_vl": 32}


def processor_kwargs(*, max_pixels: int, patch_factor: int) -> dict[str, int]:
    """``data.mm_processor_kwargs`` under which the processor leaves env frames as they are."""
    if patch_factor <= 0 or max_pixels < patch_factor * patch_factor:
        raise ValueError(f"max_pixels={max_pixels} must hold at least one {patch_factor}x{patch_factor} patch")
    return {"min_pixels": patch_factor * patch_factor, "max_pixels": int(max_pixels)}


def env_frame_size(height: int, width: int, *, max_pixels: int, patch_factor: int) -> tuple[int, int]:
    """The ``(h, w)`` the env shows a ``height x width`` video frame at."""
    from vseek_env.video import smart_resize

    return smart_resize(height, width, max_pixels=max_pixels, min_pixels=patch_factor * patch_factor, factor=patch_factor)


def tokens_per_frame(height: int, width: int, *, max_pixels: int, patch_factor: int) -> int:
    """Visual tokens of one env frame of a ``height x width`` video when the processor keeps its size."""
    h, w = env_frame_size(height, width, max_pixels=max_pixels, patch_factor=patch_factor)
    return (h // patch_factor) * (w // patch_factor)


def processor_patch_factor(processor: Any) -> int | None:
    """Patch size x merge size of a Qwen-VL style processor (``None`` if it has neither)."""
    image_processor = getattr(processor, "image_processor", None)
    patch = getattr(image_processor, "patch_size", None)
    merge = getattr(image_processor, "merge_size", None)
    return int(patch) * int(merge) if patch and merge else None


def frame_token_mismatch(processor: Any, images: list[Any], image_tokens: int, mm_processor_kwargs: dict | None) -> str | None:
    """Why the prompt's image tokens differ from what the env frames should cost (``None``: they agree).

    ``image_tokens`` is the number of image placeholder tokens the processor put in the prompt for
    ``images`` (the env's frames, as arrays or PIL images).
    """
    factor = processor_patch_factor(processor)
    if factor is None or not images:
        return None
    expected = 0
    for image in images:
        height, width = _image_size(image)
        if height % factor or width % factor:
            return (
                f"env frames are {height}x{width}, not on the processor's {factor}-pixel grid: set the env's "
                f"patch_factor to {factor} (vseek export-verl --env-options '{{\"patch_factor\": {factor}}}')"
            )
        expected += (height // factor) * (width // factor)
    if expected == image_tokens:
        return None
    return (
        f"the processor turned {len(images)} env frame(s) worth {expected} visual tokens into {image_tokens}: "
        f"its pixel limits resize them (mm_processor_kwargs={dict(mm_processor_kwargs or {})}); set "
        f"data.mm_processor_kwargs to {{min_pixels: {factor * factor}, max_pixels: <env max_pixels>}} "
        "(see examples/verl/README.md)"
    )


def _image_size(image: Any) -> tuple[int, int]:
    shape = getattr(image, "shape", None)
    if shape is not None:
        return int(shape[0]), int(shape[1])
    width, height = image.size  # PIL
    return int(height), int(width)
