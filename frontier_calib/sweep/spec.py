"""Sweep files: parse and validate a YAML sweep, expand it into points with stable ids.

A sweep file (paths are relative to the file; see docs/sweeps.md for every key)::

    name: deepseek-v3-pd-layouts
    base: ../deployments/deepseek-v3-h200-sglang-pd-1p1d.yaml   # or an inline deployment mapping
    set: {cluster.nodes: 8}                  # optional fixed overrides (dotted paths into the deployment)
    axes:                                    # each axis is one dimension of the grid
      prefill.workers: [1, 2, 3]
      decode.scheduler.max_num_seqs: {start: 64, stop: 256, factor: 2}
    zip:                                     # optional: axes that vary together (one dimension per group)
      - {decode.parallel.ep: [8, 16], decode.parallel.attention_dp: [8, 16]}
    trace: {path: ../traces/poisson_lognormal_1k.csv, limit: 300}   # or {spec: FILE} or {generate: {...}}
    arrivals: rescale                        # rescale (default) | poisson: how a rate is imposed on the trace
    rates: [1, 2, 4, 8]                      # requests/s; omit to replay the trace's own arrivals
    slo: {ttft_p90_s: 2.0, tpot_p90_s: 0.05} # or slos: {name: {...}, ...}
    seed: 0
    rate_search: {low: 0.5, high: 32, tolerance: 0.05, max_iter: 8}

The grid is the product of the dimensions (axes in file order, then zip groups), times the traces, times the
rates (rates vary slowest, so the first pass over the configurations warms the cost-model cache).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from itertools import product
from numbers import Real
from pathlib import Path
from typing import Any


from ..errors import InputError
from ..io import read_yaml_mapping

TOP_KEYS = {"name", "description", "base", "set", "axes", "zip", "trace", "traces", "arrivals", "rates", "slo",
            "slos", "seed", "rate_search"}
TRACE_KEYS = {"path", "format", "limit", "spec", "generate"}
ARRIVAL_MODES = ("rescale", "poisson")
RATE_SEARCH_KEYS = {"low", "high", "tolerance", "max_iter", "slo"}
SLO_RE = re.compile(r"^(ttft|tpot|e2e)_(p\d{1,2}|median|mean)_(s|ms)$")
#: bump when run.py changes what a row holds: every point id changes, so old rows are not reused
ROW_VERSION = "1"


@dataclass(frozen=True)
class SLO:
    """Latency targets of one SLO set. ``limits``: (metric, statistic, seconds) triples, e.g.
    ('ttft', 'p90', 2.0) = P90 of time to first token at most 2 s."""

    name: str
    limits: tuple[tuple[str, str, float], ...]

    def describe(self) -> str:
        return ", ".join(f"{m.upper()} {s.upper()} <= {v:g} s" for m, s, v in self.limits)


@dataclass(frozen=True)
class TraceSource:
    """Where a trace comes from: a file (``path``, ``format``, ``limit``) or a generator spec (``spec`` mapping,
    ``spec_path`` for its relative paths)."""

    name: str
    path: str | None = None
    format: str | None = None
    limit: int | None = None
    spec: dict | None = None
    spec_path: str | None = None

    def identity(self) -> dict:
        """What the point ids hash: the file path as written in the sweep file plus format and limit, or the
        generator spec."""
        return {"name": self.name, "path": self.path, "format": self.format, "limit": self.limit,
                "spec": self.spec}


@dataclass(frozen=True)
class RateSearch:
    """Bisection on the arrival rate (requests/s) for every configuration: the highest rate in [low, high] that
    meets SLO set ``slo``, to a relative ``tolerance``, in at most ``max_iter`` simulations after the two ends."""

    low: float
    high: float
    tolerance: float = 0.05
    max_iter: int = 8
    slo: str = ""


@dataclass
class Point:
    """One run of the sweep: a resolved deployment mapping, a trace name and an arrival rate (requests/s or
    None for the trace's own arrivals). ``id`` hashes all of it (plus seed and SLOs): the resume key."""

    id: str
    index: int
    config_id: str
    params: dict          # dotted axis path -> value
    deployment: dict      # the base with `set` and `params` applied
    trace: str
    rate: float | None


@dataclass
class SweepSpec:
    """A parsed sweep file."""

    name: str
    source: str
    base_dir: Path
    base: dict
    axes: list[dict]                 # one dict per dimension: dotted path -> list of values (equal lengths)
    traces: dict[str, TraceSource]
    arrivals: str
    rates: list[float | None]
    slos: list[SLO]
    seed: int
    rate_search: RateSearch | None
    deployment_base_dir: Path | None = None
    raw: dict = field(default_factory=dict)

    @property
    def axis_names(self) -> list[str]:
        return [name for dim in self.axes for name in dim]

    def fingerprint(self) -> dict:
        """Everything besides the deployment and rate that a row depends on."""
        return {"v": ROW_VERSION, "code": simulator_signature(), "seed": self.seed, "arrivals": self.arrivals,
                "slos": [[s.name, [list(x) for x in s.limits]] for s in self.slos]}

    def configs(self) -> list[tuple[dict, dict]]:
        """(params, resolved deployment) of every configuration, in grid order."""
        out = []
        dims = [list(range(len(next(iter(dim.values()))))) for dim in self.axes]
        for combo in product(*dims):
            params = {}
            for dim, i in zip(self.axes, combo):
                for path, values in dim.items():
                    params[path] = values[i]
            dep = copy.deepcopy(self.base)
            for path, value in params.items():
                set_path(dep, path, copy.deepcopy(value), self.source, f"axes.{path}")
            out.append((params, dep))
        return out

    def points(self) -> list[Point]:
        """Every point: rates outermost, then traces, then configurations."""
        configs = self.configs()
        fp = self.fingerprint()
        points = []
        for rate in self.rates:
            for tname, tsrc in self.traces.items():
                for params, dep in configs:
                    cid = stable_hash({"dep": dep, "trace": tsrc.identity(), **fp})
                    pid = stable_hash({"config": cid, "rate": rate})
                    points.append(Point(id=pid, index=len(points), config_id=cid, params=params,
                                        deployment=dep, trace=tname, rate=rate))
        return points


@functools.lru_cache(maxsize=1)
def simulator_signature() -> str:
    """Hash of the simulator's code (every module of the package) and of the bundled profile manifest.

    It is part of every point id, so rows simulated by other code or other tables are never taken as
    finished on resume: after an upgrade the same command reruns every point (the old rows stay in the
    parts folder and are ignored).
    """
    pkg = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for f in sorted(pkg.rglob("*.py")):
        h.update(f.relative_to(pkg).as_posix().encode())
        h.update(f.read_bytes())
    from ..profiles.store import bundled_root

    manifest = bundled_root() / "manifest.json"
    if manifest.is_file():
        h.update(manifest.read_bytes())
    return h.hexdigest()[:12]


def stable_hash(obj: Any, n: int = 16) -> str:
    """Hex digest of the canonical JSON of ``obj`` (keys sorted): equal on every machine and process."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def set_path(target: dict, path: str, value: Any, src: str, field_name: str) -> None:
    """Set ``target[a][b][c] = value`` for ``path`` 'a.b.c', creating missing mappings."""
    keys = path.split(".")
    node = target
    for i, key in enumerate(keys[:-1]):
        nxt = node.get(key)
        if nxt is None:
            nxt = node[key] = {}
        elif not isinstance(nxt, dict):
            raise InputError(f"'{'.'.join(keys[:i + 1])}' is {nxt!r} in the base deployment, not a mapping",
                             path=src, field=field_name, fix="check the dotted path")
        node = nxt
    node[keys[-1]] = value


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep YAML file."""
    path = Path(path)
    raw = read_yaml_mapping(path, what="sweep")
    return sweep_from_dict(raw, source=str(path), base_dir=path.parent)


def sweep_from_dict(raw: Any, *, source: str = "<sweep>", base_dir: Path | None = None) -> SweepSpec:
    """A validated :class:`SweepSpec` from a mapping; errors name ``source`` and the field."""
    src = source
    base_dir = Path(base_dir) if base_dir is not None else Path.cwd()
    if not isinstance(raw, dict):
        raise InputError("a sweep file must be a YAML mapping", path=src)
    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        raise InputError("unknown key", path=src, field=unknown[0], fix=f"allowed: {sorted(TOP_KEYS)}")
    base, dep_dir = _base(raw, src, base_dir)
    fixed = raw.get("set") or {}
    if not isinstance(fixed, dict):
        raise InputError("expected a mapping of dotted paths to values", path=src, field="set")
    for p, value in fixed.items():
        _check_path(p, src, f"set.{p}")
        set_path(base, p, copy.deepcopy(value), src, f"set.{p}")
    axes = _axes(raw, src)
    traces = _traces(raw, src, base_dir)
    arrivals = raw.get("arrivals", "rescale")
    if arrivals not in ARRIVAL_MODES:
        raise InputError(f"unknown arrivals mode {arrivals!r}", path=src, field="arrivals",
                         fix=f"one of {ARRIVAL_MODES}")
    rates = [None] if raw.get("rates") is None else [_positive(v, src, "rates") for v in
                                                      _values(raw["rates"], src, "rates")]
    if len(set(rates)) != len(rates):
        raise InputError("a rate is listed twice", path=src, field="rates")
    slos = _slos(raw, src)
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"must be a whole number >= 0, got {seed!r}", path=src, field="seed")
    search = _rate_search(raw.get("rate_search"), slos, src)
    if search is None and raw.get("rates") is None and not axes:
        raise InputError("nothing to sweep: give axes, rates or rate_search", path=src, field="axes")
    name = str(raw.get("name") or Path(src).stem)
    return SweepSpec(name=name, source=src, base_dir=base_dir, base=base, axes=axes, traces=traces,
                     arrivals=arrivals, rates=rates, slos=slos, seed=seed, rate_search=search,
                     deployment_base_dir=dep_dir, raw=raw)


def _base(raw: dict, src: str, base_dir: Path) -> tuple[dict, Path]:
    """(deployment mapping, folder its relative paths are relative to)."""
    if "base" not in raw:
        raise InputError("required field missing", path=src, field="base",
                         fix="a deployment YAML path (relative to the sweep file) or an inline mapping")
    value = raw["base"]
    if isinstance(value, dict):
        return copy.deepcopy(value), base_dir
    if not isinstance(value, str):
        raise InputError(f"expected a file path or a mapping, got {value!r}", path=src, field="base")
    dep_path = base_dir / value
    if not dep_path.is_file():
        raise InputError(f"deployment file not found: {dep_path}", path=src, field="base")
    return read_yaml_mapping(dep_path, what="deployment"), dep_path.parent


def _check_path(p: Any, src: str, field_name: str) -> None:
    if not isinstance(p, str) or not p or any(not part for part in p.split(".")):
        raise InputError(f"expected a dotted path like decode.parallel.ep, got {p!r}", path=src, field=field_name)


def _values(spec: Any, src: str, field_name: str) -> list:
    """A list of values from a list, ``{values: [...]}``, or a range ``{start, stop, step|num|factor}`` (stop
    included when it falls on the grid)."""
    if isinstance(spec, list):
        values = spec
    elif isinstance(spec, dict) and set(spec) == {"values"}:
        values = spec["values"]
        if not isinstance(values, list):
            raise InputError("values must be a list", path=src, field=f"{field_name}.values")
    elif isinstance(spec, dict):
        values = _range(spec, src, field_name)
    else:
        raise InputError(f"expected a list, {{values: [...]}} or {{start, stop, step}}, got {spec!r}", path=src,
                         field=field_name)
    if not values:
        raise InputError("no values", path=src, field=field_name)
    return values


def _range(spec: dict, src: str, field_name: str) -> list:
    kinds = [k for k in ("step", "num", "factor") if k in spec]
    extra = sorted(set(spec) - {"start", "stop", "step", "num", "factor"})
    if extra or len(kinds) != 1 or "start" not in spec or "stop" not in spec:
        raise InputError("a range needs start, stop and one of step, num, factor", path=src, field=field_name,
                         fix="e.g. {start: 1, stop: 8, step: 1} or {start: 0.5, stop: 16, factor: 2}")
    start, stop = (_number(spec[k], src, f"{field_name}.{k}") for k in ("start", "stop"))
    integral = all(isinstance(spec[k], int) for k in ("start", "stop", kinds[0]))
    if stop < start:
        raise InputError("stop must be >= start", path=src, field=f"{field_name}.stop")
    kind = kinds[0]
    by = _number(spec[kind], src, f"{field_name}.{kind}")
    if kind == "step":
        if by <= 0:
            raise InputError("step must be > 0", path=src, field=f"{field_name}.step")
        n = int(math.floor((stop - start) / by + 1e-9)) + 1
        values = [start + i * by for i in range(n)]
    elif kind == "num":
        if not isinstance(spec["num"], int) or by < 1:
            raise InputError("num must be a whole number >= 1", path=src, field=f"{field_name}.num")
        n = int(by)
        values = [start + (stop - start) * i / (n - 1) for i in range(n)] if n > 1 else [start]
        integral = integral and all(float(v).is_integer() for v in values)
    else:
        if by <= 1 or start <= 0:
            raise InputError("a geometric range needs factor > 1 and start > 0", path=src,
                             field=f"{field_name}.factor")
        values, v = [], start
        while v <= stop * (1 + 1e-9):
            values.append(v)
            v *= by
    if len(values) > 100_000:
        raise InputError(f"{len(values)} values; that is too many for one axis", path=src, field=field_name)
    return [int(round(v)) if integral else round(float(v), 9) for v in values]


def _number(v: Any, src: str, field_name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, Real) or math.isnan(v) or math.isinf(v):
        raise InputError(f"must be a number, got {v!r}", path=src, field=field_name)
    return float(v)


def _positive(v: Any, src: str, field_name: str) -> float:
    x = _number(v, src, field_name)
    if x <= 0:
        raise InputError(f"must be > 0, got {v!r}", path=src, field=field_name)
    return x


def _axes(raw: dict, src: str) -> list[dict]:
    dims: list[dict] = []
    seen: set[str] = set()
    axes = raw.get("axes") or {}
    if not isinstance(axes, dict):
        raise InputError("expected a mapping of dotted paths to value lists", path=src, field="axes")
    for p, spec in axes.items():
        _check_path(p, src, f"axes.{p}")
        dims.append({p: _values(spec, src, f"axes.{p}")})
        seen.add(p)
    groups = raw.get("zip") or []
    if isinstance(groups, dict):
        groups = [groups]
    if not isinstance(groups, list):
        raise InputError("expected a list of mappings (axes that vary together)", path=src, field="zip")
    for g, group in enumerate(groups):
        where = f"zip[{g}]"
        if not isinstance(group, dict) or not group:
            raise InputError("expected a mapping of dotted paths to equal-length lists", path=src, field=where)
        dim = {}
        for p, spec in group.items():
            _check_path(p, src, f"{where}.{p}")
            dim[p] = _values(spec, src, f"{where}.{p}")
        lengths = {p: len(v) for p, v in dim.items()}
        if len(set(lengths.values())) != 1:
            raise InputError(f"zipped axes need equal lengths, got {lengths}", path=src, field=where)
        dims.append(dim)
    for dim in dims[len(axes):]:
        for p in dim:
            if p in seen:
                raise InputError("axis given twice", path=src, field=p)
            seen.add(p)
    for p in seen:
        for q in seen:
            if p != q and q.startswith(p + "."):
                raise InputError(f"axis {q!r} lies inside axis {p!r}", path=src, field=q)
    return dims


def _traces(raw: dict, src: str, base_dir: Path) -> dict[str, TraceSource]:
    if ("trace" in raw) == ("traces" in raw):
        raise InputError("give exactly one of trace (one) or traces (a mapping name -> trace)", path=src,
                         field="trace", fix="e.g. trace: {path: ../traces/poisson_lognormal_1k.csv, limit: 300}")
    if "trace" in raw:
        entries = {"trace": raw["trace"]}
        prefix = {"trace": "trace"}
    else:
        if not isinstance(raw["traces"], dict) or not raw["traces"]:
            raise InputError("expected a mapping of names to traces", path=src, field="traces")
        entries = {str(k): v for k, v in raw["traces"].items()}
        prefix = {k: f"traces.{k}" for k in entries}
    out = {}
    for name, t in entries.items():
        where = prefix[name]
        if isinstance(t, str):
            t = {"path": t}
        if not isinstance(t, dict):
            raise InputError("expected {path, format, limit}, {spec: FILE} or {generate: {...}}", path=src,
                             field=where)
        bad = sorted(set(t) - TRACE_KEYS)
        if bad:
            raise InputError("unknown key", path=src, field=f"{where}.{bad[0]}", fix=f"allowed: {sorted(TRACE_KEYS)}")
        kinds = [k for k in ("path", "spec", "generate") if k in t]
        if len(kinds) != 1:
            raise InputError("give exactly one of path, spec, generate", path=src, field=where)
        limit = t.get("limit")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise InputError(f"must be a whole number >= 1, got {limit!r}", path=src, field=f"{where}.limit")
        if kinds[0] == "path":
            p = base_dir / str(t["path"])
            if not p.is_file():
                raise InputError(f"trace file not found: {p}", path=src, field=f"{where}.path")
            out[name] = TraceSource(name, path=str(t["path"]), format=t.get("format"), limit=limit)
        elif kinds[0] == "spec":
            from ..traces.spec import load_spec

            p = base_dir / str(t["spec"])
            if not p.is_file():
                raise InputError(f"trace spec not found: {p}", path=src, field=f"{where}.spec")
            out[name] = TraceSource(name, spec=load_spec(p), spec_path=str(p), limit=limit)
        else:
            if not isinstance(t["generate"], dict):
                raise InputError("expected a trace spec mapping (see traces/specs/)", path=src,
                                 field=f"{where}.generate")
            out[name] = TraceSource(name, spec=copy.deepcopy(t["generate"]), spec_path=str(base_dir / "_"),
                                    limit=limit)
    return out


def _slos(raw: dict, src: str) -> list[SLO]:
    if "slo" in raw and "slos" in raw:
        raise InputError("give slo (one set) or slos (named sets), not both", path=src, field="slos")
    if "slo" in raw:
        sets = {"slo": raw["slo"]}
        where = {"slo": "slo"}
    else:
        sets = raw.get("slos") or {}
        if not isinstance(sets, dict):
            raise InputError("expected a mapping of names to SLO sets", path=src, field="slos")
        where = {k: f"slos.{k}" for k in sets}
    out = []
    for name, limits in sets.items():
        if not isinstance(limits, dict) or not limits:
            raise InputError("expected a mapping like {ttft_p90_s: 2.0, tpot_p90_s: 0.05}", path=src,
                             field=where[name])
        if not re.fullmatch(r"[A-Za-z0-9_\-]+", str(name)):
            raise InputError("SLO names may hold letters, digits, '_' and '-'", path=src, field=where[name])
        triples = []
        for key, value in limits.items():
            m = SLO_RE.match(str(key))
            if not m:
                raise InputError("unknown SLO key", path=src, field=f"{where[name]}.{key}",
                                 fix="<ttft|tpot|e2e>_<p50..p99|median|mean>_<s|ms>, e.g. ttft_p90_s")
            v = _positive(value, src, f"{where[name]}.{key}")
            stat = "p50" if m.group(2) == "median" else m.group(2)
            triples.append((m.group(1), stat, v / 1000.0 if m.group(3) == "ms" else v))
        out.append(SLO(str(name), tuple(triples)))
    return out


def _rate_search(spec: Any, slos: list[SLO], src: str) -> RateSearch | None:
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise InputError("expected {low, high, tolerance, max_iter, slo}", path=src, field="rate_search")
    bad = sorted(set(spec) - RATE_SEARCH_KEYS)
    if bad:
        raise InputError("unknown key", path=src, field=f"rate_search.{bad[0]}",
                         fix=f"allowed: {sorted(RATE_SEARCH_KEYS)}")
    for k in ("low", "high"):
        if k not in spec:
            raise InputError("required field missing", path=src, field=f"rate_search.{k}")
    low, high = _positive(spec["low"], src, "rate_search.low"), _positive(spec["high"], src, "rate_search.high")
    if high <= low:
        raise InputError("high must be > low", path=src, field="rate_search.high")
    tol = _positive(spec.get("tolerance", 0.05), src, "rate_search.tolerance")
    max_iter = spec.get("max_iter", 8)
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise InputError(f"must be a whole number >= 1, got {max_iter!r}", path=src, field="rate_search.max_iter")
    if not slos:
        raise InputError("a rate search needs an SLO", path=src, field="rate_search", fix="add slo: {...}")
    names = [s.name for s in slos]
    slo = str(spec.get("slo", names[0]))
    if slo not in names:
        raise InputError(f"unknown SLO set {slo!r}", path=src, field="rate_search.slo", fix=f"one of {names}")
    return RateSearch(low=low, high=high, tolerance=tol, max_iter=max_iter, slo=slo)
