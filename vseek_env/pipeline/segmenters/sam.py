"""``sam`` and ``sam3``: SAM 2 (box-prompted) and SAM 3 (text-prompted) video models through transformers.

``sam``  (:class:`Sam2Segmenter`): ``Sam2VideoModel`` prompted with G2's seed box on the seed frame,
         propagated forward and backward over the output frames.
``sam3`` (:class:`Sam3Segmenter`): ``Sam3VideoModel`` prompted with the target's text tag (G2's
         ``tag``) over the window's 1 fps frames, as the paper's G3 does; SAM 3 finds every instance
         of the tag, and the one whose mask best overlaps G2's seed box on the seed frame is the target.

Both run the real model and inference-session classes and load weights only from disk (a local
folder, or a Hub id already in the Hugging Face cache: ``local_files_only=True``). They prepare the
frames and prompts themselves instead of through ``Sam2VideoProcessor`` / ``Sam3VideoProcessor``:
in transformers 5 those processors cannot be built without torchvision (``BaseVideoProcessor`` is
declared ``@requires(backends=("vision", "torchvision"))`` and ``Sam2ImageProcessorFast``'s module
imports ``torchvision.ops.batched_nms``), and no CPU build of torchvision matches the pinned torch.
The preparation is the processors': resize to the model's square input, rescale to [0, 1],
normalise (mean/std from the folder's processor config when present), box corners scaled to the
input size as SAM 2's ``box`` point labels 2 and 3; masks are upsampled back to the video's size.

Example:
    >>> Sam2Segmenter(model="/no/such/folder").unavailable()
    'SAM 2 weights folder /no/such/folder is not on this machine; pass an existing folder or use --segmenter opencv'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vseek_env.masks import mask_to_box
from vseek_env.rewards.matching import box_iou
from vseek_env.pipeline.segmenters.base import Segment, Segmenter, SegmenterUnavailable, SegmentRequest

__all__ = ["Sam2Segmenter", "Sam3Segmenter"]

_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass
class _SamVideo(Segmenter):
    """What both SAM adapters share: finding and loading weights, preparing frames, reading masks."""

    model: str = ""
    device: str = "cpu"
    label = "SAM"
    module = ""  # transformers module holding the model class
    model_class = ""
    default_mean_std = (_IMAGENET_MEAN, _IMAGENET_STD)

    def unavailable(self) -> str | None:
        # the cheap checks (where are the weights?) first: importing torch takes seconds
        path = Path(self.model).expanduser()
        if path.is_dir():
            if not (path / "config.json").is_file():
                return f"{self.label} folder {self.model} has no config.json; point it at a saved {self.model_class}"
        elif path.is_absolute() or self.model.startswith((".", "~")) or self.model.count("/") > 1:
            return f"{self.label} weights folder {self.model} is not on this machine; pass an existing folder or use --segmenter opencv"
        else:
            try:
                from huggingface_hub import try_to_load_from_cache

                cached = try_to_load_from_cache(self.model, "config.json")
            except ImportError:
                return "huggingface_hub is missing; pass a local weights folder"
            except Exception as exc:  # an ill-formed id raises a validation error
                return f"{self.label} weights {self.model!r} are not usable: {exc}"
            if not isinstance(cached, str):
                return (
                    f"{self.label} weights {self.model!r} are not on this machine (no local folder, not in the Hugging Face "
                    f"cache); download them (huggingface-cli download {self.model}) or use --segmenter opencv"
                )
        try:
            self._classes()
        except ImportError as exc:
            return f"the {self.name!r} segmenter needs torch and transformers with {self.model_class} ({exc}); pip install 'vseek-env[hf]'"
        return None

    def _classes(self):
        """The model class and its inference session, imported from their module: the package-level
        names are placeholders that refuse to load without torchvision, which these classes never use."""
        import importlib

        import torch  # noqa: F401

        mod = importlib.import_module(f"transformers.models.{self.module}")
        return getattr(mod, self.model_class), getattr(mod, self.model_class.replace("Model", "InferenceSession"))

    def _load(self):
        if getattr(self, "_loaded", None) is None:
            model_cls, session_cls = self._classes()
            model = model_cls.from_pretrained(self.model, local_files_only=True).to(self.device).eval()
            self._loaded = (model, session_cls, self._mean_std())
        return self._loaded

    def _mean_std(self):
        """Normalisation from the folder's processor config, else the model family's default."""
        path = Path(self.model).expanduser()
        for name in ("video_preprocessor_config.json", "preprocessor_config.json", "processor_config.json"):
            try:
                cfg = json.loads((path / name).read_text())
            except (OSError, ValueError):
                continue
            cfg = cfg.get("video_processor", cfg.get("image_processor", cfg))
            if isinstance(cfg, dict) and cfg.get("image_mean") and cfg.get("image_std"):
                return tuple(cfg["image_mean"]), tuple(cfg["image_std"])
        return self.default_mean_std

    def _open(self, request: SegmentRequest):
        """Read the output frames plus the seed frame (a seed that is no output time is still where
        the target is known: prompting another frame would mark whatever is there) and open a session:
        ``(out_times, frame_times, seed_index, model, session, input_size)``."""
        out_times = [float(t) for t in request.times]
        frames, times = request.read_frames(out_times + [float(request.seed_time)], None)
        times = np.asarray(times, float)
        seed = int(np.argmin(np.abs(times - request.seed_time)))
        return (out_times, times, seed, *self._session(np.asarray(frames)))

    def _session(self, frames: np.ndarray):
        """An inference session over ``frames`` (N, H, W, 3 uint8), prepared as the processor would."""
        import torch
        import torch.nn.functional as F

        model, session_cls, (mean, std) = self._load()
        size = int(model.config.image_size)
        video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
        video = F.interpolate(video, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        video = (video - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
        h, w = frames.shape[1:3]
        session = session_cls(
            video=video.to(self.device), video_height=h, video_width=w, inference_device=self.device,
            video_storage_device=self.device, inference_state_device=self.device, dtype=torch.float32,
        )
        return model, session, size

    @staticmethod
    def _full_mask(logits, height: int, width: int) -> np.ndarray:
        """Low-resolution mask logits -> bool mask at the video's size."""
        import torch.nn.functional as F

        x = logits.float().reshape(1, 1, *logits.shape[-2:])
        return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)[0, 0].cpu().numpy() > 0

    def _check(self, request: SegmentRequest) -> None:
        why = self.unavailable()
        if why:
            raise SegmenterUnavailable(why)
        if request.read_frames is None:
            raise ValueError(f"the {self.name!r} segmenter needs request.read_frames")


@dataclass
class Sam2Segmenter(_SamVideo):
    """SAM 2 video segmentation from the seed box (``Sam2VideoModel``).

    Args:
        model: a local folder with the weights, or a Hub id already in the local cache.
        device: torch device string.
    """

    model: str = "facebook/sam2.1-hiera-tiny"
    name: str = field(default="sam", init=False)
    label = "SAM 2"
    module = "sam2_video.modeling_sam2_video"
    model_class = "Sam2VideoModel"

    def segment(self, request: SegmentRequest) -> list[Segment]:
        self._check(request)
        import torch

        out_times, times, seed, model, session, size = self._open(request)
        h, w = session.video_height, session.video_width
        x1, y1, x2, y2 = request.seed_box
        corners = torch.tensor([[[[x1 * size / w, y1 * size / h], [x2 * size / w, y2 * size / h]]]], dtype=torch.float32)
        obj = session.obj_id_to_idx(1)
        session.add_point_inputs(obj, seed, {"point_coords": corners, "point_labels": torch.tensor([[[2, 3]]], dtype=torch.int32)})
        session.remove_mask_inputs(obj, seed)
        session.obj_with_new_inputs = [1]
        masks: dict[int, np.ndarray] = {}
        with torch.inference_mode():
            model(inference_session=session, frame_idx=seed)
            for reverse in (False, True):
                for output in model.propagate_in_video_iterator(session, start_frame_idx=seed, reverse=reverse):
                    masks[int(output.frame_idx)] = self._full_mask(output.pred_masks[0], h, w)
        return _at_times(out_times, times, masks)


@dataclass
class Sam3Segmenter(_SamVideo):
    """SAM 3 video segmentation from the target's text tag (``Sam3VideoModel``), as in the paper.

    Args:
        model: a local folder with the weights and tokenizer, or a Hub id already in the local cache.
        device: torch device string.
        min_seed_iou: the chosen instance's box must overlap the seed box at least this much on the
            seed frame, else the target counts as not found.
    """

    model: str = "facebook/sam3"
    min_seed_iou: float = 0.1
    name: str = field(default="sam3", init=False)
    label = "SAM 3"
    module = "sam3_video.modeling_sam3_video"
    model_class = "Sam3VideoModel"
    default_mean_std = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))

    def _tokenizer(self):
        if getattr(self, "_tok", None) is None:
            from transformers import AutoTokenizer

            self._tok = AutoTokenizer.from_pretrained(self.model, local_files_only=True)
        return self._tok

    def segment(self, request: SegmentRequest) -> list[Segment]:
        self._check(request)
        if not request.text or not request.text.strip():
            raise ValueError("the 'sam3' segmenter is prompted with the target's text tag; the request has none (G2's 'tag')")
        import torch

        out_times, times, seed, model, session, _ = self._open(request)
        h, w = session.video_height, session.video_width
        text = " ".join(request.text.split())
        prompt_id = session.add_prompt(text)
        tokens = self._tokenizer()(text, return_tensors="pt", padding="max_length", max_length=32, truncation=True)
        session.prompt_input_ids[prompt_id] = tokens.input_ids.to(self.device)
        session.prompt_attention_masks[prompt_id] = tokens.attention_mask.to(self.device)
        per_frame: dict[int, dict[int, np.ndarray]] = {}
        with torch.inference_mode():
            for output in model.propagate_in_video_iterator(inference_session=session, start_frame_idx=0):
                per_frame[int(output.frame_idx)] = {
                    int(k): self._full_mask(v, h, w) for k, v in (output.obj_id_to_mask or {}).items()
                }
        target = self._pick(per_frame.get(seed, {}), request.seed_box)
        masks = {i: objs[target] for i, objs in per_frame.items() if target is not None and target in objs}
        return _at_times(out_times, times, masks)

    def _pick(self, seed_masks: dict[int, np.ndarray], seed_box) -> int | None:
        """The instance whose box best overlaps the seed box on the seed frame (ties: lowest id)."""
        best, best_iou = None, self.min_seed_iou
        for obj_id in sorted(seed_masks):
            box = mask_to_box(seed_masks[obj_id])
            iou = box_iou(box, seed_box) if box is not None else 0.0
            if iou >= best_iou and (best is None or iou > best_iou):
                best, best_iou = obj_id, iou
        return best


def _at_times(out_times: list[float], times: np.ndarray, masks: dict[int, np.ndarray]) -> list[Segment]:
    """Each output time's mask (the nearest read frame's), ``(None, None)`` where there is none."""
    results: list[Segment] = []
    for t in out_times:
        mask = masks.get(int(np.argmin(np.abs(times - t))))
        box = mask_to_box(mask) if mask is not None else None
        results.append((box, mask) if box is not None else (None, None))
    return results
