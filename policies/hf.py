"""A local Hugging Face transformers VLM as a policy (Qwen2.5-VL / Qwen3-VL class).

The conversation is kept across turns in the processor's chat format: the env's frames become
``{"type": "image"}`` parts (PIL images), its tool results come back as user turns wrapped in
``<tool_response>`` (what Qwen's templates produce for tool messages, and portable across
templates), and the env's tool schemas are passed to ``apply_chat_template(tools=...)`` (Qwen's
hermes format is exactly our ``<tool_call>`` grammar). Generation is greedy unless
``temperature > 0``; the decoded new tokens are the response.

A video part of the env (the ``paper`` protocol's overview) reaches the model as the video
modality: a ``{"type": "video"}`` part in the chat, and the frames with a ``VideoMetadata`` whose
``frames_indices / fps`` are the frames' true times (to the millisecond), so Qwen3-VL's processor
writes those times into its ``<t seconds>`` labels and Qwen2.5-VL's gets the true sampling rate for
its temporal position ids. The frames are not resized again (``video_resize=False``): they come at
the env's pixel budget, multiples of its ``patch_factor``. Processing video needs the processors'
video classes, which need torchvision.

Policies built from the same model path share one loaded model (and serialise generation on it),
so ``vseek eval --workers N`` does not load N copies.

Example:
    >>> policy = HFPolicy("Qwen/Qwen2.5-VL-7B-Instruct", device="cuda", dtype="bfloat16")  # doctest: +SKIP
    >>> policy = HFPolicy(model=model, processor=processor)     # an already-built pair    # doctest: +SKIP
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from vseek_env.policies.base import Policy

_LOADED: dict[tuple, tuple[Any, Any, threading.Lock]] = {}
_LOAD_LOCK = threading.Lock()


def _resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _load(path: str, device: str, dtype: str, trust_remote_code: bool, attn_implementation: str | None):
    """(model, processor, lock) for ``path``, loaded once per process."""
    key = (path, device, dtype, trust_remote_code, attn_implementation)
    with _LOAD_LOCK:
        if key not in _LOADED:
            import torch
            from transformers import AutoModelForImageTextToText, AutoProcessor

            kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
            if dtype != "auto":
                if not hasattr(torch, dtype):
                    raise ValueError(f"HFPolicy: unknown dtype {dtype!r}; use auto, bfloat16, float16 or float32")
                kwargs["dtype"] = getattr(torch, dtype)
            else:
                kwargs["dtype"] = "auto"
            if attn_implementation:
                kwargs["attn_implementation"] = attn_implementation
            try:
                processor = AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
                model = AutoModelForImageTextToText.from_pretrained(path, **kwargs)
            except OSError as exc:
                raise OSError(f"HFPolicy: cannot load a model from {path!r} ({exc}); give a local folder or a hub id") from exc
            _LOADED[key] = (model.to(device).eval(), processor, threading.Lock())
        return _LOADED[key]


class HFPolicy(Policy):
    """Generate responses with a transformers image-text-to-text model.

    Args:
        model: a local folder / hub id, or a loaded model (then ``processor`` is required).
        processor: the model's processor (built from ``model`` when it is a path).
        device: ``cpu``, ``cuda``, ``cuda:1``, or ``auto``; ``dtype``: ``auto``, ``bfloat16``, ...
        max_new_tokens, temperature, top_p: generation (greedy when ``temperature == 0``).
        native_tools: pass the env's tool schemas to the chat template.
        tool_role: ``"user"`` (tool results as ``<tool_response>`` user turns) or ``"tool"``
            (role ``tool`` messages, for templates that render images in them).
        max_images: keep at most this many images in the context (oldest become ``[image omitted]``).
        video_resize: let the video processor resize video frames (needed when the env's
            ``patch_factor`` is not the model's patch size x merge size).
    """

    name = "hf"

    def __init__(
        self,
        model: Any,
        processor: Any = None,
        *,
        device: str = "auto",
        dtype: str = "auto",
        max_new_tokens: int = 1024,
        temperature: float = 0.0,
        top_p: float | None = None,
        native_tools: bool = True,
        tool_role: str = "user",
        max_images: int | None = None,
        trust_remote_code: bool = False,
        attn_implementation: str | None = None,
        video_resize: bool = False,
    ) -> None:
        self.video_resize = video_resize
        if tool_role not in ("user", "tool"):
            raise ValueError(f"HFPolicy: tool_role must be 'user' or 'tool', got {tool_role!r}")
        if isinstance(model, str):
            self.model, self.processor, self._lock = _load(model, _resolve_device(device), dtype, trust_remote_code, attn_implementation)
            if processor is not None:
                self.processor = processor
        else:
            if processor is None:
                raise ValueError("HFPolicy: pass the processor together with a loaded model")
            self.model, self.processor, self._lock = model, processor, threading.Lock()
            if device != "auto":
                self.model = self.model.to(device)
        self.max_new_tokens, self.temperature, self.top_p = max_new_tokens, temperature, top_p
        self.native_tools, self.tool_role, self.max_images = native_tools, tool_role, max_images
        self.tools: list[dict] = []
        self.messages: list[dict] = []
        self._seed: int | None = None

    def bind_env(self, env) -> None:
        schemas = getattr(env, "tool_schemas", None)
        self.tools = schemas() if callable(schemas) and self.native_tools else []

    def reset(self, seed: int | None = None) -> None:
        self.messages, self._seed = [], seed

    def act(self, observation: dict, info: dict[str, Any]) -> str:
        self.messages += self._convert(info["messages"])
        text = self._generate()
        self.messages.append({"role": "assistant", "content": [{"type": "text", "text": text}]})
        return text

    def close(self) -> None:
        self.messages = []

    # -- internals ---------------------------------------------------------------------------------
    def _convert(self, env_messages: list[dict]) -> list[dict]:
        from PIL import Image

        out = []
        for m in env_messages:
            parts = [
                {"type": "text", "text": p["text"]} if p["type"] == "text"
                else {"type": "video", "video": list(p["video"]), "timestamps": list(p["timestamps"]), "fps": p["fps"]}
                if p["type"] == "video"
                else {"type": "image", "image": Image.fromarray(np.asarray(p["image"], dtype=np.uint8))}
                for p in m["content"]
            ]
            if m["role"] == "tool" and self.tool_role == "user":
                parts = [{"type": "text", "text": "<tool_response>\n"}] + parts + [{"type": "text", "text": "\n</tool_response>"}]
                if out and out[-1]["role"] == "user":  # consecutive results share one user turn, as in Qwen
                    out[-1]["content"] += [{"type": "text", "text": "\n"}] + parts
                    continue
                out.append({"role": "user", "content": parts})
            else:
                out.append({"role": m["role"], "content": parts})
        return out

    def _context(self) -> list[dict]:
        """The conversation with only the newest ``max_images`` images kept."""
        if self.max_images is None:
            return self.messages
        budget = self.max_images
        trimmed = []
        for m in reversed(self.messages):
            parts = []
            for p in reversed(m["content"]):
                if p["type"] == "image":
                    if budget <= 0:
                        p = {"type": "text", "text": "[image omitted]"}
                    budget -= 1
                parts.append(p)
            trimmed.append({**m, "content": parts[::-1]})
        return trimmed[::-1]

    def _generate(self) -> str:
        import torch

        context = self._context()
        if any(p["type"] == "video" for m in context for p in m["content"]):
            inputs = self._video_inputs(context)
        else:
            inputs = self.processor.apply_chat_template(
                context, tools=self.tools or None, add_generation_prompt=True, tokenize=True,
                return_dict=True, return_tensors="pt",
            )
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "do_sample": self.temperature > 0}
        if self.temperature > 0:
            kwargs["temperature"] = self.temperature
            if self.top_p is not None:
                kwargs["top_p"] = self.top_p
        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        if tokenizer.pad_token_id is not None:
            kwargs["pad_token_id"] = tokenizer.pad_token_id
        with self._lock, torch.inference_mode():
            if self.temperature > 0 and self._seed is not None:
                torch.manual_seed(self._seed + len(self.messages))
            inputs = inputs.to(self.model.device)
            output = self.model.generate(**inputs, **kwargs)
        new_tokens = output[:, inputs["input_ids"].shape[1]:]
        return self.processor.batch_decode(new_tokens, skip_special_tokens=True)[0]

    def _video_inputs(self, context: list[dict]):
        """Processor inputs for a conversation with video parts: the template renders the text (one
        video placeholder per video), the processor gets the images and videos in order."""
        text = self.processor.apply_chat_template(context, tools=self.tools or None, add_generation_prompt=True, tokenize=False)
        images = [p["image"] for m in context for p in m["content"] if p["type"] == "image"]
        videos = [p for m in context for p in m["content"] if p["type"] == "video"]
        return self.processor(
            text=[text], images=images or None, videos=[np.stack(v["video"]) for v in videos],
            videos_kwargs={"video_metadata": [video_metadata(v["timestamps"], v["fps"]) for v in videos],
                           "do_sample_frames": False, "do_resize": self.video_resize},
            return_tensors="pt",
        )


def video_metadata(timestamps: list[float], fps: float):
    """``transformers.video_utils.VideoMetadata`` of :func:`vseek_env.video_part.video_metadata`."""
    from transformers.video_utils import VideoMetadata

    from vseek_env.video_part import video_metadata as metadata

    fields = metadata(timestamps, fps)
    fields.pop("video_backend")
    return VideoMetadata(**fields)
