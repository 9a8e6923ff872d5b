"""What a raster file *is*, cheaply: so a cache never serves layers of a file since replaced.

A region cache keyed on the raster's path alone comes back with the old layers after the
file is overwritten. :func:`raster_identity` reads the file's size and modification time and
hashes its header and an even sample of its bytes (a few MB whatever the file's size), so an
edited, replaced or re-exported raster gets a new identity while an untouched one keeps it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

SAMPLE_BLOCKS = 16
BLOCK_BYTES = 64 * 1024
HEADER_BYTES = 1024 * 1024


def raster_identity(path: str | os.PathLike[str]) -> str:
    """A short hex digest of a raster file's size, mtime, header and sampled content.

    Paths GDAL reads but that are not local files (``/vsicurl/``, ``s3://``) are identified by
    their path: geosound cannot stat them cheaply.
    """
    file = Path(path)
    if not file.is_file():
        return f"path:{path}"
    stat = file.stat()
    digest = hashlib.sha256(f"{stat.st_size}|{stat.st_mtime_ns}".encode())
    with file.open("rb") as handle:
        digest.update(handle.read(HEADER_BYTES))
        if stat.st_size > HEADER_BYTES:
            step = max(1, (stat.st_size - BLOCK_BYTES) // SAMPLE_BLOCKS)
            for offset in range(HEADER_BYTES, stat.st_size, step):
                handle.seek(offset)
                digest.update(handle.read(BLOCK_BYTES))
    return digest.hexdigest()[:24]
