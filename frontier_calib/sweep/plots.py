"""Sweep plots (off-screen matplotlib figures, ``frontier_calib.plotting``), each written atomically as a PNG.

- ``pareto.png``: output tokens/s per GPU vs. tokens/s per user (1 / median TPOT) of every completed point;
  the Pareto front is the line; points meeting the first SLO set are filled.
- ``goodput.png``: goodput (requests/s meeting the SLO set) vs. offered rate for the best configurations.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..plotting import figure, save_png
from .analysis import X_COL, Y_COL, goodput_table, ok_rows, pareto_front, slo_names




def plot_pareto(df: pd.DataFrame, dest: str | Path, *, title: str = "") -> Path | None:
    """Throughput per GPU vs. per-user token rate; None when no point completed."""
    ok = ok_rows(df)
    if ok.empty:
        return None
    fig, ax = figure(figsize=(8, 5.5))
    slos = slo_names(df)
    if slos:
        meets = ok[f"meets__{slos[0]}"].astype(bool)
        ax.scatter(ok.loc[~meets, X_COL], ok.loc[~meets, Y_COL], s=18, facecolors="none", edgecolors="0.55",
                   label=f"misses SLO '{slos[0]}'")
        ax.scatter(ok.loc[meets, X_COL], ok.loc[meets, Y_COL], s=22, color="tab:blue",
                   label=f"meets SLO '{slos[0]}'")
    else:
        ax.scatter(ok[X_COL], ok[Y_COL], s=18, color="tab:blue", label="points")
    front = pareto_front(df)
    ax.plot(front[X_COL], front[Y_COL], "-o", color="tab:red", ms=4, lw=1.5, label="Pareto front")
    for _, r in front.head(12).iterrows():
        rate = "" if pd.isna(r["rate_rps"]) else f" @{r['rate_rps']:g}/s"
        ax.annotate(f"{r['label']}{rate}", (r[X_COL], r[Y_COL]), fontsize=6, xytext=(3, 3),
                    textcoords="offset points", color="tab:red")
    ax.set_xlabel("tokens/s per user (1 / median TPOT)")
    ax.set_ylabel("output tokens/s per GPU")
    ax.set_title(title or "throughput per GPU vs. per-user token rate")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_png(fig, Path(dest))


def plot_goodput(df: pd.DataFrame, dest: str | Path, *, slo: str | None = None, top: int = 10,
                 title: str = "") -> Path | None:
    """Goodput vs. offered rate for the ``top`` configurations by goodput per GPU; the rest in grey."""
    slos = slo_names(df)
    ok = df[df["status"] == "ok"] if not df.empty else df
    if ok.empty or not slos:
        return None
    slo = slo or slos[0]
    table = goodput_table(df, slo)
    best = list(table["config_id"].head(top))
    fig, ax = figure(figsize=(8, 5.5))
    col = f"goodput_rps__{slo}"
    xcol = "offered_rate_rps"
    for cid, g in ok.groupby("config_id", sort=False):
        if cid in best:
            continue
        g = g.sort_values(xcol)
        ax.plot(g[xcol], g[col], "-", color="0.8", lw=0.8)
    for cid in best:
        g = ok[ok["config_id"] == cid].sort_values(xcol)
        label = f"{g['label'].iloc[0]} ({int(g['num_gpus'].iloc[0])} GPUs)"
        ax.plot(g[xcol], g[col], "-o", ms=3, lw=1.4, label=label)
    hi = float(ok[xcol].max())
    ax.plot([0, hi], [0, hi], "k--", lw=0.8, label="goodput = offered rate")
    ax.set_xlabel("offered rate (requests/s)")
    ax.set_ylabel(f"goodput (requests/s meeting SLO '{slo}')")
    ax.set_title(title or f"goodput per configuration (top {min(top, len(best))} by goodput per GPU)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="upper left")
    return save_png(fig, Path(dest))
