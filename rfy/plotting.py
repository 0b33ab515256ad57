"""One plotting style for the whole book, and the colours that name a method in every chapter."""
from __future__ import annotations

import matplotlib as mpl

#: The same method keeps the same colour across figures: ours, the baseline, the paper, data.
COLORS = {
    "ours": "#1b6ca8",
    "baseline": "#d1495b",
    "reference": "#66a182",
    "data": "#8d8d8d",
    "accent": "#edae49",
}

BOOK_STYLE = {
    "figure.figsize": (6.4, 3.6),
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.titlesize": "medium",
    "axes.labelsize": "medium",
    "legend.frameon": False,
    "font.size": 10,
    "image.cmap": "viridis",
    "axes.prop_cycle": mpl.cycler(color=list(COLORS.values())),
}


def use_book_style() -> None:
    """Apply the book's matplotlib style globally (call once at the top of a notebook)."""
    mpl.rcParams.update(BOOK_STYLE)
