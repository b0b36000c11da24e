"""`--executor ray` on a local Ray instance (2 CPUs) gives the same rows as the local executor."""

from pathlib import Path

import pandas as pd
import pytest
import yaml

ray = pytest.importorskip("ray")

from frontier_calib.sweep import NONDETERMINISTIC_COLUMNS, run_sweep  # noqa: E402
from frontier_calib.sweep.executors import install_model_files  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def test_ray_rows_equal_local_rows(tmp_path, frontier_cache):
    raw = {
        "base": str(REPO / "deployments" / "llama2-7b-h100-vllm.yaml"),
        "axes": {"replicas": [1, 2], "parallel.tp": [1, 3]},          # tp=3: infeasible rows travel too
        "trace": {"path": str(REPO / "traces" / "poisson_lognormal_1k.csv"), "limit": 100},
        "rates": [4, 12],
        "slo": {"ttft_p90_s": 0.5, "tpot_p90_s": 0.02},
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw))
    local = run_sweep(path, tmp_path / "local", workers=1, progress=False, plots=False)
    remote = run_sweep(path, tmp_path / "ray", executor="ray", workers=2, progress=False, plots=False)
    assert not ray.is_initialized()                      # the instance it started is shut down again
    assert remote.complete and len(remote.results) == 8
    assert (remote.results["status"] == "ok").sum() == 4
    drop = list(NONDETERMINISTIC_COLUMNS)
    pd.testing.assert_frame_equal(remote.results.drop(columns=drop), local.results.drop(columns=drop),
                                  check_exact=True)


def test_model_files_are_installed_where_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("FRONTIER_CALIB_CACHE", str(tmp_path))
    files = {"models/h100_sxm/vllm/gemm-x/index.json": b"{}", "models/h100_sxm/vllm/gemm-x/m.ubj": b"abc"}
    assert install_model_files(files) == 2
    assert (tmp_path / "models/h100_sxm/vllm/gemm-x/m.ubj").read_bytes() == b"abc"
    assert install_model_files(files) == 0               # already there: nothing shipped is written again
