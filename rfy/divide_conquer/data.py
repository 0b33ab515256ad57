"""Zero-shot retrieval splits: classes seen in training never appear at test time.

Reduced mode: scikit-learn's 8×8 digits in four "domains" (2 rotations × 2 contrasts), so the data
are heterogeneous the way the paper's are (birds on water and on branches, cars in daylight and at
night). A class is a (digit, domain) pair: 40 classes, the 20 of digits 0–4 for training and the 20
of digits 5–9, never seen, for testing. Full mode: CUB-200-2011 (classes 1–100 / 101–200).
"""
from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits as sklearn_load_digits

from rfy.checkpoint import load_checkpoint, save_checkpoint
from rfy.data import dataset_dir, fetch_dataset, get_spec
from rfy.errors import ConfigError, CorruptFileError
from rfy.runtime import DeviceData

DOMAINS = ("upright", "upright inverted", "rotated 90°", "rotated 90° inverted")
TRAIN_DIGITS, TEST_DIGITS = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)
CUB_ARCHIVE = "CUB_200_2011.tgz"
CUB_TRAIN_CLASSES = 100  # classes 1–100 train, 101–200 test (the zero-shot protocol of the paper)
CUB_STORED_SIZE = 256  # images are kept as 256×256 uint8 and cropped to 224 on the device


@dataclass
class RetrievalData(DeviceData):
    """Training and test images of disjoint classes; ``domain`` says which sub-population an image is from."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    train_domains: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    test_domains: torch.Tensor
    domain_names: tuple[str, ...]
    augment: bool = False  # random crops and mirroring (photographs); none for the digits


def domain_transform(images: torch.Tensor, domain: int) -> torch.Tensor:
    """Images ``[N, H, W]`` in [0, 1] shown in ``domain``: bit 1 rotates by 90°, bit 0 inverts the contrast."""
    if domain & 2:
        images = torch.rot90(images, 1, dims=(-2, -1))
    if domain & 1:
        images = 1.0 - images
    return images


def domain_digits(seed: int = 0, noise: float = 0.1, canvas: int = 12) -> RetrievalData:
    """Digits × 4 domains: train on the 20 (digit, domain) classes of digits 0–4, test on those of 5–9.

    Every digit image appears once, in a domain drawn by ``seed`` (so no image is seen in two
    domains), pasted at a random position of a ``canvas``×``canvas`` background and blurred by
    Gaussian pixel noise of standard deviation ``noise``: the shifts make raw-pixel distances a
    poor measure of similarity, so there is something for an embedding to learn. Labels are
    ``4·digit + domain``; images are flattened to ``canvas²`` values.
    """
    digits = sklearn_load_digits()
    generator = torch.Generator().manual_seed(seed)
    images = torch.from_numpy(digits.images / 16.0).float()
    count, size = images.shape[0], images.shape[-1]
    digit = torch.from_numpy(digits.target).long()
    domain = torch.randint(len(DOMAINS), (count,), generator=generator)
    shown = torch.empty_like(images)
    for index in range(len(DOMAINS)):
        chosen = domain == index
        shown[chosen] = domain_transform(images[chosen], index)
    background = torch.where((domain & 1).bool(), 1.0, 0.0).view(count, 1, 1).expand(count, canvas, canvas).clone()
    offsets = torch.randint(0, canvas - size + 1, (2, count), generator=generator)
    rows = (offsets[0, :, None] + torch.arange(size))[:, :, None]
    cols = (offsets[1, :, None] + torch.arange(size))[:, None, :]
    background[torch.arange(count)[:, None, None], rows, cols] = shown
    shown = (background + noise * torch.randn(background.shape, generator=generator)).flatten(1)
    labels = len(DOMAINS) * digit + domain
    train = torch.isin(digit, torch.tensor(TRAIN_DIGITS))
    return RetrievalData(shown[train], labels[train], domain[train], shown[~train], labels[~train], domain[~train],
                         DOMAINS)


def read_cub(archive: str | Path, size: int = CUB_STORED_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image of ``CUB_200_2011.tgz`` as uint8 ``[N, 3, size, size]`` and its class 1–200, in the
    order of ``images.txt``.

    The archive holds ``CUB_200_2011/images.txt`` (``<id> <path>``), ``image_class_labels.txt``
    (``<id> <class>``) and ``images/<path>``. Each JPEG is resized so its shorter side is ``size``
    and centre-cropped to a square; nothing is extracted to disk.
    """
    from PIL import Image

    def table(text: str) -> dict[int, str]:
        return {int(line.split()[0]): line.split(maxsplit=1)[1] for line in text.splitlines() if line.strip()}

    paths, classes, pictures = {}, {}, {}
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            if not member.isfile():
                continue
            parts = Path(member.name).parts
            name = "/".join(parts[1:]) if parts and parts[0] == "CUB_200_2011" else member.name
            if name == "images.txt":
                paths = table(tar.extractfile(member).read().decode())
            elif name == "image_class_labels.txt":
                classes = {key: int(value) for key, value in table(tar.extractfile(member).read().decode()).items()}
            elif name.startswith("images/") and name.lower().endswith(".jpg"):
                pictures[name[len("images/"):]] = _square(Image.open(io.BytesIO(tar.extractfile(member).read())), size)
    if not paths or not classes:
        raise ValueError(f"{archive}: not a CUB-200-2011 archive (images.txt or image_class_labels.txt missing)")
    missing = [path for path in paths.values() if path not in pictures]
    if missing:
        raise ValueError(f"{archive}: {len(missing)} image(s) listed in images.txt are missing, e.g. {missing[0]}")
    ids = sorted(paths)
    images = torch.from_numpy(np.stack([pictures[paths[i]] for i in ids])).permute(0, 3, 1, 2).contiguous()
    return images, torch.tensor([classes[i] for i in ids], dtype=torch.long)


def _square(image, size: int) -> np.ndarray:
    """An RGB ``size``×``size`` uint8 array: shorter side resized to ``size``, then centre-cropped."""
    image = image.convert("RGB")
    scale = size / min(image.size)
    width, height = max(size, round(image.width * scale)), max(size, round(image.height * scale))
    image = image.resize((width, height), resample=3)  # bicubic
    left, top = (width - size) // 2, (height - size) // 2
    return np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.uint8)


def cub_cache_path() -> Path:
    """Where the decoded images are cached, named after the archive's registered sha256 (as the face caches
    are), so that a cache of another archive is never taken for this one's."""
    checksums = "".join(remote.sha256 or "" for remote in get_spec("cub-200-2011").files)
    return dataset_dir("cub-200-2011") / f"decoded-{CUB_STORED_SIZE}-{hashlib.sha256(checksums.encode()).hexdigest()[:12]}.pt"


def checked_cub_cache(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and classes of the cache at ``path`` after checking them: uint8 images ``[N, 3, S, S]`` with
    ``S = CUB_STORED_SIZE`` and int64 classes ``[N]`` from 1 to 200, both halves of the split present.
    ``CorruptFileError`` naming the file otherwise."""
    saved = load_checkpoint(path)
    images, classes = (saved.get("images"), saved.get("classes")) if isinstance(saved, dict) else (None, None)
    size = CUB_STORED_SIZE
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4 \
            or tuple(images.shape[1:]) != (3, size, size):
        why = f"no uint8 'images' [N, 3, {size}, {size}]"
    elif not isinstance(classes, torch.Tensor) or classes.dtype != torch.long or tuple(classes.shape) != (len(images),):
        why = f"no int64 'classes' [{len(images)}]"
    elif len(classes) == 0 or classes.min() < 1 or classes.max() > 200 or not (
            (classes <= CUB_TRAIN_CLASSES).any() and (classes > CUB_TRAIN_CLASSES).any()):
        why = "its classes are not CUB's 1-200 with both halves of the split"
    else:
        return images, classes
    raise CorruptFileError(f"{path} is not a valid decoded CUB-200-2011 cache ({why}); delete it and rfy decodes "
                           f"the archive again")


def load_cub(*, download: bool = True) -> RetrievalData:
    """CUB-200-2011 for zero-shot retrieval: classes 1–100 to train, 101–200 to test (decoded once, then cached)."""
    cache = cub_cache_path()
    if cache.exists():
        images, classes = checked_cub_cache(cache)
    else:
        images, classes = read_cub(fetch_dataset("cub-200-2011", download=download)[CUB_ARCHIVE])
        save_checkpoint(cache, {"images": images, "classes": classes})
    train = classes <= CUB_TRAIN_CLASSES
    none = torch.zeros(len(classes), dtype=torch.long)
    return RetrievalData(images[train], classes[train] - 1, none[train], images[~train], classes[~train] - 1,
                         none[~train], ("all",), augment=True)


def load_data(dataset: str, seed: int) -> RetrievalData:
    """The retrieval split of ``dataset`` for the run with ``seed``."""
    if dataset == "domain-digits":
        return domain_digits(seed)
    if dataset == "cub-200-2011":
        return load_cub()
    raise ConfigError(f"dataset must be one of ('domain-digits', 'cub-200-2011'), got {dataset!r}")
