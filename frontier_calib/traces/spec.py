"""Trace specs: a YAML-friendly dict describing a synthetic trace (examples in traces/specs/*.yaml).

``kind: synthetic`` (the default)::

    num_requests: 1000
    arrival: {kind: poisson, rate: 5}       # requests/s; constant(rate), poisson(rate),
                                            # gamma(rate, burstiness); omit: all arrive at 0 s
    input_tokens: {kind: lognormal, mean: 1000, sigma: 0.5, max_tokens: 8192}
    output_tokens: 200                      # a whole number means {kind: fixed, value: 200}
    seed: 0                                 # default 0
    concurrency: 8                          # optional: closed loop with 8 clients (no arrival then)

``kind: shared_prefix`` takes the parameters of :func:`shared_prefix_trace` (num_groups,
prompts_per_group, system_prompt_len, question_len, output_len, arrival, seed, hash_block_size) and
``concurrency``.

Length kinds (token counts): fixed(value), uniform(lo, hi), lognormal(mean, sigma, max_tokens),
empirical(values), or lengths resampled from a trace file:
``{kind: empirical, trace: PATH, column: input_tokens, format: mooncake}`` (PATH relative to the spec
file; column defaults to the one being generated; format defaults to detection).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


from ..errors import FrontierError, InputError
from ..io import read_yaml_mapping
from .arrivals import ArrivalProcess, constant, gamma, poisson
from .generators import closed_loop, shared_prefix_trace, synthetic_trace
from .lengths import LengthDistribution, empirical, fixed, lognormal, uniform
from .loader import load_trace
from .schema import Trace

ARRIVALS: dict[str, Callable[..., ArrivalProcess]] = {"constant": constant, "poisson": poisson, "gamma": gamma}
LENGTHS: dict[str, Callable[..., LengthDistribution]] = {
    "fixed": fixed, "uniform": uniform, "lognormal": lognormal, "empirical": empirical,
}
SYNTHETIC_KEYS = ("kind", "num_requests", "arrival", "input_tokens", "output_tokens", "seed", "concurrency")
SHARED_PREFIX_KEYS = ("kind", *inspect.signature(shared_prefix_trace).parameters, "concurrency")


def load_spec(path: str | Path) -> dict:
    """Read a YAML spec file (a mapping)."""
    return read_yaml_mapping(path, what="trace spec")


def trace_from_spec(spec: Mapping[str, Any], *, spec_path: str | Path | None = None) -> Trace:
    """Build the trace a spec describes; errors name ``spec_path`` and the offending key."""
    return _Builder(spec_path).trace(spec)


class _Builder:
    def __init__(self, spec_path: str | Path | None):
        self.where = str(spec_path) if spec_path is not None else None
        self.base_dir = Path(spec_path).parent if spec_path is not None else Path.cwd()

    def fail(self, message: str, field: str | None = None, fix: str | None = None) -> InputError:
        return InputError(message, path=self.where, field=field, fix=fix)

    def trace(self, spec: Mapping[str, Any]) -> Trace:
        if not isinstance(spec, Mapping):
            raise self.fail(f"a trace spec must be a mapping, got {type(spec).__name__}")
        kind = spec.get("kind", "synthetic")
        if kind not in ("synthetic", "shared_prefix"):
            raise self.fail(f"unknown kind {kind!r}; use synthetic or shared_prefix", "kind")
        self.check_keys(spec, SYNTHETIC_KEYS if kind == "synthetic" else SHARED_PREFIX_KEYS, "")
        concurrency = spec.get("concurrency")
        if concurrency is not None and spec.get("arrival") is not None:
            raise self.fail("a closed-loop trace has no arrival process", "concurrency",
                            fix="remove either concurrency or arrival")
        try:
            trace = self.synthetic(spec) if kind == "synthetic" else self.shared_prefix(spec)
            return trace if concurrency is None else closed_loop(trace, concurrency)
        except InputError:
            raise
        except FrontierError as exc:
            raise self.fail(str(exc)) from exc

    def synthetic(self, spec: Mapping[str, Any]) -> Trace:
        for name in ("num_requests", "input_tokens", "output_tokens"):
            if name not in spec:
                raise self.fail("missing key", name)
        return synthetic_trace(spec["num_requests"], arrival=self.arrival(spec.get("arrival")),
                               input_len=self.lengths(spec["input_tokens"], "input_tokens"),
                               output_len=self.lengths(spec["output_tokens"], "output_tokens"),
                               seed=spec.get("seed", 0))

    def shared_prefix(self, spec: Mapping[str, Any]) -> Trace:
        params = {k: v for k, v in spec.items() if k not in ("kind", "concurrency")}
        self.check_required(params, shared_prefix_trace, "")
        params["arrival"] = self.arrival(params.get("arrival"))
        for name in ("question_len", "output_len"):
            params[name] = self.lengths(params[name], name)
        return shared_prefix_trace(**params)

    def arrival(self, spec: object) -> ArrivalProcess | None:
        if spec is None:
            return None
        factory, params = self.kind(spec, ARRIVALS, "arrival")
        return self.call(factory, params, "arrival")

    def lengths(self, spec: object, field: str) -> LengthDistribution:
        if isinstance(spec, int) and not isinstance(spec, bool):
            spec = {"kind": "fixed", "value": spec}
        factory, params = self.kind(spec, LENGTHS, field)
        if factory is empirical and "trace" in params:
            params = self.trace_lengths(params, field)
        return self.call(factory, params, field)

    def trace_lengths(self, params: dict, field: str) -> dict:
        """{trace: PATH, column, format} -> {values, label} for empirical()."""
        self.check_keys(params, ("trace", "column", "format"), f"{field}.")
        column = params.get("column", "output_tokens" if "output" in field else "input_tokens")
        if column not in ("input_tokens", "output_tokens"):
            raise self.fail(f"column must be input_tokens or output_tokens, got {column!r}", f"{field}.column")
        path = self.base_dir / str(params["trace"])
        values = load_trace(path, params.get("format")).requests[column].to_numpy()
        return {"values": values, "label": f"{column} of {params['trace']}"}

    def kind(self, spec: object, table: Mapping[str, Callable], field: str) -> tuple[Callable, dict]:
        if not isinstance(spec, Mapping) or "kind" not in spec:
            raise self.fail(f"must be a mapping with a kind ({', '.join(table)})", field)
        if spec["kind"] not in table:
            raise self.fail(f"unknown kind {spec['kind']!r}; use one of {', '.join(table)}", f"{field}.kind")
        return table[spec["kind"]], {k: v for k, v in spec.items() if k != "kind"}

    def call(self, factory: Callable, params: dict, field: str) -> Any:
        self.check_keys(params, tuple(inspect.signature(factory).parameters), f"{field}.")
        self.check_required(params, factory, f"{field}.")
        try:
            return factory(**params)
        except FrontierError as exc:
            raise self.fail(str(exc), field) from exc

    def check_keys(self, params: Mapping, allowed: tuple[str, ...], prefix: str) -> None:
        for key in params:
            if key not in allowed:
                raise self.fail(f"unknown key; allowed here: {', '.join(a for a in allowed if a != 'kind')}",
                                f"{prefix}{key}")

    def check_required(self, params: Mapping, factory: Callable, prefix: str) -> None:
        for name, p in inspect.signature(factory).parameters.items():
            if p.default is inspect.Parameter.empty and name not in params:
                raise self.fail("missing key", f"{prefix}{name}")
