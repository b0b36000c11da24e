"""Leaving the process quickly once a command's work is done.

When the interpreter exits it clears every module and runs garbage collections as it goes; in a process that
imported pandas, pyarrow and numpy (about 58,000 objects the collector tracks) that teardown took 0.08-0.1 s after
the 10,000-request replay benchmark (``benchmarks/bench_replay_azure.py``, 2 cores), and 0.37 s of a bare
``python -c "import pandas"`` at load average 4-5 (best of 8: 0.78 s, against 0.40 s with this call).
:func:`skip_exit_collections` moves every object alive now into the collector's permanent generation
(``gc.freeze()``), which those collections skip. Objects are still freed by reference counting while modules are
cleared; only reference cycles still alive at that point are left to the operating system (their ``__del__`` does
not run), so call it only when the work is done and every output file is closed (outputs here are written through
:mod:`frontier_calib.io`, closed before the command returns).
"""

from __future__ import annotations

import gc


def skip_exit_collections() -> None:
    """Let the interpreter's exit skip collecting the objects alive now (see the module docstring)."""
    gc.freeze()
