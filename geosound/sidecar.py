"""Sidecar JSON: what every product geosound writes says about itself.

Maps, syntheses, training runs and audio banks each write a JSON file beside their outputs,
so a file found months later still tells which geosound, which model and which inputs made
it. :func:`sidecar` builds the common head of that record; the product adds its own fields.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from geosound.atomic import write_json
from geosound.version import __version__

OUTPUT_MARKER = ".geosound-output.json"
"""Written first into every folder geosound fills with products (``map``, ``generate``): a
folder holding it is geosound's to overwrite, any other non-empty folder is the user's."""


def now_iso() -> str:
    """The current UTC time as an ISO 8601 string to the second, as sidecars record it."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def sidecar(product: str, **fields: object) -> dict[str, object]:
    """A sidecar record: the product's name, geosound's version, the time, then ``fields``.

    Args:
        product: What the files are ("soundscape map", "audio bank", ...).
        **fields: The product's own entries (model, inputs, parameters); a ``created`` entry
            here overrides the current time (a bank keeps the time it was built).
    """
    head: dict[str, object] = {
        "product": product,
        "geosound_version": __version__,
        "created": now_iso(),
    }
    return {**head, **fields}


def write_sidecar(destination: str | os.PathLike[str], product: str, **fields: object) -> Path:
    """Write :func:`sidecar` ``(product, **fields)`` to ``destination``, atomically."""
    return write_json(destination, sidecar(product, **fields))
