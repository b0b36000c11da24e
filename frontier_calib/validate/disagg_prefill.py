"""The context (prefill) workers' per-rank limits of InferenceX's disaggregated recipes.

Every disaggregated row of ``silicon_sample.csv`` carries ``prefill_batch_size`` 1 (all 288 rows that give worker
counts, and the rest): AIConfigurator's own convention, which prices a prefill worker by its static context step at a
batch of 1 (``DisaggInferenceSession.run_disagg``, ``benchmarks/compare_aic_proxy.py``), not a limit the engine ran.
The InferenceX runs behind the ``db-dump/`` and ``source_file=2026-*.csv`` rows launch their prefill workers from the
srt-slurm recipes of ``benchmarks/multi_node/srt-slurm-recipes/dsr1/`` (SemiAnalysisAI/InferenceX at 20e07441 and
792d8aa4; the same files under ``recipes/trtllm/`` of NVIDIA/srt-slurm), and none of them runs one prompt per step:

* TensorRT-LLM context-only workers (``trtllm_config.prefill``): ``max_batch_size`` 8-16 with ``max_num_tokens``
  10,240-16,384 for 1,024-token prompts, 1-2 with 8,320-16,896 for 8,192-token prompts, per attention-DP rank
  (``enable_attention_dp: true``: each rank schedules its own requests), ``disable_overlap_scheduler: true``;
* SGLang prefill servers (``--disaggregation-mode prefill``): ``--max-running-requests 30000`` and
  ``--chunked-prefill-size`` 65,536-131,072, which SGLang divides by the DP size under DP attention
  (``ServerArgs._handle_data_parallelism``: ``chunked_prefill_size //= dp_size``; ``max_running_requests`` is per
  rank the same way): 16,384 prompt tokens per rank and step, with ``--max-prefill-tokens`` 16,384 (the default)
  or 32,768.

A replay that caps a prefill rank at ``prefill_batch_size`` computes one prompt per step where the engine batches up
to 16, and its prefill pool saturates at about half the measured request rate (docs/validation.md). This module
gives, per recipe family (GPU, engine, precision, prompt length, optionally the image), the per-rank scheduler keys
of the prefill pool (:data:`PREFILL_LIMITS`, each with the recipe file it was read from); :func:`prefill_limits`
finds a row's. InferenceX rows of a family not listed keep the engine's own defaults (the replay's scheduler), not
the batch of 1.
"""

from __future__ import annotations

from dataclasses import dataclass

from .harness import row_matches

_IX = "SemiAnalysisAI/InferenceX benchmarks/multi_node/srt-slurm-recipes/dsr1/"
_NV = "NVIDIA/srt-slurm recipes/trtllm/"
_IXT = _IX + "trtllm/"


@dataclass(frozen=True)
class PrefillLimits:
    """The scheduler keys (``scheduler``) of the prefill workers of one InferenceX recipe family: rows of ``gpu`` /
    ``engine`` / ``precision`` with ``isl``-token prompts, a ``model_path`` containing ``model_contains`` (the
    recipes are DeepSeek-R1's: ``dsr1/``) and, when given, the image ``backend_version``; read from ``source``. The keys named in ``per_dp`` are the worker's totals, which the engine splits over its
    attention-DP ranks (SGLang); the others are per rank already (TensorRT-LLM). ``overlap``: the CPU/GPU overlap
    scheduler of the prefill workers (None: the engine's default)."""

    gpu: str
    engine: str
    precision: str
    isl: int
    scheduler: dict
    source: str
    backend_version: str | None = None
    per_dp: tuple = ()
    overlap: bool | None = None
    model_contains: str = "deepseek"

    @property
    def family(self) -> str:
        """e.g. ``b200_sxm trtllm fp4 isl 1024``."""
        return (f"{self.gpu} {self.engine} {self.precision} isl {self.isl}"
                + (f" ({self.backend_version})" if self.backend_version else ""))

    def scheduler_for(self, attention_dp: int) -> dict:
        """The scheduler keys of one rank of a prefill worker with ``attention_dp`` ranks."""
        dp = max(1, int(attention_dp))
        return {k: (max(1, int(v) // dp) if k in self.per_dp else v) for k, v in self.scheduler.items()}

    def matches(self, row: dict) -> bool:
        return row_matches(row, gpu=self.gpu, engine=self.engine, precision=self.precision, isl=self.isl,
                           model_contains=self.model_contains, backend_version=self.backend_version)


def _trt(gpu: str, precision: str, isl: int, batch: int, tokens: int, source: str, version=None) -> PrefillLimits:
    """A TensorRT-LLM context worker: ``max_batch_size`` requests and ``max_num_tokens`` tokens per rank and step
    (per attention-DP rank with ``enable_attention_dp``), no chunked prefill (the engine's default; no recipe turns
    it on), overlap scheduler off (``disable_overlap_scheduler: true`` in every srt-slurm recipe read; the
    ``version``-specific entries come from launch-script variables that do not say: they keep the context servers'
    setting of every recipe that does. Their ``backend_version`` is a Dynamo image tag, whose engine release
    :mod:`.dynamo` reads, so "the engine's default" would now mean the overlap scheduler on)."""
    sched = {"max_batch_size": batch, "max_num_seqs": batch, "max_num_tokens": tokens,
             "max_num_batched_tokens": tokens}
    return PrefillLimits(gpu, "trtllm", precision, isl, sched, source, backend_version=version, overlap=False)


def _sgl(gpu: str, precision: str, isl: int, chunk: int, prefill_tokens: int, running: int,
         source: str) -> PrefillLimits:
    """An SGLang prefill server: ``--chunked-prefill-size`` ``chunk`` and ``--max-running-requests`` ``running``
    (worker totals, divided by the DP size under DP attention) and ``--max-prefill-tokens`` ``prefill_tokens`` (per
    rank: the scheduler's own budget)."""
    sched = {"chunked_prefill_size": chunk, "max_prefill_tokens": prefill_tokens, "max_num_seqs": running}
    return PrefillLimits(gpu, "sglang", precision, isl, sched, source, per_dp=("chunked_prefill_size", "max_num_seqs"))


#: the prefill-worker limits per InferenceX recipe family (first match wins: the image-specific entries first)
PREFILL_LIMITS = (
    # TensorRT-LLM (dynamo-trt)
    _trt("gb200", "fp4", 1024, 4, 4608, "InferenceX .github/configs/nvidia-master.yaml dsr1-fp4-gb200-dynamo-trt "
         "(PREFILL_MAX_BATCH_SIZE 4, PREFILL_MAX_NUM_TOKENS 4608; validate/harness.py)", version="0.5.1-rc0.pre3"),
    _trt("gb200", "fp4", 8192, 1, 8448, "InferenceX .github/configs/nvidia-master.yaml dsr1-fp4-gb200-dynamo-trt "
         "(PREFILL_MAX_BATCH_SIZE 1, PREFILL_MAX_NUM_TOKENS 8448; validate/harness.py)", version="0.5.1-rc0.pre3"),
    _trt("b200_sxm", "fp4", 1024, 8, 10240, _IXT + "b200-fp4/1k1k/disagg/stp/ctx1_gen1_dep8_batch512_eplb0_mtp0"
         ".yaml, ctx1_gen5_tep8_batch32_eplb0_mtp0.yaml"),
    _trt("b200_sxm", "fp4", 8192, 2, 16896, _IXT + "b200-fp4/8k1k/disagg/stp/ctx1_gen5_tep8_batch8_eplb0_mtp0.yaml"),
    _trt("b200_sxm", "fp8", 1024, 16, 16384,
         _IXT + "b200-fp8/1k1k/disagg/stp/ctx1_gen1_dep8_batch512_eplb0_mtp0_4096.yaml"),
    _trt("b200_sxm", "fp8", 8192, 1, 8320,
         _IXT + "b200-fp8/8k1k/disagg/stp/ctx1_gen1_dep8_batch128_eplb0_mtp0_128.yaml"),
    _trt("gb200", "fp4", 1024, 16, 16384, _IXT + "gb200-fp4/1k1k/disagg/stp/ctx1_gen2_dep4_batch768_eplb0_mtp0.yaml"),
    _trt("gb200", "fp4", 8192, 2, 16640,
         _IXT + "gb200-fp4/8k1k/disagg/stp/ctx10_gen1_dep16_batch256_eplb256_mtp0.yaml"),
    _trt("gb300", "fp4", 1024, 16, 16384,
         _IXT + "gb300-fp4/1k1k/disagg/stp/ctx2_gen1_dep8_batch1024_eplb0_mtp0.yaml"),
    _trt("gb300", "fp4", 8192, 2, 16640, _IXT + "gb300-fp4/8k1k/disagg/stp/ctx11_gen3_dep4_batch256_eplb0_mtp0.yaml"),
    _trt("gb300", "fp8", 1024, 16, 16384, _NV + "gb300-fp8/1k1k/stp/ctx3_gen2_dep8_batch768_eplb0_mtp0_12288.yaml, "
         "gb300-fp8/1k8k/stp/ctx1_gen2_dep16_batch128_eplb0_mtp0_4096.yaml"),
    _trt("gb300", "fp8", 8192, 2, 16384,
         _IXT + "gb300-fp8/8k1k/disagg/stp/ctx6_gen1_dep32_batch16_eplb0_mtp0_512.yaml"),
    _trt("h200_sxm", "fp8", 1024, 8, 8192,
         _IXT + "h200-fp8/1k1k/disagg/stp/c64_ctx1_gen9_tep8_batch256_eplb0_mtp0.yaml"),
    # SGLang (dynamo-sglang)
    _sgl("gb200", "fp8", 1024, 131072, 16384, 30000, _IX + "sglang/gb200-fp8/1k1k/disagg/stp/max-tpt.yaml "
         "(--chunked-prefill-size 131072, --max-running-requests 30000, --max-prefill-tokens not set: 16384)"),
    _sgl("gb300", "fp8", 1024, 131072, 16384, 30000, _IX + "sglang/gb300-fp8/1k1k/disagg/stp/max.yaml "
         "(--chunked-prefill-size 131072, --max-running-requests 30000, --max-prefill-tokens not set: 16384)"),
    _sgl("gb300", "fp4", 1024, 65536, 32768, 30000, _IX + "sglang/gb300-fp4/1k1k/disagg/stp/max_tpt.yaml "
         "(--chunked-prefill-size 65536, --max-prefill-tokens 32768, --max-running-requests 30000)"),
)


def prefill_limits(row: dict) -> PrefillLimits | None:
    """The :class:`PrefillLimits` of a disaggregated silicon row's recipe family, or None when none is listed."""
    return next((p for p in PREFILL_LIMITS if p.matches(row)), None)


__all__ = ["PrefillLimits", "PREFILL_LIMITS", "prefill_limits"]
