"""Held-out accuracy of operator models against simple baselines.

Baselines: ``random_forest`` (Vidur-style: scikit-learn RandomForest on the raw shape columns,
predicting latency directly) and ``roofline`` (max(FLOPs/peak, bytes/bandwidth) + launch floor,
no fitting). APE = |predicted - measured| / measured, reported as fractions (0.02 = 2%).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..hardware import get_gpu
from ..profiles.schema import family as get_family
from .dataset import group_split, random_split
from .features import featurize
from .model import OperatorModel


def ape_stats(pred: np.ndarray, true: np.ndarray) -> dict:
    ape = np.abs(pred - true) / true
    return {"rows": int(len(true)), "median_ape": float(np.median(ape)),
            "p90_ape": float(np.quantile(ape, 0.9)), "max_ape": float(ape.max())}


def _raw_columns(df: pd.DataFrame, family: str) -> np.ndarray:
    """Raw shape columns (+ categorical codes) as a Vidur-style model sees them."""
    fam = get_family(family)
    cols = []
    for c in fam.columns:
        if c.kind in ("int", "float"):
            cols.append(df[c.name].to_numpy(dtype=float))
        else:
            cols.append(pd.factorize(df[c.name], sort=True)[0].astype(float))
    return np.column_stack(cols)


def random_forest_baseline(train: pd.DataFrame, test: pd.DataFrame, family: str, seed: int) -> np.ndarray:
    from sklearn.ensemble import RandomForestRegressor

    both = pd.concat([train, test], ignore_index=True)  # consistent categorical codes
    raw = _raw_columns(both, family)
    rf = RandomForestRegressor(n_estimators=50, random_state=seed, n_jobs=-1, min_samples_leaf=1)
    rf.fit(raw[: len(train)], train["latency_ms"].to_numpy())
    return rf.predict(raw[len(train):])


def roofline_baseline(test: pd.DataFrame, family: str, gpu: str) -> np.ndarray:
    return featurize(family, test, get_gpu(gpu))[1]


def evaluate_group(df: pd.DataFrame, family: str, gpu: str, *, seed: int = 0, model_params: dict | None = None,
                   with_baselines: bool = True, extrapolation: bool = True):
    """Accuracy rows for one training table on the random and extrapolation splits.

    Returns (rows, fitted model on the random split's training part): that model's held-out error is
    the one reported, and it is the model that gets saved.
    """
    params = dict(model_params or {})
    results, saved_model = [], None
    splits = [("random", random_split(len(df), seed))]
    grp = group_split(df, family, seed) if extrapolation else None
    if grp is not None:
        splits.append(("extrapolation", grp))
    for split_name, (tr, te) in splits:
        train, test = df.iloc[tr].reset_index(drop=True), df.iloc[te].reset_index(drop=True)
        true = test["latency_ms"].to_numpy()
        model = OperatorModel(family, gpu, seed=seed, **params).fit(train)
        preds = {"xgboost": model.predict(test)}
        if with_baselines:
            preds["random_forest"] = random_forest_baseline(train, test, family, seed)
            preds["roofline"] = roofline_baseline(test, family, gpu)
        for name, p in preds.items():
            results.append({"split": split_name, "model": name, **ape_stats(p, true)})
        if split_name == "random":
            saved_model = model
            saved_model.metrics_ = {r["model"]: {k: r[k] for k in ("rows", "median_ape", "p90_ape", "max_ape")}
                                    for r in results if r["split"] == "random"}
    return results, saved_model
