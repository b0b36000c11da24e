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
The acceptance is TensorRT-LLM's measurement of DeepSeek-R1 MTP on 8 x B200 (tech blog 1, *Pushing Latency Boundaries:
Optimizing DeepSeek-R1 Performance on NVIDIA B200 GPUs*, table "Autoregressive MTP Layers"): mean accepted tokens
per step (its "acceptance rate", bonus token included) **1.92 with 1 MTP layer, 2.82 with 3**, strict acceptance.
That run used real prompts at batch 1; InferenceX sends random-token prompts (``--dataset-name random``), whose
continuations may be accepted at another rate, which the rows do not record.

**InferenceX DeepSeek-R1 FP8 on H200 with TensorRT-LLM, MTP.** The same file runs DeepSeek-R1-0528 FP8 on H200
with TensorRT-LLM as ``dsr1-fp8-h200-trt`` and ``dsr1-fp8-h200-trt-mtp`` (``spec-decoding: mtp``), both on the image
``release:1.1.0rc2.post2`` and both TP8 EP8, so neither the image nor the layout of one row tells them apart; their
search spaces do. ``dsr1-fp8-h200-trt`` runs 1,024/1,024 and 1,024/8,192 at 4-64 clients and 8,192/1,024 at 4-32,
plus attention DP at 64; ``-mtp`` runs 1,024/1,024 at 4-64 plus attention DP at 128-256, 1,024/8,192 at 4-128 plus
attention DP at 256, and 8,192/1,024 at 4-32 plus attention DP at 64-256. The CSV holds two TP8 EP8 series on that
image: the ``db-dump`` rows ``dsr1_h200_trtllm_fp8_agg_*_cfg*`` (model ``DeepSeek-V3``) cover exactly the first
search space, the DeepSeek-R1 rows of ``source_file`` 2026-03-25.csv / 2026-04-06.csv exactly the second (1,024/8,192
at 128 clients, and attention DP at 128-256 clients, exist only in ``-mtp``). Where both series run the same layout
and load, the R1 row measures 0.52-0.78 x the other's TPOT (14 pairs without attention DP; TP8 EP8, 1,024/1,024, 4
clients: 8.58 vs 13.82 ms). The R1 rows on that image are therefore ``-mtp``. Its script
(``benchmarks/dsr1_fp8_h200_trt_mtp.sh``) writes ``speculative_config: {decoding_type: MTP,
num_nextn_predict_layers: 3}``, and ``1`` when ``DP_ATTENTION`` is true, as on B200. The accept lengths are the B200
measurement below (:data:`TRTLLM_R1_MTP_ACCEPT`): an accept length is a property of the checkpoint's MTP module and
of the text, not of the GPU that runs them (H200 runs the same checkpoint, module and strict acceptance). One row
does not fit: 2026-03-25.csv also holds a second 1,024/8,192 row at 64 clients measuring 32.2 ms (the ``db-dump``
row's 32.1 ms) beside the 19.4 ms MTP row; no column separates it, so it gets MTP too. Both H200 scripts also balance
attention-DP context requests (``attention_dp_config`` as below); that is not applied to H200 rows here.

**The same harness's attention-DP runs balance context requests across ranks.** Every one of those scripts (and
the ``dsr1_fp8_b200_trt_slurm.sh`` of the earlier ``1.1.0rc2.post2`` configs) adds ``attention_dp_config:
{batching_wait_iters: 0, enable_balance: true, timeout_iters: 60}`` when ``DP_ATTENTION`` is true: TensorRT-LLM's
ADP balance (``sim/adp_balance.py``), off by default in the engine. It applies to every B200 TensorRT-LLM
DeepSeek row with attention DP: the ``source_file`` series and the ``db-dump`` ``dsr1_b200_trtllm_*_cfg*`` rows
follow the same file's layouts per sequence length and concurrency (e.g. ``dsr1-fp8-b200-trt-mtp``: TP8 EP8 with
DP attention at 1,024/8,192 and 128-256 clients, TP8 EP1 below).

**InferenceX prompts are of random length.** Every InferenceX fixed-length benchmark runs its
``utils/bench_serving/benchmark_serving.py`` with ``--dataset-name random --random-range-ratio
$RANDOM_RANGE_RATIO``, and ``.github/workflows/benchmark-tmpl.yml`` sets ``RANDOM_RANGE_RATIO: 0.8``; the random
dataset (``sample_random_requests``) draws each prompt's length uniformly from the integers
``int(0.8 x isl)``..``isl`` (``np.random.randint(lower, upper + 1)``), and the output lengths the same way. The
rows of that harness are the ``source_file=2026-*.csv`` exports, the ``db-dump/`` rows (InferenceX workflow runs,
``workflow_run_id``) and the ``qwen3.5-397b`` / ``kimi-k2.5`` ``gap-analysis.csv`` files (their measurements are
the 2026 exports' rows: 71 of 76 and 44 of 47 share a TTFT to 0.1 ms). :func:`prompt_length_ratio` gives them
0.8 (``Protocol.prompt_ratio``). The output lengths keep ``osl``: the client desynchronisation share
(``Protocol.desync``, fitted per engine and GPU in the shipped calibration on these rows) already stands for the
spread of the clients' phases that varying output lengths cause. The prompt lengths matter beyond their mean
where an engine compiles a kernel per new prefill token count (``EngineRecord.jit_compile_s``: SGLang's
gated-DeltaNet prefill).

**InferenceX SGLang on H200 without an FP8 KV cache.** ``benchmarks/single_node/dsr1_fp8_h200.sh`` (DeepSeek-R1
FP8, image v0.5.9; both versions of the script, also ``benchmarks/dsr1_fp8_h200.sh``) and
``benchmarks/single_node/glm5_fp8_h200.sh`` (GLM-5 FP8) pass no ``--kv-cache-dtype``, so SGLang's ``auto`` applies:
the model's dtype (bf16) for DeepSeek-R1, whose FP8 checkpoint quantizes no KV cache, and for DSA models (GLM-5 is
one since sgl-project/sglang PR #18521 added ``GlmMoeDsaForCausalLM`` to ``is_deepseek_nsa``)
``ServerArgs._handle_model_specific_adjustments`` sets ``kv_cache_dtype = "fp8_e4m3" if major >= 10 else
"bfloat16"`` ("For Hopper, we support both bf16 and fp8 kv cache; for Blackwell, we support fp8 only"): bf16 on
H200. The row columns say only ``precision: fp8``, which :func:`~frontier_calib.validate.silicon.row_dtypes` reads
as an FP8 KV cache; these recipes set ``kv_dtype: bf16`` instead. ``qwen3.5_fp8_h200.sh`` passes
``--kv-cache-dtype fp8_e4m3`` and keeps the FP8 KV cache.

**InferenceX DeepSeek-R1 FP8 on B200 with SGLang** (``dsr1-fp8-b200-sglang``, ``dsr1_fp8_b200.sh``) sets
``--mem-fraction-static 0.95`` at TP4 (its 8,192/1,024 runs; 32 running requests) and ``0.82`` at TP8; SGLang's
default would leave a TP4 worker of this 671 B-parameter FP8 checkpoint a KV cache for about 39 k tokens, where the
runs keep 32 clients of 9,216 tokens without queueing.

**InferenceX SGLang on B200 polls for new requests every 10 or 30 decode steps.** ``dsr1_fp8_b200.sh`` (TP8: 10
below 16 clients, 30 from 16; TP4: 10; ``dsr1_fp8_b300.sh`` the same), ``dsr1_fp4_b200.sh``, ``dsr1_fp4_b300.sh``,
``qwen3.5_fp8_b200.sh`` and ``qwen3.5_bf16_b200.sh`` (10 / 30 at every TP) and ``qwen3.5_fp8_b300.sh`` (10) pass
``--scheduler-recv-interval``, so SGLang's ``SchedulerRecvSkipper`` takes new requests from the tokenizer only
every 10 or 30 decode steps (at once after a step with prefill, and when idle): a request that arrives while the
server decodes waits for the next poll (``scheduler.scheduler_recv_interval``, ``sim/schedulers/sglang.py``). The
same scripts set ``--chunked-prefill-size`` and ``--max-prefill-tokens`` (32,768 at TP8, 8,192 at TP4 for
DeepSeek-R1). Not applied with attention DP (SGLang's receive skipper does not take it). ``glm5_fp8_b200.sh``
has no receive interval. The Qwen3.5 script's other settings (``--mem-fraction-static 0.82``,
``--max-running-requests 128``, 32,768-token prefill chunks) are not applied: its rows at 256 clients measure a
TTFT (2.5-7.6 s) that 128 running requests cannot give (half the clients would wait a whole request, ~25 s), so
the rows come from versions of the script whose settings differ, and only the receive interval is common to every
version read.

**InferenceX launch flags (session 10).** The other options of the InferenceX scripts behind the vLLM,
TensorRT-LLM and SGLang H200 rows, kept where every version read agrees (the SemiAnalysisAI/InferenceX versions
at the commits named, and copies in public forks that carry other versions of the same file):

* ``dsr1_fp8_h200.sh`` (``benchmarks/`` at 1fc5d73, ``single_node/`` at 161e7f6): ``--chunked-prefill-size 32768
  --max-prefill-tokens 32768 --mem-fraction-static 0.82`` (also ``--max-running-requests`` / ``--cuda-graph-max-bs``
  512 at 1,024/1,024 and 256 otherwise, above the rows' 4-64 clients and SGLang's 256 graph sizes: not applied).
* ``qwen3.5_fp8_h200.sh`` (57392445, 2116fc4, fork whn09): ``--max-running-requests 128 --chunked-prefill-size 16384
  --max-prefill-tokens 16384 --mem-fraction-static 0.8 --disable-radix-cache``; without the radix cache SGLang
  keeps its overlap scheduler for this gated-DeltaNet model (``engines/sglang.py``: it is turned off only for the
  mamba ``no_buffer`` strategy *with* the radix cache), so ``engine_options.overlap`` is on.
* ``qwen3.5_fp8_b200.sh`` (01fa35c, 3e2ebc0, fork fzyzcjy): ``--disable-radix-cache`` in every version read, so
  the overlap is on there too (its other flags: the receive-interval paragraph above).
* ``qwen3.5_fp8_b300.sh``, ``qwen3.5_bf16_b300.sh`` and ``qwen3.5_fp4_b300.sh`` (5632483, session 12): each passes
  ``--disable-radix-cache`` (the FP4 one next to ``--mamba-scheduler-strategy no_buffer``, which turns the overlap
  off only *with* the radix cache), so the B300 Qwen3.5 rows of every precision keep the overlap too.
* ``glm5_fp8_h200.sh`` (0c82808, d695059): ``--mem-fraction-static 0.85`` (the only flag both versions share; the
  later one runs DP attention and EAGLE, which the rows' columns do not show).
* ``gptoss_fp4_b200_trt.sh`` / ``gptoss_fp4_h200_trt.sh`` (``single_node/`` at 34bc7c4 / 187f575, ``benchmarks/``
  at 1825e7f / 111f031): ``kv_cache_config: {dtype: fp8}`` on B200 (``auto`` on H200: the checkpoint's bf16),
  ``free_gpu_memory_fraction: 0.85`` and ``--max_num_tokens 20000``.
* ``gptoss_fp4_b200.sh`` (vLLM; ``benchmarks/`` at 1fc5d73, ``single_node/`` at 34bc7c4, fork dandanielbro):
  ``kv-cache-dtype: fp8``; the H100 and H200 scripts pass none (bf16, as the rows' columns read).
* ``minimaxm2.5_fp8_h100.sh`` (34bc7c4, fork andychensn): no ``--kv-cache-dtype``, so vLLM's ``auto`` keeps the
  checkpoint's bf16 (its FP8 quantization config has no KV scheme), where the ``fp8`` precision column reads an FP8
  KV cache. ``minimaxm2.5_fp8_h200.sh`` (1c3aa8b, 0949de5, fork lishuoshuo-amd): ``--gpu-memory-utilization 0.95``
  (its KV format changed between versions: not applied). ``minimaxm2.5_fp8_b200.sh`` (13453b4, 07e171a, 34bc7c4, and
  the B300 copy of a later version): ``--block-size=32`` (memory fraction and KV format changed: not applied).
  ``minimaxm2.5_fp8_b300.sh`` (5632483, forks lishuoshuo-amd and mpashkovskii): ``--block-size=32
  --max-num-batched-tokens $((ISL * 2))`` (its ``--kv-cache-dtype fp8`` is what the rows' columns read already).
* ``kimik2.5_int4_h200.sh`` (34bc7c4, fork lishuoshuo-amd): ``--gpu-memory-utilization 0.95 --max-num-seqs $CONC``;
  ``kimik2.5_int4_b200.sh`` (2b7b694, 7bfd76a): ``0.97``; ``kimik2.5_fp4_b200.sh`` (04107b3, 7a83b90):
  ``--max-num-seqs $CONC``, as ``kimik2.5_fp4_b300.sh`` (6377d35, fork whn09). A running cap equal to the clients also sets vLLM's default CUDA-graph sizes (up to
  ``min(2 x max_num_seqs, 512)`` tokens), so mixed steps above twice the client count run eager.

**TensorRT-LLM's step token budget as the launch scripts set it (session 11).** TensorRT-LLM runs without chunked
prefill unless told otherwise (``engines/trtllm.py``): a prompt then waits, whole, until it fits the
``max_num_tokens`` left next to the step's generation tokens, so the budget decides how many prompts share a step.
Where the script behind a series computes the budget from the load, :class:`StepTokens` does the same:

* ``aic-auto-gap-analysis`` rows (aiconfigurator's own accuracy runs, served by the configs its generator writes:
  ``python3 -m dynamo.frontend`` + ``dynamo.trtllm``, ``trtllm/run.sh.j2``): the generator's agg worker has
  ``max_num_tokens = bs + isl + 1500`` and ``max_batch_size = bs`` (``generator/backends/trtllm.py``;
  ``rule_plugin/benchmark/trtllm.rule`` has the same formula), ``enable_chunked_prefill`` false (every
  ``extra_engine_args*.yaml.j2`` template's default); ``bs`` is the row's ``batch_size`` (= its clients per worker).
* InferenceX DeepSeek-R1 / V3 FP8 on H200: ``MAX_NUM_TOKENS=$(( (CONC+ISL+64+63)/64*64 ))``
  (``dsr1_fp8_h200_trt_slurm.sh``), ``((MTP+1)*MAX_BATCH_SIZE+ISL+64+63)/64*64`` with MTP
  (``dsr1_fp8_h200_trt_mtp.sh``; ``MAX_BATCH_SIZE`` = CONC, CONC/TP with DP attention). One later version of the
  non-MTP script (1fc5d73) floors it at 8,192; the floor-less form is kept (the MTP script and the slurm script
  agree on it). On B200 the same formulas: at least 8,192 without MTP (``dsr1_fp8_b200_trt.sh``), no floor with
  it (``dsr1_fp8_b200_trt_mtp.sh``).
* InferenceX Llama-3.1-70B on H200: ``--max_seq_len $MAX_MODEL_LEN --max_num_tokens $MAX_MODEL_LEN``
  (``70b_fp8_h200_trt_slurm.sh``): one value, so the budget holds at least isl + osl (every request must fit
  ``max_seq_len``). The versions of the sweep read do not pin it (isl + osl, + 200, + 256; other InferenceX TRT
  scripts floor it at 8,192); isl + osl = 2,048 at 1,024/1,024 would starve the batch-waiting rows below (one or
  two prompts per 21 steps: TTFT of seconds to minutes against the 0.2-1.9 s measured), so the replay takes
  ``max(isl + osl, 8192)``. On B200 (``70b_fp8_b200_trt_slurm.sh``) ``--max_num_tokens 16384``. Both scripts turn on
  TensorRT-LLM's **batch waiting** for 1,024/1,024 below TP8 (``batch_wait_max_tokens_ratio: 0.9``,
  ``batch_wait_timeout_iters: 20``, "will improve the performance"): a step with generation requests holds its
  context requests until they and the generation tokens reach 0.9 x ``max_num_tokens`` or 20 steps have held them
  (``sim/schedulers/trtllm.py``). At 4 clients one new 1,024-token prompt never reaches 0.9 x the budget, so it waits
  the 20 steps: the measured TTFT of those rows exceeds the replay's by about 20 decode steps (TP1 562 vs 199 ms at
  20 ms a step, TP2 340 vs 128 at 12 ms, TP4 230 vs 101 at 8 ms), where the TP8 and 1,024/8,192 rows, without
  batch waiting, fit.
* InferenceX gpt-oss: ``--max_num_tokens 20000`` (the launch-flag recipes below).

Rows of no known harness keep TensorRT-LLM's defaults: no chunked prefill, the replay's 8,192-token budget.

**InferenceX GB200 multinode series (issue 13).** The GB200 rows of ``source_file=2026-04-06.csv`` labelled ``agg``
(DeepSeek-R1; 35 TensorRT-LLM NVFP4 rows with ``tp_size`` 12-64, 20 SGLang FP8 rows with ``tp_size`` 72, all
attention DP 1, ``moe_tp`` = ``tp``, EP 1) are InferenceX's multinode disaggregated runs (dynamo + TensorRT-LLM /
SGLang on a GB200 NVL72), and their ``tp_size`` is the run's total GPU count:

* 33 of the 35 TensorRT-LLM ``tp_size`` values (12, 20, 24, 28, 36, 40, 48, 52) cannot split 128 attention heads,
  and the two that can (32 and 64) measure 5.8 s and 1.4 s TTFT at 8,192/1,024 with 2,150 and 538 clients, which one
  TP32/TP64 worker without chunked prefill would take minutes to serve (804 s and 181 s replayed so).
* InferenceX's ``benchmarks/dsr1_fp4_gb200_dynamo-trt_slurm.sh`` (ishandhanani/InferenceMAX 09b9ae5) starts
  ``PREFILL_NUM_WORKERS`` one-tray (4-GPU) prefill workers and ``DECODE_NUM_WORKERS`` x ceil(``DECODE_TP`` / 4)
  trays of decode workers, and its results are ``results_concurrency_<c>_gpus_<g>.json``: one GPU count per run.
* ``dsr1-fp4-gb200-dynamo-trt`` of ``.github/configs/nvidia-master.yaml`` (image
  ``ai-dynamo/tensorrtllm-runtime:0.5.1-rc0.pre3``, the ``backend_version`` of the file's disagg rows of the same
  runs; read at ishandhanani/InferenceMAX 2cc19a3, the same entries at 0e3c359 and InferenceMAX/InferenceMAX
  525079a) lists per client list prefill {workers, tp 4, ep 4, dp-attn} and decode {workers, tp = ep, dp-attn}
  with ``DECODE_MTP_SIZE``: its GPU counts are the rows' ``tp_size`` values (1,024/1,024: 12, 20, 24, 36;
  8,192/1,024: 28, 32, 40, 48, 52, 64), e.g. 8,192/1,024 at 2,150 clients: 6 prefill trays + 1 DEP8 decode worker
  with MTP 1 = 32 GPUs; at 538 clients: 8 trays + DEP32 with MTP 3 = 64.
* The file also carries most of the same runs as ``disagg`` rows (ids ``..._tp4_ep4_...``, image
  ``0.5.1-rc0.pre3``) with per-worker parallelism but no worker counts; e.g. 1,024/1,024 at 1,075 clients measures
  1,939 ms / 20.6 ms there and 1,928 ms / 20.3 ms as the ``tp20`` agg row, whose recipe entry is 1 tray + DEP16.

:data:`GB200_DYNAMO_TRT_FP4` transcribes that recipe, :data:`MULTINODE_SERIES` matches the series, and
``validate silicon`` replays a row as the ``mode: pd`` deployment of the one entry that ran its clients on its GPU
count (with the entry's ``PREFILL_MAX_BATCH_SIZE`` / ``PREFILL_MAX_NUM_TOKENS``, ``DECODE_MAX_BATCH_SIZE``,
``DECODE_GPU_MEM_FRACTION`` and MTP, its accept lengths :data:`TRTLLM_R1_MTP_ACCEPT`), reported as a disagg row
(the group it belongs to). 20 of the 35 rows have one entry. Four have two with the same layout, MTP and not
(1,024/1,024 at 4, 8, 16 clients on 36 GPUs, 1,075 on 20), and 11 have none (1,024/1,024 at 128, 144, 256, 564
clients on 36 GPUs; 8,192/1,024 at 3-102 on 28: in none of the three versions read): those are skipped with the
reason, as are the 20 SGLang rows (``dsr1-fp8-gb200-dynamo-sglang``: its "tp, ep, and dp-attn do nothing because
they are hardcoded in" an external ``gb200-fp8.sh``, and its client lists at 2cc19a3 cover 3 of the 11 1,024/1,024
loads). The decode pool keeps the replay's step budget (``DECODE_MAX_NUM_TOKENS`` is at least
``DECODE_MAX_BATCH_SIZE`` x (1 + MTP) in every entry, so it never binds); the prefill pool's memory fraction and
any attention-DP balance of those launch scripts are not in the config and keep the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StepTokens:
    """TensorRT-LLM's ``max_num_tokens`` as a launch script computes it from the benchmark's load:
    ``max(at_least, ceil((per_request x batch + isl + added [+ osl]) / multiple) x multiple)`` tokens, where
    ``batch`` is the script's ``max_batch_size`` (the clients per attention-DP rank) and ``per_request`` the tokens
    one running request puts in a step (None: 1 + the MTP draft tokens of the deployment)."""

    per_request: int | None = 1
    added: int = 0
    multiple: int = 1
    at_least: int = 0
    osl: bool = False          #: add the row's osl (``--max_num_tokens $MAX_MODEL_LEN``, MAX_MODEL_LEN = isl + osl)
    max_batch_size: bool = False   #: the script also passes ``max_batch_size`` = batch

    def value(self, batch: int, isl: int, osl: int = 0, draft_tokens: int = 0) -> int:
        per = (1 + int(draft_tokens)) if self.per_request is None else int(self.per_request)
        n = per * int(batch) + int(isl) + int(self.added) + (int(osl) if self.osl else 0)
        m = max(1, int(self.multiple))
        return max(int(self.at_least), -(-n // m) * m)


@dataclass(frozen=True)
class HarnessRecipe:
    """Options a public harness ran for the rows it matches (:meth:`matches`): MTP speculative decoding
    (``mtp``: 3 draft tokens, 1 with attention DP), TensorRT-LLM's attention-DP balance (``adp_balance``:
    ``(timeout_iters, batching_wait_iters)``, applied to rows with attention DP) and the engine's memory fraction
    per TP size (``memory_fraction``: the deployment's ``scheduler.gpu_memory_utilization``; TensorRT-LLM's
    ``free_gpu_memory_fraction``), the KV-cache format the server ran (``kv_dtype``: what the launch command
    passes, or the engine's default where it passes none), scheduler keys per TP size (``scheduler``), a running
    cap equal to the client count (``max_num_seqs_is_concurrency``) and the CPU/GPU overlap (``overlap``)."""

    name: str
    gpu: str | None                           #: ``system`` of the rows; None: any GPU
    engine: str                               #: ``backend`` of the rows
    model_contains: str                       #: a lower-case substring of ``model_path`` ("" : any model)
    backend_version: str | None = None        #: the image tag (``backend_version``) that identifies it; None: any
    precision: str | None = None              #: the ``precision`` column; None: any
    mtp: bool = False
    adp_balance: tuple | None = None
    memory_fraction: dict | None = None       #: the worker's tp -> the engine's memory fraction (mem_fraction_static)
    kv_dtype: str | None = None               #: the KV-cache format the server ran; None: the row's columns decide
    #: the worker's tp -> (clients, SGLang --scheduler-recv-interval below that many clients, from it on)
    recv_interval: dict | None = None
    #: the worker's tp -> scheduler keys the launch command sets (e.g. chunked_prefill_size, max_prefill_tokens)
    scheduler: dict | None = None
    #: the launch command caps the running requests at the benchmark's client count (``--max-num-seqs $CONC``):
    #: ``scheduler.max_num_seqs`` = the row's concurrency (vLLM's default CUDA-graph sizes follow it)
    max_num_seqs_is_concurrency: bool = False
    #: ``engine_options.overlap`` where the launch command decides it (None: the engine's default)
    overlap: bool | None = None
    #: the step token budget as a multiple of the row's prompt length (``--max-num-batched-tokens $((ISL * k))``)
    batched_tokens_per_isl: int | None = None
    #: TensorRT-LLM ``max_num_tokens`` from the load (:class:`StepTokens`); None: the replay's default
    step_tokens: StepTokens | None = None
    #: a substring of ``silicon_data_source`` the rows carry (None: any source)
    source_contains: str | None = None
    #: TensorRT-LLM batch waiting the script turns on for one load: (isl, osl, TP below which, timeout_iters,
    #: max_tokens_ratio); None: off (the engine's default)
    batch_wait: tuple | None = None
    source: str = ""

    def matches(self, row: dict) -> bool:
        return ((self.gpu is None or str(row.get("system", "")).strip() == self.gpu)
                and (self.source_contains is None
                     or self.source_contains in str(row.get("silicon_data_source", "")))
                and str(row.get("backend", "")).strip().lower() == self.engine
                and (self.backend_version is None
                     or str(row.get("backend_version", "")).strip() == self.backend_version)
                and (self.precision is None or str(row.get("precision", "")).strip().lower() == self.precision)
                and self.model_contains in str(row.get("model_path", "")).lower())

    def apply(self, deployment: dict, attention_dp: int, concurrency: int | None = None,
              isl: int | None = None, osl: int | None = None, per_rank: int | None = None) -> list:
        """Add this recipe's options to an agg row's ``deployment`` (its ``scheduler`` section already built) for
        a worker of ``attention_dp`` ranks at ``concurrency`` clients (``per_rank`` of them per attention-DP rank
        and replica) sending ``isl``-token prompts for ``osl`` output tokens; returns the notes to record (empty
        when nothing applied)."""
        notes = []
        if self.mtp:
            k = 1 if attention_dp > 1 else 3
            length = TRTLLM_R1_MTP_ACCEPT[k]
            deployment["speculative"] = {"method": "mtp", "num_draft_tokens": k,
                                         "acceptance": {"accept_length": length}}
            notes.append(f"{self.name}: MTP with {k} draft token(s), {length} tokens per step (validate/harness.py)")
        if self.adp_balance is not None and attention_dp > 1:
            timeout, batching = self.adp_balance
            deployment["scheduler"].update(attention_dp_balance=True, attention_dp_timeout_iters=timeout,
                                           attention_dp_batching_wait_iters=batching)
            notes.append(f"{self.name}: attention-DP balance, timeout_iters {timeout}, batching_wait_iters "
                         f"{batching} (validate/harness.py)")
        if self.kv_dtype is not None and deployment.get("kv_dtype") != self.kv_dtype:
            notes.append(f"{self.name}: KV cache {self.kv_dtype}, not {deployment.get('kv_dtype')} "
                         f"(validate/harness.py)")
            deployment["kv_dtype"] = self.kv_dtype
        tp = deployment.get("parallel", {}).get("tp")
        if self.memory_fraction is not None and tp in self.memory_fraction:
            frac = self.memory_fraction[tp]
            deployment["scheduler"]["gpu_memory_utilization"] = frac
            notes.append(f"{self.name}: memory fraction {frac} at TP{tp} (validate/harness.py)")
        if self.scheduler is not None and tp in self.scheduler:
            deployment["scheduler"].update(self.scheduler[tp])
            notes.append(f"{self.name}: scheduler {self.scheduler[tp]} at TP{tp} (validate/harness.py)")
        if self.max_num_seqs_is_concurrency and concurrency is not None and attention_dp == 1:
            deployment["scheduler"]["max_num_seqs"] = int(concurrency)
            notes.append(f"{self.name}: max_num_seqs {int(concurrency)} (--max-num-seqs $CONC; validate/harness.py)")
        if self.batched_tokens_per_isl is not None and isl:
            budget = int(self.batched_tokens_per_isl) * int(isl)
            deployment["scheduler"]["max_num_batched_tokens"] = budget
            notes.append(f"{self.name}: max_num_batched_tokens {budget} ({self.batched_tokens_per_isl} x isl; "
                         f"validate/harness.py)")
        if self.step_tokens is not None and isl and per_rank:
            draft = int(deployment.get("speculative", {}).get("num_draft_tokens", 0) or 0)
            n = self.step_tokens.value(per_rank, isl, osl or 0, draft)
            deployment["scheduler"]["max_num_tokens"] = n
            deployment["scheduler"]["max_num_batched_tokens"] = n
            deployment["scheduler"]["enable_chunked_prefill"] = False
            what = f"max_num_tokens {n}"
            if self.step_tokens.max_batch_size:
                deployment["scheduler"]["max_batch_size"] = int(per_rank)
                what += f", max_batch_size {int(per_rank)}"
            notes.append(f"{self.name}: {what}, no chunked prefill (validate/harness.py)")
        if self.batch_wait is not None and attention_dp == 1:
            w_isl, w_osl, tp_below, iters, ratio = self.batch_wait
            if isl == w_isl and osl == w_osl and tp is not None and tp < tp_below:
                deployment["scheduler"].update(batch_wait_timeout_iters=iters, batch_wait_max_tokens_ratio=ratio)
                notes.append(f"{self.name}: batch waiting, timeout_iters {iters}, max_tokens_ratio {ratio} "
                             f"(validate/harness.py)")
        if self.overlap is not None:
            deployment.setdefault("engine_options", {})["overlap"] = self.overlap
            notes.append(f"{self.name}: CPU/GPU overlap {'on' if self.overlap else 'off'} (validate/harness.py)")
        if (self.recv_interval is not None and tp in self.recv_interval and attention_dp == 1
                and concurrency is not None):
            clients, below, above = self.recv_interval[tp]
            n = below if concurrency < clients else above
            deployment["scheduler"]["scheduler_recv_interval"] = n
            notes.append(f"{self.name}: SGLang receives new requests every {n} decode steps "
                         f"(--scheduler-recv-interval; validate/harness.py)")
        return notes


#: mean tokens per verify step of DeepSeek-R1 MTP in TensorRT-LLM on 8 x B200, by MTP layers (strict acceptance;
#: TensorRT-LLM tech blog 1, "Autoregressive MTP Layers": 1.92 / 2.58 / 2.82 with 1 / 2 / 3 layers); used for H200
#: and GB200 too: the accept length is the model's and the text's, not the GPU's
TRTLLM_R1_MTP_ACCEPT = {1: 1.92, 2: 2.58, 3: 2.82}

_INFERENCEX = "InferenceX .github/configs/nvidia-master.yaml; benchmarks/single_node/dsr1_fp{8,4}_b200_trt{,_mtp}.sh"

_INFERENCEX_H200 = ("InferenceX .github/configs/nvidia-master.yaml (dsr1-fp8-h200-trt, dsr1-fp8-h200-trt-mtp); "
                    "benchmarks/dsr1_fp8_h200_trt_mtp.sh")

#: the harness recipes applied by ``validate silicon`` (every matching recipe applies, in order)
_TPS = (1, 2, 4, 8)
#: --scheduler-recv-interval of the InferenceX SGLang Blackwell scripts: (clients, below them, from them) per TP
_RECV_10_30 = {tp: (16, 10, 30) for tp in _TPS}
_RECV_DSR1_FP8 = {8: (16, 10, 30), 4: (16, 10, 10)}
_CHUNKS_DSR1_FP8 = {8: {"chunked_prefill_size": 32768, "max_prefill_tokens": 32768},
                    4: {"chunked_prefill_size": 8192, "max_prefill_tokens": 8192}}

#: every TP size of the InferenceX rows (a recipe whose flag does not depend on TP)
_ALL_TPS = (1, 2, 4, 8, 16)


def _every_tp(value) -> dict:
    return {tp: value for tp in _ALL_TPS}


_IX = "InferenceX benchmarks/single_node/"

#: ``MAX_NUM_TOKENS=$(( (CONC+ISL+64+63)/64*64 ))`` (dsr1_fp8_h200_trt_slurm.sh); the MTP script
#: (dsr1_fp8_h200_trt_mtp.sh) counts ``MTP+1`` tokens per request: ``((MTP+1)*MAX_BATCH_SIZE+ISL+64+63)/64*64``
_DSR1_H200_TOKENS = StepTokens(per_request=None, added=64, multiple=64)
#: dsr1_fp8_b200_trt.sh: the same, at least 8192
_DSR1_B200_TOKENS = StepTokens(per_request=None, added=64, multiple=64, at_least=8192)
#: 70b_fp8_h200_trt_slurm.sh: ``batch_wait_max_tokens_ratio: 0.9``, ``batch_wait_timeout_iters: 20`` when ISL and OSL
#: are 1024 and TP < 8: (isl, osl, TP below, timeout_iters, max_tokens_ratio)
_LLAMA70B_BATCH_WAIT = (1024, 1024, 8, 20, 0.9)
#: aiconfigurator's generator, agg workers: ``max_num_tokens = bs + isl + 1500``, ``max_batch_size = bs``
_AIC_AGG_TOKENS = StepTokens(per_request=1, added=1500, max_batch_size=True)

RECIPES: list[HarnessRecipe] = [
    HarnessRecipe(name="InferenceX dsr1-*-b200-trt-mtp (image 1.2.0rc6.post3)", gpu="b200_sxm", engine="trtllm",
                  model_contains="deepseek-r1", backend_version="1.2.0rc6.post3", mtp=True, source=_INFERENCEX),
    HarnessRecipe(name="InferenceX dsr1-fp8-h200-trt-mtp (DeepSeek-R1 rows, image 1.1.0rc2.post2)", gpu="h200_sxm",
                  engine="trtllm", model_contains="deepseek-r1", backend_version="1.1.0rc2.post2", mtp=True,
                  source=_INFERENCEX_H200),
    HarnessRecipe(name="InferenceX dsr1-*-b200-trt*", gpu="b200_sxm", engine="trtllm", model_contains="deepseek",
                  adp_balance=(60, 0), step_tokens=_DSR1_B200_TOKENS, source=_INFERENCEX),
    # the H200 scripts (benchmarks/dsr1_fp8_h200_trt.sh and its -mtp twin) add the same attention_dp_config block
    # when DP_ATTENTION is true; both H200 series (the db-dump DeepSeek-V3 rows and the DeepSeek-R1 source files)
    # are those configs' search spaces
    # the MTP scripts compute max_num_tokens without the non-MTP script's 8192 floor (after the recipe above)
    HarnessRecipe(name="InferenceX dsr1-*-b200-trt-mtp (max_num_tokens)", gpu="b200_sxm", engine="trtllm",
                  model_contains="deepseek-r1", backend_version="1.2.0rc6.post3", step_tokens=_DSR1_H200_TOKENS,
                  source="InferenceX benchmarks/dsr1_fp8_b200_trt_mtp.sh (MAX_NUM_TOKENS)"),
    HarnessRecipe(name="InferenceX dsr1-fp8-h200-trt*", gpu="h200_sxm", engine="trtllm", model_contains="deepseek",
                  adp_balance=(60, 0), step_tokens=_DSR1_H200_TOKENS,
                  source=_INFERENCEX_H200 + "; benchmarks/dsr1_fp8_h200_trt.sh, dsr1_fp8_h200_trt_slurm.sh"),
    HarnessRecipe(name="InferenceX llama-70b-fp8-h200-trt", gpu="h200_sxm", engine="trtllm",
                  model_contains="llama-3.1-70b", source_contains="source_file=2026-",
                  step_tokens=StepTokens(per_request=0, osl=True, at_least=8192), batch_wait=_LLAMA70B_BATCH_WAIT,
                  source="InferenceX benchmarks/70b_fp8_h200_trt_slurm.sh (--max_seq_len and --max_num_tokens "
                         "$MAX_MODEL_LEN; batch_wait_max_tokens_ratio 0.9, "
                         "batch_wait_timeout_iters 20 at 1k/1k below TP8)"),
    HarnessRecipe(name="InferenceX llama-70b-b200-trt", gpu="b200_sxm", engine="trtllm",
                  model_contains="llama-3.1-70b", source_contains="source_file=2026-",
                  step_tokens=StepTokens(per_request=0, at_least=16384), batch_wait=_LLAMA70B_BATCH_WAIT,
                  source="InferenceX benchmarks/70b_fp8_b200_trt_slurm.sh (--max_num_tokens 16384; "
                         "batch_wait_max_tokens_ratio 0.9, batch_wait_timeout_iters 20 at 1k/1k below TP8)"),
    # aiconfigurator's own gap-analysis runs serve the configs its generator writes (module docstring)
    HarnessRecipe(name="aiconfigurator generator (aic-auto-gap-analysis)", gpu=None, engine="trtllm",
                  model_contains="", source_contains="aic-auto-gap-analysis", step_tokens=_AIC_AGG_TOKENS,
                  source="ai-dynamo/aiconfigurator src/aiconfigurator/generator/backends/trtllm.py (agg "
                         "max_num_tokens = bs + isl + 1500), generator/templates/trtllm/extra_engine_args*.yaml.j2 "
                         "(enable_chunked_prefill false, max_batch_size bs), rule_plugin/benchmark/trtllm.rule"),
    HarnessRecipe(name="InferenceX dsr1-fp8-h200-sglang", gpu="h200_sxm", engine="sglang", model_contains="deepseek",
                  precision="fp8", kv_dtype="bf16",
                  source="InferenceX benchmarks/single_node/dsr1_fp8_h200.sh (no --kv-cache-dtype: SGLang's auto, bf16)"),
    HarnessRecipe(name="InferenceX glm5-fp8-h200-sglang", gpu="h200_sxm", engine="sglang", model_contains="glm-5",
                  precision="fp8", kv_dtype="bf16",
                  source="InferenceX benchmarks/single_node/glm5_fp8_h200.sh (no --kv-cache-dtype); SGLang server_args: "
                         "DSA models default to bf16 KV on Hopper"),
    HarnessRecipe(name="InferenceX dsr1-fp8-b200-sglang", gpu="b200_sxm", engine="sglang", model_contains="deepseek",
                  precision="fp8", memory_fraction={4: 0.95, 8: 0.82}, recv_interval=_RECV_DSR1_FP8,
                  scheduler=_CHUNKS_DSR1_FP8,
                  source="InferenceX benchmarks/single_node/dsr1_fp8_b200.sh (--mem-fraction-static, "
                         "--scheduler-recv-interval, --chunked-prefill-size, --max-prefill-tokens)"),
    HarnessRecipe(name="InferenceX dsr1-fp8-b300-sglang", gpu="b300_sxm", engine="sglang", model_contains="deepseek",
                  precision="fp8", recv_interval=_RECV_DSR1_FP8, scheduler=_CHUNKS_DSR1_FP8,
                  source="InferenceX benchmarks/single_node/dsr1_fp8_b300.sh (the B200 recipe as it is)"),
    HarnessRecipe(name="InferenceX dsr1-fp4-b200-sglang", gpu="b200_sxm", engine="sglang", model_contains="deepseek",
                  precision="fp4", recv_interval=_RECV_10_30,
                  source="InferenceX benchmarks/single_node/dsr1_fp4_b200.sh (--scheduler-recv-interval 10 below 16 "
                         "clients, 30 from 16, at every TP)"),
    HarnessRecipe(name="InferenceX dsr1-fp4-b300-sglang", gpu="b300_sxm", engine="sglang", model_contains="deepseek",
                  precision="fp4", recv_interval=_RECV_10_30,
                  source="InferenceX benchmarks/single_node/dsr1_fp4_b300.sh (the B200 SGLang tuning)"),
    HarnessRecipe(name="InferenceX qwen3.5-b200-sglang", gpu="b200_sxm", engine="sglang", model_contains="qwen3.5",
                  recv_interval=_RECV_10_30,
                  source="InferenceX benchmarks/single_node/qwen3.5_{fp8,bf16}_b200.sh (--scheduler-recv-interval 10 "
                         "below 16 clients, 30 from 16)"),
    HarnessRecipe(name="InferenceX qwen3.5-b300-sglang", gpu="b300_sxm", engine="sglang", model_contains="qwen3.5",
                  recv_interval={tp: (16, 10, 10) for tp in _TPS},
                  source="InferenceX benchmarks/single_node/qwen3.5_fp8_b300.sh (--scheduler-recv-interval 10)"),
    # ---- session 10: the other launch flags of the InferenceX scripts (module docstring, "InferenceX launch flags")
    HarnessRecipe(name="InferenceX dsr1-fp8-h200-sglang (launch flags)", gpu="h200_sxm", engine="sglang",
                  model_contains="deepseek", precision="fp8", memory_fraction=_every_tp(0.82),
                  scheduler=_every_tp({"chunked_prefill_size": 32768, "max_prefill_tokens": 32768}),
                  source=_IX + "dsr1_fp8_h200.sh and benchmarks/dsr1_fp8_h200.sh (--chunked-prefill-size 32768 "
                         "--max-prefill-tokens 32768 --mem-fraction-static 0.82)"),
    HarnessRecipe(name="InferenceX qwen3.5-fp8-h200-sglang", gpu="h200_sxm", engine="sglang", model_contains="qwen3.5",
                  memory_fraction=_every_tp(0.8), overlap=True,
                  scheduler=_every_tp({"chunked_prefill_size": 16384, "max_prefill_tokens": 16384,
                                       "max_num_seqs": 128}),
                  source=_IX + "qwen3.5_fp8_h200.sh (--max-running-requests 128 --chunked-prefill-size 16384 "
                         "--max-prefill-tokens 16384 --mem-fraction-static 0.8 --disable-radix-cache)"),
    HarnessRecipe(name="InferenceX glm5-fp8-h200-sglang (memory)", gpu="h200_sxm", engine="sglang",
                  model_contains="glm-5", memory_fraction=_every_tp(0.85),
                  source=_IX + "glm5_fp8_h200.sh (--mem-fraction-static 0.85)"),
    HarnessRecipe(name="InferenceX qwen3.5-fp8-b200-sglang (radix cache off)", gpu="b200_sxm", engine="sglang",
                  model_contains="qwen3.5", precision="fp8", overlap=True,
                  source=_IX + "qwen3.5_fp8_b200.sh (--disable-radix-cache: SGLang keeps its overlap scheduler)"),
    HarnessRecipe(name="InferenceX qwen3.5-b300-sglang (radix cache off)", gpu="b300_sxm", engine="sglang",
                  model_contains="qwen3.5", overlap=True,
                  source=_IX + "qwen3.5_fp8_b300.sh, qwen3.5_bf16_b300.sh, qwen3.5_fp4_b300.sh at 5632483 "
                         "(--disable-radix-cache: SGLang keeps its overlap scheduler)"),
    HarnessRecipe(name="InferenceX gptoss-fp4-b200-trt", gpu="b200_sxm", engine="trtllm", model_contains="gpt-oss",
                  kv_dtype="fp8", memory_fraction=_every_tp(0.85), scheduler=_every_tp({"max_num_tokens": 20000}),
                  source=_IX + "gptoss_fp4_b200_trt.sh and benchmarks/gptoss_fp4_b200_trt.sh (kv_cache_config "
                         "dtype fp8, free_gpu_memory_fraction 0.85; --max_num_tokens 20000)"),
    HarnessRecipe(name="InferenceX gptoss-fp4-h200-trt", gpu="h200_sxm", engine="trtllm", model_contains="gpt-oss",
                  kv_dtype="bf16", memory_fraction=_every_tp(0.85), scheduler=_every_tp({"max_num_tokens": 20000}),
                  source=_IX + "gptoss_fp4_h200_trt.sh and benchmarks/gptoss_fp4_h200_trt.sh (kv_cache_config "
                         "dtype auto: the checkpoint's bf16, free_gpu_memory_fraction 0.85; --max_num_tokens 20000)"),
    HarnessRecipe(name="InferenceX gptoss-fp4-b200-vllm", gpu="b200_sxm", engine="vllm", model_contains="gpt-oss",
                  kv_dtype="fp8",
                  source=_IX + "gptoss_fp4_b200.sh and benchmarks/gptoss_fp4_b200.sh (config.yaml kv-cache-dtype: fp8)"),
    HarnessRecipe(name="InferenceX minimaxm2.5-fp8-h100-vllm", gpu="h100_sxm", engine="vllm", model_contains="minimax",
                  kv_dtype="bf16",
                  source=_IX + "minimaxm2.5_fp8_h100.sh (no --kv-cache-dtype: vLLM's auto, the checkpoint's bf16)"),
    HarnessRecipe(name="InferenceX minimaxm2.5-fp8-h200-vllm", gpu="h200_sxm", engine="vllm", model_contains="minimax",
                  memory_fraction=_every_tp(0.95),
                  source=_IX + "minimaxm2.5_fp8_h200.sh (--gpu-memory-utilization 0.95)"),
    HarnessRecipe(name="InferenceX minimaxm2.5-fp8-b200-vllm", gpu="b200_sxm", engine="vllm", model_contains="minimax",
                  precision="fp8", scheduler=_every_tp({"block_size": 32}),
                  source=_IX + "minimaxm2.5_fp8_b200.sh (--block-size=32)"),
    HarnessRecipe(name="InferenceX minimaxm2.5-fp8-b300-vllm", gpu="b300_sxm", engine="vllm", model_contains="minimax",
                  precision="fp8", batched_tokens_per_isl=2, scheduler=_every_tp({"block_size": 32}),
                  source=_IX + "minimaxm2.5_fp8_b300.sh (--block-size=32 --max-num-batched-tokens $((ISL * 2)))"),
    HarnessRecipe(name="InferenceX kimik2.5-int4-h200-vllm", gpu="h200_sxm", engine="vllm", model_contains="kimi-k2.5",
                  memory_fraction=_every_tp(0.95), max_num_seqs_is_concurrency=True,
                  source=_IX + "kimik2.5_int4_h200.sh (--gpu-memory-utilization 0.95 --max-num-seqs $CONC)"),
    HarnessRecipe(name="InferenceX kimik2.5-int4-b200-vllm", gpu="b200_sxm", engine="vllm", model_contains="kimi-k2.5",
                  precision="int4", memory_fraction=_every_tp(0.97),
                  source=_IX + "kimik2.5_int4_b200.sh (--gpu-memory-utilization 0.97)"),
    HarnessRecipe(name="InferenceX kimik2.5-fp4-b200-vllm", gpu="b200_sxm", engine="vllm", model_contains="kimi-k2.5",
                  precision="fp4", max_num_seqs_is_concurrency=True,
                  source=_IX + "kimik2.5_fp4_b200.sh (--max-num-seqs $CONC; --gpu-memory-utilization 0.90, the default)"),
    HarnessRecipe(name="InferenceX kimik2.5-fp4-b300-vllm", gpu="b300_sxm", engine="vllm", model_contains="kimi-k2.5",
                  precision="fp4", max_num_seqs_is_concurrency=True,
                  source=_IX + "kimik2.5_fp4_b300.sh (--max-num-seqs $CONC; the B200 recipe as it is)"),
]


#: InferenceX's random-dataset range ratio (.github/workflows/benchmark-tmpl.yml ``RANDOM_RANGE_RATIO``)
INFERENCEX_RANGE_RATIO = 0.8

#: ``silicon_data_source`` markers of the InferenceX series (module docstring)
_INFERENCEX_SOURCES = ("source_file=2026-", "db-dump/", "source_file=qwen3.5-397b-gap-analysis.csv",
                       "source_file=kimi-k2.5-gap-analysis.csv")


def row_matches(row: dict, *, gpu: str, engine: str, precision: str, model_contains: str, mode: str | None = None,
                isl: int | None = None, source_contains: str | None = None,
                backend_version: str | None = None) -> bool:
    """Whether a silicon row (a dict) belongs to a recipe family: its ``system``, ``backend`` and ``precision``
    (case-insensitive), a lower-case substring of its ``model_path``, and where given its ``mode``, prompt length
    ``isl``, a substring of ``silicon_data_source`` and its ``backend_version``. The one matcher of the recipe
    tables (:class:`MultinodeSeries`, ``disagg_prefill``, ``disagg_decode``, ``disagg_layouts``)."""
    def col(name):
        return str(row.get(name, "")).strip().lower()
    if isl is not None and int_or_none(row.get("isl")) != isl:
        return False
    return (col("system") == gpu and col("backend") == engine and col("precision") == precision
            and model_contains in col("model_path")
            and (mode is None or col("mode") == mode)
            and (source_contains is None or source_contains in str(row.get("silicon_data_source", "")))
            and (backend_version is None or col("backend_version") == backend_version))


def is_inferencex(row: dict) -> bool:
    """Whether a silicon row (a dict) comes from the InferenceX harness (``silicon_data_source``, module docstring)."""
    return str(row.get("silicon_data_source", "")).strip().startswith(_INFERENCEX_SOURCES)


def prompt_length_ratio(row: dict) -> float | None:
    """The random-range ratio of the prompt lengths of the harness behind ``row`` (a silicon CSV row as a dict):
    :data:`INFERENCEX_RANGE_RATIO` for the InferenceX series, None where the harness sends fixed lengths or is not
    known (the replay keeps ``isl``)."""
    return INFERENCEX_RANGE_RATIO if is_inferencex(row) else None


def int_or_none(value) -> int | None:
    """A silicon CSV cell as an int (``'8192'``, ``8192.0``), None when it is empty, NaN or not a number."""
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def apply_recipes(row: dict, deployment: dict, attention_dp: int, concurrency: int | None = None,
                  per_rank: int | None = None) -> list:
    """Apply every harness recipe that produced ``row`` (a silicon CSV row as a dict) to its agg ``deployment``
    at ``concurrency`` clients (default: the row's ``concurrency`` column), ``per_rank`` of them per attention-DP
    rank and replica (default: concurrency / attention_dp, rounded up); returns the notes."""
    if concurrency is None:
        concurrency = int_or_none(row.get("concurrency"))
    if per_rank is None and concurrency:
        per_rank = -(-int(concurrency) // max(1, int(attention_dp)))
    notes = []
    for recipe in RECIPES:
        if recipe.matches(row):
            notes += recipe.apply(deployment, attention_dp, concurrency, int_or_none(row.get("isl")),
                                  int_or_none(row.get("osl")), per_rank)
    return notes


# ---------------------------------------------------------------------------------------------- multinode series
@dataclass(frozen=True)
class PDPool:
    """One side (prefill or decode) of a multinode disaggregated recipe: ``workers`` workers of ``tp`` GPUs each
    (the recipe's ``tp``: the GPUs of one worker), experts split over ``ep`` of them, attention data-parallel over
    all ``tp`` GPUs when ``dp_attn`` (the ``dep`` layouts) else tensor-parallel (``tep``); the engine's
    ``max_batch_size`` (requests per rank) and ``max_num_tokens`` (tokens per step per rank), and the decode
    side's ``free_gpu_memory_fraction`` (None: the replay's default)."""

    workers: int
    tp: int
    ep: int
    dp_attn: bool
    max_batch_size: int
    max_num_tokens: int
    memory_fraction: float | None = None

    @property
    def gpus(self) -> int:
        return self.workers * self.tp

    def columns(self, side: str) -> dict:
        """The ``<side>_*`` columns of a disagg silicon row for this pool (TensorRT-LLM's convention: ``tp_size`` x
        ``attention_dp_size`` GPUs per worker, MoE on ``moe_tp_size`` x ``moe_ep_size`` of them)."""
        tp, dp = (1, self.tp) if self.dp_attn else (self.tp, 1)
        return {f"{side}_num_workers": self.workers, f"{side}_tp_size": tp, f"{side}_pp_size": 1,
                f"{side}_attention_dp_size": dp, f"{side}_moe_ep_size": self.ep,
                f"{side}_moe_tp_size": self.tp // self.ep, f"{side}_batch_size": self.max_batch_size}

    def describe(self) -> str:
        return f"{self.workers} x {'DEP' if self.dp_attn else 'TEP'}{self.tp}"


@dataclass(frozen=True)
class MultinodeRecipe:
    """One ``search-space`` entry of an InferenceX multinode disaggregated config: at ``isl``/``osl``, each client
    count of ``concurrency`` ran ``prefill`` + ``decode`` workers, with ``mtp`` MTP layers on the decode workers
    (0: none)."""

    isl: int
    osl: int
    concurrency: tuple
    prefill: PDPool
    decode: PDPool
    mtp: int = 0

    @property
    def gpus(self) -> int:
        return self.prefill.gpus + self.decode.gpus

    def describe(self) -> str:
        return (f"{self.prefill.describe()} prefill + {self.decode.describe()} decode"
                + (f", MTP {self.mtp}" if self.mtp else ", no MTP"))

    def apply(self, deployment: dict, series: str) -> list:
        """Set the recipe's engine limits and MTP on a ``mode: pd`` ``deployment`` (its pools' ``scheduler``
        sections already built); returns the notes."""
        for side, pool in (("prefill", self.prefill), ("decode", self.decode)):
            sched = deployment[side]["scheduler"]
            sched.update(max_batch_size=pool.max_batch_size, max_num_seqs=pool.max_batch_size)
            if side == "prefill":   # the decode pool keeps the replay's budget (module docstring)
                sched.update(max_num_tokens=pool.max_num_tokens, max_num_batched_tokens=pool.max_num_tokens)
            if pool.memory_fraction is not None:
                sched["gpu_memory_utilization"] = pool.memory_fraction
        notes = [f"{series}: {self.describe()} (validate/harness.py)"]
        if self.mtp:
            length = TRTLLM_R1_MTP_ACCEPT[self.mtp]
            deployment["decode"]["speculative"] = {"method": "mtp", "num_draft_tokens": self.mtp,
                                                   "acceptance": {"accept_length": length}}
            notes.append(f"{series}: MTP with {self.mtp} draft token(s), {length} tokens per step "
                         "(validate/harness.py)")
        return notes


def _p(workers, tp, dp_attn, batch, tokens):
    """A prefill pool of the GB200 recipes (every prefill worker is one 4-GPU tray: tp 4, ep 4)."""
    return PDPool(workers, tp, 4, dp_attn, batch, tokens)


def _d(workers, tp, dp_attn, batch, tokens, fraction):
    """A decode pool of the GB200 recipes (ep = tp)."""
    return PDPool(workers, tp, tp, dp_attn, batch, tokens, fraction)


_P1K = dict(batch=4, tokens=4608)    # PREFILL_MAX_BATCH_SIZE / PREFILL_MAX_NUM_TOKENS at 1,024/1,024
_P8K = dict(batch=1, tokens=8448)    # ... at 8,192/1,024

#: ``dsr1-fp4-gb200-dynamo-trt`` (image ``ai-dynamo/tensorrtllm-runtime:0.5.1-rc0.pre3``) of InferenceX's
#: ``.github/configs/nvidia-master.yaml`` as stored at ishandhanani/InferenceMAX 2cc19a3 (the same entries at
#: 0e3c359 and InferenceMAX/InferenceMAX 525079a), in file order: prefill {num-worker, tp, ep, dp-attn,
#: PREFILL_MAX_BATCH_SIZE, PREFILL_MAX_NUM_TOKENS}, decode {num-worker, tp, ep, dp-attn, DECODE_MAX_BATCH_SIZE,
#: DECODE_MAX_NUM_TOKENS, DECODE_GPU_MEM_FRACTION}, DECODE_MTP_SIZE
GB200_DYNAMO_TRT_FP4 = (
    # 1,024/1,024, MTP
    MultinodeRecipe(1024, 1024, (1, 2, 4, 8, 16, 36), _p(1, 4, False, **_P1K), _d(4, 8, False, 32, 128, 0.9), 3),
    MultinodeRecipe(1024, 1024, (512, 1075), _p(1, 4, True, **_P1K), _d(1, 16, True, 64, 256, 0.7), 3),
    MultinodeRecipe(1024, 1024, (2150,), _p(2, 4, True, **_P1K), _d(1, 16, True, 128, 256, 0.7), 1),
    MultinodeRecipe(1024, 1024, (512,), _p(1, 4, True, **_P1K), _d(1, 32, True, 16, 64, 0.6), 3),
    MultinodeRecipe(1024, 1024, (2252,), _p(1, 4, True, **_P1K), _d(1, 8, True, 256, 512, 0.8), 1),
    # 1,024/1,024, no MTP
    MultinodeRecipe(1024, 1024, (1, 2, 4, 8, 16, 32, 64, 141), _p(1, 4, False, **_P1K),
                    _d(4, 8, False, 128, 128, 0.9)),
    MultinodeRecipe(1024, 1024, (1075,), _p(1, 4, True, **_P1K), _d(1, 32, True, 32, 32, 0.7)),
    MultinodeRecipe(1024, 1024, (1075,), _p(1, 4, True, **_P1K), _d(1, 16, True, 64, 64, 0.75)),
    MultinodeRecipe(1024, 1024, (2048, 4300), _p(2, 4, True, **_P1K), _d(1, 16, True, 256, 256, 0.75)),
    MultinodeRecipe(1024, 1024, (4300,), _p(1, 4, True, **_P1K), _d(1, 8, True, 512, 512, 0.8)),
    # 8,192/1,024, MTP
    MultinodeRecipe(8192, 1024, (1, 2, 4, 8, 18), _p(1, 4, False, **_P8K), _d(3, 8, False, 16, 64, 0.9), 3),
    MultinodeRecipe(8192, 1024, (128, 269), _p(5, 4, True, **_P8K), _d(1, 32, True, 8, 32, 0.7), 3),
    MultinodeRecipe(8192, 1024, (538,), _p(8, 4, True, **_P8K), _d(1, 32, True, 16, 64, 0.7), 3),
    MultinodeRecipe(8192, 1024, (1075,), _p(8, 4, True, **_P8K), _d(1, 16, True, 64, 256, 0.75), 2),
    MultinodeRecipe(8192, 1024, (2150,), _p(6, 4, True, **_P8K), _d(1, 8, True, 256, 512, 0.8), 1),
    # 8,192/1,024, no MTP
    MultinodeRecipe(8192, 1024, (1, 2, 4, 8, 16, 34), _p(1, 4, False, **_P8K), _d(3, 8, False, 32, 32, 0.9)),
    MultinodeRecipe(8192, 1024, (256, 538), _p(4, 4, True, **_P8K), _d(1, 32, True, 16, 16, 0.7)),
    MultinodeRecipe(8192, 1024, (1075,), _p(6, 4, True, **_P8K), _d(1, 16, True, 64, 64, 0.75)),
    MultinodeRecipe(8192, 1024, (2150,), _p(8, 4, True, **_P8K), _d(1, 16, True, 128, 128, 0.75)),
    MultinodeRecipe(8192, 1024, (2150,), _p(5, 4, True, **_P8K), _d(1, 8, True, 256, 256, 0.8)),
)


@dataclass(frozen=True)
class MultinodeSeries:
    """A series of agg-labelled rows that are multinode disaggregated runs whose ``tp_size`` is the run's total
    GPU count (module docstring, "InferenceX GB200 multinode series"). Matched on the rows' own columns
    (:meth:`matches`); :meth:`layouts` gives the recipe entries that ran a row's load on its GPU count. A row is
    replayed only when exactly one entry matches; the others are skipped with :meth:`skip_reason`."""

    name: str
    gpu: str                      #: ``system``
    engine: str                   #: ``backend``
    source_contains: str          #: a substring of ``silicon_data_source``
    model_contains: str           #: a lower-case substring of ``model_path``
    precision: str                #: the ``precision`` column
    recipes: tuple = ()           #: :class:`MultinodeRecipe` entries (empty: the layouts are not public)
    source: str = ""

    def matches(self, row: dict) -> bool:
        return row_matches(row, mode="agg", gpu=self.gpu, engine=self.engine, precision=self.precision,
                           model_contains=self.model_contains, source_contains=self.source_contains)

    def layouts(self, row: dict, concurrency: int | None = None) -> list:
        """The recipe entries at the row's isl/osl and ``concurrency`` clients (default: its ``concurrency``
        column) whose GPU count is the row's ``tp_size``."""
        isl, osl = int_or_none(row.get("isl")), int_or_none(row.get("osl"))
        conc = int_or_none(row.get("concurrency")) if concurrency is None else int(concurrency)
        gpus = int_or_none(row.get("tp_size"))
        return [r for r in self.recipes
                if r.isl == isl and r.osl == osl and conc in r.concurrency and r.gpus == gpus]

    def skip_reason(self, row: dict, found: list, concurrency: int | None = None) -> str:
        """Why a row of the series is not replayed: no recipe entry, or several, ran its load on its GPUs."""
        conc = int_or_none(row.get("concurrency")) if concurrency is None else int(concurrency)
        gpus = int_or_none(row.get("tp_size"))
        head = (f"layout not in the data: {self.name} rows are multinode disaggregated runs whose tp_size ({gpus}) "
                f"is the run's total GPU count")
        if not self.recipes:
            return f"{head}; their per-worker layouts are not in the public recipe (validate/harness.py)"
        if not found:
            return (f"{head}; no entry of the recipe read runs {conc} clients on {gpus} GPUs at "
                    f"{row.get('isl')}/{row.get('osl')} (validate/harness.py)")
        return (f"{head}; {len(found)} entries of the recipe run {conc} clients on {gpus} GPUs ("
                + "; ".join(r.describe() for r in found) + "), the row does not say which (validate/harness.py)")


_IX_GB200 = ("InferenceX .github/configs/nvidia-master.yaml dsr1-fp4-gb200-dynamo-trt (ishandhanani/InferenceMAX "
             "2cc19a3); benchmarks/dsr1_fp4_gb200_dynamo-trt_slurm.sh (09b9ae5: results_concurrency_<c>_gpus_<g>.json)")

#: the agg-labelled multinode series of the public CSV (module docstring, "InferenceX GB200 multinode series")
MULTINODE_SERIES = (
    MultinodeSeries(name="the 2026-04-06 GB200 TensorRT-LLM series (InferenceX dsr1-fp4-gb200-dynamo-trt)",
                    gpu="gb200", engine="trtllm", source_contains="source_file=2026-04-06.csv",
                    model_contains="deepseek-r1", precision="fp4", recipes=GB200_DYNAMO_TRT_FP4, source=_IX_GB200),
    MultinodeSeries(name="the 2026-04-06 GB200 SGLang series (InferenceX dsr1-fp8-gb200-dynamo-sglang)",
                    gpu="gb200", engine="sglang", source_contains="source_file=2026-04-06.csv",
                    model_contains="deepseek-r1", precision="fp8",
                    source="InferenceX .github/configs/nvidia-master.yaml dsr1-fp8-gb200-dynamo-sglang (ishandhanani/"
                           "InferenceMAX 2cc19a3: 'tp, ep, and dp-attn do nothing because they are hardcoded in' "
                           "an external gb200-fp8.sh)"),
)


def multinode_series(row: dict) -> MultinodeSeries | None:
    """The :data:`MULTINODE_SERIES` entry a silicon row (a dict) belongs to, None for every other row."""
    return next((s for s in MULTINODE_SERIES if s.matches(row)), None)
