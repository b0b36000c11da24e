"""A measured serving run kept as a folder, turned into what `validate trace` needs.

Layout (the LLMServingSim benchmark harness's, e.g. ``shared/validation/llmservingsim_rtxpro6000/<model>/``)::

    requests.jsonl              per-request timestamps (traces/vllm_request_log.py)
    meta.json                   {"vllm_version": ..., "engine_kwargs": {model, tensor_parallel_size,
                                 data_parallel_size, enable_expert_parallel, max_num_seqs, max_num_batched_tokens,
                                 max_model_len, dtype, kv_cache_dtype, ...}}; newer harnesses add "hardware"
                                 (device_name: the GPU when --gpu is not given), "kv_cache" (the KV blocks the
                                 engine allocated) and "resolved_config" (async scheduling, eager mode, custom
                                 all-reduce): :func:`engine_facts`
    timeseries.csv              optional: t, running, waiting, prompt/generation throughput, kv_cache_pct
    cluster.json                optional: the machine as a deployment ``cluster`` section, e.g. the GPU-to-GPU
                                link when it is not the profiled one (cost/node_link.py); without it the link of
    llmservingsim_config.json   (optional: LLMServingSim's cluster file, ``link_bw`` GB/s, ``link_latency`` ns)
                                is used for runs on more than one GPU
    llmservingsim_summary.txt   optional: another simulator's own error on the same run (a table with rows such
                                as ``TTFT Mean  <measured>  <simulated>  <diff%>``)

:func:`deployment_for_run` maps the engine arguments to a co-located deployment mapping (vLLM's names to
frontier-calib's: ``tensor_parallel_size`` -> ``parallel.tp``; ``data_parallel_size`` with
``enable_expert_parallel`` on an MoE model -> attention-DP ranks with expert parallelism over all of them, as vLLM
runs it; without expert parallelism, or on a dense model -> that many replicas; ``max_num_seqs`` /
``max_num_batched_tokens`` / ``max_model_len`` -> the scheduler). The GPU is not in ``meta.json``: the caller says
which it was.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd

from ..engines import default_overlap
from ..errors import InputError

DTYPES = {"bfloat16": "bf16", "bf16": "bf16", "float16": "fp16", "half": "fp16", "auto": "bf16",
          "fp8": "fp8", "fp8_e4m3": "fp8"}


def run_folders(paths) -> list[Path]:
    """The run folders among ``paths``: a folder with ``requests.jsonl`` is a run; a folder without it stands for
    its sub-folders that are runs (sorted). A path that is neither is an error."""
    out = []
    for p in map(Path, paths):
        if (p / "requests.jsonl").is_file():
            out.append(p)
            continue
        subs = sorted(d for d in p.iterdir() if (d / "requests.jsonl").is_file()) if p.is_dir() else []
        if not subs:
            raise InputError("not a run folder (no requests.jsonl in it or in its sub-folders)", path=str(p))
        out += subs
    return out


def read_meta(folder: Path) -> dict:
    path = Path(folder) / "meta.json"
    if not path.is_file():
        raise InputError("no meta.json in the run folder (it names the model and the engine arguments)",
                         path=str(folder))
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid JSON ({exc})", path=str(path)) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("engine_kwargs"), dict):
        raise InputError("missing the 'engine_kwargs' mapping", path=str(path), field="engine_kwargs")
    return doc


def run_gpu_from_meta(folder: Path) -> str:
    """The GPU id of a run from ``meta.json``'s ``hardware.device_name`` (``torch.cuda.get_device_name``, recorded
    by newer LLMServingSim harnesses); an error naming the field and ``--gpu`` when it is missing or unknown."""
    from ..hardware import gpu_from_device_name

    src = str(Path(folder) / "meta.json")
    hw = read_meta(folder).get("hardware")
    name = hw.get("device_name") if isinstance(hw, dict) else None
    if not name:
        raise InputError("the run does not say which GPU it used (no hardware.device_name)", path=src,
                         field="hardware.device_name", fix="pass --gpu, e.g. --gpu rtx_pro_6000_server")
    gid = gpu_from_device_name(str(name))
    if gid is None:
        raise InputError(f"unknown GPU {name!r}", path=src, field="hardware.device_name",
                         fix="pass --gpu with one of `frontier-calib profiles list`'s GPUs")
    return gid


def engine_facts(meta: dict, src: str) -> dict:
    """What newer run folders record about the engine as it actually ran, as deployment sections: the KV blocks it
    allocated (``kv_cache.num_gpu_blocks`` / ``block_size`` -> ``scheduler.num_gpu_blocks_override`` /
    ``block_size``), async scheduling (``resolved_config.scheduler_config.async_scheduling`` ->
    ``engine_options.overlap``; else the default of the recorded ``vllm_version``), eager mode (``enforce_eager`` -> ``engine_options.cuda_graph: false``) and
    whether vLLM's custom all-reduce was off (``disable_custom_all_reduce`` -> ``engine_options.custom_all_reduce:
    false``). Facts the folder does not record keep the engine's defaults."""
    kw = meta.get("engine_kwargs") or {}
    resolved = meta.get("resolved_config") if isinstance(meta.get("resolved_config"), dict) else {}

    def section(name):
        v = resolved.get(name)
        return v if isinstance(v, dict) else {}

    sched, opts = {}, {}
    kv = meta.get("kv_cache") if isinstance(meta.get("kv_cache"), dict) else {}
    blocks, block_size = kv.get("num_gpu_blocks"), kv.get("block_size")
    for name, v in (("kv_cache.num_gpu_blocks", blocks), ("kv_cache.block_size", block_size)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise InputError(f"must be a whole number >= 1, got {v!r}", path=src, field=name)
    if blocks and block_size:
        sched = {"num_gpu_blocks_override": blocks, "block_size": block_size}
    async_sched = section("scheduler_config").get("async_scheduling")
    if isinstance(async_sched, bool):
        opts["overlap"] = async_sched
    elif not default_overlap("vllm", meta.get("vllm_version")):   # a version before async scheduling (< 0.14)
        opts["overlap"] = False
    eager = kw.get("enforce_eager", section("model_config").get("enforce_eager"))
    if eager is True:
        opts["cuda_graph"] = False
    no_custom = kw.get("disable_custom_all_reduce", section("parallel_config").get("disable_custom_all_reduce"))
    if no_custom is True:
        opts["custom_all_reduce"] = False
    return {"scheduler": sched, "engine_options": opts}


def deployment_for_run(folder: Path, gpu: str, *, engine: str = "vllm") -> dict:
    """A co-located deployment mapping for the run in ``folder`` on ``gpu`` (see the module docstring)."""
    from ..model_spec import load_model

    meta = read_meta(folder)
    kw = meta["engine_kwargs"]
    src = str(Path(folder) / "meta.json")
    model_id = kw.get("model") or meta.get("model")
    if not model_id:
        raise InputError("no model named", path=src, field="engine_kwargs.model")
    try:
        model = load_model(str(model_id))
    except Exception as exc:
        raise InputError(str(exc), path=src, field="engine_kwargs.model") from None

    def whole(name, default):
        v = kw.get(name)
        if v is None:
            return default
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise InputError(f"must be a whole number >= 1, got {v!r}", path=src, field=f"engine_kwargs.{name}")
        return v

    tp = whole("tensor_parallel_size", 1)
    dp = whole("data_parallel_size", 1)
    ep = bool(kw.get("enable_expert_parallel", False))
    dtype = DTYPES.get(str(kw.get("dtype", "auto")).lower())
    kv = DTYPES.get(str(kw.get("kv_cache_dtype", "auto")).lower())
    if dtype is None or kv is None:
        raise InputError(f"unsupported dtype {kw.get('dtype')!r} / kv_cache_dtype {kw.get('kv_cache_dtype')!r}",
                         path=src, field="engine_kwargs.dtype", fix="bf16/fp16 weights, auto/fp8 KV cache")
    max_len = kw.get("max_model_len") or model.max_position_embeddings
    dep = {"name": Path(folder).name, "model": str(model_id), "gpu": gpu, "engine": engine, "dtype": dtype,
           "kv_dtype": kv,
           "scheduler": {"max_num_seqs": whole("max_num_seqs", 256),
                         "max_num_batched_tokens": whole("max_num_batched_tokens", 8192),
                         "max_model_len": int(max_len),
                         "enable_prefix_caching": bool(kw.get("enable_prefix_caching", True)),
                         "gpu_memory_utilization": float(kw.get("gpu_memory_utilization", 0.9))}}
    if model.is_moe and dp > 1 and ep:
        dep["parallel"] = {"tp": tp, "attention_dp": dp, "ep": tp * dp}
        dep["router"] = "least_outstanding"
    else:
        dep["parallel"] = {"tp": tp}
        dep["replicas"] = dp
        if dp > 1:
            dep["router"] = "least_outstanding"
    if kw.get("load_format") == "dummy" and model.is_moe:
        dep["routing"] = "balanced"   # random router weights spread tokens evenly over the experts
    facts = engine_facts(meta, src)
    dep["scheduler"].update(facts["scheduler"])
    if facts["engine_options"]:
        dep["engine_options"] = facts["engine_options"]
    cluster = read_cluster(folder) if tp * dp > 1 else None
    if cluster:
        dep["cluster"] = cluster
    return dep


def read_cluster(folder: Path) -> dict | None:
    """The run's machine as a deployment ``cluster`` section, when the folder describes it: ``cluster.json`` (the
    section itself, e.g. ``{"link": {"bandwidth_GBps": 16, "latency_us": 20}}``), else the GPU-to-GPU link of the
    LLMServingSim cluster file beside the run (``llmservingsim_config.json``: ``link_bw`` in GB/s, ``link_latency``
    in ns). None when neither is there: the profiled collectives apply."""
    folder = Path(folder)
    own = folder / "cluster.json"
    if own.is_file():
        try:
            doc = json.loads(own.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"not valid JSON ({exc})", path=str(own)) from None
        if not isinstance(doc, dict):
            raise InputError("must be a JSON object (a deployment's cluster section)", path=str(own))
        return doc
    other = folder / "llmservingsim_config.json"
    if not other.is_file():
        return None
    try:
        doc = json.loads(other.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid JSON ({exc})", path=str(other)) from None
    bw, lat = (doc.get("link_bw"), doc.get("link_latency")) if isinstance(doc, dict) else (None, None)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in (bw, lat)) or not bw:
        return None
    return {"link": {"bandwidth_GBps": float(bw), "latency_us": float(lat) / 1e3}}


_ROW = re.compile(r"^\s*(TTFT|TPOT|ITL|E2E|E2EL|Latency)\s+(Mean|Median|P\d+)\s+([-\d.]+)\s+([-\d.]+)\s+([-+\d.]+)%")


def read_other_simulator(folder: Path) -> pd.DataFrame | None:
    """Another simulator's result beside the run (``llmservingsim_summary.txt``): metric, measured, simulated and
    its error (fraction), or None when the folder has none."""
    path = Path(folder) / "llmservingsim_summary.txt"
    if not path.is_file():
        return None
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = _ROW.match(line)
        if m:
            metric = {"E2EL": "e2el", "E2E": "e2el", "Latency": "e2el"}.get(m.group(1), m.group(1).lower())
            stat = m.group(2).lower()
            rows.append({"metric": f"{stat}_{metric}_ms", "measured": float(m.group(3)),
                         "simulated": float(m.group(4)), "error": float(m.group(5)) / 100})
    return pd.DataFrame(rows) if rows else None


def read_timeseries(folder: Path) -> pd.DataFrame | None:
    """The run's per-second engine gauges (``timeseries.csv``: t, running, waiting, ...), or None."""
    path = Path(folder) / "timeseries.csv"
    if not path.is_file():
        return None
    try:
        df = pd.read_csv(path)
    except Exception as exc:
        raise InputError(f"cannot read ({exc.__class__.__name__}: {exc})", path=str(path)) from None
    missing = [c for c in ("t", "running", "waiting") if c not in df.columns]
    if missing:
        raise InputError(f"missing column(s) {missing}", path=str(path))
    return df


def simulated_occupancy(result, t_end: float, step: float = 1.0, frontend=None) -> pd.DataFrame:
    """Running and waiting requests over time (sampled every ``step`` seconds) from a replay's per-request
    results: waiting = reached the scheduler, not yet scheduled; running = scheduled, not yet finished.
    ``frontend``: the deployment's :class:`~frontier_calib.cost.worker.Overheads` (its front-end latency per
    request is the time between the send time, the results' ``arrival_s``, and reaching the scheduler)."""
    import numpy as np

    req = result.requests
    ok = req["status"] == "ok"
    sched = req.loc[ok, "scheduled_s"].to_numpy() if "scheduled_s" in req else req.loc[ok, "first_token_s"].to_numpy()
    arrive = req.loc[ok, "arrival_s"].to_numpy()
    if frontend is not None:
        arrive = arrive + frontend.frontend_latency(req.loc[ok, "input_tokens"].to_numpy(dtype=float))
    done = req.loc[ok, "completion_s"].to_numpy()
    ts = np.arange(step, max(t_end, step) + step, step)
    running = [(int(((sched <= t) & (done > t)).sum())) for t in ts]
    waiting = [(int(((arrive <= t) & (sched > t)).sum())) for t in ts]
    return pd.DataFrame({"t": ts, "running": running, "waiting": waiting})


def finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)
