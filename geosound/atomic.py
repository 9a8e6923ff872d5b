"""Atomic file writes: a reader sees either the old file, the whole new file, or nothing.

Every product geosound writes goes through :func:`atomic_path`: the work happens on a hidden
temporary file in the destination folder (same filesystem, so the final rename is atomic)
and an exception leaves no partial output behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


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


def write_json(destination: str | os.PathLike[str], payload: Any) -> Path:
    """Write ``payload`` as indented JSON, atomically."""
    with atomic_path(destination) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return Path(destination)
