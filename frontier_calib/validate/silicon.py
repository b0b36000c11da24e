"""Measured serving benchmarks (aiconfigurator-core's ``silicon_sample.csv``) turned into replay scenarios.

Each CSV row is one benchmark: a deployment (model, GPU, engine, quantization, parallelism) served at a fixed
prompt/output length (``isl``/``osl``) to ``N`` closed-loop clients (``silicon_concurrency=N`` inside
``silicon_data_source``), with the measured mean TTFT and TPOT. :func:`scenario_for_row` maps a row to a
:class:`Scenario` (a deployment dict for :func:`~frontier_calib.deployment.deployment_from_dict` and a
benchmark protocol) or to ``skipped:<reason>``; :func:`run_scenario` replays it and returns the predicted
TTFT/TPOT. Both are pure, seeded functions of the row (the seed is a hash of the row id), so rows can run in
any order on any number of processes. docs/validation.md explains every choice made here.

The benchmark protocol (:class:`Protocol`) follows how these rows were measured: ``aiconfigurator eval`` runs
genai-perf with ``--concurrency N --request-count 10N --warmup-request-count 2N``, fixed lengths and EOS ignored.
The warm-up drains before profiling starts, so the profiled phase begins with all N clients sending at once
(a burst) and all 10N profiled requests count, burst and drain included. A deterministic replay of identical
clients would stay synchronised in waves forever; real clients are not (timing jitter in the client, HTTP and
tokenizer spreads them out). We model that by giving the first wave (N requests, one per client) output lengths
spread evenly at random over 1..osl: their prompts still arrive as one burst at t = 0 (so their TTFT is the
burst's), but the clients then continue at phases spread over one request duration. TTFT is the benchmark's mean
over all 10N requests; TPOT its mean over the 9N requests after the first wave (whose output lengths were
changed). To save time only a few rounds are replayed and the 10-round means are rebuilt from the burst, steady
and drain regimes (:class:`Protocol`).
"""

from __future__ import annotations

import hashlib
import math
import re
import time
import warnings
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..cost.calibration import calibration_for
from .budget import BUDGET_COLUMNS, row_budget
from .disagg_decode import DEEPEP, decode_dispatch
from .disagg_layouts import disagg_series
from .disagg_prefill import prefill_limits
from .dynamo import engine_release
from .harness import apply_recipes, is_inferencex, multinode_series, prompt_length_ratio
from ..dtypes import normalize_dtype
from ..engines import default_overlap, engine_version, get_engine
from ..errors import CoverageError, FrontierError, InputError
from ..hardware import get_gpu

#: columns every silicon CSV must have (the parallelism columns of the row's mode are checked per row)
REQUIRED_COLUMNS = ("id", "silicon_data_source", "backend", "model_path", "system", "mode", "isl", "osl",
                    "silicon_ttft_ms", "silicon_tpot_ms")
AGG_PARALLEL = ("tp_size", "pp_size", "attention_dp_size", "moe_tp_size", "moe_ep_size")
DISAGG_PARALLEL = tuple(f"{side}_{k}" for side in ("prefill", "decode")
                        for k in ("batch_size", "num_workers", "tp_size", "pp_size", "attention_dp_size",
                                  "moe_tp_size", "moe_ep_size"))
OPTIONAL_COLUMNS = ("backend_version", "precision", "gemm_quant_mode", "moe_quant_mode", "batch_size") \
    + AGG_PARALLEL + DISAGG_PARALLEL

#: Hugging Face ids in the silicon rows that are not spelled like a preset, mapped to the preset with the same
#: architecture. Instruct/FP8 variants share the base model's shapes (the quantization comes from the row's quant
#: columns). Kimi-K2.5's text_config equals Kimi-K2-Instruct in every shape field (hidden 7168, 61 layers,
#: 384 experts top-8, MLA ranks 512/1536); its vision tower does not run for text-only benchmarks.
MODEL_ALIASES = {
    "meta-llama/llama-3.1-8b-instruct": "Meta-Llama-3.1-8B",
    "nvidia/llama-3.1-8b-instruct-fp8": "Meta-Llama-3.1-8B",
    "meta-llama/llama-3.1-70b-instruct": "Meta-Llama-3.1-70B",
    "nvidia/llama-3.1-70b-instruct-fp8": "Meta-Llama-3.1-70B",
    "moonshotai/kimi-k2.5": "Kimi-K2-Instruct",
    # NVIDIA's NVFP4 checkpoints keep the base model's shapes (the format comes from the row's quant columns);
    # DeepSeek-V3.1 has DeepSeek-V3's config in every shape field (61 layers, 256 experts top-8, MLA 512/1536)
    "nvidia/deepseek-r1-nvfp4": "DeepSeek-R1",
    "nvidia/deepseek-v3.1-nvfp4": "DeepSeek-V3",
    "nvidia/qwen3-32b-nvfp4": "Qwen3-32B",
}

#: model families in the silicon rows whose attention this project does not model yet, by a lower-case
#: prefix of ``model_path`` -> the skip reason, e.g. ``{"acme/": "model family not supported yet: Acme
#: attention"}``. Consulted only when :func:`resolve_model` finds no preset, so a family counts as soon as its
#: preset lands (Qwen3.5's Gated DeltaNet and GLM-5's sparse attention have theirs: frontier_calib/attention/).
UNSUPPORTED_FAMILIES: dict[str, str] = {}

#: models whose native checkpoint format is MXFP4 experts (served w4a16 on GPUs without FP4 tensor cores)
MXFP4_NATIVE = ("gpt-oss-120b", "gpt-oss-20b")

_WEIGHT_ONLY_4BIT = ("int4_wo", "mxfp4")


# ---------------------------------------------------------------------------------------------- protocol
@dataclass(frozen=True)
class Protocol:
    """How a silicon row's benchmark is replayed (see the module docstring).

    The benchmark sends ``requests_per_client`` x N requests (R rounds). Replaying all of them is what costs
    time (every output token is an event the replay records), so only ``simulated_rounds`` rounds are replayed
    and the benchmark's mean is rebuilt from the three regimes a closed loop goes through: the first wave (the
    burst, N requests), the steady rounds, and the last wave (the drain, N requests, during which the batch
    empties). With R rounds the benchmark's mean TTFT weighs them 1/R, (R-2)/R and 1/R; its mean TPOT (first wave
    excluded, see the module docstring) weighs steady and drain (R-2)/(R-1) and 1/(R-1). When
    ``simulated_rounds >= requests_per_client`` every request is replayed and this is the plain mean.
    """

    requests_per_client: int = 10      #: genai-perf --request-count = 10 x concurrency
    simulated_rounds: int = 6          #: rounds actually replayed (>= 3: burst, steady, drain)
    desync: float = 1.0                #: share of clients whose phases are spread after the burst (0 = waves stay
    #                                    synchronised, 1 = every client desynchronised); per engine in a calibration
    prompt_ratio: float = 1.0          #: prompt lengths drawn uniformly from [int(ratio x isl), isl] (1: all isl);
    #                                    the harness's random-range ratio (validate/harness.py)

    def __post_init__(self):
        if self.requests_per_client < 1 or self.simulated_rounds < 3:
            raise FrontierError("protocol: requests_per_client must be >= 1 and simulated_rounds >= 3")
        if not 0.0 <= float(self.desync) <= 1.0:
            raise FrontierError(f"protocol: desync must be in [0, 1], got {self.desync!r}")
        if not 0.0 < float(self.prompt_ratio) <= 1.0:
            raise FrontierError(f"protocol: prompt_ratio must be in (0, 1], got {self.prompt_ratio!r}")

    @property
    def rounds(self) -> int:
        """Rounds replayed."""
        return self.requests_per_client if self.requests_per_client <= 3 else min(self.simulated_rounds,
                                                                                 self.requests_per_client)

    def num_requests(self, concurrency: int) -> int:
        return int(concurrency * self.rounds)

    def weights(self) -> tuple[float, float, float]:
        """Weights of (first wave, steady rounds, last wave) in the benchmark's mean TTFT."""
        R = self.requests_per_client
        if R < 3:
            return (1.0, 0.0, 0.0) if R == 1 else (0.5, 0.0, 0.5)
        return 1.0 / R, (R - 2) / R, 1.0 / R


#: per-engine scheduler settings of the replayed deployments (docs/validation.md, "Engine limits").
#: Token budgets are the engines' defaults on 80-141 GB GPUs (vLLM V1 API server 8192; SGLang
#: chunked_prefill_size 8192 and max_prefill_tokens 16384; TensorRT-LLM max_num_tokens 8192). The running-request
#: caps are set at or above the benchmark's concurrency so the closed loop, not the cap, sets the batch; a fixed
#: value (1024) lets every row of a deployment share one cached cost table.
ENGINE_SCHEDULER = {
    "vllm": {"max_num_batched_tokens": 8192, "max_num_seqs": 1024, "block_size": 16},
    "sglang": {"max_num_batched_tokens": 8192, "chunked_prefill_size": 8192, "max_prefill_tokens": 16384,
               "max_num_seqs": 1024, "block_size": 16},
    "trtllm": {"max_num_batched_tokens": 8192, "max_num_tokens": 8192, "max_num_seqs": 1024, "block_size": 32},
}
DEFAULT_MAX_MODEL_LEN = 16384


# ---------------------------------------------------------------------------------------------- reading
def default_csv_path() -> Path | None:
    """``silicon_sample.csv`` of the installed aiconfigurator-core, or None when it is not installed."""
    try:
        import aiconfigurator_core
    except ImportError:
        return None
    p = Path(aiconfigurator_core.__file__).parent / "systems" / "silicon_sample.csv"
    return p if p.exists() else None


def source_file(source) -> str:
    """The series a row's ``silicon_data_source`` names, short: ``aic-auto-gap-analysis`` (the 2025 gap-analysis
    files, one per engine version and model), ``gap-analysis.csv``, else the file name of its ``source_file=``
    part (``2026-04-06.csv``; a db-dump row gives its dump folder)."""
    s = str(source)
    if "aic-auto-gap-analysis" in s:
        return "aic-auto-gap-analysis"
    if "gap-analysis.csv" in s:
        return "gap-analysis.csv"
    part = s.split(";")[0].replace("source_file=", "").strip()
    return Path(part).name or "?"


def read_silicon_csv(path: str | Path) -> pd.DataFrame:
    """The silicon CSV with derived columns ``concurrency``, ``concurrency_source``, ``config_key`` and
    ``config_id``. Raises InputError naming the file (and the column) when it is missing or malformed."""
    path = Path(path)
    if not path.exists():
        raise InputError("silicon CSV not found", path=str(path),
                         fix="pass --csv PATH, or install the public-data extra (pip install -e '.[public-data]')")
    try:
        df = pd.read_csv(path, dtype={"id": str, "backend_version": str})
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"not a readable CSV ({exc})", path=str(path)) from None
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"missing column(s) {missing}", path=str(path), field=missing[0])
    for c in OPTIONAL_COLUMNS:
        if c not in df.columns:
            df[c] = np.nan
    if df["id"].duplicated().any():
        dup = df.loc[df["id"].duplicated(), "id"].iloc[0]
        raise InputError(f"duplicate id {dup!r}", path=str(path), field="id")
    df["concurrency"], df["concurrency_source"] = zip(*(_concurrency(r) for r in df.to_dict("records"))) \
        if len(df) else ([], [])
    df["config_id"] = df["silicon_data_source"].astype(str).str.extract(r"config_id=(\d+)")[0]
    df["config_key"] = [config_key(r) for r in df.to_dict("records")]
    return df


def _num(v) -> float | None:
    """A positive number from a CSV cell, or None (empty, NaN, 0, not a number)."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) and x > 0 else None


def _int(v) -> int | None:
    x = _num(v)
    return int(round(x)) if x is not None else None


def _concurrency(row: dict) -> tuple[float, str]:
    m = re.search(r"silicon_concurrency=(\d+)", str(row.get("silicon_data_source", "")))
    if m:
        return float(m.group(1)), "silicon_concurrency"
    if str(row.get("mode")) == "disagg":
        b, w = _num(row.get("decode_batch_size")), _num(row.get("decode_num_workers"))
        dp = _num(row.get("decode_attention_dp_size")) or 1.0
        if b and w:
            return b * w * dp, "decode_batch_size x decode_num_workers x decode_attention_dp"
    else:
        b = _num(row.get("batch_size"))
        dp = _num(row.get("attention_dp_size")) or 1.0
        if b:
            return b * dp, "batch_size x attention_dp"
    return math.nan, "unknown"


def config_key(row: dict) -> str:
    """The deployment a row measures, without its workload (isl, osl, concurrency) or engine version: two rows
    with the same key are the same configuration. Calibration splits on this key, so one configuration never
    sits on both sides."""
    parts = [str(row.get(c, "")).strip().lower() for c in ("system", "backend", "model_path", "mode", "precision",
                                                            "gemm_quant_mode", "moe_quant_mode")]
    cols = AGG_PARALLEL if str(row.get("mode")) != "disagg" else DISAGG_PARALLEL
    parts += [str(_int(row.get(c)) or 0) for c in cols if not c.endswith("batch_size")]
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:12]


def row_seed(row_id: str) -> int:
    """The replay seed of a row: a stable hash of its id (independent of filtering and order)."""
    return zlib.crc32(str(row_id).encode()) & 0x7FFFFFFF


# ---------------------------------------------------------------------------------------------- scenarios
@dataclass
class Scenario:
    """One row as a replay: ``deployment`` (a dict for deployment_from_dict) or a skip ``status``."""

    row_id: str
    status: str                          #: 'ok' or 'skipped:<reason>'
    gpu: str = ""
    engine: str = ""
    mode: str = "agg"
    isl: int = 0
    osl: int = 0
    concurrency: int = 0
    num_requests: int = 0
    seed: int = 0
    deployment: dict | None = None
    notes: list = field(default_factory=list)
    protocol: Protocol = field(default_factory=Protocol)


def _skip(scn: Scenario, reason: str) -> Scenario:
    scn.status = f"skipped:{reason}"
    scn.deployment = None
    return scn


def resolve_model(model_path: str):
    """(ModelSpec, note) for a row's model_path, or raise FrontierError('unknown model ...')."""
    from ..model_spec import load_model

    ref = str(model_path).strip()
    alias = MODEL_ALIASES.get(ref.lower())
    try:
        spec = load_model(alias or ref)
    except FrontierError:
        raise FrontierError(f"unknown model {ref}") from None
    return spec, (f"model {ref} -> preset {spec.name}" if alias else "")


def unsupported_family(model_path) -> str | None:
    """The skip reason of a model family not modelled yet (:data:`UNSUPPORTED_FAMILIES`), else None."""
    low = str(model_path).strip().lower()
    return next((r for prefix, r in UNSUPPORTED_FAMILIES.items() if low.startswith(prefix)), None)


def has_tables(gpu: str, engine: str) -> bool:
    """Whether (gpu, engine) has profile tables: bundled, in the user data folder, or importable on first use
    from the public-data extra (imported when the operator models are fitted)."""
    from ..profiles.store import has_engine_tables

    return has_engine_tables(gpu, engine) or gpu in _importable()


_IMPORTABLE: list | None = None


def _importable() -> list:
    global _IMPORTABLE
    if _IMPORTABLE is None:
        from ..profiles.first_use import importable_gpus

        _IMPORTABLE = importable_gpus()
    return _IMPORTABLE


def _quant(v) -> str | None:
    """A quant-mode cell as a canonical dtype (:func:`~frontier_calib.dtypes.normalize_dtype`, the one map of
    spellings: ``w4a16_mxfp4`` -> ``mxfp4``, ``w4a8_mxfp4_mxfp8`` -> ``mxfp4_fp8``, ...); None when empty.
    Raises FrontierError('unknown quant mode ...') for a spelling no table knows."""
    s = str(v).strip().lower()
    if s in ("", "nan", "none"):
        return None
    try:
        return normalize_dtype(s)
    except FrontierError:
        raise FrontierError(f"unknown quant mode {s}") from None




def row_dtypes(row: dict, model, gpu: str, engine: str = "trtllm") -> tuple[dict, list]:
    """(dtype, moe_dtype, kv_dtype) for a row, and notes. Raises FrontierError for an unsupported format."""
    notes = []
    gemm, moe = _quant(row.get("gemm_quant_mode")), _quant(row.get("moe_quant_mode"))
    precision = str(row.get("precision", "")).strip().lower()
    if gemm is None and precision in ("bf16", "fp16", "nan", ""):
        gemm = moe = None  # the checkpoint's own formats
    fp4_label = "nvfp4" in (gemm, moe) or precision == "fp4"
    if fp4_label and model.name in MXFP4_NATIVE:
        # gpt-oss ships MXFP4 experts (its attention and dense layers are bf16): an fp4 label means that
        # checkpoint, run w4a16 without FP4 tensor cores and as each engine runs it with them
        gemm = None
        if get_gpu(gpu).has_fp4:
            moe = get_engine(engine).mxfp4_moe_on_fp4   # the engine record's default MXFP4 MoE path
            notes.append(f"fp4 label on an MXFP4 checkpoint: experts {moe} ({engine}'s MXFP4 MoE on FP4 tensor cores)")
        else:
            moe = "mxfp4"
            notes.append("fp4 label on a GPU without FP4 tensor cores: the checkpoint's MXFP4 experts, w4a16")
    for d in (gemm, moe):
        if d is not None:
            get_gpu(gpu).check_dtype(d)   # nvfp4 / mxfp4_fp8 need FP4 tensor cores: a one-line reason
    dense = model.dense_weight_dtype or model.weight_dtype
    if gemm in _WEIGHT_ONLY_4BIT:
        # 4-bit weight-only checkpoints (Kimi-K2.5 int4, gpt-oss mxfp4) quantize the routed experts only
        notes.append(f"{gemm} applies to the routed experts; attention/dense GEMMs in bf16")
        moe = moe or gemm
        gemm = "bf16" if dense in _WEIGHT_ONLY_4BIT or model.is_moe else dense
    dtype = gemm or (dense if dense not in _WEIGHT_ONLY_4BIT else "bf16")
    moe_dtype = (moe or gemm or model.weight_dtype) if model.is_moe else dtype
    if model.is_moe and moe_dtype == "fp8" and model.weight_dtype == "fp8_block":
        # the checkpoint ships block-scaled FP8 experts (quantization_config.weight_block_size, e.g. MiniMax-M2.5,
        # DeepSeek-V3/R1, Qwen3-235B-A22B-FP8): an "fp8" serving label runs them with the block-FP8 MoE kernels
        # (engines do not requantize block scales to per-tensor), so the fp8_block tables are the ones that apply
        moe_dtype = "fp8_block"
        notes.append("fp8 label on a block-scaled FP8 checkpoint: experts use the fp8_block kernels")
    # FP8 serving configs in these benchmarks use an FP8 KV cache (the KV-capacity-bound rows confirm it:
    # docs/validation.md); everything else keeps the checkpoint's 16-bit KV
    # NVFP4 serving configs (TensorRT-LLM's and NVIDIA's FP4 checkpoints' recipes) keep an FP8 KV cache too
    # (an MXFP4 checkpoint's fp4 label is not that: gpt-oss keeps its bf16 KV cache)
    kv = "fp8" if precision == "fp8" or "nvfp4" in (gemm, moe) or (gemm in ("fp8", "fp8_block")
                                                                   and precision in ("", "nan")) else "bf16"
    return {"dtype": dtype, "moe_dtype": moe_dtype, "kv_dtype": kv}, notes


def _parallel(row: dict, model, prefix: str = "") -> dict:
    """The parallel section for one worker role (prefix '' for agg, 'prefill_'/'decode_' for disagg).
    Raises FrontierError('inconsistent parallelism ...') when the row's degrees contradict each other."""
    tp = _int(row.get(f"{prefix}tp_size")) or 1
    pp = _int(row.get(f"{prefix}pp_size")) or 1
    dp = _int(row.get(f"{prefix}attention_dp_size")) or 1
    par = {"tp": tp, "pp": pp, "attention_dp": dp}
    if model.is_moe:
        ep = _int(row.get(f"{prefix}moe_ep_size"))
        mtp = _int(row.get(f"{prefix}moe_tp_size"))
        gpus = tp * dp
        if ep is None and mtp is None:
            ep, mtp = 1, gpus
        elif ep is None:
            ep = gpus // mtp if gpus % mtp == 0 else 0
        elif mtp is None:
            mtp = gpus // ep if gpus % ep == 0 else 0
        if not ep or not mtp or ep * mtp != gpus:
            raise FrontierError(f"inconsistent parallelism: moe_tp ({mtp}) x moe_ep ({ep}) != tp ({tp}) x "
                                f"attention_dp ({dp}) = {gpus} (MoE layers run on the attention GPUs)")
        par.update(ep=ep, moe_tp=mtp)
    return par


def _scheduler(engine: str, per_rank: int, max_model_len: int) -> dict:
    s = dict(ENGINE_SCHEDULER[engine])
    cap = max(s["max_num_seqs"], 1 << max(per_rank - 1, 0).bit_length())
    s["max_num_seqs"] = cap
    s["max_num_batched_tokens"] = max(s["max_num_batched_tokens"], cap)
    if engine == "trtllm":
        s["max_num_tokens"] = max(s["max_num_tokens"], cap)
    s["max_model_len"] = max_model_len
    s["enable_prefix_caching"] = False  # synthetic random prompts share no prefix
    # enable_chunked_prefill left out: the engine's default (SchedulerConfig; TensorRT-LLM does not chunk,
    # engines/trtllm.py); harness recipes may set it
    return s


#: the parallelism some row ids spell out: ``..._tp8_ep8_2000``, ``..._tp8_0_ep8_0_353`` (from 8.0), ``..._tp1_epnone_31``
_ID_PARALLEL = re.compile(r"_tp(\d+)(?:_0)?_ep(\d+|none)(?:_0)?_")


#: the note of a row replayed with its id's layout (:func:`_check_id_parallel`)
ID_LAYOUT_NOTE = ("layout from the row id: its tp_size column is the product of the id's TP and EP (an export "
                  "error, docs/validation.md)")


def _check_id_parallel(rid: str, par: dict) -> dict | None:
    """The row's layout from its id when the columns carry the known export error (``tp_size`` = the id's TP x EP,
    no attention DP: returned, replayed with a note), None when the id agrees or spells nothing; raises
    'inconsistent parallelism' when an agg row's id spells its parallelism (``_tp<A>_ep<B>_``) and the columns
    give another GPU count in any other way (which layout ran is then ambiguous). The ids follow TensorRT-LLM's convention (``tp`` = the replica's GPUs, MoE
    split into ``moe_tp x ep`` of them), which every consistent row of the public CSV also follows for vLLM and
    SGLang; the rows caught have a ``tp_size`` or ``attention_dp_size`` that is the product of the id's TP and EP
    (e.g. id ``tp8_ep8``, columns ``tp_size`` 64; id ``tp4_ep4``, columns TP4 x attention-DP4 with EP16), and
    their measurements match the id's GPU count (docs/validation.md)."""
    m = _ID_PARALLEL.search(rid + "_")
    if m is None:
        return None
    gpus = par["tp"] * par.get("attention_dp", 1)
    id_tp, id_ep = int(m.group(1)), (int(m.group(2)) if m.group(2) != "none" else 1)
    if id_tp != gpus and par.get("attention_dp", 1) == 1 and par["tp"] == id_tp * id_ep and id_tp % id_ep == 0 \
            and "ep" in par:
        # the unambiguous export error: tp_size holds tp x ep, attention DP absent; the id's layout is the run's
        # (the measurements match it, docs/validation.md): tp = the replica's GPUs, MoE on moe_tp x ep of them
        return {**par, "tp": id_tp, "ep": id_ep, "moe_tp": id_tp // id_ep}
    if id_tp != gpus:
        raise FrontierError(f"inconsistent parallelism: the row id says tp{m.group(1)}_ep{m.group(2)} "
                            f"({m.group(1)} GPUs) but the columns give tp {par['tp']} x attention_dp "
                            f"{par.get('attention_dp', 1)} = {gpus} GPUs")


#: the note of a row whose tp_size spans nodes but is its MoE split's TP x EP (:func:`_node_layout`)
NODE_LAYOUT_NOTE = ("layout from the MoE columns: tp_size {tp} = moe_tp {mtp} x moe_ep {ep} spans {nodes} nodes "
                    "of {per_node} GPUs; replayed as tp {mtp} with ep {ep} on one node (the tp_size = TP x EP export "
                    "error, docs/validation.md)")


def _node_layout(par: dict, gpus_per_node: int) -> dict | None:
    """The one-node layout of an agg row that carries the ``tp_size`` = TP x EP export error without an id to say
    so, None otherwise. The signature: no attention DP, ``ep`` > 1, ``tp_size`` = ``moe_tp_size`` x ``moe_ep_size``
    larger than one node while ``moe_tp_size`` (the run's TP) fits one, and divisible by ``ep``. Every row whose
    id spells its layout and whose columns carry this pattern is that error (:func:`_check_id_parallel`: 86 rows
    whose measurements match the id's one-node layout); the rows without an id are InferenceX-style configs
    (``dsr1_b300_sglang_fp4_agg_*_cfg718``: TP8 EP8, ``cfg717``: TP4 EP4), whose recipes run on one node
    (``multinode: false``, TP 4 or 8 with EP 1 or = TP). Replayed as ``tp`` = ``moe_tp_size``, ``ep`` =
    ``moe_ep_size``, ``moe_tp`` = ``tp / ep`` (the id rule's layout)."""
    tp, ep, mtp = par["tp"], par.get("ep", 1), par.get("moe_tp", 1)
    if (par.get("attention_dp", 1) == 1 and ep > 1 and tp == mtp * ep and tp > gpus_per_node
            and mtp <= gpus_per_node and mtp % ep == 0):
        return {**par, "tp": mtp, "ep": ep, "moe_tp": mtp // ep}
    return None


def scenario_for_row(row: dict, *, overheads: dict | None = None, protocol: Protocol | None = None,
                     desync: dict | None = None, assume_pd_layout: bool = False) -> Scenario:
    """The replay scenario of one silicon row (pure). ``overheads``: {key: {field: seconds}} and ``desync``:
    {key: share of desynchronised clients} (both from a calibration; the defaults otherwise), keyed by engine or
    ``engine@gpu`` (which wins; :func:`~frontier_calib.cost.calibration.calibration_for`).
    ``assume_pd_layout``: replay disagg rows that do not give their worker counts as 1 prefill + 1 decode worker
    (noted per row) instead of skipping them."""
    protocol = protocol or Protocol()
    rid = str(row.get("id"))
    gpu = str(row.get("system", "")).strip()
    engine = str(row.get("backend", "")).strip().lower()
    phi = calibration_for(desync, engine, gpu)  # an engine@gpu entry wins over the engine's
    if phi is not None:
        protocol = replace(protocol, desync=float(phi))
    ratio = prompt_length_ratio(row)   # the harness's prompt-length spread (validate/harness.py)
    if ratio is not None:
        protocol = replace(protocol, prompt_ratio=ratio)
    mode = str(row.get("mode", "agg")).strip().lower()
    scn = Scenario(row_id=rid, status="ok", gpu=gpu, engine=engine, mode=mode, seed=row_seed(rid), protocol=protocol)
    isl, osl = _int(row.get("isl")), _int(row.get("osl"))
    conc = _num(row.get("concurrency"))
    if conc is None:
        conc, _ = _concurrency(row)
        conc = _num(conc)
    if not isl or not osl:
        return _skip(scn, "missing isl/osl")
    scn.isl, scn.osl = isl, osl
    if conc is None:
        return _skip(scn, "no concurrency (no silicon_concurrency and no batch sizes)")
    scn.concurrency = int(round(conc))
    scn.num_requests = protocol.num_requests(scn.concurrency)
    if engine not in ENGINE_SCHEDULER:
        return _skip(scn, f"unknown engine {engine}")
    if mode not in ("agg", "disagg"):
        return _skip(scn, f"unknown mode {mode}")
    try:
        gpu = scn.gpu = get_gpu(gpu).name
    except FrontierError:
        return _skip(scn, f"unknown GPU {gpu} (add it in frontier_calib/hardware.py)")
    if not has_tables(gpu, engine):
        return _skip(scn, f"no profile tables for {gpu}/{engine} (bundled, in the data folder or in the "
                          "public-data extra)")
    try:
        model, note = resolve_model(row.get("model_path"))
    except FrontierError as exc:
        return _skip(scn, unsupported_family(row.get("model_path")) or str(exc))
    if note:
        scn.notes.append(note)
    try:
        dtypes, notes = row_dtypes(row, model, gpu, engine)
    except FrontierError as exc:
        return _skip(scn, str(exc))
    scn.notes += notes
    need = isl + osl
    if model.max_position_embeddings and need > model.max_position_embeddings:
        return _skip(scn, f"isl+osl {need} exceeds the model's context {model.max_position_embeddings}")
    max_len = max(DEFAULT_MAX_MODEL_LEN, -(-need // 1024) * 1024)
    if model.max_position_embeddings:
        max_len = min(max_len, int(model.max_position_embeddings))
    base = {"model": model.name, "gpu": gpu, "engine": engine, **dtypes, "name": rid,
            "routing": "power_law_1.01", "router": "least_outstanding"}
    base["calibration"] = "none"   # the overheads are the caller's (a calibration read once), not the shipped file
    series = multinode_series(row)
    # the release the row ran (a disaggregated TensorRT-LLM row records its Dynamo image's tag: validate/dynamo.py)
    release = engine_release(engine, row.get("backend_version"), through_dynamo=mode != "agg" or series is not None)
    if engine_version(release) is not None:   # kinds price its code paths (gdn.py), overlap follows its default
        base["engine_options"] = {"version": release}
    ov = calibration_for(overheads, engine, gpu)
    if ov is not None:
        base["overheads"] = dict(ov)
    if series is not None:   # an agg-labelled multinode disaggregated run (validate/harness.py)
        return _multinode_scenario(scn, series, row, model, base, engine, max_len)
    try:
        if mode == "agg":
            par = _parallel(row, model)
            repaired = _check_id_parallel(rid, par)
            if repaired is not None:
                par = repaired
                scn.notes.append(ID_LAYOUT_NOTE)
            else:
                per_node = get_gpu(gpu).gpus_per_node
                one_node = _node_layout(par, per_node)
                if one_node is not None:
                    scn.notes.append(NODE_LAYOUT_NOTE.format(tp=par["tp"], mtp=par["moe_tp"], ep=par["ep"],
                                                             nodes=par["tp"] // per_node, per_node=per_node))
                    par = one_node
            replicas = agg_replicas(row, scn.concurrency, par["attention_dp"])
            if replicas > 1:
                base["replicas"] = replicas
                scn.notes.append(REPLICAS_NOTE.format(n=scn.concurrency, k=replicas))
            per_rank = -(-scn.concurrency // (par["attention_dp"] * replicas))
            base.update(parallel=par, scheduler=_scheduler(engine, per_rank, max_len))
            if not default_overlap(engine, release):   # e.g. vLLM < 0.14: no async scheduling
                base.setdefault("engine_options", {})["overlap"] = False
            # options the row's harness ran that its columns do not record (validate/harness.py)
            scn.notes += apply_recipes(row, base, par["attention_dp"], scn.concurrency, per_rank)
            scn.deployment = base
        else:
            pd_series = disagg_series(row)
            if pd_series is not None:   # worker counts from the series' public recipe (validate/disagg_layouts.py)
                return _recipe_pd_scenario(scn, pd_series, row, model, base, engine, max_len)
            if _int(row.get("prefill_num_workers")) is None or _int(row.get("decode_num_workers")) is None:
                if not assume_pd_layout:
                    return _skip(scn, PD_LAYOUT_MISSING)
                scn.notes.append(PD_LAYOUT_ASSUMED)
            scn.deployment = _pd_deployment(row, model, base, engine, max_len, scn.concurrency, scn.notes)
    except FrontierError as exc:
        return _skip(scn, str(exc))
    return scn


def _recipe_deployment(scn: Scenario, row: dict, recipe, model, base: dict, engine: str, max_len: int) -> str:
    """Set ``scn.deployment`` to the ``mode: pd`` deployment of a recipe entry's prefill and decode pools (a
    :class:`~frontier_calib.validate.harness.MultinodeRecipe`) on the row's load; the reason it cannot be built
    ('' when it is)."""
    layout = {**row, **recipe.prefill.columns("prefill"), **recipe.decode.columns("decode")}
    try:
        scn.deployment = _pd_deployment(layout, model, base, engine, max_len, scn.concurrency, scn.notes,
                                        recipe_families=False)
    except FrontierError as exc:
        return str(exc)
    return ""


def _multinode_scenario(scn: Scenario, series, row: dict, model, base: dict, engine: str,
                        max_len: int) -> Scenario:
    """The scenario of a row of a multinode series (:class:`~frontier_calib.validate.harness.MultinodeSeries`):
    the ``mode: pd`` deployment of the one recipe entry that ran its load on its GPU count, reported as a disagg
    row (``scn.mode``), or a skip when none or several do."""
    found = series.layouts(row, scn.concurrency)
    if len(found) != 1:
        return _skip(scn, series.skip_reason(row, found, scn.concurrency))
    recipe = found[0]
    reason = _recipe_deployment(scn, row, recipe, model, base, engine, max_len)
    if reason:
        return _skip(scn, reason)
    scn.mode = "disagg"
    scn.notes.append(MULTINODE_NOTE.format(gpus=recipe.gpus))
    scn.notes += recipe.apply(scn.deployment, series.name)
    return scn


def _recipe_pd_scenario(scn: Scenario, series, row: dict, model, base: dict, engine: str,
                        max_len: int) -> Scenario:
    """The scenario of a disagg row without worker counts whose series' recipe sweep is public
    (:class:`~frontier_calib.validate.disagg_layouts.DisaggSeries`): the ``mode: pd`` deployment of the one entry
    that ran its load with its per-worker GPU counts, or a skip when none, several or an MTP one do."""
    recipe, reason = series.recipe(row, scn.concurrency)
    if recipe is None:
        return _skip(scn, reason)
    reason = _recipe_deployment(scn, row, recipe, model, base, engine, max_len)
    if reason:
        return _skip(scn, reason)
    scn.notes += series.apply(scn.deployment, recipe)
    return scn


#: the note of a row of a multinode series replayed as the disaggregated run it was (:func:`_multinode_scenario`)
MULTINODE_NOTE = ("agg label, tp_size {gpus}: a multinode disaggregated run's GPU count; replayed as its recipe's "
                  "prefill/decode workers and reported as disagg (docs/validation.md)")


#: the note of an agg row replayed as several replicas (:func:`agg_replicas`)
REPLICAS_NOTE = ("silicon_concurrency {n} = {k} x batch_size x attention_dp: {n} clients over {k} replicas of the "
                 "row's worker (docs/validation.md)")


def agg_replicas(row: dict, concurrency: int, attention_dp: int) -> int:
    """How many replicas of the row's worker an agg row's clients were spread over: ``k`` when its
    ``silicon_concurrency`` is ``k`` (an integer >= 2) times ``batch_size`` x ``attention_dp``, else 1.

    ``batch_size`` is the running batch of one worker (attention-DP ranks included, the fallback concurrency of
    :func:`_concurrency`); a benchmark that drives k times that many clients ran k workers behind a router.
    29 agg rows of aiconfigurator-core 0.12's ``silicon_sample.csv`` do (all from its ``aic-auto-gap-analysis``
    runs), with k = 2-32 and whole 4-GPU trays or 8-GPU nodes in all (e.g. Qwen3-32B-NVFP4 TP2 on GB200,
    batch 14, 448 clients: 32 workers on 64 GPUs). One worker cannot have served them: 448 clients of
    15,000 + 500 tokens need 2.7x the KV cache a TP2 worker holds, yet the measured TTFT (0.75 s) shows no
    queueing (docs/validation.md)."""
    m = re.search(r"silicon_concurrency=(\d+)", str(row.get("silicon_data_source", "")))
    batch = _int(row.get("batch_size"))
    if m is None or not batch or int(m.group(1)) != int(concurrency):
        return 1   # no measured client count, or a caller's own concurrency: one worker
    per_worker = batch * max(1, int(attention_dp))
    k, rest = divmod(int(concurrency), per_worker)
    return k if k >= 2 and rest == 0 else 1


#: disagg rows that do not say how many prefill/decode workers ran (most of the public rows): a replay would test a
#: guessed layout, not the simulator, so they are skipped unless asked for (then noted per row)
PD_LAYOUT_MISSING = "disagg row without prefill/decode worker counts (--assume-pd-layout replays it as 1P+1D)"
PD_LAYOUT_ASSUMED = "worker counts not in the row: assumed 1 prefill + 1 decode worker"


def _pd_deployment(row: dict, model, base: dict, engine: str, max_len: int, concurrency: int,
                   notes: list | None = None, recipe_families: bool = True) -> dict:
    """The ``mode: pd`` deployment (frontier_calib/modes/pd.py) of a disagg row: ``prefill_num_workers`` prefill
    workers and ``decode_num_workers`` decode workers (1 each when the row does not say: noted as
    :data:`PD_LAYOUT_ASSUMED`) with the row's parallelism. The decode workers' running cap is at least
    ``decode_batch_size`` per attention-DP rank. The prefill workers run the limits of their InferenceX recipe
    family (:func:`~frontier_calib.validate.disagg_prefill.prefill_limits`) or, for an InferenceX row of a family
    not listed there, the engine's defaults: the rows' ``prefill_batch_size`` (1 in every row) is AIConfigurator's
    static context batch, not a limit those engines ran (validate/disagg_prefill.py). Rows of other harnesses take
    ``prefill_batch_size`` requests at a time per rank, as before. The KV link is the GPU's default (NVLink inside
    one node, else RDMA), and the first token counts when the decode worker produces it (the client streams from
    there). Decode workers with EP and attention DP of an InferenceX recipe family that runs no all-to-all backend
    all-gather instead (:func:`~frontier_calib.validate.disagg_decode.decode_dispatch`; a family whose recipes
    run DeepEP is noted and keeps the pool's default). ``notes``: a list the
    notes of the choices are appended to; ``recipe_families`` False: the row's ``prefill_batch_size`` is the
    engine's limit (a multinode series whose recipe entry gives it, harness.py)."""
    notes = [] if notes is None else notes
    pools = {}
    for side in ("prefill", "decode"):
        par = _parallel(row, model, f"{side}_")
        workers = _int(row.get(f"{side}_num_workers")) or 1
        batch = _int(row.get(f"{side}_batch_size")) or 1
        pool = {"workers": workers, "parallel": par}
        if side == "prefill":
            sched = _scheduler(engine, 1, max_len)
            inferencex = recipe_families and is_inferencex(row)
            limits = prefill_limits(row) if inferencex else None
            if limits is not None:
                per_rank_limits = limits.scheduler_for(par["attention_dp"])
                sched.update(per_rank_limits)
                if limits.overlap is not None:
                    pool["engine_options"] = {"overlap": limits.overlap}
                notes.append(PREFILL_RECIPE_NOTE.format(limits=per_rank_limits, family=limits.family))
            elif inferencex:
                notes.append(PREFILL_DEFAULTS_NOTE)
            else:
                sched["max_num_seqs"] = batch
                if engine == "trtllm":
                    sched["max_batch_size"] = batch
        else:
            per_rank = max(batch, -(-concurrency // (workers * par["attention_dp"])))
            sched = _scheduler(engine, per_rank, max_len)
            dispatch = decode_dispatch(row) if recipe_families and is_inferencex(row) else None
            if dispatch is not None and par["ep"] > 1 and par["attention_dp"] > 1:
                if dispatch.ep_dispatch == DEEPEP:   # the PD pool's default already: the deployment stays as it is
                    notes.append(DECODE_DEEPEP_NOTE.format(family=dispatch.family))
                else:
                    pool["parallel"] = {**par, "ep_dispatch": dispatch.ep_dispatch}
                    notes.append(DECODE_DISPATCH_NOTE.format(dispatch=dispatch.ep_dispatch, family=dispatch.family))
        pools[side] = {**pool, "scheduler": sched}
    dep = {k: v for k, v in base.items() if k not in ("parallel", "scheduler", "router")}
    dep.update(mode="pd", prefill=pools["prefill"], decode=pools["decode"],
               router={"prefill": "least_outstanding", "decode": "least_outstanding"}, ttft="decode")
    return dep


#: the note of a disagg row whose prefill workers run their recipe's limits (:func:`_pd_deployment`)
PREFILL_RECIPE_NOTE = ("prefill workers per rank {limits}: the InferenceX {family} disaggregated recipes "
                       "(validate/disagg_prefill.py)")
#: the note of a disagg row whose decode workers with attention DP run their recipe's EP dispatch
DECODE_DISPATCH_NOTE = ("decode workers ep_dispatch {dispatch}: the InferenceX {family} disaggregated recipes run "
                        "no --moe-a2a-backend (validate/disagg_decode.py)")
#: ... and of one whose recipe family runs DeepEP's low-latency all-to-all (the PD pool's default for SGLang)
DECODE_DEEPEP_NOTE = ("decode workers DeepEP low-latency all-to-all: the InferenceX {family} disaggregated recipes "
                      "run --moe-a2a-backend deepep --deepep-mode low_latency (validate/disagg_decode.py)")
#: ... and of an InferenceX disagg row of a recipe family not transcribed
PREFILL_DEFAULTS_NOTE = ("prefill workers: the engine's default limits (prefill_batch_size 1 is AIConfigurator's "
                         "static context batch; recipe family not transcribed, validate/disagg_prefill.py)")


# ---------------------------------------------------------------------------------------------- replay
def benchmark_trace(isl: int, osl: int, concurrency: int, num_requests: int, *, seed: int, desync: float = 1.0,
                    prompt_ratio: float = 1.0):
    """The closed-loop trace of one benchmark: ``concurrency`` clients, ``num_requests`` requests of ``osl``
    output tokens and ``isl`` prompt tokens, or, with ``prompt_ratio`` < 1, prompts of a length drawn uniformly
    from the integers ``int(prompt_ratio x isl)``..``isl`` (seeded; what benchmark_serving's random dataset does
    with ``--random-range-ratio``, validate/harness.py).

    ``desync`` (0..1): the share of clients whose first request (in the burst) gets an output length spread over
    1..osl (stratified: each such client's phase is uniform in its own slot, slots shuffled), so that those clients
    continue at spread-out phases after the burst; the others keep the full length and stay in step."""
    from ..traces import closed_loop

    n = int(num_requests)
    if float(prompt_ratio) < 1.0:
        ins = np.random.default_rng([int(seed), 1]).integers(int(float(prompt_ratio) * int(isl)), int(isl) + 1,
                                                             size=n).astype(np.int64)
    else:
        ins = np.full(n, int(isl), dtype=np.int64)
    outs = np.full(n, int(osl), dtype=np.int64)
    k = min(int(concurrency), n)
    m = int(round(float(desync) * k))
    if m > 0 and k > 1:
        rng = np.random.default_rng(seed)
        who = np.sort(rng.permutation(k)[:m])
        u = (rng.permutation(m) + rng.random(m)) / m
        outs[who] = np.maximum(1, np.ceil(u * osl)).astype(np.int64)
    return closed_loop((ins, outs), int(concurrency))


def build_deployment(scn: Scenario):
    """deployment_from_dict for a scenario; for vLLM, a max_model_len the KV cache cannot hold is lowered to
    isl + osl (what a benchmark operator does for vLLM to start)."""
    from ..deployment import deployment_from_dict

    raw = scn.deployment
    try:
        return deployment_from_dict(raw, source=f"silicon row {scn.row_id}")
    except InputError as exc:
        if "more than the KV cache holds" not in str(exc):
            raise
        raw = _with_max_model_len(raw, scn.isl + scn.osl)
        return deployment_from_dict(raw, source=f"silicon row {scn.row_id}")


def _with_max_model_len(raw: dict, n: int) -> dict:
    raw = dict(raw)
    for key in ("scheduler",) if "scheduler" in raw else ():
        raw[key] = {**raw[key], "max_model_len": n}
    for side in ("prefill", "decode"):
        if side in raw:
            raw[side] = {**raw[side], "scheduler": {**raw[side]["scheduler"], "max_model_len": n}}
    return raw


def classify_error(exc: BaseException) -> str:
    """The skip reason for an exception raised while building or replaying a scenario."""
    msg = str(exc).split("\n")[0]
    msg = re.sub(r"^silicon row [^:]*: ", "", msg)
    if isinstance(exc, CoverageError):
        return f"missing profile coverage: {msg}"
    if "does not fit" in msg or "more than the KV cache holds" in msg:
        return f"does not fit: {msg}"
    if isinstance(exc, FrontierError):
        return f"deployment rejected: {msg}"
    return f"internal error {type(exc).__name__}: {msg}"


def table_provenance(worker) -> str:
    """Which bundled profile tables (engine and engine version, from the manifest) the worker's cost model uses:
    ``family=engine/version`` joined by ``; ``."""
    from ..cost.cache import needed_families

    man = _manifest()
    out = []
    for fam in needed_families(worker):
        for eng in (worker.engine, "any"):
            e = man.get((worker.gpu, eng, fam))
            if e is None:
                continue
            versions = sorted({_version_of(p) for p in e.get("source_files", [])} - {""})
            out.append(f"{fam}={eng}/{'+'.join(versions) or '?'}")
    return "; ".join(out)


_MANIFEST_CACHE: dict | None = None


def _manifest() -> dict:
    global _MANIFEST_CACHE
    if _MANIFEST_CACHE is None:
        from ..profiles.manifest import read_manifest
        from ..profiles.store import bundled_root

        try:
            tables = read_manifest(bundled_root()).get("tables", [])
        except Exception:  # noqa: BLE001 - provenance is informative only
            tables = []
        _MANIFEST_CACHE = {(t["gpu"], t["engine"], t["family"]): t for t in tables}
    return _MANIFEST_CACHE


def _version_of(source_file: str) -> str:
    """'data/h100_sxm/gemm/vllm/0.24.0/gemm_perf.parquet' -> 'vllm 0.24.0' style version folder."""
    parts = Path(source_file).parts
    return parts[-2] if len(parts) >= 2 else ""


RESULT_COLUMNS = ("status", "pred_ttft_ms", "pred_tpot_ms", "pred_median_ttft_ms", "pred_median_tpot_ms",
                  "pred_completed", "pred_rejected", "pred_preemptions", "num_requests", "profile_tables",
                  "kv_tokens_per_rank", "kv_load", "notes", "sim_wall_s", "build_wall_s") + BUDGET_COLUMNS


def run_scenario(scn: Scenario) -> dict:
    """Replay one scenario; returns the RESULT_COLUMNS of its row (pure and seeded)."""
    from ..deployment import build_replicas, simulate_deployment

    out = {c: math.nan for c in RESULT_COLUMNS}
    out.update(status=scn.status, num_requests=scn.num_requests, notes="; ".join(scn.notes), profile_tables="")
    if scn.status != "ok":
        return out
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # out-of-range notes of the operator models: counted in reports
            dep = build_deployment(scn)
            out["profile_tables"] = table_provenance(dep.worker)
            kv = getattr(getattr(dep, "memory", None), "kv_tokens", None)   # PD: the decode pool's
            if kv:
                ranks = dep.worker.attention_dp * (dep.decode.workers if dep.mode == "pd" else dep.replicas)
                out["kv_tokens_per_rank"] = int(kv)
                out["kv_load"] = scn.concurrency / max(1, ranks) * (scn.isl + scn.osl) / kv
            replicas, _ = build_replicas(dep)
            out.update(row_budget(replicas, scn.isl, scn.osl, scn.concurrency,
                                  dep.entry_overheads.frontend_latency))
            t1 = time.perf_counter()
            trace = benchmark_trace(scn.isl, scn.osl, scn.concurrency, scn.num_requests, seed=scn.seed,
                                    desync=scn.protocol.desync, prompt_ratio=scn.protocol.prompt_ratio)
            res = simulate_deployment(dep, trace, replicas, seed=scn.seed)
    except Exception as exc:  # noqa: BLE001 - every row gets a status, bugs included (reported as such)
        reason = classify_error(exc)
        if scn.mode == "disagg" and isinstance(exc, InputError) and ("mode '" in str(exc)
                                                                      or "unknown key" in str(exc)):
            # deployment.py does not accept the PD deployment (yet): say so, keep its words in the notes
            out["notes"] = "; ".join(filter(None, [out["notes"], reason]))
            reason = "disaggregated mode not supported yet"
        out["status"] = "skipped:" + reason
        return out
    t2 = time.perf_counter()
    req = res.requests
    ok = req["status"].to_numpy() == "ok"
    out.update(pred_completed=int(ok.sum()), pred_rejected=int((~ok).sum()),
               pred_preemptions=int(req["preemptions"].sum()), build_wall_s=t1 - t0, sim_wall_s=t2 - t1)
    est = protocol_estimate(req, scn.concurrency, scn.protocol)
    if est is None:
        first = next((s for s in req["status"] if s != "ok"), "?")
        out["status"] = f"skipped:all requests rejected ({first})"
        return out
    out.update(est)
    if (~ok).any():
        out["notes"] = "; ".join(filter(None, [out["notes"], f"{int((~ok).sum())} requests rejected"]))
    return out


def protocol_estimate(req: pd.DataFrame, concurrency: int, protocol: Protocol) -> dict | None:
    """The benchmark's mean TTFT/TPOT (ms) from a replay's requests (row order = send order), and the medians
    over the replayed requests. None when nothing usable completed."""
    n = len(req)
    N = min(int(concurrency), n)
    ok = req["status"].to_numpy() == "ok"
    ttft = req["ttft_s"].to_numpy(dtype=float)
    tpot = req["tpot_s"].to_numpy(dtype=float)
    idx = np.arange(n)
    segs = {"first": idx < N, "drain": idx >= n - N, "steady": (idx >= N) & (idx < n - N)}
    if protocol.rounds >= protocol.requests_per_client:  # every request replayed: the plain means
        t_sel = ok
        p_sel = ok & (idx >= (N if protocol.desync > 0 else 0)) & np.isfinite(tpot)
        if not t_sel.any() or not p_sel.any():
            return None
        ttft_ms, tpot_ms = ttft[t_sel].mean() * 1e3, tpot[p_sel].mean() * 1e3
    else:
        w_first, w_steady, w_drain = protocol.weights()

        def mean(values, seg):
            sel = segs[seg] & ok & np.isfinite(values)
            return values[sel].mean() if sel.any() else math.nan

        parts = [(w_first, mean(ttft, "first")), (w_steady, mean(ttft, "steady")), (w_drain, mean(ttft, "drain"))]
        ttft_ms = _weighted(parts) * 1e3
        tpot_ms = _weighted([(w_steady, mean(tpot, "steady")), (w_drain, mean(tpot, "drain"))]
                            + ([] if protocol.desync > 0 else [(w_first, mean(tpot, "first"))])) * 1e3
        t_sel, p_sel = ok, ok & (idx >= N) & np.isfinite(tpot)
        if not math.isfinite(ttft_ms) or not math.isfinite(tpot_ms):
            return None
    return {"pred_ttft_ms": float(ttft_ms), "pred_tpot_ms": float(tpot_ms),
            "pred_median_ttft_ms": float(np.median(ttft[t_sel])) * 1e3 if t_sel.any() else math.nan,
            "pred_median_tpot_ms": float(np.median(tpot[p_sel])) * 1e3 if p_sel.any() else math.nan}


def _weighted(parts) -> float:
    """Weighted mean of (weight, value) pairs, leaving out NaN values (their weight goes to the others)."""
    good = [(w, v) for w, v in parts if w > 0 and math.isfinite(v)]
    tw = sum(w for w, _ in good)
    return sum(w * v for w, v in good) / tw if tw > 0 else math.nan


def with_protocol(scn: Scenario, protocol: Protocol) -> Scenario:
    return replace(scn, protocol=protocol, num_requests=protocol.num_requests(scn.concurrency))
