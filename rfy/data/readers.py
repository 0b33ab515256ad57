"""Parse the raw file formats the registered datasets ship in, without extracting anything to disk."""
from __future__ import annotations

import gzip
import pickle
import tarfile
from pathlib import Path
from typing import IO

import numpy as np
import torch

from rfy.errors import ConfigError

# IDX type codes and the big-endian numpy dtype each one stores.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

CIFAR_BATCHES = {
    "train": tuple(f"data_batch_{index}" for index in range(1, 6)),
    "test": ("test_batch",),
}
CIFAR_IMAGE_SHAPE = (3, 32, 32)


def read_idx(path: str | Path) -> torch.Tensor:
    """Read an IDX file (as used by MNIST), gzip-compressed when its name ends in ``.gz``.

    The header is two zero bytes, a type code (0x08 unsigned byte, 0x09 signed byte, 0x0B int16,
    0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions, then each dimension as a
    big-endian uint32. The values follow, big-endian, in C order.
    """
    path = Path(path)
    with _open_maybe_gzip(path) as handle:
        raw = handle.read()
    dtype, shape, header_bytes = _parse_idx_header(raw, path)
    expected_bytes = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
    payload = raw[header_bytes:]
    if len(payload) != expected_bytes:
        raise ValueError(f"{path}: IDX header promises {expected_bytes} data bytes for shape {shape}, "
                         f"found {len(payload)}")
    values = np.frombuffer(payload, dtype=dtype).reshape(shape)
    return torch.from_numpy(values.astype(dtype.newbyteorder("="), copy=True))


def _open_maybe_gzip(path: Path) -> IO[bytes]:
    """``path`` opened for reading bytes, decompressing on the fly if it is a ``.gz`` file."""
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _parse_idx_header(raw: bytes, path: Path) -> tuple[np.dtype, tuple[int, ...], int]:
    """The value dtype, the shape, and the header length of the IDX bytes ``raw``."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'}; "
                         f"expected 0000 followed by a type code and the number of dimensions)")
    ndim = raw[3]
    header_bytes = 4 + 4 * ndim
    if len(raw) < header_bytes:
        raise ValueError(f"{path}: IDX header truncated ({ndim} dimensions announced)")
    shape = tuple(int(size) for size in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    return IDX_DTYPES[raw[2]], shape, header_bytes


def read_cifar_batches(tar_path: str | Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (uint8 ``[N, 3, 32, 32]``) and labels (int64 ``[N]``) of a CIFAR-10 split.

    Reads the python-pickle batches (``data_batch_1..5`` for ``"train"``, ``test_batch`` for
    ``"test"``) directly out of ``cifar-10-python.tar.gz``. The batches are pickles, so only pass
    an archive whose checksum was verified (``rfy.data.load_cifar10`` does).
    """
    if split not in CIFAR_BATCHES:
        raise ConfigError(f"split={split!r} is not a CIFAR-10 split; allowed values: {', '.join(CIFAR_BATCHES)}")
    wanted = CIFAR_BATCHES[split]
    batches = _read_tar_members(Path(tar_path), wanted)
    images = np.concatenate([batch[b"data"] for batch in batches]).reshape(-1, *CIFAR_IMAGE_SHAPE)
    labels = np.concatenate([np.asarray(batch[b"labels"], dtype=np.int64) for batch in batches])
    if len(images) != len(labels):
        raise ValueError(f"{tar_path}: {len(images)} images but {len(labels)} labels in split {split!r}")
    return torch.from_numpy(images.astype(np.uint8)), torch.from_numpy(labels)


def _read_tar_members(tar_path: Path, basenames: tuple[str, ...]) -> list[dict]:
    """Unpickle the members called ``basenames`` (in any folder) in one pass over the archive."""
    found: dict[str, dict] = {}
    with tarfile.open(tar_path, "r:*") as archive:
        for member in archive:
            name = Path(member.name).name
            if member.isfile() and name in basenames:
                with archive.extractfile(member) as handle:
                    found[name] = pickle.load(handle, encoding="bytes")
    absent = [name for name in basenames if name not in found]
    if absent:
        raise ValueError(f"{tar_path}: archive lacks the CIFAR batch(es) {', '.join(absent)}")
    return [found[name] for name in basenames]


def read_svhn_mat(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (uint8 ``[N, 3, 32, 32]``) and labels (int64 ``[N]``, 0-9) of an SVHN ``*_32x32.mat`` file.

    The file stores ``X`` as ``[32, 32, 3, N]`` and ``y`` as ``[N, 1]`` with the digit 0 written as 10.
    """
    from scipy.io import loadmat

    path = Path(path)
    contents = loadmat(path)
    if "X" not in contents or "y" not in contents:
        raise ValueError(f"{path}: not an SVHN .mat file (it needs the arrays 'X' and 'y')")
    images, labels = np.asarray(contents["X"]), np.asarray(contents["y"]).reshape(-1)
    if images.ndim != 4 or images.shape[:3] != (32, 32, 3) or images.shape[3] != len(labels):
        raise ValueError(f"{path}: X has shape {images.shape} and y {len(labels)} entries; "
                         "expected X of shape [32, 32, 3, N] and N labels")
    images = np.ascontiguousarray(images.transpose(3, 2, 0, 1)).astype(np.uint8)
    return torch.from_numpy(images), torch.from_numpy((labels.astype(np.int64) % 10))
