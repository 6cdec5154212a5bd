#!/usr/bin/env bash
# Export train/val Parquet files (and the stock-tool config) for verl.
#   DATASET=synth:default VAL_DATASET=synth:tiny OUT=data/vseek bash examples/verl/prepare_data.sh
set -euo pipefail
DATASET=${DATASET:-synth:default}
VAL_DATASET=${VAL_DATASET:-synth:tiny}
OUT=${OUT:-data/vseek}
# 5 tool rounds + the answer turn; frames on a 32-pixel grid (Qwen3-VL: patch 16 x merge 2) and at
# most 256x256 (64 visual tokens), at most 16 frames per crop so a crop fits the 4096-token response.
ENV_OPTIONS=${ENV_OPTIONS:-'{"max_turns": 6, "patch_factor": 32, "max_pixels": 65536, "crop_max_frames": 16}'}

vseek export-verl "$DATASET" "$OUT/train.parquet" --split train --env-options "$ENV_OPTIONS" \
    --tool-config "$OUT/vseek_tools.yaml"
vseek export-verl "$VAL_DATASET" "$OUT/val.parquet" --split val --env-options "$ENV_OPTIONS"
