"""How the decode workers of InferenceX's disaggregated SGLang recipes exchange tokens with their experts.

A PD pool of SGLang with expert parallelism and attention DP is priced with DeepEP's all-to-all by default
(``modes/pd.py``, ``pool_a2a_backend``). SGLang only runs DeepEP when launched with ``--moe-a2a-backend deepep``;
its default is ``none``, under which every MoE layer all-gathers the attention-DP ranks' tokens, routes and runs
each rank's experts on all of them and reduce-scatters the outputs (:data:`~frontier_calib.cost.worker.ALLGATHER`).

The B200 DeepSeek-R1 decode workers with attention DP ("DEP8": ``tensor-parallel-size 8``, ``data-parallel-size
8``, ``expert-parallel-size 8``, ``enable-dp-attention``) of the srt-slurm recipes behind the ``dsr1-fp8-b200-dynamo-
sglang`` / ``dsr1-fp4-b200-dynamo-sglang`` rows (image ``v0.5.8.post1``) set ``moe-runner-backend:
flashinfer_trtllm`` and no ``moe-a2a-backend``: they run the all-gather path. Every such decode section read says
so (``SemiAnalysisAI/InferenceX`` ``benchmarks/multi_node/srt-slurm-recipes/dsr1/sglang/``, commit 9e58409):

* ``b200-fp8/8k1k/disagg-{1p1d,2p1d,3p1d}-p-tp8-dp8-d-tp8-ep8-dp8-*-stp.yaml`` and
  ``disagg-1p2d-p-tp8-dp8-d-tp8-ep8-dp8-b128-c288-stp.yaml``;
* ``b200-fp4/8k1k/disagg-stp-mtp-variants.yaml`` (``override_stp_maxtpt_7p2d``: ``data-parallel-size 8``,
  ``enable-dp-attention`` on the base decode section's ``expert-parallel-size 8`` and
  ``moe-runner-backend: flashinfer_trtllm``; ``SGLANG_MOE_NVFP4_DISPATCH`` is not an all-to-all backend).

The B200 DeepSeek-R1 fp4 1,024/1,024 DEP8 decoders (``dsr1_b200_sglang_fp4_disagg_1024x1024_c512_cfg527`` /
``cfg532``: one DEP4 prefill worker, one or two DEP8 decode workers, 512 concurrent requests) are the
``zip_override_stp_maxtpt`` variants ``b200-fp4-stp-max-tpt-dep4-1p-dep8-{1d,2d}`` of ``NVIDIA/srt-slurm``
``recipes/b200-fp4/1k1k.yaml`` (commit 5917791; the same file in ``ishandhanani/srt-slurm`` at 3b69129): the
override adds ``data-parallel-size 8``, ``enable-dp-attention`` and ``enable-dp-lm-head`` to a base decode section
with ``expert-parallel-size 8``, ``moe-runner-backend: flashinfer_trtllm`` and no ``moe-a2a-backend``: all-gather.

The GB200 and GB300 decoders with attention DP all run DeepEP: every decode section read sets ``moe-a2a-backend:
deepep`` and ``deepep-mode: low_latency`` (the fp8 prefill sections ``deepep-mode: normal``; the fp4 1k1k DEP4
prefill sections none, which this module leaves to the prefill pool's default), so those families keep the PD
pool's default (``ep_dispatch`` :data:`DEEPEP`, which sets nothing). Files read (same InferenceX folder; commits
``20e0744``, ``792d8aa``, ``9e58409``):

* GB200 fp8 1k1k: ``gb200-fp8/1k1k/disagg/stp/ultra-tpt.yaml`` (DEP8), ``max-tpt.yaml`` (DEP32),
  ``mid-curve.yaml`` (DEP48); GB200 fp4 1k1k: ``gb200-fp4/1k1k/disagg/stp/mid-curve.yaml`` (DEP32),
  ``max-tpt.yaml`` (DEP48, ``moe-runner-backend: flashinfer_cutedsl``);
* GB200 fp8 8k1k: ``gb200-fp8/8k1k/disagg-5p1d-p-tp8-ep8-dp8-d-tp32-ep32-dp32-b8192-c512x1024x2048x6144-stp.yaml``,
  ``disagg/stp/max_tpt.yaml`` (DEP24); GB200 fp4 8k1k:
  ``gb200-fp4/8k1k/disagg-10p1d-p-tp4-d-tp32-ep32-dp32-b16384-c2048-stp.yaml``;
* GB300 fp8 1k1k: ``gb300-fp8/1k1k/disagg/stp/max.yaml`` (DEP8), ``mid.yaml`` (DEP32); GB300 fp4 1k1k:
  ``gb300-fp4/1k1k/disagg/stp/mid_curve.yaml`` (DEP32), ``max_tpt.yaml`` (DEP48);
* GB300 fp8 8k1k: ``gb300-fp8/8k1k/disagg-5p1d-p-tp8-ep8-dp8-d-tp32-ep32-dp32-b45000-c128x256x512x1024-stp.yaml``,
  ``disagg/stp/max.yaml`` (DEP24); GB300 fp4 8k1k: ``gb300-fp4/8k1k/disagg/stp/max_tpt.yaml`` (DEP32).

:func:`decode_dispatch` gives a disaggregated row's recipe family (None: not read; the default).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..cost.worker import ALLGATHER
from .harness import row_matches

_IX = "SemiAnalysisAI/InferenceX benchmarks/multi_node/srt-slurm-recipes/dsr1/sglang/"
_NV = "NVIDIA/srt-slurm recipes/"
#: ``ep_dispatch`` of a family whose decoders run DeepEP (``--moe-a2a-backend deepep --deepep-mode low_latency``):
#: ``parallel.ep_dispatch``'s ``auto``, the engine's own choice, which a PD pool of SGLang prices with DeepEP's
#: low-latency kernels (``modes/pd.py`` ``pool_a2a_backend``); the deployment is left as it is
DEEPEP = "auto"
_LL = " (decode: moe-a2a-backend deepep, deepep-mode low_latency)"


@dataclass(frozen=True)
class DecodeDispatch:
    """The EP dispatch (``parallel.ep_dispatch``: :data:`~frontier_calib.cost.worker.ALLGATHER`, or :data:`DEEPEP`
    where the recipes launch DeepEP) of the decode workers with attention DP of one InferenceX recipe family: rows
    of ``gpu`` / ``engine`` / ``precision`` with ``isl``-token prompts and a ``model_path`` containing
    ``model_contains``; read from ``source``."""

    gpu: str
    engine: str
    precision: str
    isl: int
    ep_dispatch: str
    source: str
    model_contains: str = "deepseek"

    @property
    def family(self) -> str:
        """e.g. ``b200_sxm sglang fp8 isl 8192``."""
        return f"{self.gpu} {self.engine} {self.precision} isl {self.isl}"

    def matches(self, row: dict) -> bool:
        return row_matches(row, gpu=self.gpu, engine=self.engine, precision=self.precision, isl=self.isl,
                           model_contains=self.model_contains)


#: the decode EP dispatch per InferenceX recipe family (module docstring)
DECODE_DISPATCH = (
    DecodeDispatch("b200_sxm", "sglang", "fp8", 8192, ALLGATHER,
                   _IX + "b200-fp8/8k1k/disagg-{1p1d,1p2d,2p1d,3p1d}-p-tp8-dp8-d-tp8-ep8-dp8-*-stp.yaml (decode: "
                   "moe-runner-backend flashinfer_trtllm, no moe-a2a-backend)"),
    DecodeDispatch("b200_sxm", "sglang", "fp4", 8192, ALLGATHER,
                   _IX + "b200-fp4/8k1k/disagg-stp-mtp-variants.yaml override_stp_maxtpt_7p2d (decode: "
                   "moe-runner-backend flashinfer_trtllm, no moe-a2a-backend)"),
    DecodeDispatch("b200_sxm", "sglang", "fp4", 1024, ALLGATHER,
                   _NV + "b200-fp4/1k1k.yaml zip_override_stp_maxtpt (b200-fp4-stp-max-tpt-dep4-1p-dep8-{1d,2d}; "
                   "decode: moe-runner-backend flashinfer_trtllm, no moe-a2a-backend)"),
    DecodeDispatch("gb200", "sglang", "fp8", 1024, DEEPEP,
                   _IX + "gb200-fp8/1k1k/disagg/stp/{ultra-tpt,max-tpt,mid-curve}.yaml" + _LL),
    DecodeDispatch("gb200", "sglang", "fp4", 1024, DEEPEP,
                   _IX + "gb200-fp4/1k1k/disagg/stp/{mid-curve,max-tpt}.yaml" + _LL),
    DecodeDispatch("gb200", "sglang", "fp8", 8192, DEEPEP,
                   _IX + "gb200-fp8/8k1k/disagg-5p1d-p-tp8-ep8-dp8-d-tp32-ep32-dp32-b8192-c512x1024x2048x6144-stp"
                   ".yaml, gb200-fp8/8k1k/disagg/stp/max_tpt.yaml" + _LL),
    DecodeDispatch("gb200", "sglang", "fp4", 8192, DEEPEP,
                   _IX + "gb200-fp4/8k1k/disagg-10p1d-p-tp4-d-tp32-ep32-dp32-b16384-c2048-stp.yaml" + _LL),
    DecodeDispatch("gb300", "sglang", "fp8", 1024, DEEPEP,
                   _IX + "gb300-fp8/1k1k/disagg/stp/{max,mid}.yaml" + _LL),
    DecodeDispatch("gb300", "sglang", "fp4", 1024, DEEPEP,
                   _IX + "gb300-fp4/1k1k/disagg/stp/{mid_curve,max_tpt}.yaml" + _LL),
    DecodeDispatch("gb300", "sglang", "fp8", 8192, DEEPEP,
                   _IX + "gb300-fp8/8k1k/disagg-5p1d-p-tp8-ep8-dp8-d-tp32-ep32-dp32-b45000-c128x256x512x1024-stp"
                   ".yaml, gb300-fp8/8k1k/disagg/stp/max.yaml" + _LL),
    DecodeDispatch("gb300", "sglang", "fp4", 8192, DEEPEP,
                   _IX + "gb300-fp4/8k1k/disagg/stp/max_tpt.yaml" + _LL),
)


def decode_dispatch(row: dict) -> DecodeDispatch | None:
    """The :class:`DecodeDispatch` of a disaggregated silicon row's recipe family, or None when none is listed."""
    return next((d for d in DECODE_DISPATCH if d.matches(row)), None)


__all__ = ["DEEPEP", "DecodeDispatch", "DECODE_DISPATCH", "decode_dispatch"]
