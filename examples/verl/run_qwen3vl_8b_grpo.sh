#!/usr/bin/env bash
# GRPO on VideoSeeker with the vseek_agent loop: the paper's settings (Table 10) for Qwen3-VL-8B.
# GRPO, 8 rollouts per prompt, batch 32, mini-batch 8, lr 1e-6, KL 0.001 (low_var_kl),
# prompt 16384 / response 4096 tokens; 5 tool rounds come from the rows' env options (max_turns=6).
# Every setting below can be overridden through its variable; extra Hydra overrides go after the script.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=frame_budget.sh
. "$HERE/frame_budget.sh"   # PATCH_SIZE, MAX_PIXELS, TOKENS_PER_FRAME, OVERVIEW_FRAMES (as exported)

MODEL=${MODEL:-Qwen/Qwen3-VL-8B-Instruct}
DATA_DIR=${DATA_DIR:-data/vseek}
NNODES=${NNODES:-1}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
TRAIN_BATCH=${TRAIN_BATCH:-32}
MINI_BATCH=${MINI_BATCH:-8}
ROLLOUT_N=${ROLLOUT_N:-8}
MAX_PROMPT=${MAX_PROMPT:-16384}
MAX_RESPONSE=${MAX_RESPONSE:-4096}
LR=${LR:-1e-6}
KL_COEF=${KL_COEF:-0.001}
TP=${TP:-1}
GPU_MEMORY=${GPU_MEMORY:-0.6}
OFFLOAD=${OFFLOAD:-False}
# Images per request (vLLM's limit_mm_per_prompt): the prompt's overview frames + the visual-prompt
# frame, plus as many tool frames as fit in the response. data.mm_processor_kwargs (below) keeps
# every env frame at its size, so a frame costs at most TOKENS_PER_FRAME = MAX_PIXELS / PATCH_FACTOR^2
# visual tokens (64 for 65536 pixels with Qwen3-VL) and at most ceil(MAX_RESPONSE / TOKENS_PER_FRAME)
# of them fit: 16 + 1 + 64 = 81 for 4096 tokens. Non-square and low-resolution frames are cheaper;
# an episode that would exceed the limit is cut by the vseek_agent loop (cut_by_length).
LIMIT_IMAGES=${LIMIT_IMAGES:-$((OVERVIEW_FRAMES + 1 + (MAX_RESPONSE + TOKENS_PER_FRAME - 1) / TOKENS_PER_FRAME))}
AGENT_WORKERS=${AGENT_WORKERS:-8}
TOTAL_EPOCHS=${TOTAL_EPOCHS:-1}
TOTAL_STEPS=${TOTAL_STEPS:-null}
# vLLM reserves KV cache for max_model_len tokens; the model's own context (256K for Qwen3-VL) would
# waste most of GPU memory. A trajectory never exceeds prompt + response.
MAX_MODEL_LEN=${MAX_MODEL_LEN:-$((MAX_PROMPT + MAX_RESPONSE))}
SAVE_FREQ=${SAVE_FREQ:-20}
TEST_FREQ=${TEST_FREQ:-10}
VAL_BEFORE_TRAIN=${VAL_BEFORE_TRAIN:-True}
LOGGER=${LOGGER:-'["console","wandb"]'}
# vseek_sync = verl's sync V1 trainer + the env's reward components (vseek/*) in every step's metrics.
TRAINER_MODE=${TRAINER_MODE:-vseek_sync}
PROJECT=${PROJECT:-vseek}
EXPERIMENT=${EXPERIMENT:-qwen3vl_8b_grpo}
REWARD_PY=${REWARD_PY:-$(python3 -c 'import vseek_env.integrations.verl.reward as m; print(m.__file__)')}

python3 -m verl.trainer.main_ppo \
    algorithm.adv_estimator=grpo \
    algorithm.use_kl_in_reward=False \
    data.train_files=$DATA_DIR/train.parquet \
    data.val_files=$DATA_DIR/val.parquet \
    data.train_batch_size=$TRAIN_BATCH \
    data.max_prompt_length=$MAX_PROMPT \
    data.max_response_length=$MAX_RESPONSE \
    data.filter_overlong_prompts=False \
    data.truncation=error \
    data.image_patch_size=$PATCH_SIZE \
    +data.mm_processor_kwargs.min_pixels=$((PATCH_FACTOR * PATCH_FACTOR)) \
    +data.mm_processor_kwargs.max_pixels=$MAX_PIXELS \
    actor_rollout_ref.model.path=$MODEL \
    actor_rollout_ref.model.use_remove_padding=True \
    actor_rollout_ref.model.enable_gradient_checkpointing=True \
    actor_rollout_ref.actor.optim.lr=$LR \
    actor_rollout_ref.actor.ppo_mini_batch_size=$MINI_BATCH \
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=1 \
    actor_rollout_ref.actor.use_kl_loss=True \
    actor_rollout_ref.actor.kl_loss_coef=$KL_COEF \
    actor_rollout_ref.actor.kl_loss_type=low_var_kl \
    actor_rollout_ref.actor.entropy_coeff=0 \
    actor_rollout_ref.actor.fsdp_config.param_offload=$OFFLOAD \
    actor_rollout_ref.actor.fsdp_config.optimizer_offload=$OFFLOAD \
    actor_rollout_ref.ref.fsdp_config.param_offload=$OFFLOAD \
    actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=1 \
    actor_rollout_ref.rollout.name=vllm \
    actor_rollout_ref.rollout.mode=async \
    actor_rollout_ref.rollout.n=$ROLLOUT_N \
    actor_rollout_ref.rollout.tensor_model_parallel_size=$TP \
    actor_rollout_ref.rollout.gpu_memory_utilization=$GPU_MEMORY \
    actor_rollout_ref.rollout.max_model_len=$MAX_MODEL_LEN \
    actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=1 \
    +actor_rollout_ref.rollout.limit_images=$LIMIT_IMAGES \
    actor_rollout_ref.rollout.agent.num_workers=$AGENT_WORKERS \
    actor_rollout_ref.rollout.agent.default_agent_loop=vseek_agent \
    actor_rollout_ref.rollout.agent.agent_loop_config_path=$HERE/agent_loops.yaml \
    reward.custom_reward_function.path=$REWARD_PY \
    reward.custom_reward_function.name=compute_score \
    reward.reward_manager.name=naive \
    "trainer.logger=$LOGGER" \
    trainer.v1.trainer_mode=$TRAINER_MODE \
    trainer.project_name=$PROJECT \
    trainer.experiment_name=$EXPERIMENT \
    trainer.nnodes=$NNODES \
    trainer.n_gpus_per_node=$GPUS_PER_NODE \
    trainer.total_epochs=$TOTAL_EPOCHS \
    trainer.total_training_steps=$TOTAL_STEPS \
    trainer.save_freq=$SAVE_FREQ \
    trainer.test_freq=$TEST_FREQ \
    trainer.val_before_train=$VAL_BEFORE_TRAIN \
    "$@"
