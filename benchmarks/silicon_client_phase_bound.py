"""How much of the silicon TTFT error is the benchmark clients' phase, which the rows do not record?

A closed-loop benchmark with fixed lengths can run with its clients in step (every round's prompts arrive
together and are prefilled together) or spread out (each prompt prefilled on its own); ``validate silicon``
replays the fully spread case by default (``desync`` 1) and a calibration file may set a share per engine × GPU.
This benchmark replays the selected aggregated rows at both ends — spread (``desync`` 1) and in step
(``desync`` 0), the physical engine defaults otherwise — and reports, per engine × GPU and overall:

* the TTFT MAPE of each end;
* ``bracket``: the share of rows whose measured TTFT lies between the two ends (±10 %);
* ``oracle``: the TTFT MAPE if every row were predicted at the best point between the two ends — an
  optimistic floor for any model that only chooses how synchronised the clients are (a per-row oracle, so no
  per-group constant can do better);
* ``above sync`` / ``below spread``: rows slower than even fully synchronised clients, or faster than fully
  spread ones — error that no client model explains.

    python benchmarks/silicon_client_phase_bound.py                       # H100 + H200 agg, two replays
    python benchmarks/silicon_client_phase_bound.py --spread A/rows.csv --sync B/rows.csv   # reuse replays

Each replay is ``frontier-calib validate silicon --mode agg --calibration ...`` (about 80 s each with fitted
models cached, 2 cores).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml


def replay(gpus: list[str], calibration: str, out: Path) -> Path:
    """Run ``validate silicon`` over the agg rows of ``gpus`` into ``out``; the path of its rows.csv."""
    cmd = [sys.executable, "-m", "frontier_calib.cli", "validate", "silicon", "--mode", "agg",
           "--calibration", calibration, "--out", str(out), "--overwrite"]
    for g in gpus:
        cmd += ["--gpu", g]
    print("$", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True)
    return out / "rows.csv"


def in_step_calibration(path: Path) -> Path:
    """A calibration file that keeps every engine's default overheads and puts its clients in step."""
    from frontier_calib.engines import ENGINES

    doc = {"format": "frontier-calib-calibration/1",
           "overheads": {name: {"step_s": rec.overheads["step_s"]} for name, rec in ENGINES.items()},
           "benchmark_desync": {name: 0.0 for name in ENGINES}}
    path.write_text(yaml.safe_dump(doc))
    return path


def phase_table(spread: pd.DataFrame, sync: pd.DataFrame) -> pd.DataFrame:
    """One row per engine × GPU and one 'all' row: the figures of the module docstring (fractions)."""
    m = spread.merge(sync[["id", "pred_ttft_ms"]], on="id", suffixes=("", "_sync"))
    m = m[m["status"] == "ok"].copy()
    meas = m["silicon_ttft_ms"].to_numpy(float)
    a, b = m["pred_ttft_ms"].to_numpy(float), m["pred_ttft_ms_sync"].to_numpy(float)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    m["ape_spread"] = np.abs(a / meas - 1)
    m["ape_sync"] = np.abs(b / meas - 1)
    m["ape_oracle"] = np.where(meas < lo, lo / meas - 1, np.where(meas > hi, 1 - hi / meas, 0.0))
    m["bracket"] = (meas >= 0.9 * lo) & (meas <= 1.1 * hi)
    m["above_sync"] = meas > 1.1 * hi
    m["below_spread"] = meas < 0.9 * lo
    m["group"] = m["backend"] + "@" + m["system"]
    cols = ["ape_spread", "ape_sync", "ape_oracle", "bracket", "above_sync", "below_spread"]
    per = m.groupby("group")[cols].mean()
    per.insert(0, "rows", m.groupby("group").size())
    total = pd.DataFrame([[len(m), *m[cols].mean()]], columns=["rows", *cols], index=["all"])
    return pd.concat([per, total])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gpu", action="append", default=None, help="GPU(s) (default: h100_sxm and h200_sxm)")
    ap.add_argument("--spread", type=Path, help="rows.csv of a replay with spread clients (--calibration none)")
    ap.add_argument("--sync", type=Path, help="rows.csv of a replay with every engine's desync at 0")
    ap.add_argument("--out", type=Path, default=Path("out/client-phase"), help="where the two replays go")
    args = ap.parse_args()
    gpus = args.gpu or ["h100_sxm", "h200_sxm"]
    spread_csv = args.spread or replay(gpus, "none", args.out / "spread")
    if args.sync:
        sync_csv = args.sync
    else:
        with tempfile.TemporaryDirectory() as tmp:
            sync_csv = replay(gpus, str(in_step_calibration(Path(tmp) / "in-step.yaml")), args.out / "sync")
    table = phase_table(pd.read_csv(spread_csv), pd.read_csv(sync_csv))
    shown = table.copy()
    for c in shown.columns[1:]:
        shown[c] = (100 * shown[c]).map(lambda v: f"{v:.1f} %")
    print(shown.to_string())


if __name__ == "__main__":
    main()
