"""Files that are never seen half-written, folders checked before a run needs them, safe names.

Every file rfy writes for later (run records, checkpoints, ``state.json``, decoded image caches,
downloads) is written to a temporary file in the same folder and renamed into place with
``os.replace``, which is atomic on POSIX and Windows: a reader sees the old file or the new one,
never a mix, and a killed process leaves at most a temporary file that the next run removes.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from rfy.errors import ConfigError, CorruptFileError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks
    fcntl = None

NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]+")
NAME_RULE = "letters, digits, '.', '-' and '_' only, not '.' or '..', at most 100 characters"


def describe_path(path: str | Path) -> str:
    """What is at ``path``, in words: ``"missing"``, ``"a folder"``, ``"a regular file"``, ``"a symbolic link
    loop"``, ``"a symbolic link to …, which does not exist"``, ``"a named pipe (FIFO)"``, ``"a device"``, ``"a
    socket"``, or ``"unreadable (reason)"``. A link is followed; a loop is named as such, not as missing."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "a symbolic link loop"
        if error.errno == errno.ENOENT:
            if path.is_symlink():
                return f"a symbolic link to {os.readlink(path)}, which does not exist"
            return "missing"
        return f"unreadable ({error.strerror or error})"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_small_file(path: str | Path, limit: int) -> bytes:
    """The bytes of the regular file at ``path`` (a link to one is followed), at most ``limit`` of them.

    Anything else is refused before it is read, with ``CorruptFileError`` saying what it is: a named
    pipe would block the reader for ever, a device such as ``/dev/zero`` never ends, and a file larger
    than ``limit`` is not what rfy wrote. The file is opened without blocking and checked again once
    open, so one swapped in meanwhile is refused too.
    """
    path = Path(path)
    kind = describe_path(path)
    if kind != "a regular file":
        raise CorruptFileError(f"it is {kind}, not a regular file")
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(descriptor, "rb") as handle:
        status = os.fstat(handle.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise CorruptFileError("it is not a regular file")
        if status.st_size > limit:
            raise CorruptFileError(f"it is {status.st_size:,} bytes, more than the {limit:,} such a file can be")
        content = handle.read(limit + 1)
    if len(content) > limit:
        raise CorruptFileError(f"it is more than the {limit:,} bytes such a file can be")
    return content


@contextlib.contextmanager
def folder_lock(folder: str | Path, *, wait: bool = True) -> Iterator[bool]:
    """Hold an advisory lock on ``folder`` (which must exist) for the block; yields whether it was taken.

    With ``wait`` the block waits for another holder to finish (a record write takes milliseconds);
    without, it yields ``False`` at once when another process holds the lock. Without ``fcntl``
    (Windows) it yields ``True`` and locks nothing.
    """
    if fcntl is None:
        yield True
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(descriptor)


def check_name(what: str, name: str) -> str:
    """``name`` if it is one safe path component (``NAME_RULE``); ``ConfigError`` naming ``what`` otherwise.

    A run name becomes a folder under the work directory and a file under ``results/``; a name
    such as ``..``, ``/tmp/x`` or ``a/b`` would reach outside them.
    """
    if (not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or name in {".", ".."}
            or len(name) > 100):
        raise ConfigError(f"{what} must be one folder name ({NAME_RULE}), got {name!r}")
    return name


def default_file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file: ``0o666`` less the umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(handle)`` on a temporary file beside ``path``, then rename it to ``path``.

    The file gets the permissions of an ordinary new file (``0644`` under the usual umask, not the
    ``0600`` of temporary files). On any error the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".part", delete=False)
    partial = Path(handle.name)
    try:
        with handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(partial, default_file_mode())
        os.replace(partial, path)
    except OSError as error:  # a full disk, a file size limit: name the file instead of a bare errno
        partial.unlink(missing_ok=True)
        if error.filename is not None:
            raise
        raise OSError(error.errno, error.strerror or str(error), str(path)) from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; see ``atomic_write``."""
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def remove_stale_partials(path: str | Path, *, older_than_s: float = 600.0) -> list[Path]:
    """Remove temporary files ``.<name>.*.part`` of ``path`` left by a killed process; return them.

    A file still being written is touched at least every minute (downloads time out after 60 s
    without data), so only files untouched for ``older_than_s`` seconds are removed.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return []
    now, removed = time.time(), []
    for partial in path.parent.glob(f".{glob_escape(path.name)}.*.part"):
        try:
            if now - partial.stat().st_mtime > older_than_s:
                partial.unlink()
                removed.append(partial)
        except OSError:
            pass  # another process removed or renamed it meanwhile
    return removed


def glob_escape(text: str) -> str:
    """``text`` with glob wildcards made literal."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def ensure_writable_dir(path: str | Path, what: str, hint: str = "") -> Path:
    """``path`` as a folder this process can write to, created if missing; ``ConfigError`` otherwise.

    ``what`` names where the path came from (``"RFY_RUNS"``, ``"--results"``), so the message says
    what to change; ``hint`` is added to it (another way out). Checked before a run starts, so a long run never fails at its last step.
    """
    path = Path(path).expanduser()
    if path.is_symlink() and not path.exists():
        raise ConfigError(f"{what} must be a folder you can write to, but {path} is {describe_path(path)}; "
                          f"remove the link or point {what} elsewhere{hint}")
    existing = next((folder for folder in (path, *path.parents) if folder.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ConfigError(f"{what} must be a folder, but {existing} is a file; point {what} at a folder "
                          f"you can write to{hint}")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise ConfigError(f"{what} must be a folder you can write to, but {path} is not writable "
                          f"({error.strerror or error}); point {what} at another folder{hint}") from None
    return path
