"""Faces and non-faces for the DB-VAE chapter: CelebA with demographic groups, Imagenette negatives.

Images are decoded straight out of the downloaded archives (no extraction to disk), cropped to
the central square, resized, and returned as uint8 ``[N, 3, size, size]``. Decoding a whole
split takes minutes, so each result is cached once as a ``.pt`` file beside the archives, keyed
by split, size, limit and the registered checksums; later calls load that file instead.
"""
from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from rfy.data.download import dataset_dir, fetch_dataset
from rfy.data.registry import get_spec
from rfy.errors import ConfigError, CorruptFileError
from rfy.files import atomic_write
from rfy.progress import progress

CELEBA_SPLITS = {"train": 0, "valid": 1, "test": 2}
NON_FACE_SPLITS = ("train", "val")
CELEBA_IMAGES = "img_align_celeba.zip"
CELEBA_ATTRIBUTES = "list_attr_celeba.txt"
CELEBA_PARTITION = "list_eval_partition.txt"
IMAGENETTE_ARCHIVE = "imagenette2-160.tgz"
JPEG_SUFFIXES = (".jpg", ".jpeg")

GROUP_NAMES = ("female, not pale", "female, pale", "male, not pale", "male, pale")
"""Demographic group ``2 * Male + Pale_Skin`` from CelebA's attributes, by index."""

ImageCache = dict[str, object]


# Text files -------------------------------------------------------------------------------------

def read_celeba_attributes(path: str | Path) -> tuple[list[str], list[str], torch.Tensor]:
    """Filenames, attribute names, and int8 values ``[N, A]`` in {-1, 1} of ``list_attr_celeba.txt``.

    The file holds the number of images on its first line, the attribute names on the second,
    then one line per image: its filename and one ``1`` or ``-1`` per attribute, separated by
    runs of spaces.
    """
    path = Path(path)
    lines = path.read_text().splitlines()
    if len(lines) < 2:
        raise ValueError(f"{path}: expected a count line and an attribute-name line, found {len(lines)} line(s)")
    count, names = _parse_count(lines[0], path), lines[1].split()
    rows = [line.split() for line in lines[2:] if line.strip()]
    _check_rows(rows, count, 1 + len(names), path)
    values = np.array([row[1:] for row in rows], dtype=np.int64).reshape(len(rows), len(names))
    if not np.isin(values, (-1, 1)).all():
        raise ValueError(f"{path}: attribute values must be -1 or 1")
    return [row[0] for row in rows], names, torch.from_numpy(values.astype(np.int8))


def read_celeba_partition(path: str | Path) -> dict[str, int]:
    """``list_eval_partition.txt`` as filename -> partition (0 train, 1 valid, 2 test)."""
    path = Path(path)
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    _check_rows(rows, len(rows), 2, path)
    partition = {filename: int(value) for filename, value in rows}
    if not set(partition.values()) <= set(CELEBA_SPLITS.values()):
        raise ValueError(f"{path}: partition values must be 0 (train), 1 (valid) or 2 (test)")
    return partition


def _parse_count(line: str, path: Path) -> int:
    """The image count on the first line of a CelebA annotation file."""
    try:
        return int(line.strip())
    except ValueError:
        raise ValueError(f"{path}: first line should be the number of images, found {line!r}") from None


def _check_rows(rows: list[list[str]], count: int, fields: int, path: Path) -> None:
    """ValueError unless there are ``count`` rows of ``fields`` whitespace-separated fields each."""
    if len(rows) != count:
        raise ValueError(f"{path}: header announces {count} images, found {len(rows)} rows")
    for number, row in enumerate(rows, start=1):
        if len(row) != fields:
            raise ValueError(f"{path}: row {number} ({row[0] if row else ''}) has {len(row)} fields, "
                             f"expected {fields}")


# Groups --------------------------------------------------------------------------------------------

def celeba_groups(names: list[str], values: torch.Tensor) -> torch.Tensor:
    """Group index ``2 * Male + Pale_Skin`` (int64 ``[N]``) from CelebA attribute values; see GROUP_NAMES."""
    missing = [name for name in ("Male", "Pale_Skin") if name not in names]
    if missing:
        raise ValueError(f"CelebA attributes lack {', '.join(missing)}; found {', '.join(names)}")
    male = values[:, names.index("Male")] == 1
    pale = values[:, names.index("Pale_Skin")] == 1
    return 2 * male.long() + pale.long()


def balanced_group_indices(groups: torch.Tensor, per_group: int, seed: int, *,
                           num_groups: int = len(GROUP_NAMES)) -> torch.Tensor:
    """``per_group`` random indices from each of groups ``0..num_groups-1``, drawn without replacement.

    The result (int64, ``num_groups * per_group`` long) lists group 0's indices first, then
    group 1's, and so on, ascending within each group; it depends only on ``groups``,
    ``per_group`` and ``seed``.
    """
    if isinstance(per_group, bool) or not isinstance(per_group, int) or per_group < 1:
        raise ConfigError(f"per_group={per_group!r} must be a positive integer")
    if groups.dim() != 1:
        raise ValueError(f"groups must be one-dimensional, got shape {tuple(groups.shape)}")
    members = [torch.nonzero(groups == group).flatten() for group in range(num_groups)]
    smallest = min(range(num_groups), key=lambda group: len(members[group]))
    if len(members[smallest]) < per_group:
        raise ConfigError(f"per_group={per_group} is more than the smallest group holds: group {smallest}"
                          f"{_group_label(smallest)} has {len(members[smallest])} image(s)")
    generator = torch.Generator().manual_seed(seed)
    drawn = [indices[torch.randperm(len(indices), generator=generator)[:per_group]].sort().values
             for indices in members]
    return torch.cat(drawn)


def _group_label(group: int) -> str:
    """`` ('female, pale')`` for a known group index, nothing otherwise."""
    return f" ({GROUP_NAMES[group]!r})" if group < len(GROUP_NAMES) else ""


# Loaders -------------------------------------------------------------------------------------------

def load_celeba_faces(split: str = "train", *, size: int = 64, limit: int | None = None,
                      download: bool = True) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """CelebA faces of one official split: images uint8 ``[N, 3, size, size]``, groups int64 ``[N]``, names.

    Each aligned 178x218 face is cropped to its central 178x178 square (the full width, rows
    20 to 197, which drops the forehead top and the chin bottom) and resized to ``size`` with
    PIL's antialiased bilinear filter. ``groups[i]`` indexes ``group_names``: ``2 * Male +
    Pale_Skin`` (see GROUP_NAMES). ``limit`` keeps the first images of the split in the order of
    ``list_eval_partition.txt``. The first call decodes and caches; later calls read the cache.
    """
    _check_choice("split", split, tuple(CELEBA_SPLITS))
    _check_size_and_limit(size, limit)
    cached = _cached("celeba", f"faces-{split}-{size}px-{_limit_tag(limit)}", download,
                     lambda paths: _decode_celeba(paths, split, size, limit), size, limit)
    return cached["images"], cached["groups"], tuple(cached["group_names"])


def load_non_faces(split: str = "train", *, size: int = 64, limit: int | None = None,
                   download: bool = True) -> torch.Tensor:
    """Imagenette photos of one split (``"train"`` or ``"val"``) as uint8 ``[N, 3, size, size]``.

    They stand in for the paper's ImageNet negatives; note that some classes (tench, French
    horn, chain saw) often show people too. Each photo is cropped to its central square and
    resized to ``size`` with PIL's antialiased bilinear filter, in sorted member-name order;
    ``limit`` keeps that many spread evenly over the sorted list, so the classes stay about equally
    represented.
    The first call decodes and caches; later calls read the cache.
    """
    _check_choice("split", split, NON_FACE_SPLITS)
    _check_size_and_limit(size, limit)
    cached = _cached("imagenette", f"non-faces-{split}-{size}px-{_limit_tag(limit)}", download,
                     lambda paths: {"images": _decode_imagenette(paths[IMAGENETTE_ARCHIVE], split, size, limit)},
                     size, limit)
    return cached["images"]


def _check_choice(parameter: str, value: str, allowed: tuple[str, ...]) -> None:
    """ConfigError naming ``parameter`` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ConfigError(f"{parameter}={value!r} is not allowed; allowed values: {', '.join(allowed)}")


def _check_size_and_limit(size: int, limit: int | None) -> None:
    """ConfigError unless ``size`` is a positive int and ``limit`` is None or a positive int."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"size={size!r} must be a positive integer (pixels per side)")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit={limit!r} must be None (all images) or a positive integer")


def _limit_tag(limit: int | None) -> str:
    """The part of a cache file name that records ``limit``."""
    return "all" if limit is None else f"limit{limit}"


# Cache ---------------------------------------------------------------------------------------------

def cache_path(name: str, key: str) -> Path:
    """Where the decoded tensors ``key`` of dataset ``name`` are cached, tied to its registered sha256s."""
    checksums = "".join(remote.sha256 for remote in get_spec(name).files)
    return dataset_dir(name) / f"{key}-{hashlib.sha256(checksums.encode()).hexdigest()[:12]}.pt"


def _cached(name: str, key: str, download: bool, decode: Callable[[dict[str, Path]], ImageCache],
            size: int, limit: int | None) -> ImageCache:
    """The cached tensors ``key`` of dataset ``name``; fetch the files and ``decode`` them on a miss.

    A cache that cannot be read or does not hold what it should (uint8 images ``[N, 3, size,
    size]`` with at most ``limit`` of them, groups matching) raises ``CorruptFileError`` naming it.
    """
    path = cache_path(name, key)
    if path.exists():
        return _checked_cache(path, size, limit)
    contents = decode(fetch_dataset(name, download=download))
    _save_atomically(contents, path)
    return contents


def _checked_cache(path: Path, size: int, limit: int | None) -> ImageCache:
    """The cache at ``path`` after checking its contents' types, shapes and dtypes."""
    def corrupt(why: str) -> CorruptFileError:
        return CorruptFileError(f"{path} is not a valid decoded-image cache ({why}); delete it and rfy decodes "
                                f"the archives again")

    try:
        contents = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise corrupt(str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__) from None
    images = contents.get("images") if isinstance(contents, dict) else None
    if not isinstance(images, torch.Tensor):
        raise corrupt("no 'images' tensor")
    if images.dtype != torch.uint8 or images.dim() != 4 or tuple(images.shape[1:]) != (3, size, size):
        raise corrupt(f"images are {images.dtype} {tuple(images.shape)}, expected uint8 [N, 3, {size}, {size}]")
    if limit is not None and len(images) > limit:
        raise corrupt(f"{len(images)} images, more than the limit of {limit}")
    if "groups" in contents:
        groups = contents["groups"]
        if not isinstance(groups, torch.Tensor) or groups.dtype != torch.int64 or tuple(groups.shape) != (len(images),):
            raise corrupt(f"groups must be int64 [{len(images)}]")
        if tuple(contents.get("group_names", ())) != GROUP_NAMES:
            raise corrupt(f"group names must be {GROUP_NAMES}")
    return contents


def _save_atomically(contents: ImageCache, path: Path) -> None:
    """``torch.save`` into a temporary file beside ``path``, then rename it into place."""
    atomic_write(path, lambda handle: torch.save(contents, handle))


# Decoding ------------------------------------------------------------------------------------------

def _decode_celeba(paths: dict[str, Path], split: str, size: int, limit: int | None) -> ImageCache:
    """Images, groups and group names of one CelebA split, decoded from the verified files."""
    partition = read_celeba_partition(paths[CELEBA_PARTITION])
    filenames, names, values = read_celeba_attributes(paths[CELEBA_ATTRIBUTES])
    row_of = {filename: row for row, filename in enumerate(filenames)}
    wanted = [filename for filename, part in partition.items() if part == CELEBA_SPLITS[split]][:limit]
    absent = [filename for filename in wanted if filename not in row_of]
    if absent:
        raise ValueError(f"{paths[CELEBA_ATTRIBUTES]} has no attributes for {len(absent)} image(s) of "
                         f"split {split!r}, e.g. {absent[0]}")
    groups = celeba_groups(names, values)[[row_of[filename] for filename in wanted]]
    images = _decode_zip_images(paths[CELEBA_IMAGES], wanted, size)
    return {"images": images, "groups": groups, "group_names": GROUP_NAMES}


def _decode_zip_images(zip_path: Path, filenames: list[str], size: int) -> torch.Tensor:
    """The JPEGs called ``filenames`` (in any folder of the zip), square-cropped and resized, in order."""
    with zipfile.ZipFile(zip_path) as archive:
        member_of = {Path(member).name: member for member in archive.namelist()
                     if member.lower().endswith(JPEG_SUFFIXES)}
        absent = [filename for filename in filenames if filename not in member_of]
        if absent:
            raise ValueError(f"{zip_path} lacks {len(absent)} image(s) of the partition, e.g. {absent[0]}")
        arrays = (_square_resized(archive.read(member_of[filename]), size)
                  for filename in progress(filenames, desc="decoding CelebA", unit="img"))
        return _stack(arrays, len(filenames), size)


def _decode_imagenette(tgz_path: Path, split: str, size: int, limit: int | None) -> torch.Tensor:
    """The JPEGs under ``<root>/<split>/<class>/`` of the Imagenette tgz, square-cropped and resized."""
    with tarfile.open(tgz_path, "r:*") as archive:
        members = [member for member in archive.getmembers() if _in_split(member, split)]
        if not members:
            raise ValueError(f"{tgz_path} holds no JPEGs under <root>/{split}/<class>/")
        chosen = {member.name for member in _spread(sorted(members, key=lambda m: m.name), limit)}
        decoded = {}  # read in archive order, so the compressed stream is only ever read forwards
        for member in progress([m for m in members if m.name in chosen], desc="decoding Imagenette", unit="img"):
            with archive.extractfile(member) as handle:
                decoded[member.name] = _square_resized(handle.read(), size)
    return _stack((decoded[name] for name in sorted(decoded)), len(decoded), size)


def _in_split(member: tarfile.TarInfo, split: str) -> bool:
    """True for a JPEG file at ``<root>/<split>/<class>/<image>``."""
    parts = Path(member.name).parts
    is_jpeg = member.name.lower().endswith(JPEG_SUFFIXES)
    return member.isfile() and is_jpeg and len(parts) >= 3 and parts[-3] == split


def _spread(items: list, limit: int | None) -> list:
    """``limit`` items evenly spaced over ``items`` (all of them if ``limit`` is None or larger)."""
    if limit is None or limit >= len(items):
        return items
    return [items[index] for index in np.linspace(0, len(items) - 1, limit).round().astype(int)]


def _square_resized(jpeg: bytes, size: int) -> np.ndarray:
    """An encoded image as RGB uint8 ``[3, size, size]``: its central square, resized to ``size``."""
    with Image.open(io.BytesIO(jpeg)) as image:
        width, height = image.size
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        square = image.convert("RGB").crop((left, top, left + side, top + side))
        resized = square.resize((size, size), Image.BILINEAR)
    return np.asarray(resized, dtype=np.uint8).transpose(2, 0, 1)


def _stack(arrays: Iterable[np.ndarray], count: int, size: int) -> torch.Tensor:
    """uint8 ``[count, 3, size, size]`` filled from ``count`` arrays, without holding a second copy."""
    stacked = np.empty((count, 3, size, size), dtype=np.uint8)
    for index, array in enumerate(arrays):
        stacked[index] = array
    return torch.from_numpy(stacked)
