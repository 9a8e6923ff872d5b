"""Atomic writes: a reader sees either the old file (or folder), the whole new one, or nothing.

Every product geosound writes goes through :func:`atomic_path`: the work happens on a hidden
temporary file in the destination folder (same filesystem, so the final rename is atomic)
and an exception leaves no partial output behind. Products that are folders of files (audio
banks) go through :func:`atomic_folder`, which swaps a whole staged folder into place.

Temporary names carry their writer: ``.<stem>.<host>-<pid>-<random><suffix>.tmp`` beside a file
(``.<stem>.<host>-<pid>-<random>.tmp<suffix>`` for writers that need the suffix last),
``.<name>.<host>-<pid>-<random>.tmp`` (or ``.old``) beside a folder, where ``<host>`` is a short
hash of the machine's name. A run killed outright (SIGKILL, power loss) cannot remove its own, so
the next write to the same destination removes those whose writer is gone: same machine, PID no
longer alive. A live writer's file is never touched, whoever runs beside it, and nothing else
is: other hidden files, or temporary files of another destination, stay.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(
    destination: str | os.PathLike[str], *, keep_suffix: bool = False
) -> Iterator[Path]:
    """Yield a temporary path beside ``destination``; rename it over ``destination`` on success.

    Stale temporary files of ``destination`` left by a killed writer are removed first (see the
    module docstring). An ``OSError`` about the temporary file (permission denied, disk full,
    a read-only folder) is raised again naming ``destination``, which is what the user knows.

    Args:
        destination: The final file path. Its parent folder is created if missing.
        keep_suffix: End the temporary name with the destination's suffix, for writers that
            choose or check a format by it (GDAL's GeoPackage driver warns on any other).

    Yields:
        A path to write to. It does not exist yet; the caller creates it.
    """
    destination = Path(destination)
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _about(error, destination) from None
    if destination.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(destination))
    remove_stale_temporaries(destination)
    tmp = _claim_name(destination, keep_suffix)
    try:
        try:
            yield tmp
            if not tmp.exists():
                raise FileNotFoundError(f"{tmp}: nothing was written for {destination}")
            os.replace(tmp, destination)
        except OSError as error:
            raise _about(error, destination, tmp) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _claim_name(destination: Path, keep_suffix: bool) -> Path:
    """A fresh temporary name for ``destination``, reserved by creating (then removing) it."""
    for _ in range(100):
        tag = f"{writer_tag()}-{secrets.token_hex(4)}"
        ending = f".tmp{destination.suffix}" if keep_suffix else f"{destination.suffix}.tmp"
        candidate = destination.with_name(f".{destination.stem}.{tag}{ending}")
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        except OSError as error:
            raise _about(error, destination, candidate) from None
        os.close(fd)
        candidate.unlink()
        return candidate
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(destination))


_FILESYSTEM_ERRNOS = {
    errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG,
    errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG,
}  # fmt: skip


def _about(error: OSError, destination: Path, tmp: Path | None = None) -> OSError:
    """``error`` naming ``destination`` instead of a hidden temporary path (same type).

    Errors about another file (an input read inside the block) and errors that are not about
    the filesystem (a dropped connection) are returned unchanged.
    """
    if error.errno is None:  # e.g. a GDAL error whose message quotes the temporary path
        text = str(error)
        if tmp is None or str(tmp) not in text:
            return error
        try:
            return type(error)(text.replace(str(tmp), str(destination)))
        except Exception:  # an OSError subclass with another signature: keep the original
            return error
    ours = {str(destination.parent), str(tmp) if tmp else None}
    if error.filename is not None and str(error.filename) not in ours:
        return error
    if error.filename is None and error.errno not in _FILESYSTEM_ERRNOS:
        return error
    return type(error)(error.errno, error.strerror or os.strerror(error.errno), str(destination))


def writer_tag() -> str:
    """``<host>-<pid>``: who writes a temporary file, so that a later run knows if it is gone."""
    return f"{_HOST}-{os.getpid()}"


def _host_hash() -> str:
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


_HOST = _host_hash()
_TAG = r"(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]+)-[0-9a-f]+"


def remove_stale_temporaries(destination: str | os.PathLike[str]) -> list[Path]:
    """Remove temporary files and folders of ``destination`` whose writer is gone.

    Only names geosound makes for this very destination are considered
    (``.<stem>.<host>-<pid>-<hex><suffix>.tmp`` or ``….tmp<suffix>`` for a file, with the
    ``-journal``/``-wal``/``-shm`` files SQLite leaves beside the latter,
    ``.<name>.<host>-<pid>-<hex>.tmp`` and ``.old`` for a folder), and of those only the ones
    written on this machine by a process that no longer runs. A stale ``.old`` folder is the
    previous version of a folder whose swap was cut short: if the folder itself is missing it
    is renamed back, never deleted.

    Args:
        destination: A file or folder that is about to be written.

    Returns:
        What was removed (or restored).
    """
    destination = Path(destination)
    patterns = (
        re.escape(f".{destination.stem}.") + _TAG + re.escape(f"{destination.suffix}.tmp"),
        # keep_suffix names, and the side files SQLite keeps beside a GeoPackage until it closes
        re.escape(f".{destination.stem}.") + _TAG + re.escape(f".tmp{destination.suffix}")
        + r"(?:-journal|-wal|-shm)?",
        re.escape(f".{destination.name}.") + _TAG + r"\.(?:tmp|old)",
    )
    prefixes = (f".{destination.stem}.", f".{destination.name}.")
    try:
        names = os.listdir(destination.parent)
    except OSError:
        return []
    removed: list[Path] = []
    for name in names:
        if not name.startswith(prefixes) or not _stale(name, patterns):
            continue
        path = destination.parent / name
        with contextlib.suppress(OSError):
            if name.endswith(".old") and not destination.exists():
                os.rename(path, destination)
            elif path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
    return removed


def _stale(name: str, patterns: tuple[str, ...]) -> bool:
    """Whether ``name`` matches one of ``patterns`` and its writer (this host, a PID) is gone."""
    for pattern in patterns:
        match = re.fullmatch(pattern, name)
        if match is not None:
            return match["host"] == _HOST and not _alive(int(match["pid"]))
    return False


def _alive(pid: int) -> bool:
    """Whether a process with this PID exists (ours counts as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process (or a PID we cannot ask about): leave it
    return True


def write_json(destination: str | os.PathLike[str], payload: object) -> Path:
    """Write ``payload`` as indented JSON, atomically."""
    with atomic_path(destination) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return Path(destination)


@contextlib.contextmanager
def atomic_folder(destination: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty staging folder beside ``destination``; swap it into place on success.

    The caller decides beforehand whether ``destination`` may be replaced (it may be a user's
    folder); whatever was there ends up in the staging folder, which is always deleted.

    Args:
        destination: The final folder. Its parent folder is created if missing.

    Yields:
        The staging folder to fill.
    """
    destination = Path(destination)
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _about(error, destination) from None
    remove_stale_temporaries(destination)
    try:
        staging = new_sibling_folder(destination, "tmp")
    except OSError as error:
        raise _about(error, destination) from None
    try:
        yield staging
        replace_folder(staging, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def fsync_file(path: Path) -> None:
    """Flush a file to disk, so that a rename after a crash never exposes an empty file."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def replace_folder(staging: Path, folder: Path) -> None:
    """Move ``staging`` to ``folder``; any old ``folder`` ends up in ``staging`` (to delete).

    A new folder is one rename. Over an existing folder, Linux's ``renameat2(RENAME_EXCHANGE)``
    swaps the two in one atomic step; where that is unavailable the old folder is renamed aside
    first and renamed back if the second rename fails.
    """
    if not folder.exists():
        os.rename(staging, folder)
        return
    if exchange_paths(staging, folder):
        return
    aside = new_sibling_folder(folder, "old")
    aside.rmdir()
    os.rename(folder, aside)
    try:
        os.rename(staging, folder)
    except BaseException:
        os.rename(aside, folder)
        raise
    os.rename(aside, staging)  # so the caller's cleanup deletes the old folder


def new_sibling_folder(folder: Path, tag: str) -> Path:
    """Create a hidden, uniquely named folder beside ``folder``, on the same filesystem.

    ``os.mkdir`` rather than ``tempfile.mkdtemp``: mkdtemp's folders are private (0700) and
    this one becomes the product, which should get the user's usual permissions (umask).
    """
    for _ in range(100):
        candidate = folder.parent / f".{folder.name}.{writer_tag()}-{secrets.token_hex(4)}.{tag}"
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"{folder.parent}: no free temporary name for {folder.name}")


def exchange_paths(first: Path, second: Path) -> bool:
    """Atomically swap two paths on Linux; False where the OS or filesystem cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    path_arg = (ctypes.c_int, ctypes.c_char_p)  # a directory fd and a path, twice
    renameat2.argtypes = (*path_arg, *path_arg, ctypes.c_uint)
    renameat2.restype = ctypes.c_int
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(second))
