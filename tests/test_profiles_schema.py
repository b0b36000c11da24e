"""The canonical profile schema (validate_table), the bundled tables, their manifest and their README."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from frontier_calib.errors import InputError
from frontier_calib.profiles import store
from frontier_calib.profiles.importers.aiconfigurator import LICENSE_NOTICE
from frontier_calib.profiles.schema import COMMON, FAMILIES, columns, validate_table

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "profiles"

#: a valid value for each string column that has a fixed vocabulary
_STR_VALUES = {"scope": "module", "distribution": "balanced", "op": "all_reduce", "implementation": "nccl",
               "backend": "deepep_ll", "phase": "dispatch", "gpu": "h100_sxm", "engine": "vllm",
               "engine_version": "0.24.0", "kernel": "some_kernel"}


def good_table(family: str, n: int = 4) -> pd.DataFrame:
    """A small valid table of ``family``: ints 1..n (kv_len >= q_len), dtypes in source spellings."""
    fam = FAMILIES[family]
    data = {}
    for col in list(COMMON[:-1]) + list(fam.columns):
        if col.kind == "int":
            data[col.name] = np.arange(1, n + 1) * (2 if col.name == "kv_len" else 1)
        elif col.kind == "dtype":
            data[col.name] = ["bfloat16", "bf16", "fp8", "half"][:n] + ["bf16"] * max(0, n - 4)
        else:
            data[col.name] = [_STR_VALUES[col.name]] * n
    data["latency_ms"] = np.linspace(0.01, 1.0, n)
    return pd.DataFrame(data)


# ----------------------------------------------------------------------------- validate_table

@pytest.mark.parametrize("family", list(FAMILIES))
def test_accepts_a_good_table_and_canonicalises_it(family):
    raw = good_table(family).sample(frac=1.0, random_state=1)  # shuffled index must not matter
    raw["extra_column"] = "ignored"
    out = validate_table(raw, family, path="good.parquet")
    assert list(out.columns) == columns(family)
    assert isinstance(out.index, pd.RangeIndex) and len(out) == len(raw)
    assert out["latency_ms"].dtype == np.float64
    for col in FAMILIES[family].columns:
        if col.kind == "int":
            assert out[col.name].dtype == np.int64
        if col.kind == "dtype":  # source spellings become canonical names
            assert set(out[col.name]) <= {"bf16", "fp8", "fp16"}
            assert "bfloat16" not in set(out[col.name]) and "half" not in set(out[col.name])


def test_float_valued_whole_numbers_are_accepted_as_ints():
    df = good_table("gemm").astype({"m": float, "n": float})
    out = validate_table(df, "gemm")
    assert out["m"].dtype == np.int64 and list(out["m"]) == [1, 2, 3, 4]


def _rejects(df, family, *, field, text=None, path="/data/bad_table.parquet"):
    with pytest.raises(InputError) as info:
        validate_table(df, family, path=path)
    msg = str(info.value)
    assert path in msg, msg                       # names the file
    assert f"'{field}'" in msg, msg               # names the column
    assert info.value.field == field and info.value.path == path
    if text:
        assert text in msg, msg
    return msg


@pytest.mark.parametrize("family", list(FAMILIES))
def test_missing_column_is_named(family):
    victim = FAMILIES[family].shape_columns[0]
    msg = _rejects(good_table(family).drop(columns=victim), family, field=victim, text="missing column")
    assert "profiles/README.md" in msg  # says where the schema is documented


def test_missing_latency_column_is_named():
    _rejects(good_table("attention_decode").drop(columns="latency_ms"), "attention_decode", field="latency_ms")


@pytest.mark.parametrize("bad", [0.0, -0.5, np.nan, np.inf, "fast"])
def test_non_positive_nan_or_non_numeric_latency_is_rejected(bad):
    df = good_table("gemm").astype({"latency_ms": object})
    df.loc[2, "latency_ms"] = bad
    msg = _rejects(df, "gemm", field="latency_ms")
    assert "row 2" in msg


@pytest.mark.parametrize("family, col", [("gemm", "m"), ("attention_prefill", "kv_len"), ("moe", "num_tokens"),
                                         ("collective", "message_bytes"), ("moe_a2a", "ep_size")])
def test_negative_shape_is_rejected(family, col):
    df = good_table(family)
    df.loc[1, col] = -8
    _rejects(df, family, field=col, text="negative")


@pytest.mark.parametrize("value", [1.5, np.nan, np.inf, "sixty-four"])
def test_non_integer_int_is_rejected(value):
    df = good_table("gemm").astype({"k": object})
    df.loc[3, "k"] = value
    _rejects(df, "gemm", field="k")


@pytest.mark.parametrize("family, col", [("gemm", "dtype"), ("attention_decode", "kv_dtype"), ("moe", "dtype"),
                                         ("collective", "dtype"), ("mla_prefill", "kv_dtype")])
def test_unknown_dtype_is_rejected(family, col):
    df = good_table(family)
    df.loc[1, col] = "float7"
    msg = _rejects(df, family, field=col, text="unknown dtype 'float7'")
    assert "bf16" in msg  # lists what is allowed


def test_empty_string_value_is_rejected():
    df = good_table("moe")
    df.loc[0, "distribution"] = None
    _rejects(df, "moe", field="distribution", text="empty value")


def test_empty_table_and_unknown_family_are_rejected():
    with pytest.raises(InputError, match="no rows") as info:
        validate_table(good_table("gemm").iloc[:0], "gemm", path="empty.csv")
    assert "empty.csv" in str(info.value)
    with pytest.raises(InputError, match="unknown operator family 'conv2d'"):
        validate_table(good_table("gemm"), "conv2d")


def test_read_table_names_the_file_on_disk(tmp_path):
    bad = good_table("gemm")
    bad.loc[0, "n"] = -1
    path = tmp_path / "h100_sxm" / "vllm" / "gemm.csv"
    path.parent.mkdir(parents=True)
    bad.to_csv(path, index=False)
    with pytest.raises(InputError) as info:
        store.read_table(path, "gemm")
    assert str(path) in str(info.value) and "'n'" in str(info.value)
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match="cannot read profile table") as info:
        store.read_table(garbage, "gemm")
    assert str(garbage) in str(info.value)


@settings(max_examples=40, deadline=None)
@given(family=st.sampled_from(list(FAMILIES)), data=st.data())
def test_any_negative_shape_value_is_caught_and_named(family, data):
    ints = [c.name for c in FAMILIES[family].columns if c.kind == "int"]
    col = data.draw(st.sampled_from(ints))
    row = data.draw(st.integers(0, 3))
    value = data.draw(st.integers(-10**9, -1))
    df = good_table(family)
    df.loc[row, col] = value
    with pytest.raises(InputError) as info:
        validate_table(df, family, path="p.parquet")
    assert info.value.field == col and info.value.row == row


# ----------------------------------------------------------------------------- the bundle

@pytest.fixture(scope="module")
def bundled():
    avail = store.available(BUNDLE)
    assert len(avail) > 0, "no bundled tables found"
    return avail


def test_bundle_covers_what_the_issue_requires(bundled):
    have = set(zip(bundled["gpu"], bundled["engine"], bundled["family"]))
    for gpu in ("h100_sxm", "a100_sxm", "h200_sxm"):
        for fam in ("gemm", "attention_prefill", "attention_decode", "moe", "collective"):
            assert (gpu, "vllm", fam) in have, (gpu, fam)
        assert (gpu, "any", "collective") in have  # NCCL
    for fam in ("mla_prefill", "mla_decode", "moe_a2a"):
        assert ("h100_sxm", "vllm", fam) in have, fam
    assert {"sglang", "trtllm"} <= set(bundled["engine"])


def test_every_bundled_table_validates(bundled):
    dtypes_seen = set()
    for r in bundled.itertuples():
        df = store.read_table(Path(r.path), r.family)  # raises InputError on any schema violation
        assert (df["gpu"] == r.gpu).all() and (df["engine"] == r.engine).all(), r.path
        if "dtype" in df:
            dtypes_seen |= set(df["dtype"])
    assert {"bf16", "fp8", "fp8_block"} <= dtypes_seen


def test_manifest_lists_every_bundled_table_with_rows_and_checksum(bundled):
    man = json.loads((BUNDLE / "manifest.json").read_text())
    entries = {e["path"]: e for e in man["tables"]}
    on_disk = {str(Path(p).relative_to(BUNDLE)) for p in bundled["path"]}
    assert set(entries) == on_disk  # nothing missing, nothing stale
    for rel, e in entries.items():
        path = BUNDLE / rel
        assert (e["gpu"], e["engine"], e["family"]) == tuple(Path(rel).parts[:2]) + (Path(rel).stem,)
        assert e["rows"] == pq.read_metadata(path).num_rows, rel
        assert e["sha256"] == store.file_sha256(path), rel
        assert e["source_package"] == "aiconfigurator-core" and e["source_version"] == "0.12.0", rel
        assert e["source_files"] and all(s.startswith(f"data/{e['gpu']}/") for s in e["source_files"]), rel
    assert man["notice"] == LICENSE_NOTICE
    assert (BUNDLE / "NOTICE").read_text().strip() == LICENSE_NOTICE
    assert "Apache License 2.0" in LICENSE_NOTICE


def test_bundle_stays_small():
    size = sum(p.stat().st_size for p in BUNDLE.rglob("*") if p.is_file())
    assert size < 20 * 2**20, f"bundle is {size / 2**20:.1f} MiB (aim: <= 20 MB)"


# ----------------------------------------------------------------------------- the README cannot drift

def test_profiles_readme_documents_every_column_with_its_unit():
    readme = (BUNDLE / "README.md").read_text()
    assert LICENSE_NOTICE in readme
    assert "frontier-calib profiles import aiconfigurator" in readme
    for name, fam in FAMILIES.items():
        start = readme.find(f"### `{name}`")
        assert start >= 0, f"profiles/README.md lacks a section for family '{name}'"
        nxt = readme.find("\n### ", start + 1)
        section = readme[start: nxt if nxt > 0 else None]
        for col in list(COMMON) + list(fam.columns):
            row = f"| `{col.name}` | {col.kind} | {col.unit} |"
            assert row in section, f"profiles/README.md, family '{name}': no row starting {row!r}"
        for shape in fam.shape_columns:
            assert re.search(rf"range-checked at prediction\): [^\n]*\b{shape}\b", section), (name, shape)
