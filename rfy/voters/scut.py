"""Full mode on real votes: SCUT-FBP5500 (Liang et al. 2018), 5,500 faces rated 1-5 by 60 raters each.

The release is one zip (``SCUT-FBP5500_v2.1.zip``) holding ``Images/*.jpg`` (350x350), the per-rater
ratings ``All_Ratings.xlsx`` (columns Rater, Filename, Rating, original Rating) and the published
splits ``train_test_files/5_folders_cross_validations_files/cross_validation_k/{train,test}_k.txt``
(lines ``<filename> <mean score>``). Everything is read from the zip without extracting it; the
spreadsheet by a small reader of the xlsx format (a zip of XML sheets), so no spreadsheet library
is needed. Features come from a frozen ImageNet trunk from torchvision, an optional dependency that
is imported only here.
"""
from __future__ import annotations

import functools
import io
import re
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import torch
from torch import nn

from rfy import pretrained
from rfy.checkpoint import RunState, load_checkpoint, save_checkpoint
from rfy.data import dataset_dir, fetch_dataset
from rfy.errors import CorruptFileError
from rfy.progress import progress
from rfy.runtime import select_device
from rfy.voters.config import Config
from rfy.voters.runs import condition_runs, summarise
from rfy.voters.simulate import VoteData
from rfy.voters.train import autocast

ARCHIVE = "SCUT-FBP5500_v2.1.zip"
RATERS = 60
FEATURE_BATCH = 128  # images per batch of the frozen trunk
XLSX = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
XLSX_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _column(reference: str) -> int:
    """Zero-based column of an A1-style cell reference (``"C7"`` → 2)."""
    letters = re.match(r"[A-Z]+", reference).group(0)
    index = 0
    for letter in letters:
        index = index * 26 + ord(letter) - ord("A") + 1
    return index - 1


def read_xlsx(data: bytes, sheet: str | None = None) -> list[list[str | float | None]]:
    """The rows of one sheet of an .xlsx workbook (the one named ``sheet``, else the first), as Python values.

    Shared strings (``t="s"``), inline strings (``t="inlineStr"``) and numbers are supported: all that a
    table of ids, file names and ratings needs.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as book:
        names = set(book.namelist())
        strings = []
        if "xl/sharedStrings.xml" in names:
            for item in ElementTree.fromstring(book.read("xl/sharedStrings.xml")).iter(f"{XLSX}si"):
                strings.append("".join(text.text or "" for text in item.iter(f"{XLSX}t")))
        workbook = ElementTree.fromstring(book.read("xl/workbook.xml"))
        sheets = [(node.get("name"), node.get(f"{XLSX_REL}id")) for node in workbook.iter(f"{XLSX}sheet")]
        chosen = next((rid for name, rid in sheets if name == sheet), sheets[0][1]) if sheets else None
        target = "xl/worksheets/sheet1.xml"
        if chosen and "xl/_rels/workbook.xml.rels" in names:
            for rel in ElementTree.fromstring(book.read("xl/_rels/workbook.xml.rels")):
                if rel.get("Id") == chosen:
                    target = "xl/" + rel.get("Target").lstrip("/").removeprefix("xl/")
        rows = []
        for row in ElementTree.fromstring(book.read(target)).iter(f"{XLSX}row"):
            values: list[str | float | None] = []
            for cell in row.iter(f"{XLSX}c"):
                column = _column(cell.get("r")) if cell.get("r") else len(values)
                values.extend([None] * (column + 1 - len(values)))
                kind, raw = cell.get("t"), cell.find(f"{XLSX}v")
                if kind == "s":
                    values[column] = strings[int(raw.text)]
                elif kind == "inlineStr":
                    values[column] = "".join(t.text or "" for t in cell.iter(f"{XLSX}t"))
                elif raw is not None and raw.text is not None:
                    values[column] = raw.text if kind == "str" else float(raw.text)
            rows.append(values)
    return rows


@dataclass
class ScutArchive:
    """What the release holds: image names, the ratings matrix (images × raters, 0-based, NaN if missing),
    the five folds as (train names, test names), and the zip to read images from."""

    path: Path
    images: list[str]
    ratings: torch.Tensor
    folds: dict[int, tuple[list[str], list[str]]]
    members: dict[str, str]  # image name → path inside the zip

    def index(self, names: list[str]) -> torch.Tensor:
        position = {name: i for i, name in enumerate(self.images)}
        missing = [name for name in names if name not in position]
        if missing:
            raise ValueError(f"{self.path}: the split lists images without ratings, e.g. {missing[:3]}")
        return torch.tensor([position[name] for name in names])


def read_scut_archive(path: str | Path) -> ScutArchive:
    """Parse ``SCUT-FBP5500_v2.1.zip``: ratings, folds and image members.

    A file that is not that zip (not a zip, truncated, without ratings) raises ``CorruptFileError``
    naming it and saying what to do, in one line.
    """
    path = Path(path)
    try:
        return _parse_scut_archive(path)
    except (ValueError, KeyError, IndexError, TypeError, EOFError, zipfile.BadZipFile, zlib.error,
            ElementTree.ParseError) as error:  # BadZipFile and ParseError are not ValueErrors
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise CorruptFileError(f"{path} is not a readable SCUT-FBP5500 release ({reason}); delete it and download "
                               f"{ARCHIVE} again (python -m rfy data download scut-fbp5500 says from where)") from None


def _parse_scut_archive(path: Path) -> ScutArchive:
    if not zipfile.is_zipfile(path):
        raise ValueError(f"not a zip archive; expected the release {ARCHIVE}")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        sheets = [name for name in names if name.endswith("All_Ratings.xlsx")]
        if not sheets:
            raise ValueError("it has no All_Ratings.xlsx")
        rows = read_xlsx(archive.read(sheets[0]), sheet="ALL")
        header = [str(value).strip().lower() if value is not None else "" for value in (rows[0] if rows else [])]
        try:
            rater_col, file_col, rating_col = header.index("rater"), header.index("filename"), header.index("rating")
        except ValueError:
            raise ValueError(f"{sheets[0]} must have the columns Rater, Filename and Rating, found "
                             f"{rows[0] if rows else 'no rows'}") from None
        entries = [(int(float(row[rater_col])), str(row[file_col]).strip(), float(row[rating_col]))
                   for row in rows[1:] if len(row) > rating_col and row[file_col] is not None]
        if not entries:
            raise ValueError(f"{sheets[0]} holds no ratings")
        folds = {}
        for fold in range(1, 6):
            split = [_read_split(archive, names, f"cross_validation_{fold}/{part}_{fold}.txt")
                     for part in ("train", "test")]
            if all(split):
                folds[fold] = (split[0], split[1])
        members = {name.rsplit("/", 1)[-1]: name for name in names if "/Images/" in f"/{name}" and
                   name.lower().endswith((".jpg", ".jpeg", ".png"))}
    images = sorted({name for _, name, _ in entries})
    raters = sorted({rater for rater, _, _ in entries})
    image_pos, rater_pos = {name: i for i, name in enumerate(images)}, {r: j for j, r in enumerate(raters)}
    ratings = torch.full((len(images), len(raters)), float("nan"))
    for rater, name, rating in entries:
        ratings[image_pos[name], rater_pos[rater]] = rating - 1  # 1-5 on disk, 0-4 here
    return ScutArchive(path, images, ratings, folds, members)


def _read_split(archive: zipfile.ZipFile, names: list[str], suffix: str) -> list[str]:
    matches = [name for name in names if name.replace("\\", "/").endswith(suffix)]
    if not matches:
        return []
    lines = archive.read(matches[0]).decode().split()
    return lines[0::2]  # "<filename> <score>" pairs


def scut_archive_path() -> Path:
    """The cached release, or ``DatasetNotAvailableError`` naming the file, the links and the folder.

    No checksum of the release is published, so the registry cannot verify its bytes; ``read_scut_archive``
    checks what can be checked instead (a zip with the ratings sheet, the folds and the images).
    """
    path = dataset_dir("scut-fbp5500") / ARCHIVE
    if path.exists():
        return path
    return fetch_dataset("scut-fbp5500")[ARCHIVE]


def decode_images(archive: ScutArchive, names: list[str], size: int) -> torch.Tensor:
    """JPEGs from the zip, resized to ``size`` × ``size`` RGB, as uint8 (n, 3, size, size)."""
    from PIL import Image  # Pillow comes with matplotlib

    out = torch.empty(len(names), 3, size, size, dtype=torch.uint8)
    with zipfile.ZipFile(archive.path) as zipped:
        for i, name in enumerate(names):
            if name not in archive.members:
                raise ValueError(f"{archive.path} has no image {name!r} under Images/")
            with Image.open(io.BytesIO(zipped.read(archive.members[name]))) as image:
                pixels = image.convert("RGB").resize((size, size), Image.BILINEAR)
                out[i] = torch.frombuffer(bytearray(pixels.tobytes()), dtype=torch.uint8).view(size, size, 3).permute(2, 0, 1)
    return out


def torchvision_trunk(name: str, weights: str | None = "DEFAULT") -> nn.Module:
    """An ImageNet-pretrained torchvision ``name`` with its classifier removed (features out);
    ``weights=None`` gives the same network with random weights (no download)."""
    return pretrained.torchvision_trunk(name, pretrained=weights is not None,
                                        needed_for="full mode's feature extraction")


#: How each ``Config.trunk`` is built; tests swap in random-weight networks of the same interface.
TRUNK_BUILDERS: dict[str, Callable[[], nn.Module]] = {
    "resnet18": lambda: torchvision_trunk("resnet18"),
    "resnet50": lambda: torchvision_trunk("resnet50"),
}


@torch.no_grad()
def extract_features(archive: ScutArchive, config: Config, device: torch.device,
                     batch_size: int = FEATURE_BATCH) -> torch.Tensor:
    """Frozen-trunk features of every image, batch by batch on ``device`` (bf16 autocast on CUDA): (N, F)."""
    trunk = TRUNK_BUILDERS[config.trunk]().to(device).eval()
    parts = []
    for start in progress(range(0, len(archive.images), batch_size), desc="features"):
        names = archive.images[start:start + batch_size]
        images = decode_images(archive, names, config.image_size).to(device, non_blocking=True)
        parts.append(batch_features(trunk, images, config).cpu())
    return torch.cat(parts)


@torch.no_grad()
def batch_features(trunk: nn.Module, images: torch.Tensor, config: Config) -> torch.Tensor:
    """$\\phi((x / 255 - \\mu) / \\sigma)$ of uint8 images (n, 3, H, W) with ImageNet's channel mean $\\mu$ and
    std $\\sigma$, on the images' device (bf16 autocast on CUDA if ``config.mixed_precision``): float32 (n, F)."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    with autocast(images.device, config.mixed_precision):
        return trunk((images.float() / 255 - mean) / std).float().flatten(1)


def fold_data(archive: ScutArchive, features: torch.Tensor, fold: int, config: Config, seed: int) -> VoteData:
    """Fold ``fold`` as ``VoteData``: votes of ``votes_min … votes_max`` raters per training face, truth the
    mean of all ratings; for the vote-equivalence curve the raters are split in two halves by ``seed``,
    one half's mean is the truth and the other half's votes are the raw votes."""
    if fold not in archive.folds:
        raise ValueError(f"{archive.path} has no split files for fold {fold} (found folds {sorted(archive.folds)})")
    generator = torch.Generator().manual_seed(seed)
    train, test = (archive.index(names) for names in archive.folds[fold])
    ratings = archive.ratings
    raters = ratings.shape[1]
    if config.votes_max > raters:
        raise ValueError(f"votes_max={config.votes_max} but the archive has only {raters} raters")
    rated = ~ratings[train].isnan()
    keys = torch.rand(len(train), raters, generator=generator).masked_fill(~rated, 2.0)
    chosen = keys.argsort(1)[:, :config.votes_max]
    counts = torch.randint(config.votes_min, config.votes_max + 1, (len(train),), generator=generator)
    keep = (torch.arange(config.votes_max).unsqueeze(0) < torch.minimum(counts, rated.sum(1)).unsqueeze(1))
    vote_items = train.unsqueeze(1).expand_as(chosen)[keep]
    vote_voters = chosen[keep]
    votes = ratings[vote_items, vote_voters].long().unsqueeze(1)
    half = torch.randperm(raters, generator=generator)
    truth_raters, vote_raters = half[:raters // 2], half[raters // 2:]
    heldout = ratings[test][:, vote_raters]
    if heldout.isnan().any():
        raise ValueError("the vote-equivalence curve needs every test face rated by every rater")
    truth = ratings.nanmean(1, keepdim=True)
    return VoteData(features, train, test, vote_items, vote_voters, votes, truth, heldout.long().unsqueeze(-1),
                    ratings[test][:, truth_raters].nanmean(1, keepdim=True), raters,
                    torch.arange(raters)[:config.n_standard], config.levels)


def run_scut(config: Config, state: RunState) -> dict[str, float]:
    """Every fold of ``config.folds`` with every head; means over folds under ``scut_``."""
    device = select_device(config.device)
    archive = read_scut_archive(scut_archive_path())
    if config.levels != 5:
        raise ValueError(f"SCUT-FBP5500 ratings have 5 levels; set levels=5 (got {config.levels})")
    features_file = state.workdir / "features.pt"

    def features_stage(_):
        features = extract_features(archive, config, device)
        save_checkpoint(features_file, {"features": features, "images": archive.images})
        return {"images": float(len(features)), "feature_dim": float(features.shape[1])}

    state.stage("features", features_stage)
    saved = load_checkpoint(features_file)
    if saved is None or saved["images"] != archive.images:
        raise ValueError(f"{features_file} is missing or from another archive: delete {state.workdir} and rerun")
    features = saved["features"]
    runs = {fold: condition_runs(config, f"fold{fold}", config.seed, state,
                                 functools.cache(lambda fold=fold: fold_data(archive, features, fold, config, config.seed)))
            for fold in config.folds}
    metrics = summarise(config, runs, "scut_")
    metrics["scut_folds"] = float(len(config.folds))
    return metrics


__all__ = ["ARCHIVE", "ScutArchive", "read_xlsx", "read_scut_archive", "scut_archive_path", "decode_images",
           "extract_features", "batch_features", "fold_data", "run_scut", "TRUNK_BUILDERS", "torchvision_trunk"]
