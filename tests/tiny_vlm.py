"""Tests use the package's tiny Qwen-VL builder (the CPU verl smoke run needs it installed)."""

from vseek_env.integrations.verl.cpu.tiny_model import (  # noqa: F401
    ADDED_TOKENS, CHAT_TEMPLATE, IM_END, IMAGE_PAD, KINDS, SPECIAL_TOKENS, VIDEO_PAD, build_tiny_config,
    build_tiny_processor, build_tiny_qwen_vl, build_tiny_tokenizer, image_pad_id, save_tiny_model,
)
