"""Scheduler settings of one replica, with the names the engines use."""

from __future__ import annotations

from dataclasses import dataclass

from ..engines import DEFAULT_ENGINE, engine_names, get_engine
from ..errors import FrontierError

CAPACITY_POLICIES = ("guaranteed_no_evict", "max_utilization")


@dataclass
class SchedulerConfig:
    """Scheduling policy and limits of one replica. All sizes are in tokens unless named ``*_blocks``.

    ``policy`` names a registered engine (``frontier_calib/engines/``); its record gives the token-budget rule
    (:attr:`max_running`, :attr:`step_token_budget` and the checks of :meth:`validate`).

    Common (vLLM names): ``max_num_batched_tokens`` is the token budget of one step, ``max_num_seqs`` caps the
    running requests, ``max_model_len`` caps input + output tokens of a request, ``num_kv_blocks`` blocks of
    ``block_size`` tokens form the KV cache. ``long_prefill_token_threshold`` (0 = off) caps one request's
    prefill chunk per step. ``enable_chunked_prefill`` (None = the engine's own default, its record's
    ``chunked_prefill_default``: vLLM and SGLang chunk, TensorRT-LLM does not) splits long prompts over steps.

    SGLang extras: ``chunked_prefill_size`` (prefill tokens per step; None = ``max_num_batched_tokens``),
    ``max_prefill_tokens`` (tokens of a prefill batch), ``schedule_conservativeness`` (scales the reserved
    future decode tokens), ``enable_mixed_chunk`` (run decodes inside prefill steps), ``scheduler_recv_interval``
    (``--scheduler-recv-interval``, default 1: the scheduler takes new requests from the tokenizer only once its
    counter reaches this value; every decode step adds 1, any step with prefill adds 1,000, an idle loop 1:
    ``SchedulerRecvSkipper``, ``python/sglang/srt/managers/scheduler_recv_skipper.py``; not with attention DP).

    TensorRT-LLM extras: ``max_batch_size`` (None = ``max_num_seqs``), ``max_num_tokens``
    (None = ``max_num_batched_tokens``), ``capacity_scheduler_policy``; ``attention_dp_balance`` with
    ``attention_dp_timeout_iters`` and ``attention_dp_batching_wait_iters`` (its ``attention_dp_config:
    {enable_balance, timeout_iters, batching_wait_iters}``, defaults False / 50 / 10 as in ``AttentionDpConfig``,
    ``tensorrt_llm/llmapi/llm_args.py``): attention-DP ranks hold their new context requests until every rank has
    one, or for at most ``timeout_iters`` iterations (``sim/lockstep.py``). ``batch_wait_timeout_iters`` and
    ``batch_wait_max_tokens_ratio`` (TensorRT-LLM's names, defaults 0 / 0.0: off; on when either is > 0, without
    attention DP): a step that has generation requests holds its context requests until they and the generation
    tokens reach ``ratio x max_num_tokens`` or ``timeout_iters`` steps have held them (``PyExecutor._waiting_requests``,
    ``sim/schedulers/trtllm.py``).
    """

    policy: str = DEFAULT_ENGINE
    max_num_batched_tokens: int = 2048
    max_num_seqs: int = 256
    max_model_len: int = 8192
    enable_prefix_caching: bool = True
    block_size: int = 16
    num_kv_blocks: int = 10_000
    enable_chunked_prefill: bool | None = None
    long_prefill_token_threshold: int = 0
    # sglang
    chunked_prefill_size: int | None = None
    max_prefill_tokens: int = 16384
    schedule_conservativeness: float = 1.0
    enable_mixed_chunk: bool = False
    scheduler_recv_interval: int = 1
    # trtllm
    max_batch_size: int | None = None
    max_num_tokens: int | None = None
    capacity_scheduler_policy: str = "guaranteed_no_evict"
    attention_dp_balance: bool = False
    attention_dp_timeout_iters: int = 50
    attention_dp_batching_wait_iters: int = 10
    batch_wait_timeout_iters: int = 0
    batch_wait_max_tokens_ratio: float = 0.0

    def __post_init__(self):
        if self.enable_chunked_prefill is None and self.policy in engine_names():
            # the engine's own default (vLLM and SGLang chunk, TensorRT-LLM does not: its engine record)
            self.enable_chunked_prefill = get_engine(self.policy).chunked_prefill_default
        self.validate()

    def validate(self) -> None:
        """Raise FrontierError naming the field for an impossible configuration."""
        if self.policy not in engine_names():
            raise FrontierError(f"scheduler.policy: unknown policy {self.policy!r}; choose one of {engine_names()}")
        rule = get_engine(self.policy)
        for name in ("max_num_batched_tokens", "max_num_seqs", "max_model_len", "block_size", "num_kv_blocks",
                     "max_prefill_tokens"):
            value = getattr(self, name)
            if not isinstance(value, (int,)) or isinstance(value, bool) or value < 1:
                raise FrontierError(f"scheduler.{name} must be a positive integer, got {value!r}")
        if not isinstance(self.enable_chunked_prefill, bool):
            raise FrontierError(f"scheduler.enable_chunked_prefill must be true or false, got "
                                f"{self.enable_chunked_prefill!r}")
        if self.long_prefill_token_threshold < 0:
            raise FrontierError("scheduler.long_prefill_token_threshold must be >= 0 (0 disables it)")
        if self.schedule_conservativeness <= 0:
            raise FrontierError("scheduler.schedule_conservativeness must be > 0")
        if self.chunked_prefill_size is not None and self.chunked_prefill_size < 1:
            raise FrontierError("scheduler.chunked_prefill_size must be >= 1 (or null for max_num_batched_tokens)")
        ri = self.scheduler_recv_interval
        if not isinstance(ri, int) or isinstance(ri, bool) or ri < 1:
            raise FrontierError(f"scheduler.scheduler_recv_interval must be an integer >= 1, got {ri!r}")
        if ri > 1 and self.policy != "sglang":
            raise FrontierError(f"scheduler.scheduler_recv_interval is SGLang's --scheduler-recv-interval; the "
                                f"{self.policy} policy has no such option (remove it or use policy sglang)")
        if self.capacity_scheduler_policy not in CAPACITY_POLICIES:
            raise FrontierError(f"scheduler.capacity_scheduler_policy must be one of {CAPACITY_POLICIES}, "
                                f"got {self.capacity_scheduler_policy!r}")
        if self.attention_dp_balance and self.policy != "trtllm":
            raise FrontierError(f"scheduler.attention_dp_balance is TensorRT-LLM's attention_dp_config; the "
                                f"{self.policy} policy has no such option (remove it or use policy trtllm)")
        ratio = self.batch_wait_max_tokens_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 <= ratio <= 1.0:
            raise FrontierError(f"scheduler.batch_wait_max_tokens_ratio must be a number in [0, 1], got {ratio!r}")
        for name in ("attention_dp_timeout_iters", "attention_dp_batching_wait_iters", "batch_wait_timeout_iters"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise FrontierError(f"scheduler.{name} must be an integer >= 0, got {value!r}")
        if self.batch_waiting and self.policy != "trtllm":
            raise FrontierError(f"scheduler.batch_wait_timeout_iters / batch_wait_max_tokens_ratio are TensorRT-LLM's "
                                f"batch waiting; the {self.policy} policy has no such option (remove them or use "
                                "policy trtllm)")
        # Every running request decodes in every step (vllm, trtllm): the step budget must hold one token per
        # request. SGLang decode steps have no token budget (its record: step_budget_binds=False).
        if rule.step_budget_binds and self.step_token_budget < self.max_running:
            raise FrontierError(
                f"scheduler: the step token budget ({self.step_token_budget}) is smaller than the maximum number of "
                f"running requests ({self.max_running}); raise max_num_batched_tokens/max_num_tokens or lower "
                f"max_num_seqs/max_batch_size (vLLM enforces the same)")
        if rule.chunk_multiple_of_block and self.enable_chunked_prefill and self.step_token_budget < self.block_size:
            raise FrontierError(f"scheduler: {self.policy} context chunks are multiples of block_size; "
                                "max_num_tokens must be >= block_size")
        if (rule.step_budget_binds and not self.enable_chunked_prefill and not rule.prompt_must_fit_step_budget
                and self.step_token_budget < self.max_model_len):
            raise FrontierError(
                f"scheduler: without chunked prefill the step token budget ({self.step_token_budget}) must be >= "
                f"max_model_len ({self.max_model_len}), otherwise long prompts can never be scheduled")

    @property
    def batch_waiting(self) -> bool:
        """TensorRT-LLM's batch waiting is on (``enable_batch_waiting``: timeout_iters > 0 or ratio > 0)."""
        return self.batch_wait_timeout_iters > 0 or self.batch_wait_max_tokens_ratio > 0

    @property
    def max_running(self) -> int:
        """Most requests running at once (max_num_seqs, or max_batch_size for trtllm: the engine's rule)."""
        return get_engine(self.policy).max_running(self)

    @property
    def step_token_budget(self) -> int:
        """Most tokens (prefill + decode) in one step (max_num_batched_tokens, or max_num_tokens for trtllm: the
        engine's rule)."""
        return get_engine(self.policy).step_token_budget(self)

    @property
    def prefill_chunk_tokens(self) -> int:
        """SGLang: prefill tokens per step (chunked_prefill_size); unbounded without chunked prefill."""
        if not self.enable_chunked_prefill:
            return 1 << 60
        return int(self.chunked_prefill_size or self.max_num_batched_tokens)
