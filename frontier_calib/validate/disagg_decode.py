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

The 1,024/1,024 B200 recipes (``b200-fp4/1k1k/...``) were not readable: rows of that family keep the default.
:func:`decode_dispatch` gives a disaggregated row's decode ``parallel.ep_dispatch`` (None: the default).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..cost.worker import ALLGATHER

_IX = "SemiAnalysisAI/InferenceX benchmarks/multi_node/srt-slurm-recipes/dsr1/sglang/"


@dataclass(frozen=True)
class DecodeDispatch:
    """The EP dispatch (``parallel.ep_dispatch``) of the decode workers with attention DP of one InferenceX recipe
    family: rows of ``gpu`` / ``engine`` / ``precision`` with ``isl``-token prompts and a ``model_path`` containing
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
        def col(name):
            return str(row.get(name, "")).strip().lower()
        try:
            isl = int(float(row.get("isl")))
        except (TypeError, ValueError):
            return False
        return (col("system") == self.gpu and col("backend") == self.engine and col("precision") == self.precision
                and isl == self.isl and self.model_contains in col("model_path"))


#: the decode EP dispatch per InferenceX recipe family (module docstring)
DECODE_DISPATCH = (
    DecodeDispatch("b200_sxm", "sglang", "fp8", 8192, ALLGATHER,
                   _IX + "b200-fp8/8k1k/disagg-{1p1d,1p2d,2p1d,3p1d}-p-tp8-dp8-d-tp8-ep8-dp8-*-stp.yaml (decode: "
                   "moe-runner-backend flashinfer_trtllm, no moe-a2a-backend)"),
    DecodeDispatch("b200_sxm", "sglang", "fp4", 8192, ALLGATHER,
                   _IX + "b200-fp4/8k1k/disagg-stp-mtp-variants.yaml override_stp_maxtpt_7p2d (decode: "
                   "moe-runner-backend flashinfer_trtllm, no moe-a2a-backend)"),
)


def decode_dispatch(row: dict) -> DecodeDispatch | None:
    """The :class:`DecodeDispatch` of a disaggregated silicon row's recipe family, or None when none is listed."""
    return next((d for d in DECODE_DISPATCH if d.matches(row)), None)


__all__ = ["DecodeDispatch", "DECODE_DISPATCH", "decode_dispatch"]
