"""``frontier-calib calibrate``: fit the engine-level constants on a training split, score on held-out rows.

What is fitted, per engine (or per engine x GPU with ``group_by='engine-gpu'``: calibration keys ``engine@gpu``) and
nothing per row: three :class:`~frontier_calib.cost.worker.Overheads` fields (seconds), each inside its physical
bounds (:data:`~frontier_calib.cost.worker.OVERHEAD_BOUNDS`): the scheduler's CPU per step ``step_s`` and per
sequence ``per_seq_s`` (they enter the step time through :mod:`frontier_calib.cost.engine_time`: hidden behind the
GPU when the engine overlaps, added to it when not), and the front-end's fixed latency per request ``frontend_s``
(HTTP, request parsing; it adds to TTFT but not to any iteration). CUDA-graph padding, eager launches and overlap
are not fitted: they follow from the engine's code (:mod:`frontier_calib.cost.engine_time`). The earlier
``prefill_step_s`` is no longer fitted (fits drove it to 7-15 ms per prefill step, a fudge that did not carry over
to open-loop runs). Also fitted: the benchmark clients' desynchronisation share (``desync``,
:class:`~frontier_calib.validate.silicon.Protocol`): how far the engine and its clients let closed-loop waves drift
out of step (SGLang's prefill-first batching keeps them together, vLLM's chunked mixed batches let them drift).

Protocol (docs/validation.md):

1. **Split by configuration.** Rows are grouped by :func:`~frontier_calib.validate.silicon.config_key` (the
   deployment without its workload); within each fit group, a seeded shuffle puts ``train_fraction`` of the
   configurations on the training side, the rest are held out. One configuration never sits on both sides.
2. **Fit per group on a training subsample** (``max_rows`` rows, spread over the training configurations).
   First the desync share on a grid (0, 0.25, ..., 1) at the default overheads, with the front-end latency
   profiled out (for each share, its best value on a grid, from the replayed TTFTs: it only shifts TTFT); the
   best share and its front-end latency are the starting point. Then the overheads: the replay is
   not linear in them (queueing), so the fit is Gauss-Newton-like: replay the subsample at the current constants
   and at one small step of each constant (5 replays per row), fit the constants on that linear surrogate with a
   bounded Nelder-Mead, and repeat from the result (``rounds`` rounds in all, 2 by default). Then the desync grid
   again at the new overheads. Every candidate is replayed and the best replayed point is kept. The loss is the
   mean over rows of ``min(|log(pred/measured)|, log 3)`` summed over TTFT and TPOT: symmetric in
   over/under-prediction, and a row
   that is off by more than 3x (a KV-capacity cliff, a measurement outlier) cannot pull the constants around.
3. **Score.** Every selected row (both splits) is replayed with the default and with the fitted constants; the
   report shows held-out and training errors side by side. The held-out error is the one to quote.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd

from ..cost.worker import OVERHEAD_BOUNDS
from ..engines import get_engine
from .metrics import summarize
from .silicon import Protocol, Scenario, scenario_for_row

PARAMS = ("step_s", "per_seq_s", "frontend_s")
#: finite-difference steps (seconds) of each constant; its search bounds are its physical bounds
DELTAS = {"step_s": 1.0e-3, "per_seq_s": 2.0e-5, "frontend_s": 5.0e-3}
BOUNDS = {p: OVERHEAD_BOUNDS[p] for p in PARAMS}


def fd_step(param: str) -> float:
    """The finite-difference step of ``param``: :data:`DELTAS`, at most a quarter of its bounds' width (so a step
    from any point inside the bounds lands inside them one way or the other)."""
    lo, hi = BOUNDS[param]
    return min(DELTAS[param], (hi - lo) / 4)
CAP = math.log(3.0)


GROUP_BY = ("engine", "engine-gpu")


def fit_groups(df: pd.DataFrame, group_by: str = "engine") -> pd.Series:
    """The calibration key of every row: its engine (``group_by='engine'``) or ``engine@gpu`` (``'engine-gpu'``);
    the keys of the calibration file (:func:`~frontier_calib.cost.calibration.group_key`)."""
    if group_by not in GROUP_BY:
        raise ValueError(f"group_by must be one of {GROUP_BY}")
    engine = df["backend"].astype(str)
    if group_by == "engine":
        return engine
    return engine + "@" + df["system"].astype(str)


def split_configs(df: pd.DataFrame, *, train_fraction: float = 0.5, seed: int = 0,
                  group_by: str = "engine") -> pd.Series:
    """Boolean Series (index of ``df``): True for training rows. Whole configurations (``config_key``) go to one
    side; the shuffle is seeded and done per fit group (engine, or engine x GPU) so every group gets training and
    held-out configurations."""
    if not 0 < train_fraction < 1:
        raise ValueError("train_fraction must be in (0, 1)")
    train = pd.Series(False, index=df.index)
    rng = np.random.default_rng(seed)
    groups = fit_groups(df, group_by)
    for g in sorted(groups.unique()):
        keys = np.array(sorted(df.loc[groups == g, "config_key"].astype(str).unique()))
        if len(keys) == 0:
            continue
        keys = keys[rng.permutation(len(keys))]
        n_train = int(round(train_fraction * len(keys)))
        if len(keys) >= 2:
            n_train = min(max(n_train, 1), len(keys) - 1)
        chosen = set(keys[:n_train])
        train |= (groups == g) & df["config_key"].astype(str).isin(chosen)
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


PHI_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
#: front-end latencies (s) tried, without replaying, when the desync grid is chosen (see _Fitter.best_phi)
FRONTEND_GRID = tuple(np.round(np.arange(0.0, BOUNDS["frontend_s"][1] + 1e-9, 0.001), 4))


def _scenarios(rows: list[dict], key: str, theta: np.ndarray, phi: float, protocol: Protocol,
               params: tuple = PARAMS) -> list[Scenario]:
    ov = {key: dict(zip(params, map(float, theta)))}
    return [scenario_for_row(r, overheads=ov, protocol=protocol, desync={key: phi}) for r in rows]


class _Fitter:
    """Replays of one engine's training subsample at given (overheads, desync); remembers the best point."""

    def __init__(self, key, train, protocol, jobs, progress, params: tuple = PARAMS):
        self.engine, self.protocol, self.jobs, self.progress = key, protocol, jobs, progress
        self.params = tuple(params)
        self.frontend = self.params.index("frontend_s") if "frontend_s" in self.params else None
        self.rows = train.to_dict("records")
        self.mt = train["silicon_ttft_ms"].to_numpy(float)
        self.mp = train["silicon_tpot_ms"].to_numpy(float)
        self.usable = np.ones(len(self.rows), bool)
        self.best = None          # (loss, theta, phi)
        self.evaluations = []

    def replay(self, points: list[tuple[np.ndarray, float]], desc: str) -> np.ndarray:
        """Predictions [len(points), n, 2] (ms); rows that fail at any point become unusable."""
        from .runner import run_scenarios

        n = len(self.rows)
        scns = [s for th, phi in points
                for s in _scenarios(self.rows, self.engine, th, phi, self.protocol, self.params)]
        res = run_scenarios(scns, jobs=self.jobs, progress=self.progress, desc=desc)
        P = np.array([[r["pred_ttft_ms"], r["pred_tpot_ms"]] for r in res], float).reshape(len(points), n, 2)
        ok = np.array([r["status"] == "ok" for r in res]).reshape(len(points), n).all(axis=0)
        self.usable &= ok & np.isfinite(P).all(axis=(0, 2))
        return P

    def loss(self, P: np.ndarray) -> float:
        u = self.usable
        return float(_loss_terms(P[u, 0], P[u, 1], self.mt[u], self.mp[u]).mean()) if u.any() else math.inf

    def note(self, theta, phi, P) -> float:
        val = self.loss(P)
        self.evaluations.append({"theta": dict(zip(self.params, map(float, theta))), "desync": float(phi),
                                 "loss": val})
        if self.best is None or val < self.best[0]:
            self.best = (val, np.array(theta, float), float(phi))
        return val

    def best_phi(self, theta, desc) -> tuple[float, float]:
        """Replay the desync grid at ``theta``; return (desync, front-end latency) of the best grid point with the
        front-end latency profiled out: it adds to TTFT only, so for each desync the best value on
        :data:`FRONTEND_GRID` is found on the replayed predictions (TTFT + its change), without more replays.
        Choosing the desync at a fixed front-end latency would favour synchronised waves (they lift the TTFT that a
        missing front-end latency leaves too low) and start the overhead rounds far from the better point."""
        P = self.replay([(theta, phi) for phi in PHI_GRID], desc)
        losses = [self.note(theta, phi, P[i]) for i, phi in enumerate(PHI_GRID)]
        u = self.usable
        fe_k = self.frontend
        if fe_k is None:   # the front-end latency is not fitted: the grid point with the best replayed loss
            return PHI_GRID[int(np.argmin(losses))], None
        if not u.any():
            return PHI_GRID[0], float(theta[fe_k])
        best = None
        for i, phi in enumerate(PHI_GRID):
            for fe in FRONTEND_GRID:
                shift = (fe - theta[fe_k]) * 1e3   # ms
                val = float(_loss_terms(np.maximum(P[i][u, 0] + shift, 1e-6), P[i][u, 1], self.mt[u],
                                        self.mp[u]).mean())
                if best is None or val < best[0] - 1e-12:
                    best = (val, phi, float(fe))
        return best[1], best[2]

    def overhead_round(self, theta, phi, desc) -> np.ndarray:
        """One Gauss-Newton-like step: replay at theta and theta + one step of each constant, fit on the linear
        surrogate (bounded Nelder-Mead), return the new constants."""
        params = self.params
        k_all = len(params)
        # one finite-difference step per constant, backwards where a forward step would leave its bounds
        steps = [fd_step(p) if theta[k] + fd_step(p) <= BOUNDS[p][1] else -fd_step(p) for k, p in enumerate(params)]
        points = [(theta, phi)] + [(theta + np.eye(k_all)[k] * steps[k], phi) for k in range(k_all)]
        P = self.replay(points, desc)
        for (th, ph), Pk in zip(points, P):
            self.note(th, ph, Pk)
        u = self.usable
        if not u.any():
            return theta
        base = P[0][u]
        J = np.stack([(P[k + 1][u] - P[0][u]) / steps[k] for k in range(k_all)], axis=-1)  # [n, 2, k]
        mt, mp, th0 = self.mt[u], self.mp[u], np.array(theta, float)

        def surrogate(th):
            pred = np.maximum(base + J @ (th - th0), 1e-6)
            return float(_loss_terms(pred[:, 0], pred[:, 1], mt, mp).mean())

        new, _ = nelder_mead(surrogate, th0, np.array([fd_step(p) for p in params]), [BOUNDS[p] for p in params])
        return new


def fit_engine(engine: str, train: pd.DataFrame, *, protocol: Protocol, jobs: int, progress: bool,
               rounds: int = 2, log=print, params: tuple = PARAMS) -> dict:
    """Fit the group's client desynchronisation share (a grid) and its overheads ``params`` (a subset of
    :data:`PARAMS`; Gauss-Newton-like rounds on a linear surrogate) on ``train`` rows; returns the fit record. Every
    candidate is replayed; the best replayed point wins, so the result is never worse on the training subsample
    than the defaults. ``engine`` is a calibration key: an engine or ``engine@gpu`` (the starting point is that
    engine's default overheads)."""
    key = engine
    engine = key.partition("@")[0]
    f = _Fitter(key, train, protocol, jobs, progress, params)
    fe_k = f.frontend
    theta = np.array([get_engine(engine).overheads[p] for p in f.params], float)
    default_phi = float(protocol.desync)
    phi, fe = f.best_phi(theta, f"calibrate {key}: desync grid")
    if fe_k is not None:
        theta[fe_k] = fe
    default_loss = next((e["loss"] for e in f.evaluations if e["desync"] == default_phi), math.nan)
    log(f"calibrate {key}: desync {phi:.2f}, {_fmt(theta, f.params)} to start from "
        f"(best replayed loss so far {f.best[0]:.4f}; defaults {default_loss:.4f})")
    for it in range(rounds):
        theta = f.overhead_round(theta, phi, f"calibrate {key}: overheads {it + 1}/{rounds}")
        log(f"calibrate {key}: round {it + 1}: surrogate optimum {_fmt(theta, f.params)}")
    phi2, fe2 = f.best_phi(theta, f"calibrate {key}: desync grid (again)")
    if phi2 != phi:
        phi = phi2
        if fe_k is not None:
            theta[fe_k] = fe2
        theta = f.overhead_round(theta, phi, f"calibrate {key}: overheads (desync {phi:.2f})")
    P = f.replay([(theta, phi)], f"calibrate {key}: check")
    f.note(theta, phi, P[0])
    loss, best_theta, best_phi = f.best
    log(f"calibrate {key}: best replayed point: desync {best_phi:.2f}, {_fmt(best_theta, f.params)}, loss "
        f"{loss:.4f} (defaults {default_loss:.4f}; {int(f.usable.sum())} rows)")
    return {"engine": key, "overheads": dict(zip(f.params, map(float, best_theta))), "desync": best_phi,
            "loss": loss, "default_loss": default_loss, "rows": int(f.usable.sum()), "history": f.evaluations}


#: how each fitted constant is shown: (scale from seconds, unit, decimals)
DISPLAY_UNITS = {"step_s": (1e3, "ms", 3), "per_seq_s": (1e6, "µs", 2), "frontend_s": (1e3, "ms", 1)}


def format_constant(name: str, seconds: float) -> str:
    """``seconds`` of the fitted constant ``name`` in its display unit, e.g. ``'1.370 ms'``."""
    mul, unit, nd = DISPLAY_UNITS[name]
    return f"{seconds * mul:.{nd}f} {unit}"


def _fmt(theta, params: tuple = PARAMS) -> str:
    return ", ".join(f"{p.removesuffix('_s')} {format_constant(p, v)}" for p, v in zip(params, theta))


def side_by_side(base_rows: pd.DataFrame, cal_rows: pd.DataFrame, train_mask: pd.Series) -> dict:
    """Errors before/after calibration on the held-out and training splits (overall and per group)."""
    out = {}
    for split, mask in (("held_out", ~train_mask), ("train", train_mask)):
        m = mask.to_numpy()
        out[split] = {"before": summarize(base_rows[m]), "after": summarize(cal_rows[m])}
    return out


def calibrate(df: pd.DataFrame, *, train_fraction: float = 0.5, seed: int = 0, max_rows: int = 48,
              jobs: int | None = None, progress: bool = True, protocol: Protocol | None = None,
              baseline: pd.DataFrame | None = None, group_by: str = "engine", rounds: int = 2, log=print,
              params: tuple = PARAMS) -> dict:
    """The whole protocol (module docstring). ``baseline``: rows frame of a previous uncalibrated
    ``validate silicon`` run of the same rows (saves one full replay). Returns a dict with the overheads, the
    split, both rows frames and the side-by-side errors. ``group_by``: fit one set of constants per engine
    (``'engine'``) or per engine x GPU (``'engine-gpu'``: keys ``engine@gpu``); the split is stratified the same way."""
    from .runner import default_jobs, run_silicon

    jobs = jobs or default_jobs()
    protocol = protocol or Protocol()
    t0 = time.perf_counter()
    df = df.reset_index(drop=True)
    train_mask = split_configs(df, train_fraction=train_fraction, seed=seed, group_by=group_by)
    groups = fit_groups(df, group_by)
    if baseline is None:
        base_rows, _ = run_silicon(df, jobs=jobs, progress=progress, protocol=protocol)
    else:
        base_rows = baseline.set_index("id").loc[df["id"]].reset_index()
    ok_ids = set(base_rows.loc[base_rows["status"] == "ok", "id"])
    fits = {}
    for key in sorted(groups.unique()):
        tr = df[train_mask & (groups == key) & df["id"].isin(ok_ids)]
        if tr.empty:
            log(f"calibrate {key}: no replayable training rows; keeping the defaults")
            continue
        sub = subsample(tr, max_rows, seed)
        fits[key] = fit_engine(key, sub, protocol=protocol, jobs=jobs, progress=progress, rounds=rounds, log=log,
                               params=params)
    overheads = {e: f["overheads"] for e, f in fits.items()}
    desync = {e: f["desync"] for e, f in fits.items()}
    cal_rows, _ = run_silicon(df, overheads=overheads, desync=desync, jobs=jobs, progress=progress,
                              protocol=protocol)   # prepare: rows whose cost model cannot be built skip at once
    split = pd.DataFrame({"id": df["id"], "config_key": df["config_key"], "backend": df["backend"],
                          "group": groups, "split": np.where(train_mask, "train", "held_out")})
    return {"overheads": overheads, "desync": desync, "fits": fits, "split": split, "train_mask": train_mask,
            "baseline_rows": base_rows, "calibrated_rows": cal_rows,
            "errors": side_by_side(base_rows, cal_rows, train_mask),
            "seconds": time.perf_counter() - t0, "train_fraction": train_fraction, "seed": seed,
            "max_rows": max_rows, "group_by": group_by, "rounds": rounds, "params": tuple(params)}



def held_out_record(res: dict) -> dict:
    """The held-out errors of one :func:`calibrate` result (defaults and calibrated) with its seed and fit."""
    ho = res["errors"]["held_out"]
    return {"seed": int(res["seed"]),
            "ttft_mape_before": ho["before"]["overall"]["ttft"]["mape"],
            "tpot_mape_before": ho["before"]["overall"]["tpot"]["mape"],
            "ttft_mape": ho["after"]["overall"]["ttft"]["mape"],
            "tpot_mape": ho["after"]["overall"]["tpot"]["mape"],
            "overheads": res["overheads"], "desync": res["desync"]}


def seed_spread(df: pd.DataFrame, seeds, *, baseline: pd.DataFrame, first: dict | None = None, log=print,
                **kw) -> dict:
    """Run the whole protocol once per split seed (same rows, same ``baseline`` replay; ``first``: a result
    already computed, e.g. the seed the file keeps) and collect the held-out errors:
    ``{'seeds': [held_out_record, ...], 'ttft_mape': {mean, min, max, std}, 'tpot_mape': ..., '*_before': ...}``.
    The spread says how much one split's held-out figure owes to which configurations fell on which side."""
    records = [held_out_record(first)] if first is not None else []
    for sd in seeds:
        log(f"calibrate: split seed {sd}")
        records.append(held_out_record(calibrate(df, seed=int(sd), baseline=baseline, log=log, **kw)))
    out = {"seeds": records}
    for key in ("ttft_mape", "tpot_mape", "ttft_mape_before", "tpot_mape_before"):
        v = np.array([p[key] for p in records], float)
        out[key] = {"mean": float(np.nanmean(v)), "min": float(np.nanmin(v)), "max": float(np.nanmax(v)),
                    "std": float(np.nanstd(v))}
    return out
