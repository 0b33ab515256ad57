"""Every test runs with its own empty data cache and without progress bars."""
from pathlib import Path

import pytest
import torch


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``cuda`` need a CUDA GPU: without one they are skipped, saying so (``rfy campaign`` runs
    them on a lent GPU with ``pytest -m cuda``)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run on a lent one by `python -m rfy campaign`)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point RFY_DATA at a fresh folder, so no test reads or writes the user's cache."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("RFY_DATA", str(cache))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    return cache
