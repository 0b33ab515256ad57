"""Progress bars for the whole book: one look, silenced by ``TQDM_DISABLE=1``."""
from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TypeVar

try:  # notebook widgets when ipywidgets is there (Colab, JupyterLab with widgets), text bars otherwise
    import ipywidgets  # noqa: F401
    from tqdm.auto import tqdm
except ImportError:
    from tqdm import tqdm

T = TypeVar("T")


def progress_disabled() -> bool:
    """True when the environment asks for quiet runs (``TQDM_DISABLE`` set to a true value)."""
    return os.environ.get("TQDM_DISABLE", "").strip().lower() in {"1", "true", "yes", "on"}


def progress(iterable: Iterable[T] | None = None, *, desc: str = "", total: int | None = None,
             unit: str = "it", leave: bool = False, initial: int = 0, disable: bool = False) -> tqdm:
    """Wrap ``iterable`` in a tqdm bar that honours ``TQDM_DISABLE``; ``leave=False`` keeps pages tidy.

    ``initial`` starts the count where a resumed loop starts; ``disable`` silences one bar (e.g. on
    every process of a multi-GPU run but the first).
    """
    return tqdm(iterable, desc=desc, total=total, unit=unit, leave=leave, initial=initial,
                disable=disable or progress_disabled(), dynamic_ncols=True)
