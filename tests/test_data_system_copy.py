"""Datasets a system package installs (Debian's Fashion-MNIST), read in place and pinned by their own sha256."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from rfy.data import fetch_dataset, get_spec, load_fashion_mnist, sha256_of
from rfy.data import registry
from rfy.data.registry import SystemCopy
from rfy.errors import DatasetNotAvailableError
from test_data import MNIST_FILES, tiny_mnist

DEBIAN_FOLDER = Path("/usr/share/datasets/fashion-mnist")


def packaged_copy(folder: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Tiny Fashion-MNIST-layout files in ``folder``, registered as the only system copy (with their sha256)."""
    contents = tiny_mnist(folder)
    copy = SystemCopy(str(folder), {name: sha256_of(folder / name) for name in MNIST_FILES}, "apt-get install tiny")
    spec = get_spec("fashion-mnist")
    monkeypatch.setitem(registry.REGISTRY, "fashion-mnist", dataclasses.replace(spec, system_copies=(copy,)))
    return contents


def test_system_copy_is_read_in_place(tmp_path: Path, isolated_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    contents = packaged_copy(tmp_path / "system", monkeypatch)
    images, labels = load_fashion_mnist("test", download=False)
    assert images.shape == (3, 1, 28, 28) and images.dtype == torch.uint8
    assert labels.tolist() == contents["t10k-labels-idx1-ubyte.gz"].tolist()
    assert not (isolated_cache / "fashion-mnist").exists()  # nothing copied into the cache


def test_damaged_system_copy_is_not_used(tmp_path: Path, isolated_cache: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    packaged_copy(tmp_path / "system", monkeypatch)
    damaged = tmp_path / "system" / "train-labels-idx1-ubyte.gz"
    damaged.write_bytes(damaged.read_bytes() + b"\0")
    with pytest.warns(UserWarning, match="train-labels-idx1-ubyte.gz do not match"), \
            pytest.raises(DatasetNotAvailableError):
        fetch_dataset("fashion-mnist", download=False)


def test_incomplete_system_copy_falls_back_to_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    packaged_copy(tmp_path / "system", monkeypatch)
    (tmp_path / "system" / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.warns(UserWarning, match=r"system lacks t10k-images-idx3-ubyte.gz, so this copy is not used"), \
            pytest.raises(DatasetNotAvailableError) as error:
        fetch_dataset("fashion-mnist", download=False)
    message = str(error.value)
    assert "installed but incomplete or damaged: apt-get install --reinstall tiny" in message
    assert "Or install the packaged copy" not in message and str(tmp_path / "system") in message


def test_offline_error_names_the_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = get_spec("fashion-mnist")
    moved = tuple(dataclasses.replace(copy, directory="/nonexistent/fashion-mnist") for copy in spec.system_copies)
    monkeypatch.setitem(registry.REGISTRY, "fashion-mnist", dataclasses.replace(spec, system_copies=moved))
    with pytest.raises(DatasetNotAvailableError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist("train", download=False)


def test_debian_checksums_differ_from_the_canonical_ones() -> None:
    spec = get_spec("fashion-mnist")
    (debian,) = spec.system_copies
    assert set(debian.sha256) == {remote.filename for remote in spec.files}
    assert not set(debian.sha256.values()) & {remote.sha256 for remote in spec.files}


@pytest.mark.skipif(not DEBIAN_FOLDER.is_dir(), reason="Debian's dataset-fashion-mnist is not installed "
                                                       "(apt-get install dataset-fashion-mnist; .ci/run installs it)")
def test_real_fashion_mnist_from_debian() -> None:
    """The real files: sizes, exact class balance and the dataset's well-known pixel mean and std."""
    X, y = load_fashion_mnist("train", download=False)
    X_test, y_test = load_fashion_mnist("test", download=False)
    assert X.shape == (60_000, 1, 28, 28) and X_test.shape == (10_000, 1, 28, 28)
    assert torch.bincount(y).tolist() == [6000] * 10 and torch.bincount(y_test).tolist() == [1000] * 10
    pixels = X.double() / 255
    assert pixels.mean().item() == pytest.approx(0.2860, abs=1e-4)
    assert pixels.std().item() == pytest.approx(0.3530, abs=1e-4)
    assert y[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]  # ankle boot, T-shirt, T-shirt, dress, ...
