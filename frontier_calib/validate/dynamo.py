"""The engine release inside an NVIDIA Dynamo runtime image: disaggregated silicon rows record Dynamo's tag.

InferenceX runs its disaggregated TensorRT-LLM configurations (``dynamo-trt``) in Dynamo's
``nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime:<tag>`` containers (the srt-slurm recipes' default container is
``tensorrtllm-runtime:0.8.1.post1``), and the silicon rows of those runs carry the image tag in
``backend_version``: ``0.8.1.post1``, ``0.8.1.post2``, ``0.8.1.post3``, ``0.5.1-rc0.pre3``. Read as a TensorRT-LLM
release, such a tag predates the PyTorch backend's overlap scheduler (default since 0.20.0), so the replay would
run those decode workers without CPU/GPU overlap (about 0.9 ms of scheduler CPU per step on DeepSeek decode
workers). Dynamo's release-artifact inventory (ai-dynamo/dynamo ``docs/reference/release-artifacts.md``, "Release
history begins at v0.6.0") names the engine inside each image; a Dynamo tag it does not list (a later patch or a
pre-0.6.0 tag) maps to no release, and the engine's defaults apply (every Dynamo image ships a TensorRT-LLM of
1.0 or later: the earliest listed, 0.6.0, carries 1.1.0rc5).

TensorRT-LLM releases went 0.x up to 0.21 and then 1.0; a TensorRT-LLM row of a disaggregated run whose version
is below :data:`FIRST_PYTORCH_DISAGG_TRTLLM` is therefore a Dynamo tag. SGLang and vLLM disaggregated rows
carry their engine's own release (InferenceX runs them on ``lmsysorg/sglang`` and ``vllm/vllm-openai`` images),
so nothing is mapped for them.
"""

from __future__ import annotations

from ..engines import engine_version

#: ``tensorrtllm-runtime`` image tag -> the TensorRT-LLM release inside (Dynamo's release-artifacts table)
TRTLLM_RUNTIME = {
    "0.8.1.post1": "1.2.0rc6.post2",
    "0.8.1": "1.2.0rc6.post1",
    "0.8.0": "1.2.0rc6.post1",
    "0.7.1": "1.2.0rc3",
    "0.7.0.post2": "1.2.0rc2",
    "0.7.0.post1": "1.2.0rc3",
    "0.7.0": "1.2.0rc2",
    "0.6.1.post1": "1.1.0rc5",
    "0.6.1": "1.1.0rc5",
    "0.6.0": "1.1.0rc5",
}

#: TensorRT-LLM releases below this are older than the PyTorch backend's disaggregated serving with overlap
#: (the release whose default turned the overlap scheduler on, NVIDIA/TensorRT-LLM PR #4174); a disaggregated
#: TensorRT-LLM row below it records a Dynamo image tag
FIRST_PYTORCH_DISAGG_TRTLLM = "0.20.0"


def engine_release(engine: str, version, *, through_dynamo: bool) -> str | None:
    """The engine release a silicon row ran: ``version`` itself, or for a row served ``through_dynamo``
    (disaggregated, or a multinode series) by TensorRT-LLM with a Dynamo image tag in ``version``, the release
    inside that image (:data:`TRTLLM_RUNTIME`), None where the tag is not listed. None when ``version`` is empty."""
    text = "" if version is None else str(version).strip()
    if not text or text.lower() == "nan":
        return None
    if not through_dynamo or engine != "trtllm":
        return text
    v = engine_version(text)
    if v is None or v >= engine_version(FIRST_PYTORCH_DISAGG_TRTLLM):
        return text
    return TRTLLM_RUNTIME.get(text)
