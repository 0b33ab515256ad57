"""Datasets for the book: a checksummed registry, a verifying downloader, format readers, loaders."""
from rfy.data.datasets import (
    digits_split_indices,
    load_cifar10,
    load_digits,
    load_fashion_mnist,
    load_mnist,
    load_svhn,
    to_unit_interval,
)
from rfy.data.download import data_dir, dataset_dir, fetch_dataset, fetch_file, open_url, sha256_of
from rfy.data.readers import read_cifar_batches, read_idx, read_svhn_mat
from rfy.data.registry import REGISTRY, DatasetSpec, RemoteFile, get_spec

__all__ = [
    "REGISTRY",
    "DatasetSpec",
    "RemoteFile",
    "data_dir",
    "dataset_dir",
    "digits_split_indices",
    "fetch_dataset",
    "fetch_file",
    "get_spec",
    "load_cifar10",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "load_svhn",
    "open_url",
    "read_cifar_batches",
    "read_idx",
    "read_svhn_mat",
    "sha256_of",
    "to_unit_interval",
]
