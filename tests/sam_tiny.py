"""Tiny random SAM 2 / SAM 3 video models built from configs and saved like real checkpoints.

The smallest shapes that the real transformers code accepts (found by running it): SAM 2's
memory cross-attention reads 64-channel memories and splits object pointers into 64-wide chunks,
so its hidden sizes are 128; SAM 3's tracker reads the detector's FPN features, so both are 256
wide. No weights are downloaded; every parameter is random (seeded).
"""

from __future__ import annotations

import json
from pathlib import Path

SAM2_SIZE = 128
SAM3_SIZE = 112  # a multiple of SAM 3's 14-pixel patches


def save_tiny_sam2(folder: Path) -> Path:
    """A 1.3M-parameter ``Sam2VideoModel`` with random weights in ``folder``."""
    import torch
    from transformers.models.sam2_video.configuration_sam2_video import (
        Sam2VideoConfig,
        Sam2VideoMaskDecoderConfig,
        Sam2VideoPromptEncoderConfig,
    )
    from transformers.models.sam2_video.modeling_sam2_video import Sam2VideoModel

    s = SAM2_SIZE
    config = Sam2VideoConfig(
        vision_config={
            "model_type": "sam2_vision_model",
            "backbone_config": {
                "model_type": "sam2_hiera_det_model", "hidden_size": 16, "blocks_per_stage": [1, 1, 2, 1],
                "embed_dim_per_stage": [16, 32, 64, 128], "num_attention_heads_per_stage": [1, 1, 1, 1],
                "window_size_per_stage": [4, 4, 4, 4], "global_attention_blocks": [3], "image_size": [s, s],
                "window_positional_embedding_background_size": [4, 4],
            },
            "backbone_channel_list": [128, 64, 32, 16],
            "backbone_feature_sizes": [[s // 4, s // 4], [s // 8, s // 8], [s // 16, s // 16]],
            "fpn_hidden_size": 128,
        },
        prompt_encoder_config=Sam2VideoPromptEncoderConfig(hidden_size=128, image_size=s, patch_size=16),
        mask_decoder_config=Sam2VideoMaskDecoderConfig(hidden_size=128, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32),
        image_size=s, memory_attention_hidden_size=128, memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=64, memory_attention_rope_feat_sizes=[s // 16, s // 16],
        memory_encoder_hidden_size=128, memory_encoder_output_channels=64, mask_downsampler_embed_dim=128,
        memory_fuser_embed_dim=128, memory_fuser_intermediate_dim=64, num_maskmem=3,
    )
    torch.manual_seed(0)
    Sam2VideoModel(config).eval().save_pretrained(folder)
    return folder


def save_tiny_sam3(folder: Path, words: tuple[str, ...] = ("red", "ball", "blue", "square", "the", "a")) -> Path:
    """A small random ``Sam3VideoModel`` plus a word-level tokenizer over ``words`` in ``folder``."""
    import torch
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import CLIPTextConfig, PreTrainedTokenizerFast
    from transformers.models.sam3.configuration_sam3 import (
        Sam3Config,
        Sam3DETRDecoderConfig,
        Sam3DETREncoderConfig,
        Sam3GeometryEncoderConfig,
        Sam3MaskDecoderConfig,
        Sam3VisionConfig,
        Sam3ViTConfig,
    )
    from transformers.models.sam3_tracker_video.configuration_sam3_tracker_video import Sam3TrackerVideoConfig
    from transformers.models.sam3_video.configuration_sam3_video import Sam3VideoConfig
    from transformers.models.sam3_video.modeling_sam3_video import Sam3VideoModel

    s, patch = SAM3_SIZE, 14
    f = s // patch
    vit = Sam3ViTConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=s,
                        patch_size=patch, window_size=4, global_attn_indexes=[1], pretrain_image_size=s)
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, **{w: 4 + i for i, w in enumerate(words)}}
    detector = Sam3Config(
        vision_config=Sam3VisionConfig(backbone_config=vit, fpn_hidden_size=256,
                                       backbone_feature_sizes=[[4 * f, 4 * f], [2 * f, 2 * f], [f, f]]),
        text_config=CLIPTextConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                   num_attention_heads=2, max_position_embeddings=32, projection_dim=32,
                                   bos_token_id=1, eos_token_id=2, pad_token_id=0),
        geometry_encoder_config=Sam3GeometryEncoderConfig(hidden_size=256, num_layers=1, num_attention_heads=2, intermediate_size=64),
        detr_encoder_config=Sam3DETREncoderConfig(hidden_size=256, num_layers=1, num_attention_heads=2, intermediate_size=64),
        detr_decoder_config=Sam3DETRDecoderConfig(hidden_size=256, num_layers=1, num_queries=4, num_attention_heads=2, intermediate_size=64),
        mask_decoder_config=Sam3MaskDecoderConfig(hidden_size=256, num_attention_heads=2),
    )
    tracker = Sam3TrackerVideoConfig(image_size=s, memory_attention_num_layers=1, memory_attention_feed_forward_hidden_size=64,
                                     memory_fuser_intermediate_dim=64, num_maskmem=2)
    # thresholds at 0 so that the random detector reports its queries as instances
    config = Sam3VideoConfig(detector_config=detector, tracker_config=tracker, low_res_mask_size=4 * f,
                             score_threshold_detection=0.0, new_det_thresh=0.0, hotstart_delay=0,
                             hotstart_unmatch_thresh=0, hotstart_dup_thresh=0)
    torch.manual_seed(0)
    Sam3VideoModel(config).eval().save_pretrained(folder)
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<s>",
                            eos_token="</s>").save_pretrained(folder)
    (Path(folder) / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.5] * 3, "image_std": [0.5] * 3}))
    return folder
