"""One plotting style for the whole book, and the colours that name a method in every chapter."""
from __future__ import annotations

import matplotlib as mpl

#: Width of the book's text column: figures are drawn at this width so text keeps its point size.
COLUMN_WIDTH_IN = 6.5

#: The same method keeps the same colour across figures: ours, the baseline, the paper, data.
COLORS = {
    "ours": "#1b6ca8",
    "baseline": "#d1495b",
    "reference": "#66a182",
    "data": "#8d8d8d",
    "accent": "#edae49",
}

BOOK_STYLE = {
    "figure.figsize": (COLUMN_WIDTH_IN, 3.4),
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
    "legend.fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "image.cmap": "viridis",
    "axes.prop_cycle": mpl.cycler(color=list(COLORS.values())),
}


def use_book_style() -> None:
    """Apply the book's matplotlib style globally (call once at the top of a notebook).

    In a notebook it also asks for retina (2x) PNG output, so figures stay sharp at column width.
    """
    mpl.rcParams.update(BOOK_STYLE)
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:
        return
    if get_ipython() is not None:
        set_matplotlib_formats("retina")
