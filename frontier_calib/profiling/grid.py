"""Log-spaced integer grids for token counts, batch sizes, KV lengths and message sizes.

Latency curves are smooth in log space with steps at powers of two (tile and wave boundaries),
so grids take every power of two and the midpoint 1.5 x 2^i between them: dense where kernels
change behaviour, cheap over decades.
"""

from __future__ import annotations


def pow2_and_half_grid(lo: int, hi: int) -> list[int]:
    """Sorted integers in [lo, hi]: 2^i and 3 * 2^(i-1) (1, 2, 3, 4, 6, 8, 12, ...), plus ``hi``."""
    if hi < lo:
        return []
    vals = {hi}
    p = 1
    while p <= hi:
        for v in (p, p + p // 2):
            if lo <= v <= hi:
                vals.add(v)
        p *= 2
    return sorted(vals)


def pow2_grid(lo: int, hi: int) -> list[int]:
    """Powers of two in [lo, hi], plus ``hi`` itself."""
    if hi < lo:
        return []
    vals = {hi}
    p = 1
    while p <= hi:
        if p >= lo:
            vals.add(p)
        p *= 2
    return sorted(vals)


def geometric_grid(lo: int, hi: int, ratio: int) -> list[int]:
    """lo, lo*ratio, lo*ratio^2, ... up to hi (inclusive when reached)."""
    out, v = [], max(1, lo)
    while v <= hi:
        out.append(v)
        v *= ratio
    return out


def parse_int_list(text: str | int | None, *, what: str) -> list[int]:
    """``"1,2,4"`` -> [1, 2, 4] (sorted, de-duplicated); raises FrontierError on anything else."""
    from ..errors import FrontierError

    if text is None:
        return []
    if isinstance(text, int):
        return [text]
    out = []
    for part in str(text).replace(" ", "").split(","):
        if not part:
            continue
        if not part.isdigit() or int(part) < 1:
            raise FrontierError(f"--{what}: expected positive whole numbers like 1,2,4, got '{text}'")
        out.append(int(part))
    if not out:
        raise FrontierError(f"--{what}: no values given")
    return sorted(set(out))
