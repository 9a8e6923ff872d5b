"""One family of errors, so that callers (the CLI, the QGIS plugin) can tell bad input from bugs.

Every error that is the user's to fix derives from :class:`InputError` and names the file it
is about. The CLI prints ``str(error)`` on one line and exits with :attr:`exit_code`.
"""

from __future__ import annotations

from os import PathLike


class GeosoundError(Exception):
    """Base class of every error geosound raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str, path: str | PathLike[str] | None = None) -> None:
        self.path = None if path is None else str(path)
        self.message = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class InputError(GeosoundError):
    """The input is unusable: a missing, unreadable or unsuitable file, or a bad argument."""

    exit_code = 2


class RasterError(InputError):
    """A raster cannot be opened, or lacks something geosound needs (a CRS, bands)."""


class OutsideRasterError(InputError):
    """A point, bbox or tile lies outside the raster's footprint."""


class AudioError(InputError):
    """An audio file is missing, corrupt, empty, silent or too short."""


class EncoderError(GeosoundError):
    """An encoder cannot be loaded (missing package or checkpoint) or got unusable input."""

    exit_code = 2


class DataError(InputError):
    """A dataset is missing or does not look like what its loader expects."""
