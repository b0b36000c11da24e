"""``frontier-calib calibrate``: fit the engine-level constants on a training split, score on held-out rows.

What is fitted: per engine, the three :class:`~frontier_calib.cost.worker.Overheads` fields (seconds per
iteration): ``step_s`` (every step: scheduler, launch, sync), ``per_seq_s`` (per sequence in the batch: input
preparation, sampling, detokenization) and ``prefill_step_s`` (extra for a step that carries prefill: mixed
batches do not run as one CUDA graph). Nothing else, and nothing per row.

Protocol (docs/validation.md):

1. **Split by configuration.** Rows are grouped by :func:`~frontier_calib.validate.silicon.config_key` (the
   deployment without its workload); within each engine, a seeded shuffle puts ``train_fraction`` of the
   configurations on the training side, the rest are held out. One configuration never sits on both sides.
2. **Fit per engine on a training subsample** (``max_rows`` rows, spread over the training configurations). The
   replay is not linear in the overheads (queueing), so the fit is Gauss-Newton-like: replay the subsample at the
   current constants and at one small step of each constant (4 replays per row), fit the constants on that
   linear surrogate with a bounded Nelder-Mead, and repeat once from the result. The loss is the mean over rows of
   ``min(|log(pred/measured)|, log 3)`` summed over TTFT and TPOT: symmetric in over/under-prediction, and a row
   that is off by more than 3x (a KV-capacity cliff, a measurement outlier) cannot pull the constants around.
3. **Score.** Every selected row (both splits) is replayed with the default and with the fitted constants; the
   report shows held-out and training errors side by side. The held-out error is the one to quote.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd

from ..cost.worker import DEFAULT_OVERHEADS
from .metrics import summarize
from .silicon import Protocol, Scenario, scenario_for_row

PARAMS = ("step_s", "per_seq_s", "prefill_step_s")
#: finite-difference steps (seconds) and search bounds of each constant
DELTAS = {"step_s": 1.0e-3, "per_seq_s": 2.0e-5, "prefill_step_s": 5.0e-3}
BOUNDS = {"step_s": (0.0, 0.02), "per_seq_s": (0.0, 2.0e-4), "prefill_step_s": (0.0, 0.05)}
CAP = math.log(3.0)


def split_configs(df: pd.DataFrame, *, train_fraction: float = 0.5, seed: int = 0) -> pd.Series:
    """Boolean Series (index of ``df``): True for training rows. Whole configurations (``config_key``) go to one
    side; the shuffle is seeded and done per engine so every engine gets training and held-out configurations."""
    if not 0 < train_fraction < 1:
        raise ValueError("train_fraction must be in (0, 1)")
    train = pd.Series(False, index=df.index)
    rng = np.random.default_rng(seed)
    for engine in sorted(df["backend"].astype(str).unique()):
        keys = np.array(sorted(df.loc[df["backend"] == engine, "config_key"].astype(str).unique()))
        if len(keys) == 0:
            continue
        keys = keys[rng.permutation(len(keys))]
        n_train = int(round(train_fraction * len(keys)))
        if len(keys) >= 2:
            n_train = min(max(n_train, 1), len(keys) - 1)
        chosen = set(keys[:n_train])
        train |= (df["backend"] == engine) & df["config_key"].astype(str).isin(chosen)
    return train


def subsample(df: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """Up to ``max_rows`` rows spread over configurations (round-robin over shuffled configs, seeded)."""
    if len(df) <= max_rows:
        return df
    rng = np.random.default_rng(seed)
    groups = [g.sample(frac=1.0, random_state=int(rng.integers(1 << 31))) for _, g in df.groupby("config_key")]
    groups = [groups[i] for i in rng.permutation(len(groups))]
    picked, depth = [], 0
    while len(picked) < max_rows:
        added = False
        for g in groups:
            if depth < len(g):
                picked.append(g.index[depth])
                added = True
                if len(picked) == max_rows:
                    break
        if not added:
            break
        depth += 1
    return df.loc[picked]


def _loss_terms(pred_ttft, pred_tpot, meas_ttft, meas_tpot) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.abs(np.log(np.asarray(pred_ttft) / np.asarray(meas_ttft)))
        b = np.abs(np.log(np.asarray(pred_tpot) / np.asarray(meas_tpot)))
    a = np.where(np.isfinite(a), np.minimum(a, CAP), CAP)
    b = np.where(np.isfinite(b), np.minimum(b, CAP), CAP)
    return a + b


def nelder_mead(f, x0, scale, bounds, *, iters: int = 200, tol: float = 1e-7):
    """Minimise f over a box (points are clipped into ``bounds``); scipy-free, deterministic."""
    lo = np.array([b[0] for b in bounds], float)
    hi = np.array([b[1] for b in bounds], float)
    clip = lambda x: np.minimum(np.maximum(x, lo), hi)  # noqa: E731
    n = len(x0)
    pts = [clip(np.asarray(x0, float))]
    for i in range(n):
        x = pts[0].copy()
        x[i] += scale[i] if x[i] + scale[i] <= hi[i] else -scale[i]
        pts.append(clip(x))
    vals = [f(p) for p in pts]
    for _ in range(iters):
        order = np.argsort(vals)
        pts = [pts[i] for i in order]
        vals = [vals[i] for i in order]
        if abs(vals[-1] - vals[0]) < tol:
            break
        c = np.mean(pts[:-1], axis=0)
        xr = clip(c + (c - pts[-1]))
        fr = f(xr)
        if fr < vals[0]:
            xe = clip(c + 2 * (c - pts[-1]))
            fe = f(xe)
            pts[-1], vals[-1] = (xe, fe) if fe < fr else (xr, fr)
        elif fr < vals[-2]:
            pts[-1], vals[-1] = xr, fr
        else:
            xc = clip(c + 0.5 * (pts[-1] - c))
            fc = f(xc)
            if fc < vals[-1]:
                pts[-1], vals[-1] = xc, fc
            else:
                for i in range(1, len(pts)):
                    pts[i] = clip(pts[0] + 0.5 * (pts[i] - pts[0]))
                    vals[i] = f(pts[i])
    i = int(np.argmin(vals))
    return pts[i], float(vals[i])


def _scenarios(rows: list[dict], engine: str, theta: np.ndarray, protocol: Protocol) -> list[Scenario]:
    ov = {engine: dict(zip(PARAMS, map(float, theta)))}
    return [scenario_for_row(r, overheads=ov, protocol=protocol) for r in rows]


def fit_engine(engine: str, train: pd.DataFrame, *, protocol: Protocol, jobs: int, progress: bool,
               rounds: int = 2, log=print) -> dict:
    """Fit the engine's three overheads on ``train`` rows (read_silicon_csv frame); returns the fit record."""
    from .runner import run_scenarios

    rows = train.to_dict("records")
    meas_ttft = train["silicon_ttft_ms"].to_numpy(float)
    meas_tpot = train["silicon_tpot_ms"].to_numpy(float)
    theta = np.array([DEFAULT_OVERHEADS[engine][p] for p in PARAMS], float)
    history = []
    usable = np.ones(len(rows), bool)
    for it in range(rounds):
        points = [theta] + [theta + np.eye(3)[k] * DELTAS[PARAMS[k]] for k in range(3)]
        scns = [s for th in points for s in _scenarios(rows, engine, th, protocol)]
        res = run_scenarios(scns, jobs=jobs, progress=progress, desc=f"calibrate {engine} (round {it + 1})")
        n = len(rows)
        P = np.array([[r["pred_ttft_ms"], r["pred_tpot_ms"]] for r in res], float).reshape(4, n, 2)
        ok = np.array([r["status"] == "ok" for r in res]).reshape(4, n).all(axis=0)
        usable &= ok & np.isfinite(P).all(axis=(0, 2))
        base = P[0]
        J = np.stack([(P[k + 1] - P[0]) / DELTAS[PARAMS[k]] for k in range(3)], axis=-1)  # [n, 2, 3]
        loss0 = float(_loss_terms(base[usable, 0], base[usable, 1], meas_ttft[usable], meas_tpot[usable]).mean())
        history.append({"round": it + 1, "theta": dict(zip(PARAMS, map(float, theta))), "loss": loss0,
                        "rows": int(usable.sum())})
        if not usable.any():
            break
        b, Ju = base[usable], J[usable]
        mt, mp = meas_ttft[usable], meas_tpot[usable]
        th0 = theta.copy()

        def surrogate(th):
            d = th - th0
            pred = b + Ju @ d
            pred = np.maximum(pred, 1e-6)
            return float(_loss_terms(pred[:, 0], pred[:, 1], mt, mp).mean())

        scale = np.array([DELTAS[p] for p in PARAMS])
        theta, sloss = nelder_mead(surrogate, th0, scale, [BOUNDS[p] for p in PARAMS])
        history[-1]["surrogate_loss_at_fit"] = sloss
        log(f"calibrate {engine}: round {it + 1}: loss {loss0:.4f} at {_fmt(th0)} -> surrogate {sloss:.4f} at "
            f"{_fmt(theta)} ({int(usable.sum())} rows)")
    # the fitted constants are checked with a real replay of the subsample
    res = run_scenarios(_scenarios(rows, engine, theta, protocol), jobs=jobs, progress=progress,
                        desc=f"calibrate {engine} (check)")
    P = np.array([[r["pred_ttft_ms"], r["pred_tpot_ms"]] for r in res], float)
    ok = np.array([r["status"] == "ok" for r in res]) & np.isfinite(P).all(axis=1) & usable
    final = float(_loss_terms(P[ok, 0], P[ok, 1], meas_ttft[ok], meas_tpot[ok]).mean()) if ok.any() else math.nan
    best = theta
    if history and math.isfinite(final) and final > min(h["loss"] for h in history):
        # the surrogate misled us: keep the best replayed point
        best_h = min(history, key=lambda h: h["loss"])
        best = np.array([best_h["theta"][p] for p in PARAMS])
        final = best_h["loss"]
    return {"engine": engine, "overheads": dict(zip(PARAMS, map(float, best))), "loss": final,
            "default_loss": history[0]["loss"] if history else math.nan, "rows": int(usable.sum()),
            "history": history}


def _fmt(theta) -> str:
    return (f"step {theta[0] * 1e3:.3f} ms, per_seq {theta[1] * 1e6:.2f} us, prefill_step {theta[2] * 1e3:.3f} ms")


def side_by_side(base_rows: pd.DataFrame, cal_rows: pd.DataFrame, train_mask: pd.Series) -> dict:
    """Errors before/after calibration on the held-out and training splits (overall and per group)."""
    out = {}
    for split, mask in (("held_out", ~train_mask), ("train", train_mask)):
        m = mask.to_numpy()
        out[split] = {"before": summarize(base_rows[m]), "after": summarize(cal_rows[m])}
    return out


def calibrate(df: pd.DataFrame, *, train_fraction: float = 0.5, seed: int = 0, max_rows: int = 48,
              jobs: int | None = None, progress: bool = True, protocol: Protocol | None = None,
              baseline: pd.DataFrame | None = None, log=print) -> dict:
    """The whole protocol (module docstring). ``baseline``: rows frame of a previous uncalibrated
    ``validate silicon`` run of the same rows (saves one full replay). Returns a dict with the overheads, the
    split, both rows frames and the side-by-side errors."""
    from .runner import default_jobs, run_silicon

    jobs = jobs or default_jobs()
    protocol = protocol or Protocol()
    t0 = time.perf_counter()
    df = df.reset_index(drop=True)
    train_mask = split_configs(df, train_fraction=train_fraction, seed=seed)
    if baseline is None:
        base_rows, _ = run_silicon(df, jobs=jobs, progress=progress, protocol=protocol)
    else:
        base_rows = baseline.set_index("id").loc[df["id"]].reset_index()
    ok_ids = set(base_rows.loc[base_rows["status"] == "ok", "id"])
    fits = {}
    for engine in sorted(df["backend"].astype(str).unique()):
        tr = df[train_mask & (df["backend"] == engine) & df["id"].isin(ok_ids)]
        if tr.empty:
            log(f"calibrate {engine}: no replayable training rows; keeping the defaults")
            continue
        sub = subsample(tr, max_rows, seed)
        fits[engine] = fit_engine(engine, sub, protocol=protocol, jobs=jobs, progress=progress, log=log)
    overheads = {e: f["overheads"] for e, f in fits.items()}
    cal_rows, _ = run_silicon(df, overheads=overheads, jobs=jobs, progress=progress, protocol=protocol,
                              prepare=False)
    split = pd.DataFrame({"id": df["id"], "config_key": df["config_key"], "backend": df["backend"],
                          "split": np.where(train_mask, "train", "held_out")})
    return {"overheads": overheads, "fits": fits, "split": split, "train_mask": train_mask,
            "baseline_rows": base_rows, "calibrated_rows": cal_rows,
            "errors": side_by_side(base_rows, cal_rows, train_mask),
            "seconds": time.perf_counter() - t0, "train_fraction": train_fraction, "seed": seed,
            "max_rows": max_rows}
