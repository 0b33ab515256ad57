"""Every test runs with its own empty data cache and without progress bars."""
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point RFY_DATA at a fresh folder, so no test reads or writes the user's cache."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("RFY_DATA", str(cache))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    return cache
