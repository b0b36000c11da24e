"""Shared by the attention-kind tests: a ModelSet stand-in and a small cost model built on it."""

from __future__ import annotations

import numpy as np

from frontier_calib.cost.iteration import IterationCostModel


class StubModels:
    """A ModelSet stand-in through its public surface: ``predict(family, frame)`` answers a fixed function of the
    frame (milliseconds per layer) and records every query."""

    def __init__(self, fn=None):
        self.calls = []
        self.models = {}
        self.fn = fn or (lambda fam, df: np.full(len(df), 0.01))

    def groups(self, family):
        return []

    def has(self, family, group=None):
        return True

    def predict(self, family, df):
        self.calls.append((family, df.copy()))
        return np.asarray(self.fn(family, df), dtype=float)


def stub_cost(worker, models, **kw):
    """An IterationCostModel on ``models`` with small tables (256 tokens, 16 sequences, 64k context)."""
    kw = {"max_tokens": 256, "max_seqs": 16, "max_model_len": 65536, "kv_grid_points": 16, "q_grid_points": 12,
          **kw}
    return IterationCostModel(worker, models, **kw)
