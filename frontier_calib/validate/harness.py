"""What the benchmark harness behind some silicon rows ran that the rows themselves do not record.

A row of ``silicon_sample.csv`` gives the layout, formats and load of a run, not every serving option. Where the
harness that produced a series is public, its recipe identifies options that change the measured latency; each is a
:class:`HarnessRecipe` here, matched on the row's own columns, applied to the row's deployment and noted per row.

**InferenceX (SemiAnalysis) DeepSeek-R1 on B200 with TensorRT-LLM, MTP.** The B200 TensorRT-LLM DeepSeek-R1 rows
come in twins: the same layout and load measured twice, one run about half the other's TPOT at low concurrency
(TP8, 1,024/1,024, 4 clients: 5.4 ms on ``1.2.0rc6.post3`` vs 10.3 ms on ``1.2.0rc6.post2``). InferenceX's
``.github/configs/nvidia-master.yaml`` runs DeepSeek-R1-0528 on B200 with TensorRT-LLM as two configs per
format, ``dsr1-fp8-b200-trt`` / ``dsr1-fp4-b200-trt`` on the image ``release:1.2.0rc6.post2`` and
``dsr1-fp8-b200-trt-mtp`` / ``dsr1-fp4-b200-trt-mtp`` (``spec-decoding: mtp``) on ``release:1.2.0rc6.post3``;
no other B200 TensorRT-LLM config of the file, and no other row of the CSV, uses that image. The MTP scripts
(``benchmarks/single_node/dsr1_fp{8,4}_b200_trt_mtp.sh``) write ``speculative_config: {decoding_type: MTP,
num_nextn_predict_layers: 3}``, and ``1`` when ``DP_ATTENTION`` is true; strict (top-1) acceptance, the default.

Acceptance: TensorRT-LLM's measurement of DeepSeek-R1 MTP on 8 x B200 (tech blog 1, *Pushing Latency Boundaries:
Optimizing DeepSeek-R1 Performance on NVIDIA B200 GPUs*, table "Autoregressive MTP Layers"): mean accepted tokens
per step (its "acceptance rate", bonus token included) **1.92 with 1 MTP layer, 2.82 with 3**, strict acceptance.
That run used real prompts at batch 1; InferenceX sends random-token prompts (``--dataset-name random``), whose
continuations may be accepted at another rate, which the rows do not record.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HarnessRecipe:
    """Options a public harness ran for the rows it matches (``matches``), as deployment keys (``speculative``)."""

    name: str
    gpu: str                 #: ``system`` of the rows
    engine: str              #: ``backend`` of the rows
    backend_version: str     #: the image tag (``backend_version`` column) that identifies the harness config
    model_contains: str      #: a lower-case substring of ``model_path``
    source: str

    def matches(self, row: dict) -> bool:
        return (str(row.get("system", "")).strip() == self.gpu
                and str(row.get("backend", "")).strip().lower() == self.engine
                and str(row.get("backend_version", "")).strip() == self.backend_version
                and self.model_contains in str(row.get("model_path", "")).lower())

    def speculative(self, attention_dp: int) -> dict:
        """The ``speculative:`` section this recipe ran at a worker with ``attention_dp`` ranks."""
        k = 1 if attention_dp > 1 else 3
        return {"method": "mtp", "num_draft_tokens": k, "acceptance": {"accept_length": TRTLLM_R1_MTP_ACCEPT[k]}}

    def note(self, attention_dp: int) -> str:
        s = self.speculative(attention_dp)
        return (f"{self.name}: MTP with {s['num_draft_tokens']} draft token(s), "
                f"{s['acceptance']['accept_length']} tokens per step (validate/harness.py)")


#: mean tokens per verify step of DeepSeek-R1 MTP in TensorRT-LLM on 8 x B200, by MTP layers (strict acceptance;
#: TensorRT-LLM tech blog 1, "Autoregressive MTP Layers")
TRTLLM_R1_MTP_ACCEPT = {1: 1.92, 3: 2.82}

#: the harness recipes applied by ``validate silicon`` (matched in order; the first match wins)
RECIPES: list[HarnessRecipe] = [
    HarnessRecipe(name="InferenceX dsr1-*-b200-trt-mtp (image 1.2.0rc6.post3)", gpu="b200_sxm", engine="trtllm",
                  backend_version="1.2.0rc6.post3", model_contains="deepseek-r1",
                  source="InferenceX .github/configs/nvidia-master.yaml; benchmarks/single_node/"
                         "dsr1_fp{8,4}_b200_trt_mtp.sh"),
]


def recipe_for(row: dict) -> HarnessRecipe | None:
    """The harness recipe that produced ``row`` (a silicon CSV row as a dict), None when none is known."""
    return next((r for r in RECIPES if r.matches(row)), None)
