"""Generated pictures placed on the map: GeoTIFFs in the local UTM zone, PNGs, a VRT mosaic.

A generated picture shows a patch of ground ``ground_m`` metres wide (the tiles the model was
trained on were 640 m: 64 px at 10 m). To put it where a recording was made it is written
north-up in the UTM zone of that place — a metric CRS in which a square picture stays square
and its pixels are ``ground_m / width`` metres (grid metres: within 0.1 % of ground metres
inside a zone) — centred on the place. Zones follow the standard grid, with its Norwegian and
Svalbard exceptions; beyond UTM's latitudes (80° S, 84° N) the polar stereographic UPS takes
over.

Many pictures (one per recording point) become one layer as a GDAL VRT: one CRS and one pixel
grid for all of them, so each picture is a whole-pixel rectangle of the mosaic. The CRS is the
UTM zone of the layer's middle (median longitude and latitude of the points): a VRT cannot
reproject, and a zone chosen from the middle keeps the pictures of outlying points as little
distorted as one zone allows. Beyond the zone they are drawn slightly too large and turned:
at the far edge of a neighbouring zone (9° from the central meridian) by about 0.6 % and 6°
at 45° latitude; a layer spread over many zones is better split. Each picture's origin is
snapped to the mosaic's grid, so its
centre is within half a pixel of its place. A fourth band, alpha, is opaque over the pictures
and transparent between them.

The VRT is written by hand (``gdalbuildvrt`` is not available from rasterio), following
GDAL's documented VRT format (https://gdal.org/drivers/raster/vrt.html): ``SimpleSource``
for the colour bands, and for alpha a ``ComplexSource`` with ``ScaleRatio`` 0 and
``ScaleOffset`` 255, which reads any band of a picture as a constant 255 over its footprint.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pyproj import CRS, Transformer
from rasterio.transform import Affine

from geosound.atomic import atomic_path
from geosound.errors import InputError
from geosound.geo import write_raster
from geosound.geo.bands import to_uint8

BAND_NAMES = ("red", "green", "blue")
UPS_NORTH, UPS_SOUTH = "EPSG:32661", "EPSG:32761"
"""WGS 84 / UPS North (N,E) and South: where UTM stops."""
UTM_LATITUDES = (-80.0, 84.0)


def check_lonlat(lon: float, lat: float, what: str = "the place") -> None:
    """Refuse a longitude outside [-180, 180] or a latitude outside [-90, 90].

    Raises:
        InputError: Naming ``what`` and the value.
    """
    if not (math.isfinite(lon) and -180.0 <= lon <= 180.0):
        raise InputError(f"{what}: longitude {lon:g} is outside [-180, 180]")
    if not (math.isfinite(lat) and -90.0 <= lat <= 90.0):
        raise InputError(f"{what}: latitude {lat:g} is outside [-90, 90]")


def local_metric_crs(lon: float, lat: float) -> CRS:
    """The WGS 84 UTM zone of a place (EPSG:326zz north, 327zz south; UPS near the poles).

    Zones are 6° wide from 180° W, with the two exceptions of the standard grid: zone 32V is
    widened over south-west Norway (56°–64° N, 3°–12° E) and Svalbard (72°–84° N) has zones
    31X, 33X, 35X and 37X only. Longitude 180° belongs to zone 60.
    """
    check_lonlat(lon, lat)
    if lat >= UTM_LATITUDES[1]:
        return CRS.from_user_input(UPS_NORTH)
    if lat < UTM_LATITUDES[0]:
        return CRS.from_user_input(UPS_SOUTH)
    zone = min(int((lon + 180.0) // 6.0) + 1, 60)
    if 56.0 <= lat < 64.0 and 3.0 <= lon < 12.0:
        zone = 32
    elif lat >= 72.0 and 0.0 <= lon < 42.0:
        zone = next(z for z, east in ((31, 9.0), (33, 21.0), (35, 33.0), (37, 42.0)) if lon < east)
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


@dataclass(frozen=True)
class Placement:
    """Where a picture lies: its grid in a metric CRS.

    Attributes:
        crs: The CRS (a UTM zone).
        transform: North-up affine transform of the picture's pixels.
        width: Pixels across.
        height: Pixels down.
        centre: The place, in ``crs`` (metres).
    """

    crs: CRS
    transform: Affine
    width: int
    height: int
    centre: tuple[float, float]

    @property
    def pixel_m(self) -> float:
        """Edge of one pixel in metres."""
        return float(self.transform.a)

    def record(self) -> dict[str, object]:
        """The sidecar's account of where the picture lies."""
        bounds = self.bounds
        return {
            "crs": self.crs.to_string(),
            "centre_xy": [round(v, 3) for v in self.centre],
            "pixel_m": round(self.pixel_m, 4),
            "bounds": [round(v, 3) for v in bounds],
        }

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in ``crs``."""
        left, top = self.transform.c, self.transform.f
        return (left, top - self.height * self.pixel_m, left + self.width * self.pixel_m, top)


def place_picture(
    lon: float,
    lat: float,
    ground_m: float,
    width: int,
    height: int,
    crs: CRS | None = None,
    snap: bool = False,
) -> Placement:
    """The north-up grid of a ``width × height`` picture ``ground_m`` wide centred at a place.

    Args:
        lon: Longitude of the centre (WGS 84).
        lat: Latitude of the centre.
        ground_m: Ground width of the picture in metres; pixels are ``ground_m / width``.
        width: Pixels across.
        height: Pixels down.
        crs: The metric CRS (default: the place's own UTM zone).
        snap: Put the origin on multiples of the pixel size, so pictures of one mosaic share
            one grid (the centre then moves by at most half a pixel along each axis).

    Raises:
        InputError: A place outside valid lon/lat, or a ground size that is not positive.
    """
    check_lonlat(lon, lat)
    if not (math.isfinite(ground_m) and ground_m > 0):
        raise InputError(f"the ground size must be a positive number of metres, got {ground_m:g}")
    crs = crs if crs is not None else local_metric_crs(lon, lat)
    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    if not (math.isfinite(x) and math.isfinite(y)):
        raise InputError(f"lon {lon:g}, lat {lat:g} cannot be placed in {crs.to_string()}")
    pixel = ground_m / width
    left, top = x - width * pixel / 2, y + height * pixel / 2
    if snap:
        left, top = round(left / pixel) * pixel, round(top / pixel) * pixel
    transform = Affine(pixel, 0.0, left, 0.0, -pixel, top)
    return Placement(crs, transform, width, height, (float(x), float(y)))


def mosaic_crs(lons: Sequence[float], lats: Sequence[float]) -> CRS:
    """The one metric CRS of a mosaic: the UTM zone of the points' median lon/lat."""
    return local_metric_crs(float(np.median(lons)), float(np.median(lats)))


def write_geotiff(path: str | os.PathLike[str], pixels: np.ndarray, placement: Placement) -> Path:
    """A picture as a Cloud-Optimised GeoTIFF on its placement (uint8 red, green, blue)."""
    return write_raster(
        path,
        to_uint8(pixels),
        transform=placement.transform,
        crs=placement.crs.to_string(),
        band_descriptions=list(BAND_NAMES),
        tags={"GEOSOUND_PRODUCT": "generated landscape"},
    )


def write_png(path: str | os.PathLike[str], pixels: np.ndarray) -> Path:
    """A picture as a PNG (no place; opaque RGBA, as matplotlib writes it), atomically."""
    from matplotlib.image import imsave

    with atomic_path(path) as tmp:
        imsave(tmp, np.moveaxis(to_uint8(pixels), 0, -1), format="png")
    return Path(path)


def write_vrt(path: str | os.PathLike[str], pictures: Sequence[tuple[Path, Placement]]) -> Path:
    """One VRT over pictures that share a CRS and a pixel grid (:func:`place_picture` ``snap``).

    Sources are referenced relative to the VRT, so the VRT and its pictures' folder can be
    moved together.

    Raises:
        ValueError: No pictures, or pictures on different CRSs or pixel sizes.
    """
    path = Path(path)
    if not pictures:
        raise ValueError("a VRT needs at least one picture")
    first = pictures[0][1]
    pixel = first.pixel_m
    for _, placement in pictures:
        if placement.crs != first.crs or not math.isclose(placement.pixel_m, pixel):
            raise ValueError("the pictures of one VRT need one CRS and one pixel size")
    left = min(p.bounds[0] for _, p in pictures)
    top = max(p.bounds[3] for _, p in pictures)
    width = round((max(p.bounds[2] for _, p in pictures) - left) / pixel)
    height = round((top - min(p.bounds[1] for _, p in pictures)) / pixel)
    root = ET.Element("VRTDataset", rasterXSize=str(width), rasterYSize=str(height))
    ET.SubElement(root, "SRS", dataAxisToSRSAxisMapping="1,2").text = first.crs.to_wkt()
    ET.SubElement(root, "GeoTransform").text = f"{left!r}, {pixel!r}, 0.0, {top!r}, 0.0, {-pixel!r}"
    for band, name in enumerate((*BAND_NAMES, "alpha"), start=1):
        element = ET.SubElement(root, "VRTRasterBand", dataType="Byte", band=str(band))
        ET.SubElement(element, "Description").text = name
        ET.SubElement(element, "ColorInterp").text = name.capitalize()
        for source, placement in pictures:
            _add_source(element, path.parent, source, placement, left, top, band)
    with atomic_path(path) as tmp:
        ET.ElementTree(root).write(tmp, encoding="utf-8", xml_declaration=False)
    return path


def _add_source(
    band_element: ET.Element,
    folder: Path,
    source: Path,
    placement: Placement,
    left: float,
    top: float,
    band: int,
) -> None:
    """One picture in one band of the VRT; the alpha band reads it as a constant 255."""
    alpha = band > len(BAND_NAMES)
    element = ET.SubElement(band_element, "ComplexSource" if alpha else "SimpleSource")
    name = ET.SubElement(element, "SourceFilename", relativeToVRT="1")
    name.text = Path(os.path.relpath(source, folder)).as_posix()
    ET.SubElement(element, "SourceBand").text = "1" if alpha else str(band)
    size = {"xSize": str(placement.width), "ySize": str(placement.height)}
    ET.SubElement(element, "SrcRect", {"xOff": "0", "yOff": "0", **size})
    pixel = placement.pixel_m
    x_off = round((placement.bounds[0] - left) / pixel)
    y_off = round((top - placement.bounds[3]) / pixel)
    ET.SubElement(element, "DstRect", {"xOff": str(x_off), "yOff": str(y_off), **size})
    if alpha:
        ET.SubElement(element, "ScaleOffset").text = "255"
        ET.SubElement(element, "ScaleRatio").text = "0"
