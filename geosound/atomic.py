"""Atomic writes: a reader sees either the old file (or folder), the whole new one, or nothing.

Every product geosound writes goes through :func:`atomic_path`: the work happens on a hidden
temporary file in the destination folder (same filesystem, so the final rename is atomic)
and an exception leaves no partial output behind. Products that are folders of files (audio
banks) go through :func:`atomic_folder`, which swaps a whole staged folder into place.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(destination: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``destination``; rename it over ``destination`` on success.

    Args:
        destination: The final file path. Its parent folder is created if missing.

    Yields:
        A path to write to. It does not exist yet; the caller creates it.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{destination.stem}.", suffix=f"{destination.suffix}.tmp", dir=destination.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"{tmp}: nothing was written for {destination}")
        os.replace(tmp, destination)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


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
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = new_sibling_folder(destination, "tmp")
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
        candidate = folder.parent / f".{folder.name}.{secrets.token_hex(6)}.{tag}"
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
