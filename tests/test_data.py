"""Tests for rfy.data, run entirely on tiny files written here: no network is ever touched."""
from __future__ import annotations

import dataclasses
import gzip
import io
import pickle
import re
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from rfy.data import (
    REGISTRY,
    RemoteFile,
    dataset_dir,
    digits_split_indices,
    fetch_dataset,
    fetch_file,
    get_spec,
    load_digits,
    load_mnist,
    load_svhn,
    read_cifar_batches,
    read_idx,
    read_svhn_mat,
    sha256_of,
)
from rfy.data import registry
from rfy.errors import ChecksumError, ConfigError, DatasetNotAvailableError

MNIST_FILES = {
    "train-images-idx3-ubyte.gz": (5, 28, 28),
    "train-labels-idx1-ubyte.gz": (5,),
    "t10k-images-idx3-ubyte.gz": (3, 28, 28),
    "t10k-labels-idx1-ubyte.gz": (3,),
}


def idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte IDX encoding of ``array``, written independently of the reader."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write ``array`` as IDX to ``path``, gzip-compressed if the name ends in ``.gz``."""
    raw = idx_bytes(array)
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def random_uint8(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def tiny_mnist(directory: Path) -> dict[str, np.ndarray]:
    """Write four tiny MNIST-layout files into ``directory``; return their contents by filename."""
    directory.mkdir(parents=True, exist_ok=True)
    contents = {}
    for seed, (filename, shape) in enumerate(MNIST_FILES.items()):
        array = random_uint8(shape, seed) % 10 if len(shape) == 1 else random_uint8(shape, seed)
        write_idx(directory / filename, array)
        contents[filename] = array
    return contents


def register_hashes_of(directory: Path, monkeypatch: pytest.MonkeyPatch, name: str = "mnist") -> None:
    """Make the registry expect the sha256 of the files now in ``directory``."""
    spec = get_spec(name)
    files = tuple(dataclasses.replace(remote, sha256=sha256_of(directory / remote.filename), size_bytes=None)
                  for remote in spec.files)
    monkeypatch.setitem(registry.REGISTRY, name, dataclasses.replace(spec, files=files))


# IDX reader -------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(7,), (4, 3, 5)])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path: Path, shape: tuple[int, ...], suffix: str) -> None:
    array = random_uint8(shape)
    tensor = read_idx(write_idx(tmp_path / f"values-idx{len(shape)}-ubyte{suffix}", array))
    assert tensor.dtype == torch.uint8
    assert tuple(tensor.shape) == shape
    assert np.array_equal(tensor.numpy(), array)


def test_idx_big_endian_int32(tmp_path: Path) -> None:
    values = np.array([[1, -2], [70000, 3]], dtype=">i4")
    path = tmp_path / "ints.idx"
    path.write_bytes(struct.pack(">BBBBII", 0, 0, 0x0C, 2, 2, 2) + values.tobytes())
    assert read_idx(path).tolist() == [[1, -2], [70000, 3]]


def test_idx_bad_magic_names_file(tmp_path: Path) -> None:
    path = tmp_path / "not-idx.gz"
    path.write_bytes(gzip.compress(b"\x1f\x8bjunk-that-is-no-idx"))
    with pytest.raises(ValueError, match=re.escape(str(path))) as error:
        read_idx(path)
    assert "magic" in str(error.value)


def test_idx_truncated_payload_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "short.idx"
    path.write_bytes(idx_bytes(random_uint8((4, 4)))[:-3])
    with pytest.raises(ValueError, match="data bytes"):
        read_idx(path)


# CIFAR reader ------------------------------------------------------------------------------

def write_tiny_cifar(path: Path, per_batch: int = 2) -> dict[str, tuple[np.ndarray, list[int]]]:
    """A cifar-10-python.tar.gz with the real member names and pickle layout, ``per_batch`` images each."""
    batches = {}
    with tarfile.open(path, "w:gz") as archive:
        for seed, name in enumerate([*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]):
            data = random_uint8((per_batch, 3 * 32 * 32), seed)
            labels = [(seed + i) % 10 for i in range(per_batch)]
            payload = pickle.dumps({b"batch_label": name.encode(), b"data": data, b"labels": labels})
            member = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            member.size = len(payload)
            archive.addfile(member, io.BytesIO(payload))
            batches[name] = (data, labels)
    return batches


def test_cifar_reader_train_and_test(tmp_path: Path) -> None:
    tar_path = tmp_path / "cifar-10-python.tar.gz"
    batches = write_tiny_cifar(tar_path)
    images, labels = read_cifar_batches(tar_path, "train")
    assert images.dtype == torch.uint8 and tuple(images.shape) == (10, 3, 32, 32)
    assert labels.dtype == torch.int64 and tuple(labels.shape) == (10,)
    first, first_labels = batches["data_batch_1"]
    assert np.array_equal(images[0].numpy(), first[0].reshape(3, 32, 32))
    assert labels[:2].tolist() == first_labels
    assert np.array_equal(images[-1].numpy(), batches["data_batch_5"][0][-1].reshape(3, 32, 32))

    test_images, test_labels = read_cifar_batches(tar_path, "test")
    assert tuple(test_images.shape) == (2, 3, 32, 32)
    assert test_labels.tolist() == batches["test_batch"][1]


def test_cifar_reader_rejects_bad_split(tmp_path: Path) -> None:
    tar_path = tmp_path / "cifar-10-python.tar.gz"
    write_tiny_cifar(tar_path)
    with pytest.raises(ConfigError, match="split"):
        read_cifar_batches(tar_path, "validation")


# Cache, checksums and downloads --------------------------------------------------------------

def test_data_dir_follows_rfy_data(isolated_cache: Path) -> None:
    assert dataset_dir("mnist") == isolated_cache / "mnist"


def test_data_dir_defaults_to_xdg_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RFY_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert dataset_dir("cifar-10") == tmp_path / "xdg" / "rfy" / "cifar-10"


def test_load_mnist_end_to_end(isolated_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    contents = tiny_mnist(isolated_cache / "mnist")
    register_hashes_of(isolated_cache / "mnist", monkeypatch)
    images, labels = load_mnist("test", download=False)
    assert images.dtype == torch.uint8 and tuple(images.shape) == (3, 1, 28, 28)
    assert labels.dtype == torch.int64 and tuple(labels.shape) == (3,)
    assert np.array_equal(images[:, 0].numpy(), contents["t10k-images-idx3-ubyte.gz"])
    assert labels.tolist() == contents["t10k-labels-idx1-ubyte.gz"].tolist()
    assert tuple(load_mnist("train", download=False)[0].shape) == (5, 1, 28, 28)


def test_load_mnist_rejects_bad_split() -> None:
    with pytest.raises(ConfigError, match=r"split.*train, test"):
        load_mnist("valid", download=False)


def test_wrong_checksum_raises(isolated_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tiny_mnist(isolated_cache / "mnist")
    register_hashes_of(isolated_cache / "mnist", monkeypatch)
    tampered = isolated_cache / "mnist" / "t10k-labels-idx1-ubyte.gz"
    tampered.write_bytes(tampered.read_bytes() + b"\0")
    with pytest.raises(ChecksumError) as error:
        load_mnist("test", download=False)
    message = str(error.value)
    assert str(tampered) in message and sha256_of(tampered) in message and "delete" in message


def test_missing_offline_names_files_and_directory(isolated_cache: Path) -> None:
    with pytest.raises(DatasetNotAvailableError) as error:
        fetch_dataset("mnist", download=False)
    message = str(error.value)
    assert "'mnist'" in message and str(isolated_cache / "mnist") in message and "RFY_DATA" in message
    for remote in get_spec("mnist").files:
        assert remote.filename in message
        assert all(url in message for url in remote.urls)
    assert not (isolated_cache / "mnist").exists()


def remote_for(source: Path, *urls: str) -> RemoteFile:
    return RemoteFile(source.name, sha256_of(source), urls or (source.as_uri(),), source.stat().st_size)


def test_download_from_file_url_verifies(tmp_path: Path) -> None:
    source = write_idx(tmp_path / "labels-idx1-ubyte.gz", random_uint8((9,)))
    dead_mirror = (tmp_path / "nowhere" / source.name).as_uri()
    target_dir = tmp_path / "downloads"
    path = fetch_file(remote_for(source, dead_mirror, source.as_uri()), target_dir)
    assert path == target_dir / source.name
    assert path.read_bytes() == source.read_bytes()
    assert sorted(p.name for p in target_dir.iterdir()) == [source.name]


def test_download_with_wrong_content_keeps_nothing(tmp_path: Path) -> None:
    source = write_idx(tmp_path / "labels-idx1-ubyte.gz", random_uint8((9,)))
    remote = dataclasses.replace(remote_for(source), sha256="0" * 64)
    target_dir = tmp_path / "downloads"
    with pytest.raises(DatasetNotAvailableError, match="differs from the expected"):
        fetch_file(remote, target_dir)
    assert list(target_dir.iterdir()) == []


class BrokenStream(io.BytesIO):
    """A response that delivers some bytes and then loses the connection."""

    def read(self, size: int = -1) -> bytes:
        if self.tell() > 0:
            raise ConnectionResetError("connection lost mid-download")
        return super().read(4)


def test_failing_download_leaves_no_partial_file(tmp_path: Path) -> None:
    source = write_idx(tmp_path / "images-idx3-ubyte.gz", random_uint8((2, 4, 4)))
    target_dir = tmp_path / "downloads"
    opened = []

    def flaky_opener(url: str) -> BrokenStream:
        opened.append(url)
        return BrokenStream(source.read_bytes())

    with pytest.raises(DatasetNotAvailableError) as error:
        fetch_file(remote_for(source, "https://a.invalid/x.gz", "https://b.invalid/x.gz"), target_dir,
                   opener=flaky_opener)
    assert opened == ["https://a.invalid/x.gz", "https://b.invalid/x.gz"]
    assert "connection lost" in str(error.value) and source.name in str(error.value)
    assert list(target_dir.iterdir()) == []


def test_cached_file_is_not_downloaded_again(tmp_path: Path) -> None:
    source = write_idx(tmp_path / "labels-idx1-ubyte.gz", random_uint8((3,)))

    def no_network(url: str) -> BrokenStream:
        raise AssertionError(f"unexpected download of {url}")

    assert fetch_file(remote_for(source), tmp_path, opener=no_network) == source


# Digits ----------------------------------------------------------------------------------------

def test_load_digits_shapes_and_range() -> None:
    train_x, train_y = load_digits("train")
    test_x, test_y = load_digits("test")
    assert train_x.dtype == torch.float32 and train_x.shape[1:] == (1, 8, 8)
    assert train_y.dtype == torch.int64 and len(train_x) == len(train_y)
    assert len(train_x) + len(test_x) == 1797
    assert len(test_x) == pytest.approx(0.25 * 1797, abs=1)
    assert float(train_x.min()) == 0.0 and float(train_x.max()) == 1.0
    assert set(test_y.tolist()) == set(range(10))


def test_digits_split_is_disjoint_complete_and_deterministic() -> None:
    split = digits_split_indices(seed=3)
    assert not set(split["train"]) & set(split["test"])
    assert sorted([*split["train"], *split["test"]]) == list(range(1797))
    again = digits_split_indices(seed=3)
    assert all(np.array_equal(split[part], again[part]) for part in ("train", "test"))
    assert not np.array_equal(split["test"], digits_split_indices(seed=4)["test"])
    x1, y1 = load_digits("test", seed=3)
    x2, y2 = load_digits("test", seed=3)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_load_digits_rejects_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="split"):
        load_digits("validation")
    with pytest.raises(ConfigError, match="test_fraction"):
        load_digits("train", test_fraction=1.5)


# Registry ----------------------------------------------------------------------------------------

def test_get_spec_bad_name_lists_allowed() -> None:
    with pytest.raises(ConfigError) as error:
        get_spec("imagenet")
    message = str(error.value)
    assert "name" in message and all(name in message for name in ("mnist", "fashion-mnist", "cifar-10"))


def test_registry_checksums_and_urls_are_well_formed() -> None:
    assert {"mnist", "fashion-mnist", "cifar-10"} <= set(REGISTRY)
    for spec in REGISTRY.values():
        assert spec.files
        for remote in spec.files:
            # None: no checksum of that file is published anywhere (SCUT-FBP5500); its reader checks the format
            assert (remote.sha256 is None and spec.name == "scut-fbp5500") or re.fullmatch(
                r"[0-9a-f]{64}", remote.sha256), (spec.name, remote.filename)
            assert remote.urls and all(url.endswith(remote.filename) for url in remote.urls)
            assert remote.size_bytes is None or remote.size_bytes > 0


def test_to_unit_interval_scales_bytes_and_passes_floats() -> None:
    from rfy.data import to_unit_interval

    scaled = to_unit_interval(torch.tensor([0, 51, 255], dtype=torch.uint8))
    assert scaled.dtype == torch.float32 and torch.allclose(scaled, torch.tensor([0.0, 0.2, 1.0]))
    floats = torch.tensor([0.25, 0.5])
    assert torch.equal(to_unit_interval(floats), floats)


# SVHN -------------------------------------------------------------------------------------

def write_tiny_svhn(directory: Path, sizes: dict[str, int]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{split}_32x32.mat`` files laid out like the real ones: X [32, 32, 3, N], y [N, 1] with 0 stored as 10."""
    from scipy.io import savemat

    directory.mkdir(parents=True, exist_ok=True)
    contents = {}
    for seed, (split, count) in enumerate(sizes.items()):
        images = random_uint8((32, 32, 3, count), seed)
        labels = (np.arange(count) % 10 + 1).astype(np.uint8).reshape(-1, 1)
        savemat(directory / f"{split}_32x32.mat", {"X": images, "y": labels})
        contents[split] = (images, labels)
    return contents


def test_load_svhn_end_to_end_maps_label_ten_to_zero(isolated_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    contents = write_tiny_svhn(isolated_cache / "svhn", {"train": 12, "test": 3})
    register_hashes_of(isolated_cache / "svhn", monkeypatch, name="svhn")
    images, labels = load_svhn("train", download=False)
    assert images.dtype == torch.uint8 and tuple(images.shape) == (12, 3, 32, 32)
    raw_images, raw_labels = contents["train"]
    assert np.array_equal(images[5].numpy(), raw_images[..., 5].transpose(2, 0, 1))
    assert labels.tolist() == [int(label) % 10 for label in raw_labels[:, 0]]
    assert labels[9].item() == 0
    assert tuple(load_svhn("test", download=False)[0].shape) == (3, 3, 32, 32)


def test_read_svhn_rejects_a_mat_file_without_images(tmp_path: Path) -> None:
    from scipy.io import savemat

    savemat(tmp_path / "bad.mat", {"X": np.zeros((4, 4))})
    with pytest.raises(ValueError, match="SVHN"):
        read_svhn_mat(tmp_path / "bad.mat")


def test_svhn_without_files_offline_names_the_files_and_urls() -> None:
    with pytest.raises(DatasetNotAvailableError, match="train_32x32.mat") as error:
        load_svhn("train", download=False)
    assert "ufldl.stanford.edu" in str(error.value)


# Checksums, stale partial downloads, permissions -------------------------------------------------

def test_one_bad_checksum_does_not_hide_the_missing_files(isolated_cache: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    tiny_mnist(isolated_cache / "mnist")
    register_hashes_of(isolated_cache / "mnist", monkeypatch)
    tampered = isolated_cache / "mnist" / "t10k-labels-idx1-ubyte.gz"
    tampered.write_bytes(tampered.read_bytes() + b"\0")
    (isolated_cache / "mnist" / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(ChecksumError) as error:
        fetch_dataset("mnist", download=False)
    message = str(error.value)
    assert str(tampered) in message and "train-images-idx3-ubyte.gz" in message and "1 file(s) are missing" in message


def test_a_killed_download_s_partial_file_is_removed_by_the_next_download(tmp_path: Path) -> None:
    import os
    import time

    source = write_idx(tmp_path / "labels-idx1-ubyte.gz", random_uint8((9,)))
    target_dir = tmp_path / "downloads"
    target_dir.mkdir()
    stale = target_dir / f".{source.name}.abc123.part"  # what a SIGKILL mid-download leaves
    stale.write_bytes(b"half")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    fresh = target_dir / f".{source.name}.def456.part"  # another download, still running
    fresh.write_bytes(b"busy")
    fetch_file(remote_for(source), target_dir)
    assert sorted(p.name for p in target_dir.iterdir()) == sorted([source.name, fresh.name])


def test_downloaded_files_get_ordinary_permissions(tmp_path: Path) -> None:
    import os
    import stat

    source = write_idx(tmp_path / "labels-idx1-ubyte.gz", random_uint8((9,)))
    old_mask = os.umask(0o022)
    try:
        path = fetch_file(remote_for(source), tmp_path / "downloads")
    finally:
        os.umask(old_mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_file_without_published_checksum_is_taken_as_placed_and_named_so_when_missing(tmp_path) -> None:
    from rfy.data.download import fetch_file
    from rfy.data.registry import RemoteFile
    from rfy.errors import DatasetNotAvailableError

    remote = RemoteFile("ratings.zip", None, ("https://example.invalid/ratings.zip",))
    with pytest.raises(DatasetNotAvailableError, match="no published sha256"):
        fetch_file(remote, tmp_path, download=False)
    (tmp_path / "ratings.zip").write_bytes(b"placed by hand")
    assert fetch_file(remote, tmp_path, download=False) == tmp_path / "ratings.zip"
