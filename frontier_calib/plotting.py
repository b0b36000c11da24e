"""Report figures: matplotlib ``Figure`` objects drawn off-screen and saved atomically as PNG.

No pyplot and no global backend switch, so drawing a report inside a notebook or a GUI session leaves the
user's matplotlib backend alone, and figures are freed with their last reference (nothing to close).
"""

from __future__ import annotations

from pathlib import Path

from .io import atomic_path


def figure(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float] = (8, 5.5)):
    """A new off-screen figure and its axes (one ``Axes`` or an array, as ``plt.subplots`` returns)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols)


def save_png(fig, dest: str | Path, *, dpi: int = 120) -> Path:
    """Write ``fig`` to ``dest`` as PNG (atomically: a failed write leaves no file)."""
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    return dest
