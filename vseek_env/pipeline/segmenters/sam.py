"""``sam`` and ``sam3``: SAM 2 (box-prompted) and SAM 3 (text-prompted) video models through transformers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vseek_env.masks import mask_to_box
from vseek_env.pipeline.segmenters.base import Segment, Segmenter, SegmenterUnavailable, SegmentRequest

__all__ = ["Sam2Segmenter", "Sam3Segmenter"]


@dataclass
class Sam2Segmenter(Segmenter):
    """SAM-2 video segmentation through ``transformers`` (``Sam2VideoModel``/``Sam2VideoProcessor``).

    Args:
        model: a local folder with the weights, or a Hub id already in the local cache
            (nothing is downloaded: ``local_files_only=True``).
        device: torch device string.
    """

    model: str = "facebook/sam2.1-hiera-tiny"
    device: str = "cpu"
    name: str = field(default="sam", init=False)

    def unavailable(self) -> str | None:
        # the cheap checks (where are the weights?) first: importing torch takes seconds
        path = Path(self.model).expanduser()
        if path.is_dir():
            if not (path / "config.json").is_file():
                return f"SAM-2 folder {self.model} has no config.json; point --sam-model at a saved Sam2VideoModel"
        elif path.is_absolute() or self.model.startswith((".", "~")) or self.model.count("/") > 1:
            return f"SAM-2 weights folder {self.model} is not on this machine; pass an existing folder or use --segmenter opencv"
        else:
            try:
                from huggingface_hub import try_to_load_from_cache

                cached = try_to_load_from_cache(self.model, "config.json")
            except ImportError:
                return "huggingface_hub is missing; pass --sam-model LOCAL_FOLDER"
            except Exception as exc:  # an ill-formed id raises a validation error
                return f"SAM-2 weights {self.model!r} are not usable: {exc}"
            if not isinstance(cached, str):
                return (
                    f"SAM-2 weights {self.model!r} are not on this machine (no local folder, not in the Hugging Face cache); "
                    "download them (huggingface-cli download facebook/sam2.1-hiera-tiny) or use --segmenter opencv"
                )
        try:
            import torch  # noqa: F401
            from transformers import Sam2VideoModel, Sam2VideoProcessor  # noqa: F401
        except ImportError as exc:
            return f"the 'sam' segmenter needs torch and transformers with SAM-2 video support ({exc}); pip install 'vseek-env[hf]'"
        return None

    def _load(self):
        if getattr(self, "_loaded", None) is None:
            from transformers import Sam2VideoModel, Sam2VideoProcessor

            processor = Sam2VideoProcessor.from_pretrained(self.model, local_files_only=True)
            model = Sam2VideoModel.from_pretrained(self.model, local_files_only=True).to(self.device).eval()
            self._loaded = (processor, model)
        return self._loaded

    def segment(self, request: SegmentRequest) -> list[Segment]:
        why = self.unavailable()
        if why:
            raise SegmenterUnavailable(why)
        import torch

        processor, model = self._load()
        # Seed on the frame where the box is known, even when it is not an output time (as OpenCV's
        # path does): a box put on another frame would mark whatever is there instead.
        out_times = [float(t) for t in request.times]
        frames, times = request.read_frames(out_times + [float(request.seed_time)], None)
        times = np.asarray(times, float)
        seed = int(np.argmin(np.abs(times - request.seed_time)))
        session = processor.init_video_session(video=list(frames), inference_device=self.device)
        processor.add_inputs_to_inference_session(
            inference_session=session, frame_idx=seed, obj_ids=1, input_boxes=[[list(request.seed_box)]]
        )
        masks: dict[int, np.ndarray] = {}
        with torch.inference_mode():
            model(inference_session=session, frame_idx=seed)
            for reverse in (False, True):
                for output in model.propagate_in_video_iterator(session, start_frame_idx=seed, reverse=reverse):
                    full = processor.post_process_masks(
                        [output.pred_masks], original_sizes=[[session.video_height, session.video_width]], binarize=True
                    )[0]
                    masks[int(output.frame_idx)] = np.asarray(full.reshape(-1, *full.shape[-2:])[0].cpu().numpy(), bool)
        results: list[Segment] = []
        for t in out_times:
            mask = masks.get(int(np.argmin(np.abs(times - t))))
            box = mask_to_box(mask) if mask is not None else None
            results.append((box, mask) if box is not None else (None, None))
        return results


class Sam3Segmenter(Sam2Segmenter):
    pass
