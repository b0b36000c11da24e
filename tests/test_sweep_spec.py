"""Sweep files: parsing, point expansion, stable ids, clear errors; and the analysis helpers (no simulation)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from frontier_calib.cli import main
from frontier_calib.errors import InputError
from frontier_calib.sweep.analysis import best_per_slo, goodput_table, pareto_front, pareto_mask
from frontier_calib.sweep.spec import load_sweep, set_path, sweep_from_dict

REPO = Path(__file__).resolve().parents[1]
TRACE = REPO / "traces" / "poisson_lognormal_1k.csv"
BASE = {"model": "Llama-2-7b", "gpu": "h100_sxm", "engine": "vllm", "scheduler": {"max_num_seqs": 64}}


def spec(**over):
    raw = {"base": dict(BASE), "axes": {"scheduler.max_num_seqs": [16, 32, 64]},
           "trace": {"path": str(TRACE), "limit": 50}, "rates": [1, 2], "slo": {"ttft_p90_s": 1.0}}
    raw.update(over)
    return sweep_from_dict({k: v for k, v in raw.items() if v is not None}, source="s.yaml", base_dir=REPO)


def write(tmp_path, raw) -> Path:
    p = tmp_path / "sweep.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


def test_points_are_the_grid_with_rates_outermost():
    s = spec(axes={"scheduler.max_num_seqs": [16, 32], "replicas": [1, 2, 3]})
    pts = s.points()
    assert len(pts) == 2 * 3 * 2
    assert [p.index for p in pts] == list(range(12))
    assert [p.rate for p in pts] == [1.0] * 6 + [2.0] * 6
    assert pts[0].params == {"scheduler.max_num_seqs": 16, "replicas": 1}
    assert pts[1].params == {"scheduler.max_num_seqs": 16, "replicas": 2}
    assert pts[5].deployment["scheduler"] == {"max_num_seqs": 32}
    assert pts[5].deployment["replicas"] == 3
    assert BASE["scheduler"] == {"max_num_seqs": 64}           # the base is never modified
    # a configuration keeps its config id across rates; point ids are all distinct
    assert pts[0].config_id == pts[6].config_id and pts[0].id != pts[6].id
    assert len({p.id for p in pts}) == 12


def test_zip_varies_axes_together_and_mappings_set_subtrees():
    s = spec(axes={"replicas": [1, 2]},
             zip=[{"parallel.tp": [1, 2, 4], "scheduler.max_num_seqs": [8, 16, 32]}],
             rates=None)
    pts = s.points()
    assert len(pts) == 2 * 3 and pts[0].rate is None
    assert {(p.deployment["parallel"]["tp"], p.deployment["scheduler"]["max_num_seqs"]) for p in pts} == \
        {(1, 8), (2, 16), (4, 32)}
    s2 = spec(axes={"parallel": [{"tp": 1}, {"tp": 2, "pp": 1}]})
    assert s2.points()[1].deployment["parallel"] == {"tp": 2, "pp": 1}


def test_ranges():
    s = spec(axes={"scheduler.max_num_seqs": {"start": 8, "stop": 32, "step": 8}},
             rates={"start": 0.5, "stop": 4, "factor": 2})
    assert s.axes[0]["scheduler.max_num_seqs"] == [8, 16, 24, 32]
    assert s.rates == [0.5, 1.0, 2.0, 4.0]
    s = spec(rates={"start": 0.1, "stop": 0.3, "step": 0.1})
    assert s.rates == [0.1, 0.2, 0.3]
    s = spec(rates={"start": 1, "stop": 2, "num": 3})
    assert s.rates == [1.0, 1.5, 2.0]
    s = spec(axes={"replicas": {"values": [1, 4]}})
    assert s.axes[0]["replicas"] == [1, 4]


def test_ids_are_stable_and_depend_on_what_the_row_depends_on():
    a, b = spec().points(), spec().points()
    assert [p.id for p in a] == [p.id for p in b]
    assert [p.id for p in spec(seed=1).points()] != [p.id for p in a]
    assert [p.id for p in spec(slo={"ttft_p90_s": 2.0}).points()] != [p.id for p in a]
    assert [p.id for p in spec(trace={"path": str(TRACE), "limit": 60}).points()] != [p.id for p in a]
    # adding an axis value keeps the ids of the existing points (resume after extending a sweep)
    more = spec(axes={"scheduler.max_num_seqs": [16, 32, 64, 128]}).points()
    assert {p.id for p in a} < {p.id for p in more}


def test_ids_change_with_the_simulator_code(monkeypatch):
    """Rows simulated by other code (or other bundled tables) must not count as finished on resume."""
    from frontier_calib.sweep import spec as spec_module

    a = [p.id for p in spec().points()]
    monkeypatch.setattr(spec_module, "simulator_signature", lambda: "other-code")
    assert not set(a) & {p.id for p in spec().points()}


def test_set_applies_fixed_overrides_and_paths_into_scalars_fail():
    s = spec(set={"scheduler.block_size": 32, "cluster.nodes": 2})
    dep = s.points()[0].deployment
    assert dep["scheduler"]["block_size"] == 32 and dep["cluster"] == {"nodes": 2}
    d = {"a": 1}
    with pytest.raises(InputError, match="not a mapping"):
        set_path(d, "a.b", 2, "s.yaml", "axes.a.b")


def test_base_from_file_relative_to_the_sweep_file(tmp_path):
    (tmp_path / "deps").mkdir()
    (tmp_path / "deps" / "d.yaml").write_text(yaml.safe_dump(BASE))
    p = write(tmp_path, {"base": "deps/d.yaml", "axes": {"replicas": [1, 2]},
                         "trace": {"path": str(TRACE)}, "slo": {"tpot_p99_ms": 50}})
    s = load_sweep(p)
    assert s.base["model"] == "Llama-2-7b" and s.deployment_base_dir == tmp_path / "deps"
    assert s.slos[0].limits == (("tpot", "p99", 0.05),)     # ms -> s


@pytest.mark.parametrize("change, field", [
    ({"axis": [1]}, "axis"),
    ({"axes": {"scheduler..x": [1]}}, "axes.scheduler..x"),
    ({"axes": {"replicas": []}}, "axes.replicas"),
    ({"axes": {"replicas": {"start": 1, "stop": 4}}}, "axes.replicas"),
    ({"zip": [{"replicas": [1, 2], "parallel.tp": [1]}]}, "zip[0]"),
    ({"rates": [1, -2]}, "rates"),
    ({"slo": {"ttft_p90": 1}}, "slo.ttft_p90"),
    ({"slo": {"ttft_p90_s": "fast"}}, "slo.ttft_p90_s"),
    ({"trace": {"path": "missing.csv"}}, "trace.path"),
    ({"trace": {"path": str(TRACE), "limit": 0}}, "trace.limit"),
    ({"trace": {"path": str(TRACE), "lmit": 5}}, "trace.lmit"),
    ({"arrivals": "uniform"}, "arrivals"),
    ({"rate_search": {"low": 4, "high": 2}}, "rate_search.high"),
    ({"rate_search": {"low": 1, "high": 2, "slo": "nope"}}, "rate_search.slo"),
    ({"seed": -1}, "seed"),
    ({"base": "nowhere.yaml"}, "base"),
])
def test_bad_sweep_files_name_the_file_and_field(tmp_path, change, field):
    raw = {"base": dict(BASE), "axes": {"replicas": [1, 2]}, "trace": {"path": str(TRACE)}, "rates": [1],
           "slo": {"ttft_p90_s": 1.0}}
    raw.update(change)
    p = write(tmp_path, raw)
    with pytest.raises(InputError) as exc:
        load_sweep(p)
    assert str(p) in str(exc.value) and f"field '{field}'" in str(exc.value)


def test_cli_reports_a_bad_sweep_file_in_one_line(tmp_path):
    p = write(tmp_path, {"base": dict(BASE), "axes": {"replicas": [1]}, "trace": {"path": str(TRACE)},
                         "slo": {"ttft_p90_x": 1}})
    res = CliRunner().invoke(main, ["sweep", str(p), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "slo.ttft_p90_x" in lines[0] and "fix:" in lines[0]


def test_bundled_sweep_files_parse():
    small = load_sweep(REPO / "sweeps" / "llama2-7b-small.yaml")
    assert len(small.points()) == 8
    big = REPO / "sweeps" / "deepseek-v3-pd-layouts.yaml"
    if (REPO.parent / "shared" / "traces" / "mooncake_conversation_trace.jsonl").exists():
        assert len(load_sweep(big).points()) == 200


# ---- analysis -------------------------------------------------------------------------------------------


def test_pareto_mask_keeps_exactly_the_undominated_points():
    rng = np.random.default_rng(0)
    x, y = rng.random(200), rng.random(200)
    x[5], y[5] = x[4], y[4]                         # a duplicate of point 4: only one of the two is kept
    mask = pareto_mask(x, y)
    for i in range(len(x)):
        dominated = np.any((x >= x[i]) & (y >= y[i]) & ((x > x[i]) | (y > y[i])))
        if mask[i]:
            assert not dominated
        elif not dominated:
            assert i in (4, 5)
    assert mask[4] != mask[5] or not (mask[4] or mask[5])
    assert pareto_mask(np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0])).all()
    assert pareto_mask(np.array([1.0, 2.0]), np.array([1.0, 2.0])).tolist() == [False, True]


def _table():
    return pd.DataFrame({
        "point_id": list("abcde"), "index": range(5), "config_id": ["c1", "c1", "c2", "c2", "c3"],
        "status": ["ok", "ok", "ok", "ok", "infeasible"], "label": ["A", "A", "B", "B", "C"],
        "trace": "t", "rate_rps": [1.0, 2.0, 1.0, 2.0, 1.0], "offered_rate_rps": [1.0, 2.0, 1.0, 2.0, np.nan],
        "num_gpus": [1, 1, 2, 2, 4],
        "output_tok_s_per_gpu": [100.0, 180.0, 90.0, 170.0, np.nan],
        "per_user_tok_s": [50.0, 30.0, 60.0, 40.0, np.nan],
        "request_throughput_rps": [1.0, 1.8, 1.0, 2.0, np.nan],
        "ttft_p90_s": [0.5, 3.0, 0.4, 0.9, np.nan], "tpot_p90_s": 0.02, "e2e_p90_s": 5.0,
        "meets__fast": [True, False, True, True, False], "goodput_rps__fast": [1.0, 0.5, 1.0, 1.9, np.nan],
    })


def test_best_per_slo_and_goodput_table():
    df = _table()
    best = best_per_slo(df)
    assert best.loc[0, "slo"] == "fast" and best.loc[0, "point_id"] == "d"     # 170 tok/s/GPU among meeting
    assert best.loc[0, "meeting_points"] == 3
    g = goodput_table(df, "fast")
    assert list(g["label"]) == ["A", "B"]                   # per GPU: A 1.0/1, B 1.9/2
    assert g.loc[0, "best_goodput_rps"] == 1.0 and g.loc[0, "max_rate_meeting_slo_rps"] == 1.0
    assert g.loc[1, "at_rate_rps"] == 2.0 and g.loc[1, "max_rate_meeting_slo_rps"] == 2.0
    front = pareto_front(df)
    assert list(front["point_id"]) == ["b", "d", "a", "c"]
    none = df.assign(**{"meets__fast": False})
    assert best_per_slo(none).loc[0, "meeting_points"] == 0
