"""Which files make up each dataset rfy can load, where to get them, and their sha256.

Every checksum was taken from a published list rather than computed here:
MNIST and Fashion-MNIST from TensorFlow Datasets' ``url_checksums/mnist.txt`` and
``url_checksums/fashion_mnist.txt``, the CIFAR-10 python archive from its
``url_checksums/cifar10.csv`` (the same value Keras pins in ``datasets/cifar10.py``),
CelebA from its ``url_checksums/celeb_a.txt`` (the values torchvision pins in
``torchvision/prototype/datasets/_builtin/celeba.py``; the PyTorch tutorials pin the same image
archive at their S3 mirror in ``.jenkins/download_data.py``), Imagenette from its
``url_checksums/imagenette.txt``, and SVHN (cropped digits) from its ``url_checksums/svhn_cropped.txt``.
"""
from __future__ import annotations

from dataclasses import dataclass

from rfy.errors import ConfigError


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file: its name on disk, its sha256, and mirrors tried in order.

    ``sha256`` is ``None`` only for a file whose checksum nobody publishes: then the cache accepts
    the file as it is, and the chapter's reader must check its format before using it.
    """

    filename: str
    sha256: str | None
    urls: tuple[str, ...]
    size_bytes: int | None = None


@dataclass(frozen=True)
class SystemCopy:
    """The same files installed by a system package, read in place: ``directory`` holds them under the
    registry's file names, each pinned by its own sha256 (``sha256[filename]``); ``install`` is the
    command that puts them there."""

    directory: str
    sha256: dict[str, str]
    install: str


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset as a set of remote files plus the facts a reader needs to trust it.

    ``system_copies`` are packaged copies of the same files that are used, when present and matching
    their own checksums, instead of downloading into the cache.
    """

    name: str
    description: str
    files: tuple[RemoteFile, ...]
    homepage: str
    license_note: str
    system_copies: tuple[SystemCopy, ...] = ()


MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
FASHION_MNIST_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
CELEBA_DRIVE = "https://drive.google.com/uc?export=download&id="


def _google_drive(file_id: str, filename: str) -> str:
    """The authors' Google Drive link for ``file_id``, as TFDS uses it.

    The ``#filename`` fragment only names the file for readers: clients never send fragments
    to the server. Drive answers large files with a confirmation page instead of the bytes, so
    such a download fails its checksum and the next mirror (or a manual download) is used.
    """
    return f"{CELEBA_DRIVE}{file_id}#{filename}"


def _mirrored(filename: str, sha256: str, size_bytes: int, mirrors: tuple[str, ...]) -> RemoteFile:
    """A file available under the same name at every mirror prefix."""
    return RemoteFile(filename, sha256, tuple(prefix + filename for prefix in mirrors), size_bytes)


MNIST = DatasetSpec(
    name="mnist",
    description="70,000 grey-scale 28x28 handwritten digits (60,000 train, 10,000 test), IDX format.",
    files=(
        _mirrored("train-images-idx3-ubyte.gz",
                  "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422, MNIST_MIRRORS),
        _mirrored("train-labels-idx1-ubyte.gz",
                  "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881, MNIST_MIRRORS),
        _mirrored("t10k-images-idx3-ubyte.gz",
                  "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877, MNIST_MIRRORS),
        _mirrored("t10k-labels-idx1-ubyte.gz",
                  "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542, MNIST_MIRRORS),
    ),
    homepage="http://yann.lecun.com/exdb/mnist/",
    license_note="Yann LeCun and Corinna Cortes hold the copyright; available under CC BY-SA 3.0.",
)

FASHION_MNIST = DatasetSpec(
    name="fashion-mnist",
    description="70,000 grey-scale 28x28 Zalando article images in 10 classes (60,000 train, 10,000 test).",
    files=(
        _mirrored("train-images-idx3-ubyte.gz",
                  "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", 26421880,
                  FASHION_MNIST_MIRRORS),
        _mirrored("train-labels-idx1-ubyte.gz",
                  "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", 29515,
                  FASHION_MNIST_MIRRORS),
        _mirrored("t10k-images-idx3-ubyte.gz",
                  "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", 4422102,
                  FASHION_MNIST_MIRRORS),
        _mirrored("t10k-labels-idx1-ubyte.gz",
                  "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", 5148,
                  FASHION_MNIST_MIRRORS),
    ),
    homepage="https://github.com/zalandoresearch/fashion-mnist",
    license_note="Zalando SE, MIT License.",
    system_copies=(
        # Debian's dataset-fashion-mnist (0.0~git20200523.55506a9-1). Its .gz files hold the same bytes once
        # unpacked, but were recompressed without the original file name in the gzip header (24 bytes
        # shorter each), so they have their own sha256, computed from the package's files.
        SystemCopy("/usr/share/datasets/fashion-mnist", {
            "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
            "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
            "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
            "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
        }, "apt-get install dataset-fashion-mnist (Debian, Ubuntu)"),
    ),
)

CIFAR10 = DatasetSpec(
    name="cifar-10",
    description="60,000 colour 32x32 images in 10 classes (50,000 train in 5 batches, 10,000 test), "
                "python pickle batches in one tar.gz.",
    files=(
        RemoteFile("cifar-10-python.tar.gz",
                   "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
                   ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",), 170498071),
    ),
    homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
    license_note="Alex Krizhevsky, 2009; cite 'Learning Multiple Layers of Features from Tiny Images'.",
)

CELEBA = DatasetSpec(
    name="celeba",
    description="202,599 aligned and cropped 178x218 celebrity face JPEGs in one zip, with 40 binary "
                "attributes per image and the official train/valid/test partition.",
    files=(
        RemoteFile("img_align_celeba.zip",
                   "46fb89443c578308acf364d7d379fe1b9efb793042c0af734b6112e4fd3a8c74",
                   (_google_drive("0B7EVK8r0v71pZjFTYXZWM3FlRnM", "img_align_celeba.zip"),
                    "https://s3.amazonaws.com/pytorch-tutorial-assets/img_align_celeba.zip"), 1443490838),
        RemoteFile("list_attr_celeba.txt",
                   "f0e5da289d5ccf75ffe8811132694922b60f2af59256ed362afa03fefba324d0",
                   (_google_drive("0B7EVK8r0v71pblRyaVFSWGxPY0U", "list_attr_celeba.txt"),), 26721026),
        RemoteFile("list_eval_partition.txt",
                   "fc955bcb3ef8fbdf7d5640d9a8693a8431b5f2ee291a5c1449a1549e7e073fe7",
                   (_google_drive("0B7EVK8r0v71pY0NSMzRuSXJEVkk", "list_eval_partition.txt"),), 2836386),
    ),
    homepage="https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html",
    license_note="The Chinese University of Hong Kong; non-commercial research and education use only.",
)

IMAGENETTE = DatasetSpec(
    name="imagenette",
    description="13,394 ImageNet photos of 10 object classes (9,469 train, 3,925 val), shorter side 160 px, "
                "JPEGs in one tgz. Non-face negatives standing in for the paper's ImageNet negatives.",
    files=(
        RemoteFile("imagenette2-160.tgz",
                   "88daccb09b6fce93f45e6c09ddeb269cce705549e6bff322092a2a5a11489863",
                   ("https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz",), 98948031),
    ),
    homepage="https://github.com/fastai/imagenette",
    license_note="A subset of ImageNet made by fast.ai (Jeremy Howard); the images fall under ImageNet's "
                 "terms of access (non-commercial research and education).",
)

SVHN_URL = "http://ufldl.stanford.edu/housenumbers/"

SVHN = DatasetSpec(
    name="svhn",
    description="Street View House Numbers, cropped 32x32 colour digits (73,257 train, 26,032 test), "
                "MATLAB .mat files; the 531,131-image 'extra' set is not used.",
    files=(
        RemoteFile("train_32x32.mat", "435e94d69a87fde4fd4d7f3dd208dfc32cb6ae8af2240d066de1df7508d083b8",
                   (SVHN_URL + "train_32x32.mat",), 182040794),
        RemoteFile("test_32x32.mat", "cdce80dfb2a2c4c6160906d0bd7c68ec5a99d7ca4831afa54f09182025b6a75b",
                   (SVHN_URL + "test_32x32.mat",), 64275384),
    ),
    homepage="http://ufldl.stanford.edu/housenumbers/",
    license_note="Netzer et al., 2011; non-commercial use only.",
)

CUB_200_2011 = DatasetSpec(
    name="cub-200-2011",
    description="Caltech-UCSD Birds-200-2011: 11,788 photographs of 200 bird species, JPEGs with images.txt and "
                "image_class_labels.txt in one tgz. Metric learning trains on classes 1-100 and tests on 101-200.",
    files=(
        # sha256 and size from TensorFlow Datasets' url_checksums/caltech_birds2011.txt (its Google Drive copy);
        # the Caltech data repository serves the same archive name, checked against the same sha256.
        RemoteFile("CUB_200_2011.tgz", "0c685df5597a8b24909f6a7c9db6d11e008733779a671760afef78feb49bf081",
                   ("https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz",
                    _google_drive("1hbzc_P1FuxMkcabkgn9ZKinBwW683j45", "CUB_200_2011.tgz")), 1150585339),
    ),
    homepage="https://www.vision.caltech.edu/datasets/cub_200_2011/",
    license_note="Wah, Branson, Welinder, Perona & Belongie, Caltech technical report CNS-TR-2011-001; "
                 "images from Flickr, for non-commercial research use.",
)

SCUT_FBP5500 = DatasetSpec(
    name="scut-fbp5500",
    description="SCUT-FBP5500 v2: 5,500 frontal faces (350x350 JPEGs) rated 1-5 by 60 raters each, the per-rater "
                "ratings (All_Ratings.xlsx) and the published 5-fold and 60/40 splits, in one zip (about 167 MB).",
    files=(
        # No checksum of this archive is published anywhere (TFDS has no SCUT-FBP5500 builder), so none is
        # pinned (None) and the chapter's reader (rfy.voters.scut.read_scut_archive) checks what can be
        # checked instead: a zip holding the ratings sheet with columns Rater/Filename/Rating, the fold
        # files and the images. The authors also share it on Baidu (see the homepage).
        RemoteFile("SCUT-FBP5500_v2.1.zip", None,
                   (_google_drive("1JbdUHknpiJkgJAnlzDUiXsaxyem3ov-3", "SCUT-FBP5500_v2.1.zip"),)),
    ),
    homepage="https://github.com/HCIILAB/SCUT-FBP5500-Database-Release",
    license_note="Liang, Lin, Jin, Xie & Li, 2018 (South China University of Technology); non-commercial research "
                 "use only.",
)

REGISTRY: dict[str, DatasetSpec] = {
    spec.name: spec for spec in (MNIST, FASHION_MNIST, CIFAR10, SVHN, CELEBA, IMAGENETTE, CUB_200_2011, SCUT_FBP5500)
}


def get_spec(name: str) -> DatasetSpec:
    """The registered dataset called ``name``; ConfigError listing the known names otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        allowed = ", ".join(sorted(REGISTRY))
        raise ConfigError(f"name={name!r} is not a registered dataset; allowed values: {allowed}") from None
