"""One XGBoost latency model for one (GPU, operator family, dtype group), scikit-learn style.

    model = OperatorModel("gemm", gpu="h100_sxm").fit(table)   # canonical rows
    ms = model.predict(query)                                 # milliseconds, vectorised
    model.save(dir, "gemm__bf16"); OperatorModel.load(dir, "gemm__bf16")

The regressor learns log2(latency / roofline) from :mod:`.features`; prediction multiplies the
roofline back. Queries outside the training ranges of the shape columns are flagged and counted
(``n_out_of_range``), never silently trusted: see :meth:`out_of_range`.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import FrontierError, InputError
from ..hardware import get_gpu
from ..io import atomic_path, write_json
from ..profiles.schema import family as get_family
from .dataset import frame_checksum
from .features import featurize

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


class OperatorModel:
    """XGBoost regressor on physics-informed features; predictions in milliseconds.

    Parameters are plain attributes set in ``__init__`` (nothing hidden): ``n_estimators`` is the
    cap on boosting rounds, ``early_stopping_rounds`` stops on a seeded ``validation_fraction`` of
    the training rows.
    """

    def __init__(self, family: str, gpu: str, *, n_estimators: int = 1500, learning_rate: float = 0.1,
                 max_depth: int = 8, min_child_weight: float = 1.0, subsample: float = 0.9,
                 colsample_bytree: float = 1.0, early_stopping_rounds: int = 40,
                 validation_fraction: float = 0.1, seed: int = 0, n_jobs: int | None = None):
        self.family = family
        self.gpu = gpu
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_child_weight = min_child_weight
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_fraction = validation_fraction
        self.seed = seed
        self.n_jobs = n_jobs
        # fitted state
        self.booster_ = None
        self.feature_names_: list[str] = []
        self.ranges_: dict[str, list[float]] = {}
        self.categories_: dict[str, list[str]] = {}
        self.training_checksum_: str | None = None
        self.training_rows_: int = 0
        self.best_iteration_: int | None = None
        self.fit_seconds_: float = 0.0
        self.metrics_: dict = {}
        self.n_predicted = 0
        self.n_out_of_range = 0

    # ------------------------------------------------------------------ fit / predict
    def fit(self, df: pd.DataFrame) -> "OperatorModel":
        import xgboost as xgb

        fam = get_family(self.family)
        t0 = time.perf_counter()
        spec = get_gpu(self.gpu)
        x, roof = featurize(self.family, df, spec)
        y = np.log2(df["latency_ms"].to_numpy(dtype=float) / roof)
        rng = np.random.default_rng(self.seed)
        n = len(df)
        n_val = int(round(n * self.validation_fraction)) if n >= 50 else 0
        perm = rng.permutation(n)
        val, train = perm[:n_val], perm[n_val:]
        params = dict(n_estimators=self.n_estimators, learning_rate=self.learning_rate,
                      max_depth=self.max_depth, min_child_weight=self.min_child_weight,
                      subsample=self.subsample, colsample_bytree=self.colsample_bytree,
                      tree_method="hist", random_state=self.seed, n_jobs=self.n_jobs)
        if n_val:
            params["early_stopping_rounds"] = self.early_stopping_rounds
        reg = xgb.XGBRegressor(**params)
        xv = x.to_numpy(dtype=np.float32)
        if n_val:
            reg.fit(xv[train], y[train], eval_set=[(xv[val], y[val])], verbose=False)
            self.best_iteration_ = int(reg.best_iteration)
        else:
            reg.fit(xv, y, verbose=False)
        self.booster_ = reg.get_booster()
        if n_val:  # keep only the trees up to the best round
            self.booster_ = self.booster_[: self.best_iteration_ + 1]
        self.feature_names_ = list(x.columns)
        self.ranges_ = {c: [float(df[c].min()), float(df[c].max())] for c in fam.shape_columns}
        self.categories_ = {c.name: sorted(map(str, df[c.name].unique()))
                            for c in fam.columns if c.kind in ("str", "dtype")}
        self.training_checksum_ = frame_checksum(df)
        self.training_rows_ = n
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def _check_fitted(self):
        if self.booster_ is None:
            raise FrontierError(f"{self.family} model for {self.gpu} is not fitted; call fit() or load()")

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        """Latency in milliseconds for each row of ``df`` (canonical shape columns)."""
        self._check_fitted()
        x, roof = featurize(self.family, df, get_gpu(self.gpu))
        if list(x.columns) != self.feature_names_:
            raise FrontierError(f"feature mismatch for {self.family}: model was fitted with "
                                f"{self.feature_names_}, query gives {list(x.columns)}")
        ratio = self.booster_.inplace_predict(x.to_numpy(dtype=np.float32))
        oor = self.out_of_range(df)
        self.n_predicted += len(df)
        n_oor = int(oor.sum())
        if n_oor:
            if self.n_out_of_range == 0:
                log.warning("%s (%s): %d of %d queries outside the training ranges %s; "
                            "their latencies are extrapolated", self.family, self.gpu, n_oor, len(df),
                            self.ranges_)
            self.n_out_of_range += n_oor
        return roof * np.exp2(ratio.astype(float))

    def out_of_range(self, df: pd.DataFrame) -> np.ndarray:
        """True for rows with a shape value outside what the model was trained on."""
        mask = np.zeros(len(df), dtype=bool)
        for col, (lo, hi) in self.ranges_.items():
            if col in df:
                v = df[col].to_numpy(dtype=float)
                mask |= (v < lo) | (v > hi)
        return mask

    # ------------------------------------------------------------------ persistence
    def metadata(self) -> dict:
        return {
            "format_version": FORMAT_VERSION, "family": self.family, "gpu": self.gpu,
            "params": {k: getattr(self, k) for k in (
                "n_estimators", "learning_rate", "max_depth", "min_child_weight", "subsample",
                "colsample_bytree", "early_stopping_rounds", "validation_fraction", "seed")},
            "features": self.feature_names_, "target": "log2(latency_ms / roofline_ms)",
            "shape_ranges": self.ranges_, "categories": self.categories_,
            "training_rows": self.training_rows_, "training_checksum": self.training_checksum_,
            "best_iteration": self.best_iteration_, "fit_seconds": round(self.fit_seconds_, 3),
            "metrics": self.metrics_,
        }

    def save(self, directory: str | Path, name: str) -> Path:
        """Write ``name.json`` (XGBoost's own JSON) and ``name.meta.json`` into ``directory``."""
        self._check_fitted()
        directory = Path(directory)
        with atomic_path(directory / f"{name}.json") as tmp:
            tmp.write_bytes(bytes(self.booster_.save_raw("json")))
        write_json(self.metadata(), directory / f"{name}.meta.json")
        return directory / f"{name}.json"

    @classmethod
    def load(cls, directory: str | Path, name: str) -> "OperatorModel":
        import xgboost as xgb

        directory = Path(directory)
        meta_path, model_path = directory / f"{name}.meta.json", directory / f"{name}.json"
        if not meta_path.exists() or not model_path.exists():
            raise InputError("saved operator model not found", path=str(model_path),
                             fix="run `frontier-calib fit` for this GPU/engine")
        meta = json.loads(meta_path.read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise InputError(f"model format {meta.get('format_version')} is not {FORMAT_VERSION}",
                             path=str(meta_path), fix="refit with `frontier-calib fit`")
        model = cls(meta["family"], meta["gpu"], **meta["params"])
        booster = xgb.Booster()
        booster.load_model(str(model_path))
        model.booster_ = booster
        model.feature_names_ = meta["features"]
        model.ranges_ = meta["shape_ranges"]
        model.categories_ = meta["categories"]
        model.training_rows_ = meta["training_rows"]
        model.training_checksum_ = meta["training_checksum"]
        model.best_iteration_ = meta["best_iteration"]
        model.fit_seconds_ = meta["fit_seconds"]
        model.metrics_ = meta.get("metrics", {})
        return model
