"""Band selection and scaling presets: raw sensor values in, display-like RGB in [0, 1] out.

The image encoders were pretrained on 8-bit photographs, so every sensor has to be brought to
three bands in [0, 1] the same way at training and at mapping time. A preset names the bands
(1-based, in the file's order) and the scaling; ``stretch`` presets scale by percentiles
computed once per raster (see :meth:`RasterSource.band_percentiles`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window

from geosound.errors import RasterError
from geosound.geo.raster import RasterInfo, RasterSource


@dataclass(frozen=True)
class BandPreset:
    """How to turn a raster's bands into RGB for the image encoder.

    Attributes:
        name: Preset id used on the command line.
        bands: 1-based band indexes for red, green, blue (one index means grey).
        divisor: Fixed scale: value / divisor, clipped to [0, 1]. ``None`` means a
            per-raster 2–98 % percentile stretch.
        description: One line for ``--help``.
    """

    name: str
    bands: tuple[int, ...]
    divisor: float | None
    description: str

    @property
    def needs_stretch(self) -> bool:
        """Whether per-raster percentiles must be computed before :func:`to_rgb`."""
        return self.divisor is None


PRESETS: dict[str, BandPreset] = {
    preset.name: preset
    for preset in (
        BandPreset(
            "sentinel2-rgb",
            (4, 3, 2),
            2750.0,
            "Sentinel-2 L1C / EuroSAT 13-band order: true colour B04,B03,B02 / 2750",
        ),
        BandPreset("naip-rgb", (1, 2, 3), 255.0, "NAIP 4-band (R,G,B,NIR): bands 1-3 / 255"),
        BandPreset("rgb8", (1, 2, 3), 255.0, "8-bit RGB(A) imagery: bands 1-3 / 255"),
        BandPreset("stretch-rgb", (1, 2, 3), None, "bands 1-3, 2-98 % stretch per raster"),
        BandPreset("stretch-grey", (1,), None, "band 1 as grey, 2-98 % stretch (DEMs, SAR)"),
    )
}


def get_preset(name: str) -> BandPreset:
    """Look a preset up by name, with the list of names in the error."""
    try:
        return PRESETS[name]
    except KeyError:
        raise RasterError(
            f"unknown band preset {name!r}; choose one of {', '.join(PRESETS)}"
        ) from None


def guess_preset(count: int, dtype: str) -> BandPreset:
    """Pick a sensible preset from band count and data type alone.

    13 uint16 bands is the Sentinel-2/EuroSAT layout; 8-bit rasters with three or more bands
    are photographs (NAIP, RGB orthophotos); anything else is stretched.
    """
    if count == 13 and dtype == "uint16":
        return PRESETS["sentinel2-rgb"]
    if count >= 3 and dtype == "uint8":
        return PRESETS["rgb8"]
    if count >= 3:
        return PRESETS["stretch-rgb"]
    return PRESETS["stretch-grey"]


def resolve_preset(
    source: RasterSource | RasterInfo, preset: str | BandPreset | None = None
) -> BandPreset:
    """The preset a caller named (by name, or as is), else the one the raster's bands suggest.

    Raises:
        RasterError: ``preset`` names no preset (the error lists them).
    """
    if isinstance(preset, BandPreset):
        return preset
    if preset:
        return get_preset(preset)
    info = source.info() if isinstance(source, RasterSource) else source
    return guess_preset(info.count, info.dtypes[0])


def read_rgb(source: RasterSource, windows: Sequence[Window], preset: BandPreset) -> np.ndarray:
    """(N, 3, H, W) RGB in [0, 1] of equal-sized windows, scaled the way tiles are.

    The one path from pixels to what the image encoder sees, for chips at points and image
    references alike, so that a place looks the same to the model however it was cut out.
    """
    pixels = np.ma.stack([source.read_window(window, preset.bands) for window in windows])
    percentiles = source.band_percentiles(preset.bands) if preset.needs_stretch else None
    return to_rgb(pixels, preset, percentiles)


def to_rgb(
    pixels: np.ma.MaskedArray | np.ndarray,
    preset: BandPreset,
    percentiles: np.ndarray | None = None,
) -> np.ndarray:
    """Scale the preset's bands to float32 RGB in [0, 1]; masked pixels become 0.

    Args:
        pixels: (len(preset.bands), H, W) or (N, len(preset.bands), H, W), already
            restricted to the preset's bands.
        preset: The scaling to apply.
        percentiles: (len(preset.bands), 2) low/high values, required by stretch presets.

    Returns:
        float32 array with 3 channels in place of the preset's bands.
    """
    data = np.ma.filled(np.ma.asarray(pixels).astype(np.float32), 0.0)
    channel_axis = data.ndim - 3
    if preset.divisor is not None:
        scaled = data / preset.divisor
    else:
        if percentiles is None:
            raise ValueError(f"preset {preset.name!r} needs per-raster percentiles")
        shape = [1] * data.ndim
        shape[channel_axis] = len(preset.bands)
        low = percentiles[:, 0].reshape(shape).astype(np.float32)
        span = np.maximum(percentiles[:, 1] - percentiles[:, 0], 1e-6).reshape(shape)
        scaled = (data - low) / span.astype(np.float32)
    scaled = np.clip(scaled, 0.0, 1.0)
    mask = np.ma.getmaskarray(pixels)
    if mask.any():
        scaled[mask] = 0.0
    if len(preset.bands) == 1:
        scaled = np.repeat(scaled, 3, axis=channel_axis)
    return scaled.astype(np.float32, copy=False)


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] (what :func:`to_rgb` gives, or a generated picture) as 8-bit, rounded.

    Values outside [0, 1] are clipped, so a picture decoded a little past its range still
    writes as a valid image.
    """
    return np.round(np.clip(np.asarray(rgb, np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)
