"""A tiny, random-init Qwen2.5-VL / Qwen3-VL model and processor, built offline for tests.

Nothing is downloaded. The tokenizer is byte-level BPE over the 256 byte symbols (no merges, so
any UTF-8 text encodes) plus Qwen's special tokens; ``<tool_call>``, ``<tool_response>`` and
``<think>`` are added non-special tokens as in Qwen. The image processor is the PIL backend of
``Qwen2VLImageProcessor`` (torchvision is not needed); video processing is a stand-in that raises,
because the real Qwen video processors need torchvision. The processor has ``config`` and
``get_rope_index`` bound the way ``verl.utils.tokenizer.hf_processor`` binds them, so verl's
M-RoPE position-id code runs on it.

Example:
    >>> model, processor = build_tiny_qwen_vl("qwen2_5_vl")          # doctest: +SKIP
    >>> processor.tokenizer.convert_tokens_to_ids(IMAGE_PAD)          # doctest: +SKIP
    267
"""

from __future__ import annotations

import types
from typing import Any

KINDS = ("qwen2_5_vl", "qwen3_vl")
IMAGE_PAD = "<|image_pad|>"
VIDEO_PAD = "<|video_pad|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", IM_END, "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", IMAGE_PAD, VIDEO_PAD,
)
ADDED_TOKENS = ("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>", "</think>")

# A Qwen-style ChatML template: hermes tools in the system turn, list-of-parts content everywhere
# (images become <|vision_start|><|image_pad|><|vision_end|>), tool messages rendered as a user
# turn with <tool_response> blocks (as Qwen2.5/Qwen3 do), images allowed inside tool messages.
CHAT_TEMPLATE = r"""{%- macro render_content(content) -%}
{%- if content is string -%}{{ content }}{%- else -%}
{%- for item in content -%}
{%- if item.type == 'image' or 'image' in item -%}<|vision_start|><|image_pad|><|vision_end|>
{%- elif item.type == 'video' or 'video' in item -%}<|vision_start|><|video_pad|><|vision_end|>
{%- elif 'text' in item -%}{{ item.text }}{%- endif -%}
{%- endfor -%}{%- endif -%}
{%- endmacro -%}
{%- if tools -%}
<|im_start|>system
{% if messages[0].role == 'system' %}{{ render_content(messages[0].content) }}

{% else %}You are a helpful assistant.

{% endif %}# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{%- for tool in tools %}
{{ tool | tojson }}
{%- endfor %}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call><|im_end|>
{% elif messages[0].role == 'system' -%}
<|im_start|>system
{{ render_content(messages[0].content) }}<|im_end|>
{% else -%}
<|im_start|>system
You are a helpful assistant.<|im_end|>
{% endif -%}
{%- for message in messages -%}
{%- if message.role == 'system' and loop.first -%}
{%- elif message.role == 'user' or message.role == 'system' -%}
<|im_start|>{{ message.role }}
{{ render_content(message.content) }}<|im_end|>
{% elif message.role == 'assistant' -%}
<|im_start|>assistant
{{ render_content(message.content) }}
{%- if message.tool_calls -%}
{%- for tc in message.tool_calls -%}
{%- set f = tc.function if tc.function is defined else tc -%}
{% if loop.first and message.content %}
{% elif not loop.first %}
{% endif %}<tool_call>
{"name": "{{ f.name }}", "arguments": {{ f.arguments if f.arguments is string else (f.arguments | tojson) }}}
</tool_call>
{%- endfor -%}
{%- endif -%}<|im_end|>
{% elif message.role == 'tool' -%}
{%- if loop.first or messages[loop.index0 - 1].role != 'tool' -%}<|im_start|>user{%- endif %}{{ '\n' }}<tool_response>
{{ render_content(message.content) }}
</tool_response>
{%- if loop.last or messages[loop.index0 + 1].role != 'tool' -%}<|im_end|>
{% endif -%}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}<|im_start|>assistant
{% endif -%}"""


def build_tiny_tokenizer(chat_template: str = CHAT_TEMPLATE):
    """A byte-level BPE ``PreTrainedTokenizerFast`` with Qwen's special tokens (vocab 270)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    byte_vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tok = Tokenizer(models.BPE(vocab=byte_vocab, merges=[], unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in ADDED_TOKENS])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=IM_END, pad_token="<|endoftext|>", chat_template=chat_template
    )


def _no_video_processor_cls():
    from transformers.video_processing_utils import BaseVideoProcessor

    class NoVideoProcessor(BaseVideoProcessor):
        """Stand-in: the real Qwen2VL/Qwen3VL video processors need torchvision."""

        def __init__(self, patch_size: int = 14, temporal_patch_size: int = 2, merge_size: int = 2, **kw: Any):
            super().__init__(**kw)
            self.patch_size, self.temporal_patch_size, self.merge_size = patch_size, temporal_patch_size, merge_size

        def __call__(self, *args: Any, **kwargs: Any):
            raise NotImplementedError("video processing needs torchvision")

    return NoVideoProcessor


def build_tiny_config(kind: str = "qwen2_5_vl", tokenizer=None):
    """The HF config of the tiny model (2 layers, hidden 64; vision depth 2, hidden 32)."""
    _check_kind(kind)
    tokenizer = tokenizer or build_tiny_tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text = dict(
        bos_token_id=ids["<|endoftext|>"], eos_token_id=ids[IM_END], pad_token_id=ids["<|endoftext|>"],
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32768,
    )
    token_ids = dict(
        image_token_id=ids[IMAGE_PAD], video_token_id=ids[VIDEO_PAD],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )
    if kind == "qwen2_5_vl":
        from transformers import Qwen2_5_VLConfig

        return Qwen2_5_VLConfig(
            text_config=dict(**text, rope_parameters={"rope_type": "default", "rope_theta": 1e4, "mrope_section": [2, 3, 3]}),
            vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                               patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
                               fullatt_block_indexes=[1], tokens_per_second=2),
            **token_ids,
        )
    from transformers import Qwen3VLConfig

    return Qwen3VLConfig(
        text_config=dict(**text, head_dim=16, rope_parameters={"rope_type": "default", "rope_theta": 1e4,
                                                              "mrope_section": [2, 3, 3], "mrope_interleaved": True}),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                           patch_size=16, spatial_merge_size=2, temporal_patch_size=2,
                           num_position_embeddings=256, deepstack_visual_indexes=[1]),
        **token_ids,
    )


def build_tiny_processor(kind: str = "qwen2_5_vl", *, max_pixels: int | None = None, chat_template: str = CHAT_TEMPLATE):
    """The tiny processor alone (no model weights), with ``config``/``get_rope_index`` bound.

    ``max_pixels`` defaults to 224² (Qwen2.5-VL, patch 14) or 256² (Qwen3-VL, patch 16), so a
    frame costs at most 64 image tokens.
    """
    _check_kind(kind)
    from transformers import Qwen2VLImageProcessorPil

    tokenizer = build_tiny_tokenizer(chat_template)
    if kind == "qwen2_5_vl":
        from transformers.models.qwen2_5_vl import Qwen2_5_VLModel as model_cls

        image_processor = Qwen2VLImageProcessorPil(
            patch_size=14, temporal_patch_size=2, merge_size=2, min_pixels=56 * 56, max_pixels=max_pixels or 224 * 224
        )
    else:
        from transformers.models.qwen3_vl import Qwen3VLModel as model_cls

        image_processor = Qwen2VLImageProcessorPil(
            patch_size=16, temporal_patch_size=2, merge_size=2, min_pixels=64 * 64, max_pixels=max_pixels or 256 * 256,
            image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
        )

    TinyProcessor = tiny_processor_class(kind)
    video_processor = _no_video_processor_cls()(patch_size=image_processor.patch_size)
    processor = TinyProcessor(
        image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor, chat_template=chat_template
    )
    # What verl.utils.tokenizer.hf_processor does after AutoProcessor.from_pretrained.
    processor.config = build_tiny_config(kind, tokenizer)
    processor.get_rope_index = types.MethodType(model_cls.get_rope_index, processor)
    if hasattr(model_cls, "get_vision_position_ids"):
        processor.get_vision_position_ids = types.MethodType(model_cls.get_vision_position_ids, processor)
    return processor


def build_tiny_qwen_vl(kind: str = "qwen2_5_vl", *, seed: int = 0, **processor_kwargs: Any):
    """``(model, processor)``: a random-init tiny Qwen2.5-VL or Qwen3-VL (≈0.2 M params) in eval mode."""
    import torch

    processor = build_tiny_processor(kind, **processor_kwargs)
    if kind == "qwen2_5_vl":
        from transformers import Qwen2_5_VLForConditionalGeneration as model_cls
    else:
        from transformers import Qwen3VLForConditionalGeneration as model_cls
    torch.manual_seed(seed)
    model = model_cls(processor.config).eval()
    return model, processor


def image_pad_id(processor) -> int:
    """The id of ``<|image_pad|>`` (one per image token)."""
    return processor.tokenizer.convert_tokens_to_ids(IMAGE_PAD)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


# The processor module written next to a saved tiny model: `AutoProcessor.from_pretrained(...,
# trust_remote_code=True)` loads it. The stock loader would build the Qwen video processor, which
# needs torchvision; this one rebuilds the same tiny processor (deterministic) with the PIL image
# processor, under the stock class name so verl binds the model's M-RoPE `get_rope_index` to it.
_PROCESSOR_MODULE = '''"""Loads the tiny processor saved by vseek_env (no torchvision needed)."""
import json
import os

from vseek_env.integrations.verl.cpu.tiny_model import build_tiny_processor, tiny_processor_class

{class_name} = tiny_processor_class("{kind}")


def _from_pretrained(cls, path, **kwargs):
    with open(os.path.join(path, "processor_config.json")) as f:
        options = json.load(f)["vseek_tiny"]
    return build_tiny_processor(options["kind"], max_pixels=options["max_pixels"])


{class_name}.from_pretrained = classmethod(_from_pretrained)
'''


def tiny_processor_class(kind: str):
    """The processor class of ``kind`` that accepts a video-processor stand-in (no torchvision)."""
    _check_kind(kind)
    if kind == "qwen2_5_vl":
        from transformers import Qwen2_5_VLProcessor as base
    else:
        from transformers import Qwen3VLProcessor as base

    class TinyProcessor(base):
        # Without torchvision, transformers' BaseVideoProcessor is a dummy class, so the stock
        # isinstance check on the video processor would reject any stand-in.
        def check_argument_for_proper_class(self, name, arg):
            return type(arg) if name == "video_processor" else super().check_argument_for_proper_class(name, arg)

    TinyProcessor.__name__ = TinyProcessor.__qualname__ = base.__name__
    return TinyProcessor


def save_tiny_model(out_dir, kind: str = "qwen2_5_vl", *, seed: int = 0, max_pixels: int | None = None) -> str:
    """Write a random tiny Qwen-VL model, tokenizer and processor to ``out_dir``; returns the path.

    The directory loads with ``from_pretrained`` like a downloaded checkpoint; the processor needs
    ``trust_remote_code=True`` (see ``_PROCESSOR_MODULE``). verl's ``model.path`` can point at it.
    """
    import json
    from pathlib import Path

    model, processor = build_tiny_qwen_vl(kind, seed=seed, max_pixels=max_pixels)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.tokenizer.save_pretrained(out)
    class_name = type(processor).__name__
    (out / "processing_vseek_tiny.py").write_text(_PROCESSOR_MODULE.format(class_name=class_name, kind=kind))
    config = {
        "processor_class": class_name,
        "auto_map": {"AutoProcessor": f"processing_vseek_tiny.{class_name}"},
        "vseek_tiny": {"kind": kind, "max_pixels": processor.image_processor.size["longest_edge"]},
    }
    (out / "processor_config.json").write_text(json.dumps(config, indent=2))
    return str(out)
