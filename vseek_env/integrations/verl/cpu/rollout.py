"""``vseek_hf``: a CPU rollout backend for verl 0.9 built on Hugging Face ``generate``.

verl's agent loops talk to rollout *servers* (vLLM, SGLang, TRT-LLM) through a token-in /
token-out ``generate`` call, and a trainer-side adapter pushes new weights to them after each
update. Neither vLLM nor SGLang runs here, so this module provides the same three pieces over a
plain ``transformers`` model:

* :class:`HFRolloutServer`, the Ray actor the agent loops call (``generate``, weight loading, and
  the no-op lifecycle calls verl makes: sleep, wake-up, cache control, abort, profiling);
* :class:`HFRolloutReplica`, registered in verl's ``RolloutReplicaRegistry`` as ``vseek_hf``,
  which starts one server per replica;
* :class:`HFServerAdapter`, registered in verl's rollout registry for ``(vseek_hf, async)``,
  which lives in the trainer worker and sends the updated weights to the server.

It is a test and debugging backend (one request at a time, no batching, no KV cache reuse): it
lets ``python -m verl.trainer.main_ppo`` run GRPO on a tiny model in CI. Real training uses vLLM or
SGLang on GPUs. Select it with ``actor_rollout_ref.rollout.name=vseek_hf`` (see
``examples/verl/run_cpu_smoke.sh``).
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from array import array
from typing import Any, Generator, Optional, Sequence

import ray
import torch

from verl.workers.rollout.base import BaseRollout
from verl.workers.rollout.replica import RolloutReplica, TokenOutput

from vseek_env.integrations.verl.cpu import ROLLOUT_NAME

logger = logging.getLogger(__name__)

# Tokens a random model must never emit: a stray vision placeholder in a response breaks verl's
# M-RoPE position ids (it would claim image features that do not exist).
_VISION_TOKENS = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>")


def _load_model(local_path: str, trust_remote_code: bool):
    """The HF model at ``local_path``: the image-text-to-text class when the config has one."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

    config = AutoConfig.from_pretrained(local_path, trust_remote_code=trust_remote_code)
    loader = AutoModelForImageTextToText if hasattr(config, "vision_config") else AutoModelForCausalLM
    model = loader.from_pretrained(local_path, trust_remote_code=trust_remote_code, dtype=torch.float32)
    return model.eval()


def suppressed_token_ids(tokenizer) -> list[int]:
    """Ids of the vision placeholder tokens that generation must not produce."""
    unk = getattr(tokenizer, "unk_token_id", None)
    ids = [tokenizer.convert_tokens_to_ids(token) for token in _VISION_TOKENS]
    return sorted({i for i in ids if isinstance(i, int) and i >= 0 and i != unk})


class ScriptedResponses:
    """Scripted replies that give every GRPO group reward variance, for plumbing tests.

    A random test model never earns a reward, so all advantages would be 0. Instead, the first
    turn of an episode is answered from the ring ``first_turn``: the ``n`` rollouts of one prompt
    take consecutive entries (keyed by the prompt), so a ring whose neighbours score differently
    guarantees variance in each group. A later turn of the same episode (its prompt strictly
    extends an earlier one; agent loops may re-render the reply, so only the prompt is matched) is
    answered from ``followup`` the same way. Empty lists: never scripted.

    Example:
        >>> s = ScriptedResponses([[1], [2]], [[9]])
        >>> sorted([s.choose([5, 5])[0], s.choose([5, 5])[0]])
        [1, 2]
        >>> s.remember([5, 5]); s.choose([5, 5, 1, 7])
        [9]
    """

    def __init__(self, first_turn: Sequence[list[int]], followup: Sequence[list[int]] = (), *, memory: int = 4096):
        self.first_turn = [list(t) for t in first_turn]
        self.followup = [list(t) for t in followup] or self.first_turn
        self.memory = memory
        self._counts: dict[int, int] = {}
        self._prompts: dict[tuple[int, int], None] = {}  # (length, crc) of answered prompts, oldest first

    def __bool__(self) -> bool:
        return bool(self.first_turn)

    @staticmethod
    def _crc(ids: Sequence[int]) -> int:
        return zlib.crc32(array("q", ids).tobytes())

    def _is_followup(self, prompt_ids: Sequence[int]) -> bool:
        return any(length < len(prompt_ids) and self._crc(prompt_ids[:length]) == crc for length, crc in self._prompts)

    def choose(self, prompt_ids: Sequence[int]) -> list[int] | None:
        """The scripted reply for this prompt (``None``: nothing scripted, sample instead)."""
        if not self.first_turn:
            return None
        ring = self.followup if self._is_followup(prompt_ids) else self.first_turn
        key = self._crc(prompt_ids)
        count = self._counts.get(key, 0)
        self._counts[key] = count + 1
        return list(ring[(key + count) % len(ring)])

    def remember(self, prompt_ids: Sequence[int]) -> None:
        """Record an answered prompt so that the episode's next turn is recognised as a follow-up."""
        self._prompts[(len(prompt_ids), self._crc(prompt_ids))] = None
        while len(self._prompts) > self.memory:
            self._prompts.pop(next(iter(self._prompts)))


class HFGenerator:
    """Token-in / token-out generation with a transformers model (the server's engine).

    Args:
        model: a causal LM or a Qwen-VL style image-text-to-text model.
        processor: the model's processor (``None`` for text-only models); its image processor
            turns ``image_data`` into ``pixel_values`` / ``image_grid_thw``.
        tokenizer: the model's tokenizer (EOS and vision token ids).
        default_max_tokens: used when a request names no ``max_tokens``.
        scripted_first_turn, scripted_followup: texts for :class:`ScriptedResponses` (empty:
            always sample). Scripted tokens are scored by the model like sampled ones.
    """

    def __init__(
        self, model, processor, tokenizer, *, default_max_tokens: int,
        scripted_first_turn: Sequence[str] = (), scripted_followup: Sequence[str] = (),
    ) -> None:
        self.model = model
        self.processor = processor
        self.tokenizer = tokenizer
        self.default_max_tokens = int(default_max_tokens)
        self.suppress = suppressed_token_ids(tokenizer)
        eos = getattr(model.generation_config, "eos_token_id", None) or tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos])

        def encode(texts: Sequence[str]) -> list[list[int]]:
            return [tokenizer.encode(t, add_special_tokens=False) + [tokenizer.eos_token_id] for t in texts]

        self.scripted = ScriptedResponses(encode(scripted_first_turn), encode(scripted_followup))

    def vision_inputs(self, image_data: Optional[list[Any]], mm_processor_kwargs: Optional[dict]) -> dict:
        if not image_data:
            return {}
        if self.processor is None or getattr(self.processor, "image_processor", None) is None:
            raise ValueError("the request has images but the model has no image processor")
        out = self.processor.image_processor(images=image_data, return_tensors="pt", **(mm_processor_kwargs or {}))
        return {key: out[key] for key in ("pixel_values", "image_grid_thw") if key in out}

    def token_types(self, ids: list[int], vision: dict) -> dict:
        """``mm_token_type_ids`` for models whose M-RoPE needs them (Qwen3-VL in transformers 5):
        which of ``ids`` are image / video placeholders, as the processor marks them."""
        make = getattr(self.processor, "create_mm_token_type_ids", None)
        if not vision or make is None:
            return {}
        return {"mm_token_type_ids": torch.tensor(make([list(ids)]), dtype=torch.long)}

    @torch.no_grad()
    def generate(
        self,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        image_data: Optional[list[Any]] = None,
        mm_processor_kwargs: Optional[dict] = None,
    ) -> tuple[list[int], list[float], str]:
        """``(token_ids, log_probs, stop_reason)`` for one prompt."""
        params = dict(sampling_params)
        max_tokens = int(params.get("max_tokens") or params.get("max_new_tokens") or self.default_max_tokens)
        vision = self.vision_inputs(image_data, mm_processor_kwargs)
        scripted = self.scripted.choose(prompt_ids)
        if scripted is not None:
            tokens = scripted[: max(1, max_tokens)]
            self.scripted.remember(prompt_ids)
            return tokens, self.score(prompt_ids, tokens, vision), "completed" if tokens[-1] in self.eos_ids else "length"
        temperature = float(params.get("temperature", 1.0) or 0.0)
        top_k = params.get("top_k", -1)
        input_ids = torch.tensor([prompt_ids], dtype=torch.long)
        kwargs: dict[str, Any] = dict(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=max(1, max_tokens),
            do_sample=temperature > 0,
            output_scores=True,
            return_dict_in_generate=True,
            suppress_tokens=self.suppress or None,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        if temperature > 0:
            kwargs.update(temperature=temperature, top_p=float(params.get("top_p", 1.0)),
                          top_k=int(top_k) if top_k and int(top_k) > 0 else 0)
        kwargs.update(vision)
        kwargs.update(self.token_types(prompt_ids, vision))
        out = self.model.generate(**kwargs)
        tokens = out.sequences[0, input_ids.shape[1]:].tolist()
        log_probs = [
            float(torch.log_softmax(step_scores[0].float(), dim=-1)[token])
            for step_scores, token in zip(out.scores, tokens)
        ]
        stop = "completed" if tokens and tokens[-1] in self.eos_ids else "length"
        return tokens, log_probs, stop

    @torch.no_grad()
    def score(self, prompt_ids: list[int], tokens: list[int], vision: dict) -> list[float]:
        """Log-probabilities of ``tokens`` after ``prompt_ids`` under the current weights."""
        ids = torch.tensor([list(prompt_ids) + list(tokens)], dtype=torch.long)
        types = self.token_types(ids[0].tolist(), vision)
        logits = self.model(input_ids=ids, attention_mask=torch.ones_like(ids), **vision, **types).logits[0].float()
        start = len(prompt_ids)
        log_probs = torch.log_softmax(logits[start - 1 : start - 1 + len(tokens)], dim=-1)
        return [float(row[token]) for row, token in zip(log_probs, tokens)]

    def load_weights(self, named_tensors: dict[str, torch.Tensor]) -> int:
        """Copy the trainer's tensors into the model by name; returns how many were loaded."""
        state = self.model.state_dict()
        loaded = 0
        for name, tensor in named_tensors.items():
            target = state.get(name)
            if target is None:
                # FSDP and HF sometimes disagree on a "model." prefix; try the other spelling.
                alt = name[len("model."):] if name.startswith("model.") else f"model.{name}"
                target = state.get(alt)
            if target is None or tuple(target.shape) != tuple(tensor.shape):
                continue
            target.copy_(tensor.to(target.dtype))
            loaded += 1
        if loaded == 0:
            raise ValueError(
                f"none of the {len(named_tensors)} weights sent by the trainer matches the rollout model "
                f"(first names: {list(named_tensors)[:3]})"
            )
        return loaded


@ray.remote
class HFRolloutServer:
    """The Ray actor behind one ``vseek_hf`` replica; see the module docstring."""

    def __init__(self, config, model_config, replica_rank: int = 0) -> None:
        from verl.utils.config import omega_conf_to_dataclass
        from verl.workers.config import HFModelConfig

        config = omega_conf_to_dataclass(config)
        model_config = omega_conf_to_dataclass(model_config, dataclass_type=HFModelConfig)
        self.config = config
        self.model_config = model_config
        self.replica_rank = replica_rank
        self.global_steps: Optional[int] = None
        trust = bool(getattr(model_config, "trust_remote_code", False))
        model = _load_model(model_config.local_path, trust)
        options = dict((getattr(config, "engine_kwargs", None) or {}).get(ROLLOUT_NAME) or {})
        unknown = set(options) - {"scripted_first_turn", "scripted_followup"}
        if unknown:
            raise ValueError(f"rollout.engine_kwargs.{ROLLOUT_NAME} has unknown key(s) {sorted(unknown)}")
        self.engine = HFGenerator(
            model, getattr(model_config, "processor", None), model_config.tokenizer,
            default_max_tokens=config.response_length,
            scripted_first_turn=list(options.get("scripted_first_turn") or ()),
            scripted_followup=list(options.get("scripted_followup") or ()),
        )
        # One generate at a time: torch already uses every core for one request.
        self._lock = asyncio.Lock()

    async def generate(
        self,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        request_id: str,
        image_data: Optional[list[Any]] = None,
        video_data: Optional[list[Any]] = None,
        mm_processor_kwargs: Optional[dict[str, Any]] = None,
        **kwargs: Any,
    ) -> TokenOutput:
        if video_data:
            raise ValueError("the vseek_hf CPU rollout does not take video input; send frames as images")
        async with self._lock:
            tokens, log_probs, stop = await asyncio.to_thread(
                self.engine.generate, list(prompt_ids), dict(sampling_params), image_data, mm_processor_kwargs
            )
        return TokenOutput(
            token_ids=tokens,
            log_probs=log_probs if sampling_params.get("logprobs") else None,
            stop_reason=stop,
            extra_fields={"global_steps": self.global_steps},
        )

    async def load_weights(self, named_tensors: dict[str, torch.Tensor]) -> int:
        async with self._lock:
            return self.engine.load_weights(named_tensors)

    async def set_global_steps(self, global_steps: int) -> None:
        self.global_steps = global_steps

    # verl's lifecycle calls: nothing to free or restore for an in-process HF model.
    async def wake_up(self, tags: list[str] | None = None) -> None:
        return None

    async def sleep(self) -> None:
        return None

    async def clear_kv_cache(self) -> None:
        return None

    async def release_kv_cache(self) -> None:
        return None

    async def resume_kv_cache(self) -> None:
        return None

    async def abort_all_requests(self, reset_prefix_cache: bool = True, reject_request: bool = False) -> dict:
        return {"aborted": 0}

    async def resume_generation(self) -> None:
        return None

    async def start_profile(self, **kwargs: Any) -> None:
        return None

    async def stop_profile(self) -> None:
        return None


def server_name(replica_rank: int, suffix: str = "") -> str:
    """The Ray actor name of a replica's server (the adapter finds it by this name)."""
    return f"{ROLLOUT_NAME}_server_{replica_rank}_0{suffix}"


class HFRolloutReplica(RolloutReplica):
    """One ``vseek_hf`` server per replica, in the trainer's Ray cluster."""

    async def launch_servers(self) -> None:
        name = server_name(self.replica_rank, self.name_suffix)
        server = HFRolloutServer.options(name=name, max_concurrency=self.max_concurrency).remote(
            config=self.config, model_config=self.model_config, replica_rank=self.replica_rank
        )
        self.servers = [server]
        self._server_handle = server
        # No HTTP endpoint: verl's agent loops use the actor handle (token in, token out).
        self._server_address = f"ray://{name}"


class HFServerAdapter(BaseRollout):
    """Trainer-side half of ``vseek_hf``: sends updated weights to the replica's server."""

    def __init__(self, config, model_config, device_mesh, replica_rank: int = -1, **kwargs: Any) -> None:
        super().__init__(config, model_config, device_mesh)
        import os

        rank = int(os.environ.get("RANK", "0"))
        world = self.config.tensor_model_parallel_size * self.config.data_parallel_size
        self.replica_rank = rank // max(world, 1) if replica_rank == -1 else replica_rank
        self._is_leader = rank % max(world, 1) == 0
        self._server = None

    def _server_handle(self):
        if self._server is None and self._is_leader:
            self._server = ray.get_actor(server_name(self.replica_rank))
        return self._server

    async def resume(self, tags: list[str]) -> None:
        return None

    async def release(self) -> None:
        return None

    @torch.no_grad()
    async def update_weights(
        self,
        weights: Generator[tuple[str, torch.Tensor], None, None],
        global_steps: int | None = None,
        wire_format: str = "named_tensors",
        **kwargs: Any,
    ) -> None:
        if wire_format != "named_tensors":
            raise NotImplementedError(f"vseek_hf takes wire_format='named_tensors', got {wire_format!r}")
        # Every rank must drain the generator (FSDP gathers are collective); the leader sends.
        named = {}
        for name, tensor in weights:
            if hasattr(tensor, "full_tensor"):
                tensor = tensor.full_tensor()
            named[name] = tensor.detach().to("cpu", copy=True)
        server = self._server_handle()
        if server is None:
            return
        loaded = await server.load_weights.remote(named)
        logger.info("vseek_hf: loaded %d of %d tensors into the rollout model", loaded, len(named))
        if global_steps is not None:
            await server.set_global_steps.remote(global_steps)
