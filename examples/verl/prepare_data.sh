#!/usr/bin/env bash
# Export train/val Parquet files (and the stock-tool config) for verl.
#   DATASET=synth:default VAL_DATASET=synth:tiny OUT=data/vseek bash examples/verl/prepare_data.sh
# The frame budget (PATCH_SIZE, MAX_PIXELS, OVERVIEW_FRAMES, ...) comes from frame_budget.sh: run
# the training script with the same values.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=frame_budget.sh
. "$HERE/frame_budget.sh"
DATASET=${DATASET:-synth:default}
VAL_DATASET=${VAL_DATASET:-synth:tiny}
OUT=${OUT:-data/vseek}

vseek export-verl "$DATASET" "$OUT/train.parquet" --split train --env-options "$ENV_OPTIONS" \
    --tool-config "$OUT/vseek_tools.yaml"
vseek export-verl "$VAL_DATASET" "$OUT/val.parquet" --split val --env-options "$ENV_OPTIONS"
