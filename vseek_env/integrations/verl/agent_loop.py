"""``vseek_agent``: a verl agent loop that plays one :class:`VideoSeekerEnv` episode per sample.

Per row it rebuilds the env from ``extra_info`` (see :mod:`.rows`), resets it on the row's sample
and then alternates:

* generate with verl's server client on the running token ids and all images so far;
* append the generated tokens (response mask 1), decode them and pass the text to ``env.step``;
* render the new observation (tool results with their frames, error feedback) through the
  processor's chat template and append those tokens (response mask 0) and images.

Each generate call is bounded by what is left of the response budget
(``rollout.response_length``, passed as ``max_tokens``), and only the tokens the trainer keeps are
decoded for ``env.step``: the env never scores text the trainer does not see. The loop stops when
the env terminates or truncates, when the budget is spent, or before an observation would push the
images past ``rollout.limit_images`` (vLLM rejects such a request); then the episode is cut
(``cut_by_length``), counts as truncated and is scored by the env's reward. ``reward_score`` is the env reward, so verl's reward loop is skipped for these rows;
components and tool statistics go to ``extra_fields["reward_extra_info"]`` (logged per step).
Video decoding, env steps and detokenisation run in worker threads, never on the event loop that
the worker's other trajectories share.

Select it with ``agent_name: vseek_agent`` in the rows (``vseek export-verl`` writes it) and
``actor_rollout_ref.rollout.agent.agent_loop_config_path`` pointing at a YAML such as::

    - name: vseek_agent
      _target_: vseek_env.integrations.verl.agent_loop.VSeekAgentLoop
      env_options: {max_turns: 6}      # optional overrides of the rows' env options
      dataset_root: null               # optional: where the videos live on the workers
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from uuid import uuid4

from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopMetrics, AgentLoopOutput, register

from vseek_env.integrations.verl.frames import frame_token_mismatch
from vseek_env.integrations.verl.messages import to_chat_messages
from vseek_env.integrations.verl.rows import AGENT_NAME, env_from_extra_info

logger = logging.getLogger(__name__)

# Keys of reward_extra_info besides the reward components. verl builds the batch's columns from
# the first trajectory's keys, so every trajectory must report exactly the same ones.
STAT_KEYS = (
    "score", "acc", "num_tool_calls", "num_tool_errors", "num_errors", "num_env_turns", "answered",
    "terminated", "truncated", "cut_by_length", "num_images", "prompt_image_tokens",
)


@register(AGENT_NAME)
class VSeekAgentLoop(AgentLoopBase):
    """Agent loop over :class:`~vseek_env.env.VideoSeekerEnv`; see the module docstring.

    Args:
        env_options: env options applied on top of each row's ``extra_info["env_options"]``.
        dataset_root: replaces the rows' ``dataset_root`` (videos on shared storage).
        *args, **kwargs: what verl's ``AgentLoopWorker`` passes to every agent loop.
    """

    def __init__(self, *args: Any, env_options: dict | None = None, dataset_root: str | None = None, **kwargs: Any):
        kwargs.pop("name", None)  # the YAML entry's own name arrives as a keyword
        kwargs.pop("tools", None)  # the env owns its tools
        super().__init__(*args, **kwargs)
        self.env_options = dict(env_options or {})
        self.dataset_root = dataset_root
        self.response_length = int(self.rollout_config.response_length)
        # vLLM's limit_mm_per_prompt (verl sets it from rollout.limit_images); None: unbounded
        limit = getattr(self.rollout_config, "limit_images", None)
        self.limit_images = int(limit) if limit else None
        self._frame_check_done = False

    def _check_frame_tokens(self, token_ids: list[int], images: list, mm_processor_kwargs: dict) -> int:
        """Visual tokens in the prompt; warns once if the processor resized the env's frames."""
        image_token = getattr(self.processor, "image_token_id", None)
        if image_token is None:
            return 0
        count = sum(1 for token in token_ids if token == image_token)
        if not self._frame_check_done:
            self._frame_check_done = True
            problem = frame_token_mismatch(self.processor, images, count, mm_processor_kwargs)
            if problem:
                logger.warning("vseek_agent: %s", problem)
        return count

    def _images_fit(self, n_images: int) -> bool:
        return self.limit_images is None or n_images <= self.limit_images

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        extra_info = kwargs.get("extra_info") or {}
        env, sample_id = await asyncio.to_thread(
            env_from_extra_info, extra_info, env_options=self.env_options, dataset_root=self.dataset_root
        )
        try:
            return await self._episode(env, sample_id, sampling_params)
        finally:
            await asyncio.to_thread(env.close)

    async def _episode(self, env, sample_id: str, sampling_params: dict[str, Any]) -> AgentLoopOutput:
        request_id = uuid4().hex
        timing = {"generate_sequences": 0.0, "tool_calls": 0.0}
        _, info = await asyncio.to_thread(env.reset, options={"sample_id": sample_id})
        messages, images, videos = await asyncio.to_thread(to_chat_messages, info["messages"])
        self._assert_mm_supported(bool(images or videos))
        if not self._images_fit(len(images)):
            raise ValueError(
                f"sample {sample_id!r}: the first observation has {len(images)} images, more than "
                f"rollout.limit_images={self.limit_images}; raise limit_images (see examples/verl/README.md)"
            )
        token_ids = await self.ct_build_initial_tokens(messages, images=images or None, videos=videos or None)
        prompt_length = len(token_ids)
        mm_processor_kwargs = self._get_mm_processor_kwargs()
        prompt_image_tokens = self._check_frame_tokens(token_ids, images, mm_processor_kwargs)
        response_mask: list[int] = []
        logprobs: list[float] = []
        num_turns = 1  # the prompt, counted the way verl's ToolAgentLoop counts it
        num_preempted = -1
        cut_by_length = False
        weight_versions = WeightVersions()

        while True:
            budget = self.response_length - len(response_mask)
            if budget <= 0:
                cut_by_length = True
                break
            start = time.perf_counter()
            output = await self.server_manager.generate(
                request_id, prompt_ids=token_ids, sampling_params={**sampling_params, "max_tokens": budget},
                image_data=images or None, video_data=videos or None, mm_processor_kwargs=mm_processor_kwargs,
            )
            timing["generate_sequences"] += time.perf_counter() - start
            weight_versions.update(output.extra_fields)
            if output.num_preempted is not None:
                num_preempted = max(num_preempted, 0) + output.num_preempted
            # A server that overruns max_tokens: the trainer keeps only `budget` tokens, so the env
            # must see only those (else it would score an answer absent from response_ids).
            generated = list(output.token_ids[:budget])
            generated_logprobs = list(output.log_probs[:budget]) if output.log_probs else None
            merged, response_mask, new_logprobs = await self.ct_merge_assistant_token(
                token_ids, generated, response_mask,
                logprobs if (logprobs or generated_logprobs) else None,
                assistant_logprobs=generated_logprobs,
            )
            logprobs = new_logprobs or []
            token_ids = merged.token_ids
            num_turns += 1
            text = await asyncio.to_thread(self.tokenizer.decode, generated, skip_special_tokens=True)

            start = time.perf_counter()
            _, reward, terminated, truncated, info = await asyncio.to_thread(env.step, text)
            timing["tool_calls"] += time.perf_counter() - start
            if terminated or truncated:
                break
            if len(response_mask) >= self.response_length:
                cut_by_length = True
                break
            # Only the first observation holds a video (the paper overview); tool results are images.
            new_messages, new_images, _ = await asyncio.to_thread(to_chat_messages, info["messages"])
            updated = messages + [{"role": "assistant", "content": text}]
            merged, new_mask, new_logprobs = await self.ct_merge_context_msg(
                updated, updated + new_messages, token_ids, response_mask, logprobs or None
            )
            # Stop before the observation's images join the multimodal data: a cut observation
            # would leave image features without their placeholder tokens, and vLLM refuses a
            # request with more images than its limit_mm_per_prompt.
            if len(new_mask) >= self.response_length or not self._images_fit(len(images) + len(new_images)):
                cut_by_length = True
                break
            messages = updated + new_messages
            token_ids, response_mask = merged.token_ids, new_mask
            if logprobs:
                logprobs = new_logprobs or []
            images = images + new_images
            num_turns += 1

        if cut_by_length:
            reward, components, metrics = await asyncio.to_thread(env.unwrapped.truncate)
        else:
            components, metrics = info["reward_components"], info["reward_metrics"]
        trajectory = env.unwrapped.trajectory
        response_ids = token_ids[prompt_length:]
        n = self.response_length
        extra_info = episode_stats(
            float(reward), components, trajectory, cut_by_length=cut_by_length, num_images=len(images),
            prompt_image_tokens=prompt_image_tokens,
        )
        return AgentLoopOutput(
            prompt_ids=token_ids[:prompt_length],
            response_ids=response_ids[:n],
            response_mask=response_mask[:n],
            response_logprobs=logprobs[:n] if logprobs else None,
            multi_modal_data={**({"images": images} if images else {}), **({"videos": videos} if videos else {})},
            mm_processor_kwargs=mm_processor_kwargs,
            reward_score=float(reward),
            num_turns=num_turns,
            metrics=AgentLoopMetrics(
                generate_sequences=timing["generate_sequences"], tool_calls=timing["tool_calls"],
                num_preempted=num_preempted,
            ),
            extra_fields={
                "reward_extra_info": extra_info,
                "sample_id": sample_id,
                "answer": trajectory.answer,
                "crop_windows": [list(w) for w in trajectory.cropped_windows],
                "reward_metrics": dict(metrics),
                "turn_scores": [],
                "tool_rewards": [],
                **weight_versions.fields(),
            },
        )


class WeightVersions:
    """The policy versions (verl global steps) a trajectory was generated with.

    verl's rollout client tags every generate result with ``min_global_steps`` /
    ``max_global_steps``; the V1 trainer reads both from each trajectory to measure staleness and
    fails on a missing one. A multi-turn episode spans its first turn's version to its last's.
    """

    def __init__(self) -> None:
        self.min_global_steps: int | None = None
        self.max_global_steps: int | None = None

    def update(self, extra_fields: dict | None) -> None:
        fields = extra_fields or {}
        low = fields.get("min_global_steps", fields.get("global_steps"))
        high = fields.get("max_global_steps", fields.get("global_steps"))
        if self.min_global_steps is None and low is not None:
            self.min_global_steps = int(low)
        if high is not None:
            self.max_global_steps = max(int(high), self.max_global_steps or int(high))

    def fields(self) -> dict:
        return {"min_global_steps": self.min_global_steps, "max_global_steps": self.max_global_steps}


def episode_stats(
    reward: float, components: dict, trajectory, *, cut_by_length: bool, num_images: int, prompt_image_tokens: int = 0,
) -> dict:
    """The per-trajectory scalars logged by verl: reward, its components and tool statistics."""
    tools = trajectory.tool_calls
    stats = {
        "score": reward,
        # verl's validation headline ("val-core") is the "acc" key when a row reports one.
        "acc": float(components.get("accuracy", reward)),
        "num_tool_calls": trajectory.num_tool_calls,
        "num_tool_errors": sum(not record.ok for record in tools),
        "num_errors": trajectory.num_errors,
        "num_env_turns": len(trajectory.turns),
        "answered": float(trajectory.answer is not None),
        "terminated": float(trajectory.terminated),
        "truncated": float(trajectory.truncated),
        "cut_by_length": float(cut_by_length),
        "num_images": num_images,
        "prompt_image_tokens": prompt_image_tokens,
    }
    stats.update({f"reward/{name}": float(value) for name, value in components.items()})
    return stats
