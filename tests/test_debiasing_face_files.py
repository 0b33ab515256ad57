"""Tests for rfy.debiasing.face_files on a tiny CelebA and a tiny Imagenette written here in the real formats."""
from __future__ import annotations

import io
import re
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rfy.data import REGISTRY, dataset_dir, get_spec
from rfy.debiasing.face_files import (GROUP_NAMES, balanced_group_indices, cache_path, celeba_groups, load_celeba_faces,
                                      load_non_faces, read_celeba_attributes, read_celeba_partition)
from rfy.errors import ConfigError, DatasetNotAvailableError
from test_data import register_hashes_of

ATTRIBUTE_NAMES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()
BORDER = (255, 255, 255)

# filename: (male, pale, partition, colour of the central square)
FACES = {
    "000001.jpg": (False, False, 0, (200, 30, 30)),
    "000002.jpg": (False, True, 0, (30, 200, 30)),
    "000003.jpg": (True, False, 0, (30, 30, 200)),
    "000004.jpg": (True, True, 0, (200, 200, 30)),
    "000005.jpg": (True, True, 1, (30, 200, 200)),
    "000006.jpg": (False, False, 2, (120, 60, 0)),
}

# member name under imagenette2-160/: (width, height, colour of the central square)
NON_FACES = {
    "train/n01440764/ILSVRC2012_val_00000293.JPEG": (240, 160, (200, 30, 30)),
    "train/n01440764/n01440764_10026.JPEG": (160, 213, (30, 200, 30)),
    "train/n03028079/n03028079_1002.JPEG": (160, 160, (30, 30, 200)),
    "train/n03028079/n03028079_10079.JPEG": (213, 160, (200, 200, 30)),
    "val/n01440764/n01440764_1001.JPEG": (240, 160, (30, 200, 200)),
    "val/n03028079/n03028079_1011.JPEG": (160, 240, (120, 60, 0)),
}


def jpeg_bytes(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    """A JPEG of ``BORDER`` with ``colour`` filling its central square, as the loaders should crop it."""
    image = Image.new("RGB", (width, height), BORDER)
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    image.paste(Image.new("RGB", (side, side), colour), (left, top))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=100, subsampling=0)
    return buffer.getvalue()


def attribute_line(filename: str, values: list[int]) -> str:
    """One row as CelebA writes it: the filename, then each value right-aligned in two characters."""
    return filename + "".join(f" {value:2d}" for value in values)


def write_tiny_celeba(directory: Path) -> None:
    """img_align_celeba.zip, list_attr_celeba.txt and list_eval_partition.txt in the real layouts."""
    directory.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(directory / "img_align_celeba.zip", "w") as archive:
        archive.writestr("img_align_celeba/", "")
        for filename, (_, _, _, colour) in FACES.items():
            archive.writestr(f"img_align_celeba/{filename}", jpeg_bytes(178, 218, colour))
    rows = []
    for seed, (filename, (male, pale, _, _)) in enumerate(FACES.items()):
        values = list(np.random.default_rng(seed).choice([-1, 1], size=len(ATTRIBUTE_NAMES)))
        values[ATTRIBUTE_NAMES.index("Male")] = 1 if male else -1
        values[ATTRIBUTE_NAMES.index("Pale_Skin")] = 1 if pale else -1
        rows.append(attribute_line(filename, values))
    header = [str(len(FACES)), " ".join(ATTRIBUTE_NAMES) + " "]
    (directory / "list_attr_celeba.txt").write_text("\n".join(header + rows) + "\n")
    (directory / "list_eval_partition.txt").write_bytes(  # CRLF line ends, as in the real file
        "".join(f"{filename} {part}\r\n" for filename, (_, _, part, _) in FACES.items()).encode())


def write_tiny_imagenette(path: Path) -> None:
    """imagenette2-160.tgz with the real folder layout, a CSV beside the images, one grey-scale JPEG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    members = {"imagenette2-160/noisy_imagenette.csv": b"path,noisy_labels_0\n"}
    for name, (width, height, colour) in NON_FACES.items():
        members[f"imagenette2-160/{name}"] = jpeg_bytes(width, height, colour)
    grey = io.BytesIO()
    Image.new("L", (160, 160), 90).save(grey, format="JPEG", quality=100)
    members["imagenette2-160/val/n03028079/n03028079_2000.JPEG"] = grey.getvalue()
    with tarfile.open(path, "w:gz") as archive:
        for name in reversed(list(members)):  # not in sorted order, as in a real tarball
            info = tarfile.TarInfo(name)
            info.size = len(members[name])
            archive.addfile(info, io.BytesIO(members[name]))


@pytest.fixture()
def tiny_celeba(isolated_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = isolated_cache / "celeba"
    write_tiny_celeba(directory)
    register_hashes_of(directory, monkeypatch, name="celeba")
    return directory


@pytest.fixture()
def tiny_imagenette(isolated_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = isolated_cache / "imagenette"
    write_tiny_imagenette(directory / "imagenette2-160.tgz")
    register_hashes_of(directory, monkeypatch, name="imagenette")
    return directory


def assert_solid(images: torch.Tensor, colours: list[tuple[int, int, int]]) -> None:
    """Every pixel of image i is close to colours[i]: the border outside the central square is gone."""
    assert len(images) == len(colours)
    expected = torch.tensor(colours, dtype=torch.float32)[:, :, None, None]
    assert float((images.float() - expected).abs().max()) <= 12


# Annotation readers ------------------------------------------------------------------------------

def test_read_celeba_attributes_real_layout(tiny_celeba: Path) -> None:
    filenames, names, values = read_celeba_attributes(tiny_celeba / "list_attr_celeba.txt")
    assert filenames == list(FACES) and names == ATTRIBUTE_NAMES
    assert values.dtype == torch.int8 and tuple(values.shape) == (6, 40)
    assert set(values.unique().tolist()) == {-1, 1}
    assert values[:, names.index("Male")].tolist() == [1 if male else -1 for male, *_ in FACES.values()]
    assert celeba_groups(names, values).tolist() == [0, 1, 2, 3, 3, 0]


def test_read_celeba_attributes_rejects_a_wrong_count(tmp_path: Path) -> None:
    path = tmp_path / "list_attr_celeba.txt"
    path.write_text(f"3\n{' '.join(ATTRIBUTE_NAMES)}\n{attribute_line('000001.jpg', [1] * 40)}\n")
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*announces 3 images, found 1"):
        read_celeba_attributes(path)


def test_read_celeba_partition(tiny_celeba: Path) -> None:
    partition = read_celeba_partition(tiny_celeba / "list_eval_partition.txt")
    assert partition == {filename: part for filename, (_, _, part, _) in FACES.items()}


# CelebA faces ------------------------------------------------------------------------------------------

def test_load_celeba_faces_splits_groups_and_crop(tiny_celeba: Path) -> None:
    images, groups, names = load_celeba_faces("train", size=16, download=False)
    assert images.dtype == torch.uint8 and tuple(images.shape) == (4, 3, 16, 16)
    assert groups.dtype == torch.int64 and groups.tolist() == [0, 1, 2, 3]
    assert names == GROUP_NAMES and names[2] == "male, not pale"
    assert_solid(images, [colour for *_, part, colour in FACES.values() if part == 0])

    valid_images, valid_groups, _ = load_celeba_faces("valid", size=16, download=False)
    assert tuple(valid_images.shape) == (1, 3, 16, 16) and valid_groups.tolist() == [3]
    assert_solid(valid_images, [FACES["000005.jpg"][3]])
    test_images, test_groups, _ = load_celeba_faces("test", download=False)
    assert tuple(test_images.shape) == (1, 3, 64, 64) and test_groups.tolist() == [0]


def test_load_celeba_faces_limit_keeps_the_first(tiny_celeba: Path) -> None:
    images, groups, _ = load_celeba_faces("train", size=8, limit=2, download=False)
    assert tuple(images.shape) == (2, 3, 8, 8) and groups.tolist() == [0, 1]
    assert_solid(images, [FACES["000001.jpg"][3], FACES["000002.jpg"][3]])


def test_load_celeba_faces_second_call_reads_the_cache(tiny_celeba: Path) -> None:
    first = load_celeba_faces("train", size=16, limit=3, download=False)
    assert cache_path("celeba", "faces-train-16px-limit3").exists()
    for path in tiny_celeba.glob("*.txt"):
        path.unlink()
    (tiny_celeba / "img_align_celeba.zip").unlink()
    again = load_celeba_faces("train", size=16, limit=3, download=False)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1]) and first[2] == again[2]
    with pytest.raises(DatasetNotAvailableError, match="img_align_celeba.zip"):
        load_celeba_faces("train", size=16, limit=2, download=False)


def test_load_celeba_faces_offline_names_every_file(isolated_cache: Path) -> None:
    with pytest.raises(DatasetNotAvailableError) as error:
        load_celeba_faces("train", download=False)
    message = str(error.value)
    assert str(isolated_cache / "celeba") in message
    assert all(remote.filename in message for remote in get_spec("celeba").files)


def test_load_celeba_faces_rejects_bad_arguments() -> None:
    with pytest.raises(ConfigError, match=r"split='val'.*train, valid, test"):
        load_celeba_faces("val", download=False)
    with pytest.raises(ConfigError, match="size=0"):
        load_celeba_faces("train", size=0, download=False)
    with pytest.raises(ConfigError, match="limit=-1"):
        load_celeba_faces("train", limit=-1, download=False)


# Balanced groups ---------------------------------------------------------------------------------------

def test_balanced_group_indices_equal_per_group_and_seeded() -> None:
    shuffle = torch.randperm(107, generator=torch.Generator().manual_seed(0))
    groups = torch.tensor([0] * 30 + [1] * 12 + [2] * 25 + [3] * 40)[shuffle]
    indices = balanced_group_indices(groups, 10, seed=3)
    assert indices.dtype == torch.int64 and len(indices) == 40 and len(set(indices.tolist())) == 40
    assert groups[indices].tolist() == [0] * 10 + [1] * 10 + [2] * 10 + [3] * 10
    assert torch.equal(indices, balanced_group_indices(groups, 10, seed=3))
    assert not torch.equal(indices, balanced_group_indices(groups, 10, seed=4))
    assert torch.equal(balanced_group_indices(groups, 12, seed=5)[12:24].sort().values,
                       torch.nonzero(groups == 1).flatten())


def test_balanced_group_indices_too_few_names_per_group_and_smallest() -> None:
    groups = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 3])
    with pytest.raises(ConfigError, match=r"per_group=3 .*group 1 \('female, pale'\) has 2 image"):
        balanced_group_indices(groups, 3, seed=0)
    with pytest.raises(ConfigError, match=r"per_group=1 .*group 3 .* has 0 image"):
        balanced_group_indices(torch.tensor([0, 1, 2]), 1, seed=0)
    with pytest.raises(ConfigError, match="per_group=0"):
        balanced_group_indices(groups, 0, seed=0)


# Non-faces ------------------------------------------------------------------------------------------

def test_load_non_faces_split_order_crop_and_grey(tiny_imagenette: Path) -> None:
    train = load_non_faces("train", size=12, download=False)
    assert train.dtype == torch.uint8 and tuple(train.shape) == (4, 3, 12, 12)
    assert_solid(train, [colour for name, (*_, colour) in sorted(NON_FACES.items()) if name.startswith("train/")])
    val = load_non_faces("val", size=12, download=False)
    assert tuple(val.shape) == (3, 3, 12, 12)
    assert_solid(val[:2], [NON_FACES["val/n01440764/n01440764_1001.JPEG"][2],
                           NON_FACES["val/n03028079/n03028079_1011.JPEG"][2]])
    assert float((val[2].float() - 90).abs().max()) <= 3


def test_load_non_faces_limit_spreads_over_classes(tiny_imagenette: Path) -> None:
    images = load_non_faces("train", size=8, limit=2, download=False)
    assert_solid(images, [NON_FACES["train/n01440764/ILSVRC2012_val_00000293.JPEG"][2],
                          NON_FACES["train/n03028079/n03028079_10079.JPEG"][2]])


def test_load_non_faces_second_call_reads_the_cache(tiny_imagenette: Path) -> None:
    first = load_non_faces("val", size=8, download=False)
    (tiny_imagenette / "imagenette2-160.tgz").unlink()
    assert torch.equal(first, load_non_faces("val", size=8, download=False))
    assert [path.name for path in dataset_dir("imagenette").iterdir()] == [
        cache_path("imagenette", "non-faces-val-8px-all").name]
    with pytest.raises(DatasetNotAvailableError, match="imagenette2-160.tgz"):
        load_non_faces("train", size=8, download=False)


def test_load_non_faces_rejects_bad_split() -> None:
    with pytest.raises(ConfigError, match=r"split='valid'.*train, val"):
        load_non_faces("valid", download=False)


# Registry ------------------------------------------------------------------------------------------------

def test_face_datasets_are_registered_with_real_looking_checksums() -> None:
    assert [remote.filename for remote in get_spec("celeba").files] == [
        "img_align_celeba.zip", "list_attr_celeba.txt", "list_eval_partition.txt"]
    assert [remote.filename for remote in get_spec("imagenette").files] == ["imagenette2-160.tgz"]
    for spec in REGISTRY.values():
        for remote in spec.files:
            # None: no checksum of that file is published anywhere (SCUT-FBP5500); its reader checks the format
            assert (remote.sha256 is None and spec.name == "scut-fbp5500") or re.fullmatch(
                r"[0-9a-f]{64}", remote.sha256), (spec.name, remote.filename)
            assert remote.size_bytes is None or remote.size_bytes > 0
    assert "ImageNet" in get_spec("imagenette").description


# Caches are checked, and full mode names every missing dataset -------------------------------------

def test_a_truncated_cache_is_an_error_naming_it(tiny_celeba: Path) -> None:
    from rfy.errors import CorruptFileError

    load_celeba_faces("train", size=8, limit=2, download=False)
    path = cache_path("celeba", "faces-train-8px-limit2")
    path.write_bytes(path.read_bytes()[:64])
    with pytest.raises(CorruptFileError, match=f"{re.escape(str(path))}.*delete it"):
        load_celeba_faces("train", size=8, limit=2, download=False)


def test_a_wrong_shaped_cache_is_an_error_naming_it(tiny_imagenette: Path) -> None:
    from rfy.errors import CorruptFileError

    path = cache_path("imagenette", "non-faces-val-8px-all")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"images": torch.zeros(2, 3, 16, 16, dtype=torch.uint8)}, path)
    with pytest.raises(CorruptFileError, match=r"images are torch.uint8 \(2, 3, 16, 16\), expected uint8 \[N, 3, 8, 8\]"):
        load_non_faces("val", size=8, download=False)
    torch.save({"images": torch.zeros(2, 3, 8, 8)}, path)
    with pytest.raises(CorruptFileError, match=re.escape(str(path))):
        load_non_faces("val", size=8, download=False)


def test_full_mode_debiasing_offline_names_celeba_and_imagenette(isolated_cache: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import rfy.data.download as download
    from rfy.debiasing import Config, faces

    def offline(url: str):
        raise OSError("network unreachable")
    monkeypatch.setattr(download, "open_url", offline)
    with pytest.raises(DatasetNotAvailableError) as error:
        faces.load_face_detection_data(Config.full())
    message = str(error.value)
    assert "img_align_celeba.zip" in message and "list_attr_celeba.txt" in message
    assert "imagenette2-160.tgz" in message and str(isolated_cache / "imagenette") in message
