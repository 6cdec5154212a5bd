#!/usr/bin/env bash
# Smoke test of the whole pipeline on ONE GPU: Qwen3-VL-2B, 2 GRPO steps, small batches, offloading.
# Same recipe as run_qwen3vl_8b_grpo.sh, smaller numbers; each one a default that the environment
# overrides (TRAIN_BATCH=8 bash ...). Use MODEL=Qwen/Qwen3-VL-4B-Instruct for 4B.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
export MODEL=${MODEL:-Qwen/Qwen3-VL-2B-Instruct}
export GPUS_PER_NODE=${GPUS_PER_NODE:-1}
export TRAIN_BATCH=${TRAIN_BATCH:-4}
export MINI_BATCH=${MINI_BATCH:-4}
export ROLLOUT_N=${ROLLOUT_N:-4}
export MAX_PROMPT=${MAX_PROMPT:-8192}
export MAX_RESPONSE=${MAX_RESPONSE:-4096}
export GPU_MEMORY=${GPU_MEMORY:-0.45}
export OFFLOAD=${OFFLOAD:-True}
export AGENT_WORKERS=${AGENT_WORKERS:-2}
export TOTAL_STEPS=${TOTAL_STEPS:-2}
export SAVE_FREQ=${SAVE_FREQ:--1}
export TEST_FREQ=${TEST_FREQ:--1}
export VAL_BEFORE_TRAIN=${VAL_BEFORE_TRAIN:-False}
export LOGGER=${LOGGER:-'["console"]'}
export EXPERIMENT=${EXPERIMENT:-qwen3vl_2b_smoke}
exec bash "$HERE/run_qwen3vl_8b_grpo.sh" "$@"
