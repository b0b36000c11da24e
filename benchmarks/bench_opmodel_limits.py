"""Where the operator models' held-out error comes from (issue 2): three measurements, run on demand.

The issue asks, on H100 / vLLM, for XGBoost held-out APE with median <= 2% and P90 <= 6% (random split) and
median <= 5% (extrapolation split). GEMM bf16 (P90), MoE fp8 (median, P90) and MoE extrapolation (median)
miss. This script prints the evidence for why, from the bundled tables and the project's own fit code:

1. ``steps``: GEMM latency steps between neighbouring ``m`` (at fixed n, k) are the GPU library's kernel
   choice, not timing noise: the same steps appear in the SGLang and TensorRT-LLM campaigns' bf16 GEMM
   tables, measured separately on the same shapes. Each row's *step* is log(latency / median latency of
   the 5 nearest ``m`` of its (n, k)); printed: the share of rows whose step exceeds 6%, the correlation of
   steps between campaigns, and the share of those >6% steps the other campaign reproduces (same sign, >3%).
   Also printed: how well the other campaign's measurement of the same shape, rescaled by the median ratio
   of its (n, k), predicts this campaign's row (a re-measurement of the same operation: its P90 is how far
   two measurements of one GEMM disagree, library versions included).
2. ``cells``: whether the error the model leaves is shared with neighbouring shapes (then a lookup of
   nearby training residuals would remove it). Out-of-fold residuals of the training rows (``--folds``
   refits) are averaged per shape cell (GEMM: (m, n) then (m, k); MoE: token count x expert shape x routing,
   then token count x expert shape x EP size), shrunk towards 0 by ``--shrink`` rows, and added to the
   held-out predictions. If the P90 does not fall, the remaining error is specific to each exact shape.
3. ``groups``: the MoE extrapolation error over every expert shape, by a K-fold split over whole
   (hidden, inter, experts, top-k) shapes, next to the single seeded draw that ``frontier-calib fit``
   reports (20% of the shapes; with 15-16 shapes per dtype that is 3 shapes, so one draw decides).

    python benchmarks/bench_opmodel_limits.py [--gpu h100_sxm] [--engine vllm] [--only steps,cells,groups]
                                              [--folds 5] [--shrink 2] [--seed 0]

Takes about 3 minutes on 2 cores (28 XGBoost fits). Every number is computed here; nothing is hard-coded.
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import pandas as pd

from frontier_calib.opmodel.dataset import EXTRAPOLATION_GROUPS, group_split, random_split, training_rows
from frontier_calib.opmodel.evaluate import ape_stats
from frontier_calib.opmodel.model import OperatorModel
from frontier_calib.opmodel.registry import load_profiles

STEP_WINDOW = 5          #: neighbouring m values whose median latency a row is compared with
STEP_THRESHOLD = 0.06    #: a step larger than the issue's P90 target
REPRODUCED = 0.03        #: the other campaign shows the step if its own step has the same sign and exceeds this

CELL_KEYS = {
    "gemm": [["m", "n"], ["m", "k"]],
    "moe": [["num_tokens", "hidden_size", "inter_size", "num_experts", "topk", "distribution"],
            ["num_tokens", "hidden_size", "inter_size", "num_experts", "topk", "moe_ep"]],
}


def fmt(pred, true) -> str:
    """Held-out median and P90 APE, as `frontier-calib fit` computes them (:func:`ape_stats`)."""
    st = ape_stats(np.asarray(pred, dtype=float), np.asarray(true, dtype=float))
    return f"median {st['median_ape'] * 100:5.2f}%  P90 {st['p90_ape'] * 100:5.2f}%"


def rows_of(gpu: str, engine: str, family: str, dtype: str) -> pd.DataFrame:
    rows, _ = training_rows(load_profiles(gpu, engine, families=[family])[family], family)
    return rows[rows["dtype"] == dtype].reset_index(drop=True)


# ----------------------------------------------------------------------------- 1. steps
def gemm_steps(df: pd.DataFrame) -> pd.DataFrame:
    """(m, n, k, step) with step = log(latency / rolling median over the STEP_WINDOW nearest m of its (n, k))."""
    df = df.sort_values(["n", "k", "m"]).reset_index(drop=True)
    med = (df.groupby(["n", "k"])["latency_ms"]
           .transform(lambda s: s.rolling(STEP_WINDOW, center=True, min_periods=3).median()))
    return df.assign(step=np.log(df["latency_ms"] / med))[["m", "n", "k", "step"]]


def report_steps(gpu: str, engine: str, others: list[str]) -> None:
    print(f"\n[steps] GEMM bf16, {gpu}: latency steps between neighbouring m, {engine} against other campaigns")
    mine_raw = rows_of(gpu, engine, "gemm", "bf16")
    mine = gemm_steps(mine_raw)
    big = mine["step"].abs() > STEP_THRESHOLD
    print(f"  {engine}: {len(mine)} rows, {big.mean() * 100:.1f}% have a step > {STEP_THRESHOLD:.0%}")
    for other in others:
        try:
            theirs_raw = rows_of(gpu, other, "gemm", "bf16")[["m", "n", "k", "latency_ms"]]
            theirs = gemm_steps(theirs_raw)
        except Exception as exc:  # a GPU without that engine's table: say so, go on
            print(f"  {other}: no bf16 GEMM table ({exc.__class__.__name__})")
            continue
        j = mine.merge(theirs, on=["m", "n", "k"], suffixes=("", "_other")).dropna()
        if j.empty:
            print(f"  {other}: no shapes in common")
            continue
        jb = j[j["step"].abs() > STEP_THRESHOLD]
        same = (np.sign(jb["step"]) == np.sign(jb["step_other"])) & (jb["step_other"].abs() > REPRODUCED)
        print(f"  {other}: {len(j)} shapes in common; step correlation {j['step'].corr(j['step_other']):.2f}; "
              f"{same.mean() * 100:.0f}% of {engine}'s {len(jb)} steps > {STEP_THRESHOLD:.0%} reproduced "
              f"(same sign, > {REPRODUCED:.0%})")
        both = mine_raw.merge(theirs_raw, on=["m", "n", "k"], suffixes=("", "_other"))
        log_ratio = np.log(both["latency_ms"] / both["latency_ms_other"])
        scale = both.assign(r=log_ratio).groupby(["n", "k"])["r"].transform("median")
        print(f"    its latency x the median {engine}/{other} ratio of each (n, k), as a predictor of {engine}: "
              f"{fmt(both['latency_ms_other'] * np.exp(scale), both['latency_ms'])}")


# ----------------------------------------------------------------------------- 2. cells
def cell_correction(train: pd.DataFrame, resid: np.ndarray, test: pd.DataFrame, keysets, shrink: float):
    """log2 correction per held-out row: shrunk mean training residual of its cell, one key set after another."""
    tr = train.assign(res=resid)
    corr = np.zeros(len(test))
    for keys in keysets:
        g = tr.groupby(keys)["res"].agg(["sum", "count"]).reset_index()
        g["eff"] = g["sum"] / (g["count"] + shrink)
        tr["res"] -= tr[keys].merge(g, on=keys, how="left")["eff"].fillna(0).to_numpy()
        corr += test[keys].merge(g, on=keys, how="left")["eff"].fillna(0).to_numpy()
    return corr


def report_cells(gpu: str, engine: str, family: str, dtype: str, folds: int, shrink: float, seed: int) -> None:
    sub = rows_of(gpu, engine, family, dtype)
    tr, te = random_split(len(sub), seed)
    train, test = sub.iloc[tr].reset_index(drop=True), sub.iloc[te].reset_index(drop=True)
    pred = OperatorModel(family, gpu, seed=seed).fit(train).predict(test)
    fold = np.random.default_rng(seed + 1).integers(0, folds, len(train))
    oof = np.empty(len(train))
    for f in range(folds):
        part = OperatorModel(family, gpu, seed=seed).fit(train[fold != f].reset_index(drop=True))
        oof[fold == f] = part.predict(train[fold == f].reset_index(drop=True))
    resid = np.log2(train["latency_ms"].to_numpy() / oof)
    corr = cell_correction(train, resid, test, CELL_KEYS[family], shrink)
    true = test["latency_ms"].to_numpy()
    print(f"  {family} {dtype} random split ({len(test)} held-out rows): model {fmt(pred, true)}; "
          f"with cell residuals {fmt(pred * np.exp2(corr), true)}")


# ----------------------------------------------------------------------------- 3. groups
def report_groups(gpu: str, engine: str, dtype: str, folds: int, seed: int) -> None:
    family = "moe"
    sub = rows_of(gpu, engine, family, dtype)
    cols = EXTRAPOLATION_GROUPS[family]
    tr, te = group_split(sub, family, seed)
    test = sub.iloc[te].reset_index(drop=True)
    drawn = OperatorModel(family, gpu, seed=seed).fit(sub.iloc[tr].reset_index(drop=True)).predict(test)
    shapes = test[cols].drop_duplicates().astype(str).agg("/".join, axis=1).tolist()
    print(f"  moe {dtype}: fit's seeded draw holds out {len(shapes)} shapes ({', '.join(shapes)}): "
          f"{fmt(drawn, test['latency_ms'])}")
    groups = sub[cols].drop_duplicates().reset_index(drop=True)
    order = np.random.default_rng(seed).permutation(len(groups))
    fold_of_group = np.empty(len(groups), dtype=int)
    fold_of_group[order] = np.arange(len(groups)) % folds
    fold = sub[cols].merge(groups.assign(_f=fold_of_group), on=cols, how="left")["_f"].to_numpy()
    preds, trues, medians = [], [], []
    for f in range(folds):
        train, test = sub[fold != f].reset_index(drop=True), sub[fold == f].reset_index(drop=True)
        preds.append(OperatorModel(family, gpu, seed=seed).fit(train).predict(test))
        trues.append(test["latency_ms"].to_numpy())
        medians.append(ape_stats(preds[-1], trues[-1])["median_ape"])
    print(f"  moe {dtype}: {folds}-fold over all {len(groups)} shapes: pooled "
          f"{fmt(np.concatenate(preds), np.concatenate(trues))}; "
          f"fold medians {', '.join(f'{m * 100:.1f}%' for m in medians)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gpu", default="h100_sxm")
    ap.add_argument("--engine", default="vllm")
    ap.add_argument("--only", default="steps,cells,groups", help="comma-separated: steps, cells, groups")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--shrink", type=float, default=2.0, help="rows of prior weight on a zero cell correction")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    logging.getLogger("frontier_calib").setLevel(logging.ERROR)  # held-out shapes are out of range by design
    parts = set(args.only.split(","))
    t0 = time.perf_counter()
    if "steps" in parts:
        report_steps(args.gpu, args.engine, [e for e in ("sglang", "trtllm", "vllm") if e != args.engine])
    if "cells" in parts:
        print(f"\n[cells] out-of-fold residuals ({args.folds} folds) averaged per shape cell, shrink {args.shrink}")
        report_cells(args.gpu, args.engine, "gemm", "bf16", args.folds, args.shrink, args.seed)
        report_cells(args.gpu, args.engine, "moe", "fp8", args.folds, args.shrink, args.seed)
    if "groups" in parts:
        print(f"\n[groups] MoE extrapolation over whole expert shapes ({', '.join(EXTRAPOLATION_GROUPS['moe'])})")
        for dtype in ("bf16", "fp8"):
            report_groups(args.gpu, args.engine, dtype, args.folds, args.seed)
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
