"""Calibration files: engine-level constants fitted on measured serving benchmarks.

The kernel tables cannot show what an engine spends outside its kernels (scheduling, input preparation,
launches outside CUDA graphs, sampling, the API server in front of the scheduler). Those are the
:class:`~frontier_calib.cost.worker.Overheads` fields, and ``frontier-calib calibrate`` fits them per engine. The
result is a small YAML (or JSON) file::

    format: frontier-calib-calibration/1
    overheads:                      # seconds, per engine (Overheads fields; frontend_s is per request)
      vllm:   {step_s: 0.0018, per_seq_s: 4.0e-06, prefill_step_s: 0.0006, frontend_s: 0.02}
      sglang: {step_s: 0.0012, per_seq_s: 3.0e-06, prefill_step_s: 0.0009}   # a missing field keeps its default
    benchmark_desync:               # optional, read by `validate silicon` only (not by deployments): share of
      vllm: 1.0                     # closed-loop benchmark clients that drift out of step (docs/validation.md)
    provenance: {...}               # free-form: data, split, seed, errors (not read back)

Keys are an engine (``vllm``) or an engine on one GPU (``sglang@h200_sxm``: ``calibrate --group-by engine-gpu``);
for a worker, the ``engine@gpu`` entry wins over the plain ``engine`` entry (:func:`calibration_for`).

A deployment uses it with ``calibration: FILE`` (its explicit ``overheads:`` keys still win), and
``frontier-calib validate silicon --calibration FILE`` applies it to every row of its engine (and GPU).

**The shipped calibration** (:data:`DEFAULT_CALIBRATION`, ``frontier_calib/data/calibration/default.yaml``) is
the output of ``frontier-calib calibrate`` on the training split of the measured silicon rows (its provenance
records the command, the split and the held-out error). Deployments without a ``calibration:`` key use it;
``calibration: none`` opts out (the physical defaults of ``cost/worker.py`` alone). ``validate silicon`` uses it
unless ``--calibration none``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import yaml

from ..errors import FrontierError, InputError
from ..hardware import get_gpu
from ..io import read_input_text, write_text, yaml_error_text
from ..engines import engine_names
from .worker import Overheads

CALIBRATION_FORMAT = "frontier-calib-calibration/1"
#: the calibration shipped with the package (see the module docstring)
DEFAULT_CALIBRATION = Path(__file__).resolve().parents[1] / "data" / "calibration" / "default.yaml"
#: the value of a deployment's ``calibration:`` key (or ``--calibration``) that opts out of any calibration
NO_CALIBRATION = "none"


def calibration_path(value, base_dir: Path | None = None) -> Path | None:
    """The calibration file a deployment's ``calibration:`` value names: None (the key is absent) -> the shipped
    :data:`DEFAULT_CALIBRATION` when the package has one; ``'none'`` -> no file; else the path (relative to
    ``base_dir``)."""
    if value is None:
        return DEFAULT_CALIBRATION if DEFAULT_CALIBRATION.is_file() else None
    if str(value).strip().lower() == NO_CALIBRATION:
        return None
    path = Path(value)
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    return path


def group_key(engine: str, gpu: str | None = None) -> str:
    """The calibration key of an engine (``gpu`` None) or of an engine on one GPU: ``engine@gpu``."""
    return f"{engine}@{gpu}" if gpu else str(engine)


def split_key(key: str) -> tuple[str, str | None]:
    """``'sglang@h200_sxm'`` -> ``('sglang', 'h200_sxm')``; ``'vllm'`` -> ``('vllm', None)``."""
    engine, _, gpu = str(key).partition("@")
    return engine, (gpu or None)


def calibration_for(mapping: dict | None, engine: str, gpu: str | None = None):
    """The entry of ``mapping`` (keyed by :func:`group_key`) for ``engine`` on ``gpu``: ``engine@gpu`` first,
    then ``engine``; None when neither is there."""
    if not mapping:
        return None
    if gpu and group_key(engine, gpu) in mapping:
        return mapping[group_key(engine, gpu)]
    return mapping.get(engine)


def _check_key(key, path, field) -> tuple[str, str]:
    """(engine, canonical key) of an ``engine`` or ``engine@gpu`` key; a GPU alias (``vllm@H100``) becomes its
    id (``vllm@h100_sxm``), and an unknown engine or GPU is an error (a typo would silently never match)."""
    engine, gpu = split_key(key)
    if engine not in engine_names() or (gpu is not None and not gpu.strip()):
        raise InputError(f"unknown engine {engine!r}", path=str(path), field=f"{field}.{key}",
                         fix=f"one of {sorted(engine_names())}, optionally as ENGINE@GPU")
    if gpu is None:
        return engine, engine
    try:
        gpu = get_gpu(gpu).name
    except FrontierError as exc:
        raise InputError(str(exc), path=str(path), field=f"{field}.{key}") from None
    return engine, group_key(engine, gpu)


def read_calibration(path: str | Path) -> dict:
    """The whole calibration document (validated), as a dict with ``overheads`` {engine: {field: seconds}}."""
    path = Path(path)
    if not path.exists():
        raise InputError("calibration file not found", path=str(path))
    try:
        text = read_input_text(path)
        doc = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        detail = f"line {exc.lineno}, column {exc.colno}: {exc.msg}" if isinstance(exc, json.JSONDecodeError) \
            else yaml_error_text(exc)
        raise InputError(f"not valid {'JSON' if path.suffix == '.json' else 'YAML'} at {detail}",
                         path=str(path)) from None
    if not isinstance(doc, dict):
        raise InputError("expected a mapping with an 'overheads' section", path=str(path))
    fmt = doc.get("format", CALIBRATION_FORMAT)
    if fmt != CALIBRATION_FORMAT:
        raise InputError(f"unknown calibration format {fmt!r}", path=str(path), field="format",
                         fix=f"expected {CALIBRATION_FORMAT!r}")
    ov = doc.get("overheads")
    if not isinstance(ov, dict) or not ov:
        raise InputError("missing or empty 'overheads' mapping", path=str(path), field="overheads")
    clean = {}
    for key, fields_ in ov.items():
        engine, key = _check_key(key, path, "overheads")
        if not isinstance(fields_, dict):
            raise InputError("expected a mapping of overhead fields", path=str(path), field=f"overheads.{key}")
        try:
            Overheads.for_engine(engine, **fields_)
        except FrontierError as exc:
            raise InputError(str(exc), path=str(path), field=f"overheads.{key}") from None
        clean[key] = {k: float(v) for k, v in fields_.items()}
    desync = doc.get("benchmark_desync") or {}
    if not isinstance(desync, dict):
        raise InputError("expected a mapping {engine: share}", path=str(path), field="benchmark_desync")
    shares = {}
    for key, v in desync.items():
        shares[_check_key(key, path, "benchmark_desync")[1]] = v
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
            raise InputError(f"must be a number in [0, 1], got {v!r}", path=str(path),
                             field=f"benchmark_desync.{key}")
    out = dict(doc)
    out["overheads"] = clean
    out["benchmark_desync"] = {e: float(v) for e, v in shares.items()}
    return out


def load_calibration(path: str | Path, gpu: str | None = None) -> dict[str, dict[str, float]]:
    """{engine: {overhead field: seconds}} from a calibration file; with ``gpu``, an ``engine@gpu`` entry replaces
    the plain ``engine`` entry (entries of other GPUs are dropped)."""
    path = Path(path)
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = None
    ov = _read_overheads(str(path), stamp)
    out = {k: v for k, v in ov.items() if split_key(k)[1] is None}
    if gpu:
        for k, v in ov.items():
            engine, g = split_key(k)
            if g == gpu:
                out[engine] = v
    return out


@lru_cache(maxsize=16)
def _read_overheads(path: str, stamp) -> dict:
    """``read_calibration(path)['overheads']``, read once per file version (``stamp``: its mtime)."""
    return read_calibration(path)["overheads"]


def write_calibration(path: str | Path, overheads: dict[str, dict[str, float]], *,
                      benchmark_desync: dict[str, float] | None = None, provenance: dict | None = None) -> Path:
    """Write a calibration file atomically (YAML, or JSON when ``path`` ends in .json)."""
    for key, fields_ in overheads.items():  # validate before writing anything
        Overheads.for_engine(split_key(key)[0], **fields_)
    for key, v in (benchmark_desync or {}).items():
        if split_key(key)[0] not in engine_names() or not 0 <= float(v) <= 1:
            raise FrontierError(f"benchmark_desync: bad entry {key!r}: {v!r}")
    doc = {"format": CALIBRATION_FORMAT,
           "overheads": {e: {k: float(v) for k, v in f.items()} for e, f in sorted(overheads.items())}}
    if benchmark_desync:
        doc["benchmark_desync"] = {e: float(v) for e, v in sorted(benchmark_desync.items())}
    doc["provenance"] = provenance or {}
    path = Path(path)
    if path.suffix == ".json":
        text = json.dumps(_plain(doc), indent=2) + "\n"
    else:
        text = ("# frontier-calib calibration: per-iteration engine overheads in seconds (see docs/validation.md)\n"
                + yaml.safe_dump(_plain(doc), sort_keys=False, default_flow_style=None, width=110))
    return write_text(text, path)


def _plain(obj):
    """Plain Python types (numpy scalars, tuples) for YAML/JSON."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and obj != obj:  # NaN
        return None
    return obj
