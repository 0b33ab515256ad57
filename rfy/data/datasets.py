"""Ready-to-use tensors for the datasets the book's chapters train on."""
from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits as sklearn_load_digits
from sklearn.model_selection import train_test_split

from rfy.data.download import fetch_dataset
from rfy.data.readers import read_cifar_batches, read_idx, read_svhn_mat
from rfy.errors import ConfigError

SPLITS = ("train", "test")
IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
DIGITS_MAX_PIXEL = 16.0


def to_unit_interval(images: torch.Tensor) -> torch.Tensor:
    """Pixels as float32 in [0, 1]: uint8 images are divided by 255, float images pass through.

    Datasets keep their images as uint8 (a quarter of the memory, on the GPU too) and convert
    each batch as it is used.
    """
    return images.float().div_(255) if images.dtype == torch.uint8 else images.float()


def check_split(split: str) -> None:
    """ConfigError unless ``split`` is ``"train"`` or ``"test"``."""
    if split not in SPLITS:
        raise ConfigError(f"split={split!r} is not a known split; allowed values: {', '.join(SPLITS)}")


def load_mnist(split: str = "train", *, download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST digits: images uint8 ``[N, 1, 28, 28]`` (0-255) and labels int64 ``[N]``."""
    return _load_idx_dataset("mnist", split, download)


def load_fashion_mnist(split: str = "train", *, download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST articles: images uint8 ``[N, 1, 28, 28]`` (0-255) and labels int64 ``[N]``."""
    return _load_idx_dataset("fashion-mnist", split, download)


def load_cifar10(split: str = "train", *, download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10 images uint8 ``[N, 3, 32, 32]`` (0-255) and labels int64 ``[N]``."""
    check_split(split)
    paths = fetch_dataset("cifar-10", download=download)
    return read_cifar_batches(paths["cifar-10-python.tar.gz"], split)


def load_svhn(split: str = "train", *, download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """SVHN cropped digits: images uint8 ``[N, 3, 32, 32]`` (0-255) and labels int64 ``[N]`` (0-9)."""
    check_split(split)
    paths = fetch_dataset("svhn", download=download)
    return read_svhn_mat(paths[f"{split}_32x32.mat"])


def _load_idx_dataset(name: str, split: str, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``[N, 1, H, W]`` and int64 labels of one split of an MNIST-layout dataset."""
    check_split(split)
    paths = fetch_dataset(name, download=download)
    images_file, labels_file = IDX_FILES[split]
    images = read_idx(paths[images_file])
    labels = read_idx(paths[labels_file])
    if images.dim() != 3 or images.dtype != torch.uint8 or labels.dim() != 1:
        raise ValueError(f"{name} {split}: expected uint8 images [N, H, W] and labels [N], "
                         f"got {images.dtype} {tuple(images.shape)} and {tuple(labels.shape)}")
    if len(images) != len(labels):
        raise ValueError(f"{name} {split}: {len(images)} images but {len(labels)} labels")
    return images.unsqueeze(1), labels.long()


def digits_split_indices(*, test_fraction: float = 0.25, seed: int = 0) -> dict[str, np.ndarray]:
    """Sorted sample indices of the stratified train/test split of scikit-learn's 1,797 digits.

    The split depends only on ``test_fraction`` and ``seed``; the two index sets are disjoint
    and together cover every sample.
    """
    return _stratified_split(sklearn_load_digits().target, test_fraction, seed)


def load_digits(split: str = "train", *, test_fraction: float = 0.25,
                seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled 8x8 digits (no download): float32 ``[N, 1, 8, 8]`` in [0, 1], int64 labels.

    The split is :func:`digits_split_indices` for the same ``test_fraction`` and ``seed``.
    """
    check_split(split)
    digits = sklearn_load_digits()
    indices = _stratified_split(digits.target, test_fraction, seed)[split]
    images = torch.from_numpy(digits.images[indices] / DIGITS_MAX_PIXEL).float().unsqueeze(1)
    labels = torch.from_numpy(digits.target[indices]).long()
    return images, labels


def _stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Sorted train and test indices keeping each class's share equal in both parts."""
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction={test_fraction!r} must lie strictly between 0 and 1")
    train, test = train_test_split(np.arange(len(labels)), test_size=test_fraction,
                                   stratify=labels, random_state=seed)
    return {"train": np.sort(train), "test": np.sort(test)}
