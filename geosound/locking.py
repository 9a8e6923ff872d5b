"""One writer at a time: exclusive locks on the folders a long command writes into.

Two ``geosound map`` runs on the same output or cache would interleave their chunks and
products; the second one is refused at once with the PID of the first, instead of waiting
silently or corrupting what the first writes. The lock is an OS file lock (``filelock``), so
it disappears with the process that held it, however that process ended.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from geosound.errors import InputError

_HELD: dict[Path, int] = {}
"""Locks this process holds, with their depth: a holder may take its own lock again."""


def lock_path_for(folder: str | os.PathLike[str]) -> Path:
    """The lock file of ``folder``: a hidden sibling, so it can exist before the folder does."""
    folder = Path(folder).expanduser().absolute()
    return folder.parent / f".{folder.name}.geosound-lock"


@contextlib.contextmanager
def exclusive(folder: str | os.PathLike[str], what: str) -> Iterator[None]:
    """Hold the lock of ``folder`` for the duration of the block, or refuse at once.

    Args:
        folder: The folder about to be written (it may not exist yet).
        what: What the folder is, for the message ("region cache", "output folder").

    Raises:
        InputError: Another process holds the lock; the message names its PID.
    """
    path = lock_path_for(folder)
    if path in _HELD:  # map_region holds the cache lock that embed_region takes again
        _HELD[path] += 1
        try:
            yield
        finally:
            _HELD[path] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    pid_file = path.with_name(path.name + ".pid")
    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        holder = _read_pid(pid_file)
        by = f"PID {holder}" if holder else "another process"
        raise InputError(
            f"this {what} is in use by {by} (another geosound run); wait for it to finish or "
            "give another folder",
            folder,
        ) from None
    _HELD[path] = 1
    try:
        pid_file.write_text(f"{os.getpid()}\n")
        yield
    finally:
        del _HELD[path]
        with contextlib.suppress(OSError):
            pid_file.unlink()
        lock.release()


def _read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
