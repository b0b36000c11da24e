"""vLLM (V1 engine): chunked-prefill scheduling with one token budget per step, paged KV with automatic prefix
caching, CUDA graphs over tokens for decode and mixed steps, async scheduling.

Sources of the defaults (read from the engine's code and docs, 2025-2026):

* CUDA graphs (``vllm/config/compilation.py``, ``docs/design/cuda_graphs.md``): capture sizes
  ``[1, 2, 4] + range(8, 256, 8) + range(256, max + 1, 16)`` with ``max = min(2 x max_num_seqs, 512)``; the
  default ``FULL_AND_PIECEWISE`` mode replays full graphs for uniform decode batches and piecewise graphs (attention
  outside) for mixed prefill/decode batches, both padded up to the next capture size in **tokens**; above the
  largest size the step runs eager.
* Async scheduling (CPU of step n+1 overlapped with step n) is on by default since v0.14 (PR #27614 / #31998).
* CPU overheads: vLLM V1 reports ~1-2 ms of scheduler + input preparation per step at hundreds of sequences.
* Front end (``frontend_s`` 10 ms + ``frontend_per_token_s`` 1 µs per prompt token): what a streaming client
  measures beyond vLLM's own TTFT histogram (``vllm:time_to_first_token_seconds``, which starts when the engine
  client receives the parsed, tokenized request and ends when the output processor sees the first token): HTTP in,
  request validation, tokenization, and the first chunk's way back (detokenize, SSE, HTTP). vLLM PR #54628
  (``vllm bench serve`` against a live ``vllm serve`` on one host, 512-token prompts, 8 concurrent requests, each
  run bracketed by scrapes of that histogram) measures client minus server TTFT at 8.4 and 12.0 ms on
  ``/v1/completions``, 12.2 and 11.0 ms on ``/v1/chat/completions`` and 10.5 ms on ``/v1/responses``; the
  kubernetes-sigs/inference-perf kubecon-na-2025 demo (vLLM 0.11, H100, through a Kubernetes Service) 16.6 ms
  (32.1 ms client, 15.5 ms histogram; docs/validation.md). 10 ms + 0.5 ms for 512 tokens is the same-host figure;
  a deployment whose clients sit behind a load balancer or another network hop says ``overheads: {frontend_s: ...}``.
* vLLM refuses to start when one ``max_model_len`` request cannot fit in the KV cache.
"""

from __future__ import annotations

from .base import EngineRecord, register_engine


def vllm_capture_sizes(max_num_seqs: int) -> tuple[int, ...]:
    """vLLM V1's default ``cudagraph_capture_sizes`` (tokens) for ``max_num_seqs``."""
    top = min(2 * int(max_num_seqs), 512)
    sizes = [1, 2, 4] + list(range(8, 256, 8)) + list(range(256, top + 1, 16))
    return tuple(s for s in sizes if s <= top)


#: engine time outside kernels (seconds) before calibration; meaning of each field:
#: :class:`frontier_calib.cost.worker.Overheads`
VLLM_OVERHEADS = {"step_s": 0.0010, "per_seq_s": 1.0e-5, "per_token_s": 2.0e-7, "prefill_step_s": 0.0,
                  "launch_s": 5.0e-6, "out_token_s": 2.0e-5, "frontend_s": 0.010, "frontend_per_token_s": 1.0e-6}

VLLM = register_engine(EngineRecord(
    name="vllm",
    description="vLLM V1: one token budget per step (decodes first, then chunked prefills), paged KV + APC",
    scheduler="frontier_calib.sim.schedulers.vllm:VLLMScheduler",
    cache="paged",
    overheads=VLLM_OVERHEADS,
    capture_sizes=vllm_capture_sizes,
    graph_mixed=True,
    graph_pad=True,
    overlap=True,
    overlap_since="0.14.0",
    mxfp4_moe_on_fp4="mxfp4",   # get_mxfp4_backend on SM100: FlashInfer MXFP4 x BF16 (w4a16)
    time_source="vLLM V1 compilation config (FULL_AND_PIECEWISE), async scheduling default since v0.14",
    kv_must_hold_max_model_len=True,
    # sliding-window layers are charged per token like full ones: vLLM's hybrid KV manager gives them full-size
    # pages from the shared pool and allocates every computed token before freeing the ones out of the window,
    # and it reports gpt-oss-120b's capacity at 36 layers' bytes per token (73,728 B); the measured vLLM gpt-oss
    # rows agree (docs/validation.md, Blackwell)
    window_kv_ratio=1.0,
    public_tables=True,
    source="vllm/v1/core/sched/scheduler.py, vllm/config/compilation.py, docs/design/cuda_graphs.md"))
