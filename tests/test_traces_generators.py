"""Synthetic generators: determinism, distribution sanity, shared prefixes, closed loops and specs."""

from __future__ import annotations

import numpy as np
import pytest

from frontier_calib.errors import FrontierError, InputError
from frontier_calib.traces import (closed_loop, constant, empirical, fixed, gamma, lognormal, poisson,
                                   shared_prefix_trace, synthetic_trace, trace_from_spec, uniform)

SPEC = {"num_requests": 1000, "arrival": {"kind": "poisson", "rate": 5},
        "input_tokens": {"kind": "lognormal", "mean": 1000, "sigma": 0.5},
        "output_tokens": {"kind": "fixed", "value": 200}, "seed": 0}


def test_same_seed_same_frame_other_seed_other_frame():
    make = lambda seed: synthetic_trace(500, arrival=gamma(3.0, 0.5), input_len=lognormal(800, 0.7),  # noqa: E731
                                        output_len=uniform(10, 300), seed=seed)
    assert make(4).requests.equals(make(4).requests)
    assert not make(4).requests.equals(make(5).requests)
    assert trace_from_spec(SPEC).requests.equals(trace_from_spec(dict(SPEC)).requests)


def test_columns_draw_from_independent_streams():
    a = synthetic_trace(200, arrival=poisson(2.0), input_len=uniform(1, 100), output_len=10, seed=1)
    b = synthetic_trace(200, arrival=constant(2.0), input_len=uniform(1, 100), output_len=lognormal(50, 1), seed=1)
    assert a.requests["input_tokens"].equals(b.requests["input_tokens"])


@pytest.mark.parametrize("process", [poisson(5.0), gamma(5.0, 0.3), gamma(5.0, 4.0)])
def test_mean_arrival_rate_over_20k_requests(process):
    t = process.sample(20_000, seed=0)
    assert t[0] == 0.0 and np.all(np.diff(t) >= 0)
    assert (len(t) - 1) / t[-1] == pytest.approx(5.0, rel=0.03)


def test_burstiness_sets_the_spread_of_gaps():
    cv = lambda p: np.std(np.diff(p.sample(20_000, 0))) / np.mean(np.diff(p.sample(20_000, 0)))  # noqa: E731
    assert cv(poisson(5.0)) == pytest.approx(1.0, rel=0.05)  # exponential gaps: CV 1
    assert cv(gamma(5.0, 0.25)) == pytest.approx(2.0, rel=0.08)  # CV = 1/sqrt(burstiness)
    np.testing.assert_allclose(constant(4.0).sample(5), [0, 0.25, 0.5, 0.75, 1.0])
    assert not poisson(float("inf")).sample(3).any()


def test_length_distributions():
    x = lognormal(1000, 0.5).sample(20_000, seed=0)
    assert x.dtype == np.int64 and x.min() >= 1
    assert x.mean() == pytest.approx(1000, rel=0.03)
    assert lognormal(1000, 2.0, max_tokens=1500).sample(5000, 0).max() == 1500
    u = uniform(3, 5).sample(3000, 0)
    assert set(u) == {3, 4, 5}
    assert (fixed(7).sample(4) == 7).all()
    assert set(empirical([2, 9]).sample(100, 0)) == {2, 9}


@pytest.mark.parametrize("make, text", [
    (lambda: poisson(0), "rate must be"),
    (lambda: gamma(1.0, 0), "burstiness must be"),
    (lambda: uniform(5, 3), "lo <= hi"),
    (lambda: fixed(0), "value must be"),
    (lambda: lognormal(100, -1), "sigma"),
    (lambda: empirical([1, 0]), "empirical"),
    (lambda: synthetic_trace(0, input_len=1, output_len=1), "num_requests"),
])
def test_bad_parameters(make, text):
    with pytest.raises(FrontierError, match=text):
        make()


def test_shared_prefix_blocks_are_shared_within_groups_only():
    trace = shared_prefix_trace(3, 4, system_prompt_len=40, question_len=20, output_len=8,
                                arrival=poisson(10.0), seed=2, hash_block_size=16)
    df = trace.requests
    assert trace.num_requests == 12 and trace.hash_block_size == 16
    assert (df["input_tokens"] == 60).all()
    ids = df["hash_ids"].tolist()
    assert all(len(h) == 4 for h in ids)  # ceil(60 / 16)
    heads = {tuple(h[:2]) for h in ids}  # 40 // 16 = 2 whole system-prompt blocks per group
    assert len(heads) == 3
    tails = [x for h in ids for x in h[2:]]
    assert len(tails) == len(set(tails)) and not set(tails) & {x for h in heads for x in h}
    groups = [tuple(h[:2]) for h in ids]
    assert groups != sorted(groups)  # interleaved, not group after group
    again = shared_prefix_trace(3, 4, 40, 20, 8, arrival=poisson(10.0), seed=2, hash_block_size=16)
    assert again.requests.equals(df)


def test_closed_loop_from_trace_and_from_lengths():
    base = synthetic_trace(10, arrival=poisson(1.0), input_len=uniform(1, 9), output_len=3, seed=0)
    loop = closed_loop(base, 4)
    assert loop.concurrency == 4 and (loop.requests["arrival_s"] == 0).all()
    assert loop.requests["request_id"].tolist() == base.requests["request_id"].tolist()
    pairs = closed_loop(([5, 6, 7], [1, 2, 3]), 2)
    assert pairs.requests["input_tokens"].tolist() == [5, 6, 7] and pairs.concurrency == 2
    with pytest.raises(FrontierError, match="concurrency"):
        closed_loop(base, 0)


def test_spec_forms():
    trace = trace_from_spec(SPEC)
    assert trace.num_requests == 1000 and (trace.requests["output_tokens"] == 200).all()
    loop = trace_from_spec({"num_requests": 8, "input_tokens": 100, "output_tokens": 10, "concurrency": 2})
    assert loop.concurrency == 2
    shared = trace_from_spec({"kind": "shared_prefix", "num_groups": 2, "prompts_per_group": 3,
                              "system_prompt_len": 64, "question_len": {"kind": "uniform", "lo": 8, "hi": 16},
                              "output_len": 5, "hash_block_size": 16})
    assert shared.num_requests == 6 and (shared.requests["arrival_s"] == 0).all()


def test_spec_empirical_from_a_trace_file(tmp_path):
    from frontier_calib.traces import write_trace

    write_trace(synthetic_trace(50, input_len=uniform(100, 120), output_len=uniform(5, 6), seed=0),
                tmp_path / "real.csv")
    spec = {"num_requests": 300, "input_tokens": {"kind": "empirical", "trace": "real.csv"},
            "output_tokens": {"kind": "empirical", "trace": "real.csv"}}
    trace = trace_from_spec(spec, spec_path=tmp_path / "spec.yaml")
    assert trace.requests["input_tokens"].between(100, 120).all()
    assert set(trace.requests["output_tokens"]) == {5, 6}


@pytest.mark.parametrize("change, field, text", [
    ({"arrival": {"kind": "weibull", "rate": 1}}, "arrival.kind", "poisson"),
    ({"arrival": {"kind": "poisson", "rat": 1}}, "arrival.rat", "unknown key"),
    ({"arrival": {"kind": "gamma", "rate": 1}}, "arrival.burstiness", "missing key"),
    ({"arrival": {"kind": "poisson", "rate": -2}}, "arrival", "rate must be"),
    ({"input_tokens": {"mean": 3}}, "input_tokens", "mapping with a kind"),
    ({"output_tokens": {"kind": "uniform", "lo": 9, "hi": 1}}, "output_tokens", "lo <= hi"),
    ({"num_request": 5}, "num_request", "unknown key"),
    ({"concurrency": 4}, "concurrency", "no arrival process"),
    ({"kind": "sharegpt"}, "kind", "unknown kind"),
    ({"num_requests": 2.5}, None, "num_requests must be a whole number"),
])
def test_bad_specs_name_the_key(change, field, text):
    with pytest.raises(InputError, match=text) as info:
        trace_from_spec({**SPEC, **change}, spec_path="spec.yaml")
    assert info.value.field == field and info.value.path == "spec.yaml"


def test_spec_missing_required_key():
    spec = {k: v for k, v in SPEC.items() if k != "output_tokens"}
    with pytest.raises(InputError, match="missing key") as info:
        trace_from_spec(spec)
    assert info.value.field == "output_tokens"
