"""The measurement-glitch screen (opmodel/screen.py) on hand-made tables: which rows it drops, which it keeps, the
table-level limit, and how `fit_all`, `ModelSet` and the `fit` command report it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from frontier_calib.cli import main
from frontier_calib.errors import CoverageError
from frontier_calib.io import write_table
from frontier_calib.opmodel.registry import ModelSet, fit_all
from frontier_calib.opmodel.screen import GLITCH_FACTOR, TABLE_GLITCH_LIMIT, glitch_mask, unmeasured_reason

GPU, ENGINE = "h100_sxm", "vllm"
TOKENS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
HEADS = [1, 2, 4, 8, 16, 32, 64, 128]


def bmm_table(dtype: str = "bf16") -> pd.DataFrame:
    """An mla_bmm table (canonical columns) whose latency is smooth in tokens and heads, before any damage."""
    t, h = np.meshgrid(TOKENS, HEADS, indexing="ij")
    t, h = t.ravel(), h.ravel()
    return pd.DataFrame({
        "gpu": GPU, "engine": ENGINE, "engine_version": "test", "kernel": "bmm", "op": "pre",
        "num_tokens": t, "num_heads": h, "dtype": dtype, "latency_ms": 0.01 + 2e-6 * t * h})


def _at(df, tokens, heads):
    return (df["num_tokens"] == tokens) & (df["num_heads"] == heads)


def test_a_spike_over_both_neighbours_is_screened_and_nothing_else():
    df = bmm_table()
    df.loc[_at(df, 64, 8), "latency_ms"] *= 10                              # the glitch
    df.loc[df["num_tokens"] >= 256, "latency_ms"] *= 5                      # a step along tokens (every head)
    df.loc[_at(df, 16, 32), "latency_ms"] *= 0.9 * GLITCH_FACTOR            # a bump below the factor
    df.loc[_at(df, 1024, 128), "latency_ms"] *= 10                          # a corner: one neighbour per axis
    mask = glitch_mask(df, "mla_bmm")
    assert df[mask][["num_tokens", "num_heads"]].values.tolist() == [[64, 8]]


def test_a_spike_along_heads_only_is_screened():
    """A glitch run along one sweep (tokens 32-128 at 4 heads) has slow neighbours along tokens, but not along heads."""
    df = bmm_table()
    run = (df["num_heads"] == 4) & df["num_tokens"].between(32, 128)
    df.loc[run, "latency_ms"] *= 20
    assert glitch_mask(df, "mla_bmm").tolist() == run.tolist()


def test_the_unscreened_table_and_a_shuffled_one_give_the_same_mask():
    df = bmm_table()
    df.loc[_at(df, 64, 8), "latency_ms"] *= 10
    shuffled = df.sample(frac=1.0, random_state=3)
    assert not glitch_mask(bmm_table(), "mla_bmm").any()
    assert shuffled[glitch_mask(shuffled, "mla_bmm")].index.tolist() == df[glitch_mask(df, "mla_bmm")].index.tolist()


def test_unmeasured_reason_is_the_table_limit():
    assert unmeasured_reason(5, 100) is None and TABLE_GLITCH_LIMIT == 0.05
    assert "6 of its 100 rows (6.0%) are measurement glitches" in unmeasured_reason(6, 100)


@pytest.fixture()
def damaged_tables():
    """bf16: one glitch (fitted without it); fp8: glitches in 10 % of the rows (not fitted)."""
    bf16, fp8 = bmm_table("bf16"), bmm_table("fp8")
    bf16.loc[_at(bf16, 64, 8), "latency_ms"] *= 10
    for tokens, heads in [(2, 2), (8, 2), (32, 2), (128, 2), (512, 2), (4, 16), (16, 16), (64, 16), (256, 16)]:
        fp8.loc[_at(fp8, tokens, heads), "latency_ms"] *= 10
    return pd.concat([bf16, fp8], ignore_index=True)


def test_fit_all_screens_before_the_split_and_skips_an_unmeasured_table(damaged_tables):
    report = fit_all(GPU, ENGINE, tables={"mla_bmm": damaged_tables}, model_params={"n_estimators": 30})
    n = len(TOKENS) * len(HEADS)
    assert report.screened == {"mla_bmm": (10, 2 * n)}
    ms = report.model_set
    assert set(ms.models) == {("mla_bmm", "bf16")}
    assert "9 of its 88 rows" in ms.not_fitted[("mla_bmm", "fp8")]
    # the held-out rows of both learners come from the screened table: 87 rows, 20 % of them held out
    rows = {(r["split"], r["model"]): r["rows"] for r in report.results}
    assert rows[("random", "xgboost")] == rows[("random", "random_forest")] == round(0.2 * (n - 1))
    with pytest.raises(CoverageError, match="mla_bmm.*dtype=fp8.*not fitted, 9 of its 88 rows"):
        ms.predict("mla_bmm", bmm_table("fp8").head(3))
    assert ms.predict("mla_bmm", bmm_table("bf16").head(3)).shape == (3,)


def test_not_fitted_survives_save_and_load(damaged_tables, tmp_path):
    ms = fit_all(GPU, ENGINE, tables={"mla_bmm": damaged_tables}, with_baselines=False, extrapolation=False,
                 model_params={"n_estimators": 30}).model_set
    loaded = ModelSet.load(ms.save(tmp_path / "set"))
    assert loaded.not_fitted == ms.not_fitted and set(loaded.models) == {("mla_bmm", "bf16")}


def test_fit_command_reports_the_screen(damaged_tables, tmp_path):
    root = tmp_path / "profiles"
    write_table(damaged_tables, root / GPU / ENGINE / "mla_bmm.parquet")
    report = tmp_path / "r.json"
    result = CliRunner().invoke(main, ["fit", "--gpu", GPU, "--engine", ENGINE, "--profiles", str(root),
                                       "--out", str(tmp_path / "m"), "--report-json", str(report)])
    assert result.exit_code == 0, result.output
    assert "Measurement-glitch screen (a row more than 3x slower than both neighbours" in result.output
    assert "mla_bmm: 10 of 176 rows screened" in result.output
    assert "mla_bmm/fp8: not fitted, 9 of its 88 rows" in result.output
    screen = json.loads(report.read_text())["screen"]
    assert screen["families"] == {"mla_bmm": {"rows": 176, "screened": 10}}
    assert [(e["family"], e["group"]) for e in screen["not_fitted"]] == [("mla_bmm", "fp8")]
