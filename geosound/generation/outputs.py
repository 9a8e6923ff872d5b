"""What ``geosound generate`` reads and writes where: checked before any model loads.

Only the standard library and geosound's foundation modules here, so that the command line
refuses a bad ``-o`` or a missing recording at once rather than after torch and diffusers have
been imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from geosound.errors import InputError
from geosound.sidecar import OUTPUT_MARKER

PICTURE_SUFFIXES = {".png": "png", ".tif": "tif", ".tiff": "tif"}


def picture_kind(out: Path) -> str:
    """``"png"`` or ``"tif"`` from the output's suffix.

    Raises:
        InputError: Another suffix.
    """
    kind = PICTURE_SUFFIXES.get(out.suffix.lower())
    if kind is None:
        raise InputError(
            "a generated picture is written as .png, or .tif (GeoTIFF, with --lon/--lat)", out
        )
    return kind


def pictures_folder(vrt: Path) -> Path:
    """The folder of a layer's GeoTIFFs: ``<stem>_pictures`` beside the VRT."""
    return vrt.with_name(f"{vrt.stem}_pictures")


def check_pictures_folder(
    folder: Path, whose: str = "the VRT's", option: str = "-o (the folder is named after it)"
) -> None:
    """Refuse to replace a folder geosound did not write (or a file in its place).

    Args:
        folder: Where the pictures go.
        whose: Whose pictures, for the message.
        option: What to give instead, for the message.

    Raises:
        InputError: ``folder`` is a file, or a folder of other files.
    """
    if folder.exists() and not folder.is_dir():
        raise InputError(f"exists and is not a folder; {whose} pictures go there", folder)
    if folder.is_dir() and not (folder / OUTPUT_MARKER).is_file() and any(folder.iterdir()):
        raise InputError(
            f"is a folder of other files, not one geosound wrote; {whose} pictures go there "
            f"(give another {option})",
            folder,
        )


@dataclass(frozen=True)
class PointRecording:
    """One recording point of a layer.

    Attributes:
        name: How messages and the sidecar call it (``feature 3``: the id QGIS shows).
        audio: The recording (resolved against the layer's folder).
        lon: Longitude (WGS 84).
        lat: Latitude.
    """

    name: str
    audio: Path
    lon: float
    lat: float
