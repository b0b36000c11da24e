"""Whose results a sweep's ``--out`` folder holds: the same sweep's are resumed, anything else is refused.

A sweep writes into its folder as points finish (``*.parts/``), so a rerun of the same sweep continues where
it stopped; that is by design. Another sweep's results, or files that are no sweep's, would mix with this
run's: refused unless ``overwrite``, which empties the folder (one rename, then a delete) before the run.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import FrontierError
from ..io import discard_dir

META = "sweep.json"


def owner(out: Path) -> str | None:
    """The sweep name recorded in ``out/sweep.json``; None when there is no readable record."""
    try:
        name = json.loads((out / META).read_text()).get("name")
    except (OSError, ValueError, AttributeError):
        return None
    return str(name) if name is not None else None


def claim_out_dir(out: Path, name: str, *, overwrite: bool = False) -> None:
    """Make ``out`` this sweep's folder, or raise InputError saying what it holds (see the module doc)."""
    out = Path(out)
    if not out.is_dir() or not any(out.iterdir()):
        return
    if overwrite:
        discard_dir(out)
        return
    held = owner(out)
    if held == name:
        return
    what = f"the results of another sweep ('{held}')" if held else "files that are not a sweep's results"
    raise FrontierError(f"--out {out} holds {what}, so sweep '{name}' does not resume there; choose another "
                        "folder, or pass --overwrite to discard its content")
