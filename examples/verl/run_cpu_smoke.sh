#!/usr/bin/env bash
# GRPO through verl's own main_ppo (default V1 trainer) on CPU: tiny random Qwen2.5-VL, synth:tiny,
# 2 steps, the vseek_agent loop and the env reward. A test and debugging run, not training.
#   bash examples/verl/run_cpu_smoke.sh OUTDIR [--kind qwen3_vl] [--steps N] [hydra overrides...]
# OUTDIR/metrics.jsonl: verl's per-step metrics; OUTDIR/train.log: the full log; OUTDIR/summary.json.
# PYTHON: the interpreter of the venv that has vseek-env[verl] (default: python3 on PATH).
set -euo pipefail
if [ $# -lt 1 ]; then
    echo "usage: $0 OUTDIR [--kind qwen2_5_vl|qwen3_vl] [--steps N] [hydra overrides...]" >&2
    exit 2
fi
exec "${PYTHON:-python3}" -m vseek_env.integrations.verl.cpu.smoke "$@"
