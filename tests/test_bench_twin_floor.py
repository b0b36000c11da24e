"""The twin floor of benchmarks/silicon_twin_floor.py: the best common TTFT of a set of osl-twins."""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

_spec = importlib.util.spec_from_file_location(
    "silicon_twin_floor", Path(__file__).resolve().parents[1] / "benchmarks" / "silicon_twin_floor.py")
F = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(F)


def test_best_common_prediction_minimises_the_summed_ape():
    y = [300.0, 100.0, 110.0]
    ape = F.best_common_ape(y)
    # the 1/y-weighted median is 110 ms: errors in the rows' order
    assert ape == pytest.approx([190 / 300, 0.1, 0.0])
    grid = np.linspace(50, 400, 3501)
    brute = min(np.abs(p / np.array(y) - 1).sum() for p in grid)
    assert ape.sum() == pytest.approx(brute, rel=1e-3)


def test_floor_groups_twins_only():
    rows = pd.DataFrame({"id": ["a", "b", "c", "d"], "status": "ok", "system": "h100_sxm", "backend": "vllm",
                         "config_key": ["k", "k", "k", "j"], "isl": 1024, "concurrency": 8,
                         "osl": [128, 512, 1024, 128], "silicon_ttft_ms": [100.0, 100.0, 200.0, 50.0],
                         "tp_size": [1.0, 1.0, 1.0, np.nan]})
    fl = F.floor_ape(rows)
    assert list(fl) == pytest.approx([0.0, 0.0, 0.5, 0.0])   # d has no twin (another config)
