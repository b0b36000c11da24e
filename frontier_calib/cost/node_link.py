"""The GPU-to-GPU path inside a node when it is not the one the collective tables were measured on.

The bundled ``collective`` tables are measured on the vendor's reference servers: on PCIe cards (RTX PRO 6000,
L40S) those servers allow peer-to-peer copies, so vLLM's custom all-reduce moves 10 KB in ~4 us. Many real
servers do not (IOMMU/ACS on, cards under different root complexes, virtual machines): NCCL then stages every
transfer through host memory, and an all-reduce of the same 10 KB costs tens of microseconds. Nothing in the kernel
tables can show which machine a run used, so a deployment says it::

    cluster:
      link: {bandwidth_GBps: 16, latency_us: 20}   # what CUDA's p2pBandwidthLatencyTest reports between two GPUs

With a ``link``, the collectives inside one node (tensor-parallel all-reduces, the all-gather/reduce-scatter of
expert parallelism without all-to-all kernels) are priced by the ring algorithm over that link instead of the
tables (:func:`ring_allreduce_ms`, :func:`ring_allgather_ms`, also used for the GPU spec's NVLink and network
figures by :mod:`.iteration`). The ring costs are the standard ones (Patarasuk &
Yuan, "Bandwidth optimal all-reduce algorithms for clusters of workstations", JPDC 2009; NCCL's
``doc/PERFORMANCE.md``: bus bandwidth = algorithm bandwidth x 2(n-1)/n for all-reduce, (n-1)/n for all-gather and
reduce-scatter): every GPU sends and receives ``(n-1)/n`` of the buffer per phase, in ``n-1`` hops of one link
latency each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError

LINK_KEYS = {"bandwidth_GBps", "latency_us"}


@dataclass(frozen=True)
class NodeLink:
    """One GPU's path to another GPU of its node."""

    bandwidth: float   #: bytes/s one way, per GPU
    latency_s: float   #: seconds per hop (a transfer's fixed cost)


def ring_allreduce_ms(nbytes, ranks: int, bandwidth: float, latency_s: float) -> np.ndarray:
    """Milliseconds of a ring all-reduce of a buffer of ``nbytes`` bytes (what each rank holds) among ``ranks``
    ranks, each sending over its own link of ``bandwidth`` bytes/s (one direction) with ``latency_s`` seconds
    per step. The ring takes 2 (ranks - 1) steps (reduce-scatter, then all-gather), each moving nbytes / ranks
    bytes per rank::

        2 (ranks - 1) / ranks x nbytes / bandwidth  +  2 (ranks - 1) x latency_s

    Zero for one rank.
    """
    nbytes = np.asarray(nbytes, dtype=float)
    if ranks <= 1:
        return np.zeros(nbytes.shape)
    steps = 2 * (ranks - 1)
    return (steps / ranks * nbytes / bandwidth + steps * latency_s) * 1e3


def ring_allgather_ms(nbytes, ranks: int, bandwidth: float, latency_s: float) -> np.ndarray:
    """Milliseconds of a ring all-gather or reduce-scatter of a buffer of ``nbytes`` bytes (the whole buffer, as
    in the ``collective`` tables) among ``ranks`` ranks: ``ranks - 1`` steps, each moving nbytes / ranks bytes
    per rank::

        (ranks - 1) / ranks x nbytes / bandwidth  +  (ranks - 1) x latency_s
    """
    nbytes = np.asarray(nbytes, dtype=float)
    if ranks <= 1:
        return np.zeros(nbytes.shape)
    return ((ranks - 1) / ranks * nbytes / bandwidth + (ranks - 1) * latency_s) * 1e3


def parse_node_link(cluster: dict, src: str) -> NodeLink | None:
    """The ``link`` mapping of a deployment's ``cluster`` section (None when absent)."""
    raw = cluster.get("link")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InputError(f"must be a mapping {{bandwidth_GBps, latency_us}}, got {raw!r}", path=src,
                         field="cluster.link", fix="e.g. link: {bandwidth_GBps: 16, latency_us: 20}")
    unknown = sorted(set(raw) - LINK_KEYS)
    missing = sorted(LINK_KEYS - set(raw))
    if unknown or missing:
        bad = (unknown or missing)[0]
        raise InputError(f"{'unknown' if unknown else 'missing'} key {bad!r}", path=src, field=f"cluster.link.{bad}",
                         fix="give both bandwidth_GBps (GB/s one way per GPU) and latency_us (microseconds)")
    bw = _number(raw["bandwidth_GBps"], src, "bandwidth_GBps", positive=True)
    lat = _number(raw["latency_us"], src, "latency_us", positive=False)
    return NodeLink(bandwidth=bw * 1e9, latency_s=lat / 1e6)


def _number(v, src: str, key: str, *, positive: bool) -> float:
    ok = not isinstance(v, bool) and isinstance(v, (int, float)) and (v > 0 if positive else v >= 0)
    if not ok:
        raise InputError(f"must be a number {'> 0' if positive else '>= 0'}, got {v!r}", path=src,
                         field=f"cluster.link.{key}", fix="e.g. link: {bandwidth_GBps: 16, latency_us: 20}")
    return float(v)
