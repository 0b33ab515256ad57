"""Find dataset files in the local cache, or download and verify them.

A file is only ever placed in the cache after its sha256 matched the registry: downloads
stream into a temporary file next to the target, are hashed on the way, and are renamed
into place atomically. Whatever goes wrong, no half-written file is left behind.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import urllib.request
import warnings
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO

from rfy.data.registry import RemoteFile, SystemCopy, get_spec
from rfy.errors import ChecksumError, DatasetNotAvailableError
from rfy.files import atomic_write, describe_path, ensure_writable_dir, remove_stale_partials
from rfy.progress import progress

UrlOpener = Callable[[str], AbstractContextManager[IO[bytes]]]
"""Opens a URL for reading bytes; swap it (``opener=``) to simulate the network in tests."""

CHUNK_BYTES = 1 << 20
TIMEOUT_SECONDS = 60


def data_dir() -> Path:
    """Root of the dataset cache: ``$RFY_DATA``, else ``$XDG_CACHE_HOME/rfy``, else ``~/.cache/rfy``."""
    explicit = os.environ.get("RFY_DATA")
    if explicit:
        return Path(explicit).expanduser()
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home).expanduser() / "rfy"


def dataset_dir(name: str) -> Path:
    """Directory holding the files of the registered dataset ``name`` (it may not exist yet)."""
    return data_dir() / get_spec(name).name


def sha256_of(path: Path) -> str:
    """Hex sha256 of the file at ``path``, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def open_url(url: str) -> AbstractContextManager[IO[bytes]]:
    """Default opener: ``urllib`` with a timeout and a polite User-Agent (``file://`` works too)."""
    request = urllib.request.Request(url, headers={"User-Agent": "rfy (dataset download)"})
    return urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)


def fetch_file(remote: RemoteFile, directory: Path, *, download: bool = True,
               opener: UrlOpener | None = None) -> Path:
    """Path of ``remote`` inside ``directory``, verified, downloading it first if allowed.

    Raises ChecksumError if a file of that name is already there with the wrong sha256, and
    DatasetNotAvailableError if it is absent and could not be downloaded (or ``download=False``).
    """
    directory = Path(directory)
    return _fetch_all((remote,), directory, directory.name, download, opener)[remote.filename]


def fetch_dataset(name: str, *, download: bool = True,
                  opener: UrlOpener | None = None) -> dict[str, Path]:
    """Verified local paths of every file of dataset ``name``, keyed by filename.

    A complete system copy (``spec.system_copies``, e.g. Debian's Fashion-MNIST), each file matching its
    packaged sha256, is read in place. Otherwise missing files are downloaded into the cache when
    ``download`` is true; one DatasetNotAvailableError then lists every file that is still missing, and
    names the system package that would provide them.
    """
    spec = get_spec(name)
    in_system = system_copy_paths(spec.system_copies, [remote.filename for remote in spec.files])
    if in_system:
        return in_system
    return _fetch_all(spec.files, dataset_dir(name), spec.name, download, opener, spec.system_copies)


def system_copy_paths(copies: Iterable[SystemCopy], filenames: list[str]) -> dict[str, Path]:
    """Paths of every file in ``filenames`` from the first system copy that has them all, each matching
    that copy's sha256; ``{}`` when no copy is complete. A copy whose file fails its checksum is skipped
    with a warning (a damaged package must not pass for the dataset)."""
    for copy in copies:
        paths = {name: Path(copy.directory) / name for name in filenames}
        absent = [name for name, path in paths.items() if not path.is_file()]
        if absent and Path(copy.directory).is_dir():
            warnings.warn(f"{copy.directory} lacks {', '.join(absent)}, so this copy is not used; reinstall its "
                          f"package ({reinstall_command(copy)})", stacklevel=3)
        if absent:
            continue
        bad = [name for name, path in paths.items() if sha256_of(path) != copy.sha256.get(name)]
        if bad:
            warnings.warn(f"{copy.directory}: {', '.join(bad)} do not match the packaged sha256, so this copy "
                          f"is not used; reinstall it ({copy.install})", stacklevel=3)
            continue
        return paths
    return {}


def _fetch_all(files: Iterable[RemoteFile], directory: Path, dataset: str, download: bool,
               opener: UrlOpener | None, system_copies: tuple[SystemCopy, ...] = ()) -> dict[str, Path]:
    """Verified paths for ``files``; raise once, listing every bad and every missing file, if any.

    A wrong checksum does not stop the check of the other files: the error lists them all, so a
    reader fixes everything in one go. It is a ``ChecksumError`` when some file is corrupt, else a
    ``DatasetNotAvailableError``.
    """
    found: dict[str, Path] = {}
    missing: list[tuple[RemoteFile, list[str]]] = []
    corrupt: list[str] = []
    for remote in files:
        target = directory / remote.filename
        if target.exists():
            try:
                found[remote.filename] = _verified(target, remote)
            except ChecksumError as error:
                corrupt.append(str(error))
        elif not download:
            missing.append((remote, ["download=False"]))
        else:
            ensure_writable_dir(directory, f"the dataset folder of {dataset!r} (set RFY_DATA to move the cache)")
            failures = _download(remote, target, opener or open_url)
            if failures:
                missing.append((remote, failures))
            else:
                found[remote.filename] = target
    if corrupt:
        extra = [_missing_message(dataset, directory, missing, system_copies)] if missing else []
        raise ChecksumError("\n".join(corrupt + extra))
    if missing:
        raise DatasetNotAvailableError(_missing_message(dataset, directory, missing, system_copies))
    return found


def _verified(path: Path, remote: RemoteFile) -> Path:
    """``path`` itself if it is a regular file with the registered sha256; ChecksumError saying what to do otherwise.

    A file with no published checksum (``remote.sha256 is None``) is accepted as it is: its reader
    checks the format.
    """
    kind = describe_path(path)
    if kind != "a regular file":  # a named pipe would block the hash for ever, a device never end
        raise ChecksumError(f"{path} is {kind}, not a regular file, so it was not read: delete it to have rfy "
                            f"download the file, or replace it with a good copy from {' or '.join(remote.urls)}.")
    if remote.sha256 is None:
        return path
    actual = sha256_of(path)
    if actual != remote.sha256:
        raise ChecksumError(
            f"{path} has sha256 {actual}, but the registry expects {remote.sha256}. "
            f"The file is corrupt or a different version: delete it to have rfy re-download it, "
            f"or replace it with a good copy from {' or '.join(remote.urls)}."
        )
    return path


def _download(remote: RemoteFile, target: Path, opener: UrlOpener) -> list[str]:
    """Try each mirror until one yields the right bytes at ``target``; return why each failed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for url in remote.urls:
        try:
            _download_from(url, remote, target, opener)
            return []
        except (OSError, ValueError, http.client.HTTPException) as error:
            failures.append(f"{url}: {error}")
    return failures


def _download_from(url: str, remote: RemoteFile, target: Path, opener: UrlOpener) -> None:
    """Stream ``url`` into a temporary file beside ``target``, check its sha256, rename it into place.

    A temporary ``.<name>.*.part`` left by a download that was killed (so it could not clean up) is
    removed first once nothing has written to it for ten minutes. The file gets ordinary
    permissions (``0644`` under the usual umask).
    """
    remove_stale_partials(target)

    def write(handle: IO[bytes]) -> None:
        actual = _stream_and_hash(url, handle, remote, opener)
        if remote.sha256 is not None and actual != remote.sha256:
            raise ChecksumError(f"downloaded sha256 {actual} differs from the expected {remote.sha256}")

    atomic_write(target, write)


def _stream_and_hash(url: str, sink: IO[bytes], remote: RemoteFile, opener: UrlOpener) -> str:
    """Copy ``url`` into ``sink`` with a progress bar; return the hex sha256 of what was copied."""
    digest = hashlib.sha256()
    with opener(url) as response, progress(desc=remote.filename, total=remote.size_bytes, unit="B") as bar:
        for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
            sink.write(chunk)
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def _missing_message(dataset: str, directory: Path, missing: list[tuple[RemoteFile, list[str]]],
                     system_copies: tuple[SystemCopy, ...] = ()) -> str:
    """Tell the reader exactly which files to fetch, from where, and where to put them."""
    lines = [f"Dataset {dataset!r} is not available: {len(missing)} file(s) are missing from {directory}."]
    for remote, failures in missing:
        checksum = f"sha256 {remote.sha256}" if remote.sha256 else "no published sha256; its format is checked"
        lines.append(f"  - {remote.filename}  ({checksum})")
        lines.extend(f"      get it from {url}" for url in remote.urls)
        lines.extend(f"      tried: {failure}" for failure in failures)
    lines.append(
        f"Download the files by hand, place them in {directory}, and run again; "
        f"set RFY_DATA to keep datasets somewhere else (currently {data_dir()})."
    )
    for copy in system_copies:
        if Path(copy.directory).is_dir():
            lines.append(f"Or repair the packaged copy in {copy.directory}, which is installed but incomplete or "
                         f"damaged: {reinstall_command(copy)}.")
        else:
            lines.append(f"Or install the packaged copy, which rfy reads in place from {copy.directory}: "
                         f"{copy.install}.")
    return "\n".join(lines)


def reinstall_command(copy: SystemCopy) -> str:
    """``copy.install`` as a reinstall (``apt-get install --reinstall …``), for a copy that is there but damaged."""
    return copy.install.replace("apt-get install ", "apt-get install --reinstall ", 1)
