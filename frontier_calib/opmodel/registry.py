"""All operator models of one (GPU, engine): fit them, save/load them, cache them per user.

A model set is a folder::

    index.json                      gpu, engine, profile checksum, one entry per (family, group)
    <family>__<group>.ubj           XGBoost's own binary JSON (sets saved before format 2: .json, still read)
    <family>__<group>.thresholds.npz   the ensemble's split thresholds per feature (OperatorModel.split_thresholds)
    <family>__<group>.meta.json     features, training-data checksum, metrics

Fitted sets are cached under the platform cache dir (``$FRONTIER_CALIB_CACHE`` overrides), keyed by
the checksum of the profile tables they were fitted on, so a later replay does not refit.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ..lazy import pandas as pd

from ..cache_folder import cache_dir, touch
from ..errors import CoverageError, FrontierError
from ..io import write_json
from ..profiles import store
from ..profiles.first_use import ensure_tables
from ..profiles.schema import FAMILIES
from ..profiles.schema import family as get_family


def _model_name(family: str, group: str) -> str:
    return f"{family}__{group}"


@dataclass
class ModelSet:
    """Fitted operator models for one GPU and engine; ``predict(family, df)`` routes rows by dtype group."""

    gpu: str
    engine: str
    models: dict = field(default_factory=dict)       #: (family, group) -> OperatorModel
    kernels: dict = field(default_factory=dict)      #: family -> {variant: kernel used}
    profile_checksum: str = ""
    #: (family, group) -> why no model was fitted to that table (see :func:`.screen.unmeasured_reason`)
    not_fitted: dict = field(default_factory=dict)

    def families(self) -> list[str]:
        return sorted({f for f, _ in self.models})

    def groups(self, family: str) -> list[str]:
        return sorted(g for f, g in self.models if f == family)

    def has(self, family: str, group: str | None = None) -> bool:
        return any(f == family and (group is None or g == group) for f, g in self.models)

    def predict(self, family: str, df: pd.DataFrame) -> np.ndarray:
        """Milliseconds per row; rows are routed to the model of their dtype group."""
        fam = get_family(family)
        if not self.has(family):
            unfit = [f"{g}: {why}" for (f, g), why in sorted(self.not_fitted.items()) if f == family]
            raise CoverageError(f"no fitted '{family}' model for gpu={self.gpu} engine={self.engine} "
                                + (f"(not fitted: {'; '.join(unfit)})" if unfit
                                   else "(the profile tables lack this family)"))
        if fam.group_column is None:
            return self.models[(family, "all")].predict(df)
        out = np.empty(len(df))
        keys = df[fam.group_column].to_numpy()
        for g in pd.unique(keys):
            if (family, g) in self.not_fitted:
                raise CoverageError(f"no '{family}' model for {fam.group_column}={g} on gpu={self.gpu} "
                                    f"engine={self.engine}: the table was not fitted, {self.not_fitted[(family, g)]}")
            if (family, g) not in self.models:
                raise CoverageError(f"no '{family}' model for {fam.group_column}={g} on gpu={self.gpu} "
                                    f"engine={self.engine}; fitted groups: {self.groups(family)}")
            sel = keys == g
            out[sel] = self.models[(family, g)].predict(df[sel])
        return out

    def out_of_range_counts(self) -> dict:
        return {f"{f}/{g}": (m.n_out_of_range, m.n_predicted) for (f, g), m in self.models.items()}

    # ---------------------------------------------------------------- persistence
    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        entries = []
        for (fam, grp), model in sorted(self.models.items()):
            name = _model_name(fam, grp)
            model.save(directory, name)
            entries.append({"family": fam, "group": grp, "name": name})
        write_json({"gpu": self.gpu, "engine": self.engine, "profile_checksum": self.profile_checksum,
                    "kernels": self.kernels, "models": entries,
                    "not_fitted": [{"family": f, "group": g, "reason": why}
                                   for (f, g), why in sorted(self.not_fitted.items())]}, directory / "index.json")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "ModelSet":
        directory = Path(directory)
        idx_path = directory / "index.json"
        if not idx_path.exists():
            raise FrontierError(f"{idx_path}: no fitted model set here (run `frontier-calib fit`)")
        idx = json.loads(idx_path.read_text())
        ms = cls(idx["gpu"], idx["engine"], kernels=idx.get("kernels", {}),
                 profile_checksum=idx.get("profile_checksum", ""))
        from .model import OperatorModel   # here: finding cached tables (cost/cache.py) needs no model code

        for e in idx["models"]:
            ms.models[(e["family"], e["group"])] = OperatorModel.load(directory, e["name"])
        ms.not_fitted = {(e["family"], e["group"]): e["reason"] for e in idx.get("not_fitted", [])}
        return ms


def _ensure_tables(gpu: str, engine: str, root) -> None:
    """With the default folders, import a GPU's tables that are not bundled on first use."""
    if root is None:
        ensure_tables(gpu, engine)


def load_profiles(gpu: str, engine: str, root=None, families=None) -> dict[str, pd.DataFrame]:
    """Every available family table for (gpu, engine) under ``root`` (default: bundled, then user data, where
    tables beyond the bundle are imported on first use)."""
    _ensure_tables(gpu, engine, root)
    out = {}
    for fam in families or FAMILIES:
        try:
            out[fam] = store.load_family(fam, gpu, engine, root)
        except CoverageError:
            continue
    if not out:
        raise CoverageError(f"no profile tables for gpu={gpu} engine={engine} under "
                            f"{store.describe_roots(root)} (see `frontier-calib profiles list`)")
    return out


def profiles_checksum(tables: dict[str, pd.DataFrame]) -> str:
    import hashlib

    from .dataset import frame_checksum

    h = hashlib.sha256()
    for fam in sorted(tables):
        h.update(fam.encode())
        h.update(frame_checksum(tables[fam]).encode())
    return h.hexdigest()[:16]


@dataclass
class FitReport:
    results: list          #: accuracy rows, see `frontier-calib fit --report-json`
    fit_seconds: float
    model_set: ModelSet
    #: family -> (rows dropped by the measurement-glitch screen, training rows before it); see :mod:`.screen`
    screened: dict = field(default_factory=dict)


def fit_all(gpu: str, engine: str, *, root=None, families=None, seed: int = 0, with_baselines: bool = True,
            extrapolation: bool = True, progress: bool = False, model_params: dict | None = None,
            tables: dict | None = None) -> FitReport:
    """Fit one model per (family, dtype group) and measure held-out accuracy against the baselines."""
    from .dataset import training_rows
    from .evaluate import evaluate_group   # fitting code: imported by the fits only (see frontier_calib/lazy.py)
    from .screen import glitch_mask, unmeasured_reason

    t0 = time.perf_counter()
    tables = tables if tables is not None else load_profiles(gpu, engine, root, families)
    ms = ModelSet(gpu, engine, profile_checksum=profiles_checksum(tables))
    jobs, screened = [], {}
    for fam, table in tables.items():
        rows, kernels = training_rows(table, fam)
        glitch = glitch_mask(rows, fam)   # before any split: every model and baseline sees the same rows
        screened[fam] = (int(glitch.sum()), len(rows))
        ms.kernels[fam] = kernels
        gcol = get_family(fam).group_column
        for grp, idx in (rows.groupby(gcol, observed=True).indices.items() if gcol
                         else [("all", np.arange(len(rows)))]):
            why = unmeasured_reason(int(glitch[idx].sum()), len(idx))
            if why is not None:
                ms.not_fitted[(fam, str(grp))] = why
                continue
            sub = rows.iloc[idx[~glitch[idx]]]
            if len(sub) >= 20:
                jobs.append((fam, str(grp), sub.reset_index(drop=True)))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc=f"fit {gpu}/{engine}", unit="model")
    results = []
    for fam, grp, sub in jobs:
        if bar:
            bar.set_postfix_str(f"{fam}/{grp} ({len(sub)} rows)")
        rows, model = evaluate_group(sub, fam, gpu, seed=seed, model_params=model_params,
                                     with_baselines=with_baselines, extrapolation=extrapolation)
        for r in rows:
            results.append({"op": fam, "dtype": grp, **r})
        ms.models[(fam, grp)] = model
        if bar:
            bar.update(1)
    if bar:
        bar.close()
    return FitReport(results=results, fit_seconds=time.perf_counter() - t0, model_set=ms, screened=screened)


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Hash of the feature and model code (and the dtype facts features read): a fitted model is only reused by
    the code that fitted it."""
    import hashlib

    here = Path(__file__).parent
    h = hashlib.sha256()
    for path in (here / "features.py", here / "model.py", here / "dataset.py", here / "screen.py",
                 here.parent / "dtypes.py"):
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def family_files(gpu: str, engine: str, family: str, root) -> list[Path]:
    """The table files one family is fitted on (imported first when they are not bundled)."""
    _ensure_tables(gpu, engine, root)
    return store.family_paths(gpu, engine, family, root)


def _table_groups(table: pd.DataFrame, family: str) -> list[str]:
    gcol = get_family(family).group_column
    return ["all"] if gcol is None else sorted(map(str, table[gcol].unique()))


def family_cache_dir(gpu: str, engine: str, family: str, root=None) -> Path | None:
    """Cache folder of one family's models, keyed by the sha256 of its table files and of the feature/model
    code (None: no table)."""
    import hashlib

    files = family_files(gpu, engine, family, root)
    if not files:
        return None
    key = hashlib.sha256(("".join(store.file_sha256(f) for f in files) + code_fingerprint()).encode()
                         ).hexdigest()[:16]
    return cache_dir() / "models" / gpu / engine / f"{family}-{key}"


def save_to_cache(model_set: ModelSet, root=None) -> list[Path]:
    """Store a fitted set where :func:`cached_model_set` looks for it (one folder per family)."""
    written = []
    for fam in sorted(set(model_set.families()) | {f for f, _ in model_set.not_fitted}):
        directory = family_cache_dir(model_set.gpu, model_set.engine, fam, root)
        if directory is None:
            continue
        part = ModelSet(model_set.gpu, model_set.engine, profile_checksum=model_set.profile_checksum,
                        models={k: m for k, m in model_set.models.items() if k[0] == fam},
                        not_fitted={k: v for k, v in model_set.not_fitted.items() if k[0] == fam},
                        kernels={fam: model_set.kernels[fam]} if fam in model_set.kernels else {})
        written.append(part.save(directory))
    return written


#: folder -> ((index.json mtime ns, size), ModelSet): model sets this process loaded (see loaded_model_set)
_LOADED: dict = {}
_LOADED_MAX = 48


def loaded_model_set(directory: Path) -> ModelSet:
    """``ModelSet.load(directory)``, kept for the rest of the process: loading XGBoost's JSON and finding the
    split thresholds takes seconds per family, and one process often builds the cost tables of many deployment
    shapes from the same models (``validate silicon``, sweeps). A folder whose ``index.json`` changed (a refit
    writes it last) is loaded again. The models' out-of-range counters restart at every call, so each caller
    still gets its own extrapolation warning."""
    idx = Path(directory) / "index.json"
    st = idx.stat()
    stamp = (st.st_mtime_ns, st.st_size)
    hit = _LOADED.get(str(directory))
    if hit is not None and hit[0] == stamp:
        ms = hit[1]
        _LOADED[str(directory)] = _LOADED.pop(str(directory))   # most recently used last
    else:
        ms = ModelSet.load(directory)
        _LOADED[str(directory)] = (stamp, ms)
        while len(_LOADED) > _LOADED_MAX:
            _LOADED.pop(next(iter(_LOADED)))
    for m in ms.models.values():
        m.n_predicted = m.n_out_of_range = 0
    return ModelSet(ms.gpu, ms.engine, models=dict(ms.models), kernels={k: dict(v) for k, v in ms.kernels.items()},
                    profile_checksum=ms.profile_checksum, not_fitted=dict(ms.not_fitted))


def remember_model_set(directory: Path, ms: ModelSet) -> None:
    """Keep ``ms``, just saved to ``directory``, as what :func:`loaded_model_set` returns for it."""
    st = (Path(directory) / "index.json").stat()
    _LOADED.pop(str(directory), None)
    _LOADED[str(directory)] = ((st.st_mtime_ns, st.st_size), ms)


def cached_model_set(gpu: str, engine: str, *, families=None, groups: dict | None = None, root=None,
                     refit: bool = False, progress: bool = False, threads: int | None = None) -> ModelSet:
    """Fitted models for (gpu, engine) from the user cache, fitting what is missing once.

    ``threads``: XGBoost threads per fit (default: XGBoost's, i.e. ``OMP_NUM_THREADS``). The fitted models do not
    depend on it (histogram training is deterministic across thread counts: ``tests/test_opmodel.py``).

    Each family is cached on its own, keyed by the sha256 of the table files it is fitted on (and the
    feature/model code), so a replay fits only what its model needs, and only the first time.
    ``groups`` ({family: {dtype group, ...}}) limits fitting to the dtype groups a deployment uses;
    families not named in it get all their groups.
    """
    _ensure_tables(gpu, engine, root)
    merged = ModelSet(gpu, engine)
    found = 0
    for fam in families or list(FAMILIES):
        directory = family_cache_dir(gpu, engine, fam, root)
        if directory is None:
            continue
        found += 1
        part = loaded_model_set(directory) if (directory / "index.json").exists() and not refit \
            else ModelSet(gpu, engine)
        if part.models:
            touch(directory)   # last use (the folder's mtime), for `frontier-calib cache prune --older-than`
        have = set(part.groups(fam)) | {g for f, g in part.not_fitted if f == fam}
        table = None
        want = set((groups or {}).get(fam) or ())
        if not want:  # every group of the table
            table = store.load_family(fam, gpu, engine, root)
            want = set(_table_groups(table, fam))
        missing = want - have
        if missing:
            table = table if table is not None else store.load_family(fam, gpu, engine, root)
            gcol = get_family(fam).group_column
            sub = table if gcol is None else table[table[gcol].isin(missing)]
            if sub.empty:
                raise CoverageError(f"no '{fam}' rows for {gcol}={sorted(missing)} on gpu={gpu} engine={engine}; "
                                    f"the tables have {sorted(_table_groups(table, fam))}")
            fitted = fit_all(gpu, engine, with_baselines=False, extrapolation=False, progress=progress,
                             tables={fam: sub}, model_params={"n_jobs": threads} if threads else None).model_set
            part.models.update(fitted.models)
            part.not_fitted.update(fitted.not_fitted)
            part.kernels.setdefault(fam, {}).update(fitted.kernels.get(fam, {}))
            part.save(directory)
            remember_model_set(directory, part)   # later loads in this process use these models
        merged.models.update(part.models)
        merged.not_fitted.update(part.not_fitted)
        for f, k in part.kernels.items():
            merged.kernels.setdefault(f, {}).update(k)
    if not found:
        raise CoverageError(f"no profile tables for gpu={gpu} engine={engine} under "
                            f"{store.describe_roots(root)} (see `frontier-calib profiles list`)")
    return merged
