"""What a person wants from a sweep's rows: the Pareto front, the best configuration per SLO, goodput per
configuration. Every function takes the results table (see run.py for its columns) and returns a DataFrame.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

X_COL, Y_COL = "per_user_tok_s", "output_tok_s_per_gpu"   # tokens/s one user sees; output tokens/s per GPU


def ok_rows(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty:
        return df
    return df[(df["status"] == "ok") & df[X_COL].notna() & df[Y_COL].notna()]


def pareto_mask(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """True where no other point is at least as good in both x and y and better in one (both maximised)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    order = np.lexsort((-y, -x))        # x descending, ties: y descending
    mask = np.zeros(len(x), dtype=bool)
    best_y = -np.inf
    for i in order:
        if y[i] > best_y:
            mask[i] = True
            best_y = y[i]
    return mask


def pareto_front(df: pd.DataFrame) -> pd.DataFrame:
    """The completed points on the front of output tokens/s per GPU vs. per-user tokens/s, by per-user rate."""
    ok = ok_rows(df)
    if ok.empty:
        return ok
    front = ok[pareto_mask(ok[X_COL].to_numpy(), ok[Y_COL].to_numpy())]
    return front.sort_values(X_COL, kind="stable").reset_index(drop=True)


def slo_names(df: pd.DataFrame) -> list[str]:
    return [c.removeprefix("meets__") for c in df.columns if c.startswith("meets__")]


BEST_COLUMNS = ["slo", "point_id", "label", "trace", "rate_rps", "num_gpus", "output_tok_s_per_gpu", "per_user_tok_s",
                "request_throughput_rps", "goodput_rps", "goodput_rps_per_gpu", "ttft_p90_s", "tpot_p90_s",
                "e2e_p90_s", "meeting_points"]


def best_per_slo(df: pd.DataFrame) -> pd.DataFrame:
    """Per SLO set: among the points meeting it, the one with the most output tokens/s per GPU (ties: more
    goodput, then fewer GPUs, then the earlier point). An SLO no point meets gets a row with empty fields."""
    rows = []
    for slo in slo_names(df):
        ok = ok_rows(df)
        meet = ok[ok[f"meets__{slo}"].astype(bool)]
        if meet.empty:
            rows.append({"slo": slo, "meeting_points": 0})
            continue
        best = meet.sort_values([Y_COL, f"goodput_rps__{slo}", "num_gpus", "index"],
                                ascending=[False, False, True, True], kind="stable").iloc[0]
        row = {k: best[k] for k in BEST_COLUMNS if k in best.index}
        row.update(slo=slo, goodput_rps=best[f"goodput_rps__{slo}"],
                   goodput_rps_per_gpu=best[f"goodput_rps__{slo}"] / best["num_gpus"], meeting_points=len(meet))
        rows.append(row)
    return pd.DataFrame(rows, columns=BEST_COLUMNS)


def goodput_table(df: pd.DataFrame, slo: str) -> pd.DataFrame:
    """Per configuration (deployment and trace; all rates): the highest goodput (requests/s meeting SLO ``slo``)
    over the rates tried, the rate it came at, per GPU, and the highest rate at which the configuration met the
    SLO as a whole. Sorted by goodput per GPU, best first."""
    ok = df[df["status"] == "ok"]
    if ok.empty:
        return pd.DataFrame(columns=["config_id", "label", "trace", "num_gpus", "best_goodput_rps", "at_rate_rps",
                                     "goodput_rps_per_gpu", "max_rate_meeting_slo_rps"])
    col = f"goodput_rps__{slo}"
    rows = []
    for cid, g in ok.groupby("config_id", sort=False):
        i = g[col].fillna(-1).to_numpy().argmax()
        best = g.iloc[i]
        meeting = g[g[f"meets__{slo}"].astype(bool)]["rate_rps"]
        rows.append({"config_id": cid, "label": best["label"], "trace": best["trace"], "num_gpus": best["num_gpus"],
                     "best_goodput_rps": best[col], "at_rate_rps": best["rate_rps"],
                     "goodput_rps_per_gpu": best[col] / best["num_gpus"],
                     "max_rate_meeting_slo_rps": meeting.max() if len(meeting) else np.nan})
    out = pd.DataFrame(rows)
    return out.sort_values(["goodput_rps_per_gpu", "best_goodput_rps"], ascending=False,
                           kind="stable").reset_index(drop=True)
