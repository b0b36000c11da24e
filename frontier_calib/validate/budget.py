"""Error budget of a silicon row: where the predicted time goes, and which rows the data contradicts itself on.

Two questions a reader of a validation report asks before trusting a MAPE:

* **Which part of the prediction is the error in?** :func:`row_budget` splits a replayed row's prediction into
  its parts, from the cost model the replay used (:meth:`~frontier_calib.cost.iteration.IterationCostModel.breakdown`):
  a steady decode step at the row's batch (kernels vs the engine's overhead: padding, launches, CPU not hidden,
  output path; :mod:`frontier_calib.cost.engine_time`), and the row's prompt prefilled alone in
  budget-sized chunks (kernels vs overhead) plus the front-end latency. What the predicted TTFT holds beyond the
  isolated prefill and the front end is queueing (and, for disaggregated rows, the KV hand-off): the replay's
  scheduler, not a kernel table.
* **Is the measurement consistent?** :func:`twin_disagreement` flags rows whose measured TTFT disagrees with
  their twins: the same deployment (``config_key``) at the same prompt length and concurrency but another
  output length. TTFT barely depends on the output length while the KV cache is not the limit, so a twin that
  differs by more than :data:`TWIN_RATIO` is a measurement no model can follow. :func:`in_flight_shortfall`
  flags rows whose benchmark did not keep its clients' requests in flight: in a closed loop every client always
  has one request outstanding, so by Little's law the requests decoding at once are ``concurrency`` x the share
  of a request's time spent after its first token, ``(osl - 1) x TPOT / (TTFT + (osl - 1) x TPOT)``. A row
  measured below :data:`IN_FLIGHT_SHORT` of its clients, where the replay of the same deployment (engine running
  cap, KV cache that holds the working set) keeps above :data:`IN_FLIGHT_REPLAY` of them decoding, ran fewer
  requests at once than the row says (a client-side connection cap, a server limit the row does not record).

All times in milliseconds.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

#: columns :func:`row_budget` adds to a row (milliseconds)
BUDGET_COLUMNS = ("budget_decode_kernels_ms", "budget_decode_overhead_ms", "budget_prefill_kernels_ms",
                  "budget_prefill_overhead_ms", "budget_frontend_ms")
#: a twin whose measured TTFT differs by more than this factor disagrees
TWIN_RATIO = 1.8
#: twins are compared only while the full-length working set stays below this share of the KV cache
TWIN_MAX_KV_LOAD = 0.6
#: a row whose measured requests decode for less than this share of their lifetime ran short of its clients ...
IN_FLIGHT_SHORT = 0.6
#: ... when its replay keeps them decoding for more than this share (no queue in the engine as modelled) ...
IN_FLIGHT_REPLAY = 0.9
#: ... and its working set fits the KV cache (``kv_load``: clients x full length / KV capacity)
IN_FLIGHT_MAX_KV_LOAD = 1.0


def row_budget(replicas: list, isl: int, osl: int, concurrency: int, frontend_s_of) -> dict:
    """The :data:`BUDGET_COLUMNS` of one row from its replay's ``replicas`` (ReplicaSpec list: cost model and
    role per attention-DP rank). ``frontend_s_of(prompt_tokens)`` gives the front-end latency in seconds.

    Decode step: ``b`` = the row's clients per decoding rank (at most the rank's running cap), each at the mean
    context ``isl + osl / 2``. Prefill: the prompt alone, in chunks of the rank's token budget."""
    dec = next((r for r in replicas if r.role in ("decode", "both")), None)
    pre = next((r for r in replicas if r.role in ("prefill", "both")), None)
    out = {c: math.nan for c in BUDGET_COLUMNS}
    if not all(hasattr(r.cost, "breakdown") for r in (dec, pre) if r is not None):
        return out
    if dec is not None:
        ranks = sum(1 for r in replicas if r.role in ("decode", "both"))
        b = max(1, min(-(-int(concurrency) // ranks), int(dec.scheduler.max_num_seqs)))
        bd = dec.cost.breakdown([], [], b, int(b * (isl + osl / 2)))
        out["budget_decode_kernels_ms"] = bd.total_ms - bd.overhead_ms
        out["budget_decode_overhead_ms"] = bd.overhead_ms
    if pre is not None:
        chunk = max(1, int(getattr(pre.cost, "max_tokens", isl)))
        kernels = overhead = 0.0
        done = 0
        while done < isl:
            q = min(chunk, isl - done)
            done += q
            bd = pre.cost.breakdown([q], [done], 0, 0)
            kernels += bd.total_ms - bd.overhead_ms
            overhead += bd.overhead_ms
        out["budget_prefill_kernels_ms"], out["budget_prefill_overhead_ms"] = kernels, overhead
    out["budget_frontend_ms"] = float(frontend_s_of(isl)) * 1e3
    return out


def twin_disagreement(rows: pd.DataFrame) -> pd.Series:
    """Per row: True when its measured TTFT disagrees with its twins (same ``config_key``, ``isl`` and
    ``concurrency``, another ``osl``; all below :data:`TWIN_MAX_KV_LOAD`) by more than :data:`TWIN_RATIO`: with
    three or more rows in the group, against the group's median (the odd one out); with two, against each other
    (both flagged: the data cannot say which is right). False when it has twins that agree, NA when it has none
    (or the columns are missing)."""
    out = pd.Series(pd.NA, index=rows.index, dtype="boolean")
    need = ("config_key", "isl", "osl", "concurrency", "silicon_ttft_ms")
    if any(c not in rows.columns for c in need):
        return out
    load = rows["kv_load"].fillna(0) if "kv_load" in rows.columns else pd.Series(0.0, index=rows.index)
    ok = (load < TWIN_MAX_KV_LOAD) & (rows["silicon_ttft_ms"] > 0)
    for _, g in rows[ok].groupby(["config_key", "isl", "concurrency"], sort=False):
        if g["osl"].nunique() < 2:
            continue
        t = g["silicon_ttft_ms"].to_numpy(float)
        ref = np.full(len(t), np.median(t)) if len(t) > 2 else t[::-1]   # two twins: each other
        r = t / ref
        for idx, x in zip(g.index, r):
            out[idx] = bool(x > TWIN_RATIO or x < 1 / TWIN_RATIO)
    return out


def decoding_share(ttft_ms, tpot_ms, osl) -> pd.Series:
    """Share of a request's lifetime spent after its first token, ``(osl - 1) x TPOT / (TTFT + (osl - 1) x
    TPOT)``; in a closed loop, by Little's law, the requests decoding at once over the clients."""
    dec = (pd.Series(osl, dtype=float) - 1).clip(lower=0) * pd.Series(tpot_ms, dtype=float)
    return dec / (pd.Series(ttft_ms, dtype=float) + dec)


def in_flight_shortfall(rows: pd.DataFrame) -> pd.Series:
    """Per row: True when the measurement kept fewer of its clients' requests decoding than
    :data:`IN_FLIGHT_SHORT` while the replay kept more than :data:`IN_FLIGHT_REPLAY` and the working set fits the
    KV cache (``kv_load`` below :data:`IN_FLIGHT_MAX_KV_LOAD`): the benchmark ran fewer requests at once than its
    concurrency says. False otherwise; NA where the columns are missing or a time is not positive."""
    out = pd.Series(pd.NA, index=rows.index, dtype="boolean")
    need = ("osl", "silicon_ttft_ms", "silicon_tpot_ms", "pred_ttft_ms", "pred_tpot_ms", "kv_load")
    if any(c not in rows.columns for c in need):
        return out
    valid = (rows[["silicon_ttft_ms", "silicon_tpot_ms", "pred_ttft_ms", "pred_tpot_ms"]] > 0).all(axis=1) \
        & rows["kv_load"].notna() & (rows["osl"] > 1)
    v = rows[valid]
    measured = decoding_share(v["silicon_ttft_ms"].to_numpy(), v["silicon_tpot_ms"].to_numpy(), v["osl"].to_numpy())
    replayed = decoding_share(v["pred_ttft_ms"].to_numpy(), v["pred_tpot_ms"].to_numpy(), v["osl"].to_numpy())
    flag = (measured.to_numpy() < IN_FLIGHT_SHORT) & (replayed.to_numpy() > IN_FLIGHT_REPLAY) \
        & (v["kv_load"].to_numpy(float) < IN_FLIGHT_MAX_KV_LOAD)
    out.loc[v.index] = flag
    return out


def budget_table(rows: pd.DataFrame, by=("system", "backend")) -> pd.DataFrame:
    """Per group of ok rows (shares are means over the rows): the predicted TPOT's kernel and overhead shares (of
    the steady decode step) and the rest (interference: prefill chunks and batch changes between the steps,
    negative when the batch is smaller than the clients per rank), the predicted TTFT's prefill-kernel, prefill-overhead, front-end and queueing shares (queueing = what
    the TTFT holds beyond the isolated prefill and the front end), the rows with twins and those disagreeing
    with them, the rows that ran short of their clients (:func:`in_flight_shortfall`), and the MAPEs with and
    without the rows of either kind."""
    ok = rows[rows["status"] == "ok"].copy()
    if ok.empty or any(c not in ok.columns for c in BUDGET_COLUMNS):
        return pd.DataFrame()
    ok["twin_disagrees"] = twin_disagreement(rows).reindex(ok.index)
    ok["short_in_flight"] = in_flight_shortfall(rows).reindex(ok.index)
    recs = []
    for key, g in ok.groupby(list(by), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        dk, do = g["budget_decode_kernels_ms"], g["budget_decode_overhead_ms"]
        pk, po, fe = g["budget_prefill_kernels_ms"], g["budget_prefill_overhead_ms"], g["budget_frontend_ms"]
        tpot = g["pred_tpot_ms"].replace(0, np.nan)
        ttft = g["pred_ttft_ms"].replace(0, np.nan)
        queue = (ttft - pk - po - fe).clip(lower=0)
        twins = g["twin_disagrees"]
        short = g["short_in_flight"].fillna(False).to_numpy(bool)
        clean = g[~(twins.fillna(False).to_numpy(bool) | short)]
        recs.append({**dict(zip(by, key)), "rows": int(len(g)),
                     "tpot_kernels": float((dk / tpot).clip(upper=1).mean()),
                     "tpot_overhead": float((do / tpot).clip(upper=1).mean()),
                     "tpot_interference": float(((tpot - dk - do) / tpot).mean()),
                     "ttft_prefill_kernels": float((pk / ttft).clip(upper=1).mean()),
                     "ttft_prefill_overhead": float((po / ttft).clip(upper=1).mean()),
                     "ttft_frontend": float((fe / ttft).clip(upper=1).mean()),
                     "ttft_queueing": float((queue / ttft).mean()),
                     "rows_with_twins": int(twins.notna().sum()), "twins_disagree": int(twins.fillna(False).sum()),
                     "short_in_flight": int(short.sum()),
                     "ttft_mape": float(g["ttft_ape"].mean()), "ttft_mape_without": float(clean["ttft_ape"].mean())
                     if len(clean) else math.nan,
                     "tpot_mape": float(g["tpot_ape"].mean()), "tpot_mape_without": float(clean["tpot_ape"].mean())
                     if len(clean) else math.nan})
    return pd.DataFrame(recs)
