"""From a canonical profile table to training rows: kernel choice, de-duplication, splits."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from ..profiles.schema import family as get_family

#: columns that make rows of one family different *operations* (not alternative kernels for one).
VARIANT_COLUMNS = {
    "gemm": ["dtype"],
    "attention_prefill": ["dtype", "kv_dtype"],
    "attention_decode": ["dtype", "kv_dtype"],
    "mla_prefill": ["dtype", "kv_dtype", "scope"],
    "mla_decode": ["dtype", "kv_dtype", "scope"],
    "gdn_prefill": ["conv_kernel"],
    "gdn_decode": ["conv_kernel"],
    "mamba2_conv_prefill": ["conv_kernel"],
    "mamba2_conv_decode": ["conv_kernel"],
    "kda_prefill": ["conv_kernel"],
    "kda_decode": ["conv_kernel"],
    "mla_bmm": ["dtype", "op"],
    "msa_prefill": ["dtype", "kv_dtype"],
    "msa_decode": ["dtype", "kv_dtype"],
    "mhc": ["op"],
    "dsa_prefill": ["dtype", "kv_dtype"],
    "dsa_decode": ["dtype", "kv_dtype"],
    "moe": ["dtype"],
    "moe_deepep": ["dtype", "phase"],
    "collective": ["op", "implementation"],
    "moe_a2a": ["backend"],
}

#: held-out groups for the extrapolation split: whole shape families the model never saw.
EXTRAPOLATION_GROUPS = {
    "gemm": ["n", "k"],
    "attention_prefill": ["num_heads", "num_kv_heads", "head_dim"],
    "attention_decode": ["num_heads", "num_kv_heads", "head_dim"],
    "mla_prefill": ["num_heads"],
    "mla_decode": ["num_heads"],
    "gdn_prefill": ["num_k_heads", "num_v_heads"],
    "gdn_decode": ["num_k_heads", "num_v_heads"],
    "mamba2_conv_prefill": ["num_heads", "d_state", "n_groups"],
    "mamba2_conv_decode": ["num_heads", "d_state", "n_groups"],
    "kda_prefill": ["num_k_heads", "num_v_heads"],
    "kda_decode": ["num_k_heads", "num_v_heads"],
    "mla_bmm": ["num_heads"],
    "msa_prefill": ["num_heads"],
    "msa_decode": ["num_heads"],
    "mhc": ["hidden_size"],
    "dsa_prefill": ["num_heads"],
    "dsa_decode": ["num_heads"],
    "moe": ["hidden_size", "inter_size", "num_experts", "topk"],
    "moe_deepep": ["hidden_size", "inter_size", "num_experts", "topk"],
    "collective": ["message_bytes"],
    "moe_a2a": ["hidden_size", "num_experts", "topk"],
}


def primary_kernels(df: pd.DataFrame, family: str) -> dict:
    """For each operation variant, the kernel with the most measured rows (the engine's main path)."""
    keys = VARIANT_COLUMNS[family]
    counts = df.groupby(keys + ["kernel"], observed=True).size().reset_index(name="rows")
    best = counts.sort_values(["rows", "kernel"], ascending=[False, True]).drop_duplicates(keys)
    return {tuple(r[k] for k in keys): r["kernel"] for _, r in best.iterrows()}


def training_rows(df: pd.DataFrame, family: str) -> tuple[pd.DataFrame, dict]:
    """Keep the primary kernel of each variant and take the median latency of repeated shapes."""
    keys = VARIANT_COLUMNS[family]
    chosen = primary_kernels(df, family)
    key_tuples = list(zip(*[df[k] for k in keys]))
    mask = np.array([chosen[t] == kern for t, kern in zip(key_tuples, df["kernel"])])
    sub = df[mask]
    fam = get_family(family)
    shape = [c.name for c in fam.columns]
    sub = sub.groupby(shape, as_index=False, observed=True, sort=False).agg(
        latency_ms=("latency_ms", "median"), kernel=("kernel", "first"))
    kernels = {"/".join(map(str, k)): v for k, v in chosen.items()}
    return sub.reset_index(drop=True), kernels


def random_split(n: int, seed: int, test_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    idx = rng.permutation(n)
    n_test = max(1, int(round(n * test_fraction)))
    return np.sort(idx[n_test:]), np.sort(idx[:n_test])


def group_split(df: pd.DataFrame, family: str, seed: int, test_fraction: float = 0.2):
    """Hold out ~test_fraction of the distinct shape groups (e.g. whole (n, k) pairs for GEMM)."""
    cols = EXTRAPOLATION_GROUPS[family]
    groups = df[cols].drop_duplicates().reset_index(drop=True)
    if len(groups) < 3:
        return None
    rng = np.random.default_rng(seed)
    n_test = max(1, int(round(len(groups) * test_fraction)))
    test_groups = groups.iloc[rng.permutation(len(groups))[:n_test]]
    is_test = df[cols].merge(test_groups.assign(_t=1), on=cols, how="left")["_t"].notna().to_numpy()
    if is_test.all() or not is_test.any():
        return None
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def frame_checksum(df: pd.DataFrame) -> str:
    """Stable sha256 of a table's contents (for model metadata and cache keys)."""
    h = hashlib.sha256(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return h.hexdigest()
