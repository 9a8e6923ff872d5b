"""Opening rasters: one small context-managed class over rasterio, with geosound's checks.

:class:`RasterSource` opens any GDAL raster (COG or not, any CRS, with or without nodata),
turns GDAL's failures into :class:`~geosound.errors.RasterError` naming the file, and reads
pixel windows with zero-padding past the raster's edge. Reads are windowed so memory follows
the window, never the raster; whole-raster statistics come from a decimated read.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError, RasterioIOError
from rasterio.windows import Window

from geosound.errors import RasterError


@dataclass(frozen=True)
class RasterInfo:
    """What a user asks first about a raster (``geosound info``)."""

    path: str
    driver: str
    crs: str | None
    bounds: tuple[float, float, float, float]
    width: int
    height: int
    count: int
    dtypes: tuple[str, ...]
    nodata: float | None
    resolution: tuple[float, float]
    descriptions: tuple[str | None, ...]
    is_tiled: bool
    overviews: int

    @property
    def shape(self) -> tuple[int, int, int]:
        """(bands, height, width)."""
        return (self.count, self.height, self.width)

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready dict, for ``geosound info --json`` and sidecars."""
        return {
            "path": self.path,
            "driver": self.driver,
            "crs": self.crs,
            "bounds": list(self.bounds),
            "width": self.width,
            "height": self.height,
            "count": self.count,
            "dtypes": list(self.dtypes),
            "nodata": self.nodata,
            "resolution": list(self.resolution),
            "descriptions": list(self.descriptions),
            "is_tiled": self.is_tiled,
            "overviews": self.overviews,
        }


@dataclass(frozen=True)
class ImageData:
    """Pixels of a window with their georeference, as rio-tiler's ``ImageData`` carries them.

    Callers that write, place or clip what they read take the transform and CRS from here
    instead of re-deriving them from the source and the window.
    """

    pixels: np.ma.MaskedArray
    """(bands, height, width); nodata pixels and pixels past the raster's edge are masked."""
    transform: Affine
    crs: CRS | None
    window: Window

    @property
    def mask(self) -> np.ndarray:
        """(bands, height, width) True where a pixel is not valid."""
        return np.ma.getmaskarray(self.pixels)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) of the window in :attr:`crs`."""
        height, width = self.pixels.shape[-2:]
        left, top = self.transform @ (0, 0)
        right, bottom = self.transform @ (width, height)
        return (min(left, right), min(bottom, top), max(left, right), max(bottom, top))


class RasterSource:
    """A georeferenced raster opened for windowed reading.

    Use it as a context manager::

        with RasterSource("scene.tif") as src:
            block = src.read_window(Window(0, 0, 256, 256))

    Args:
        path: Anything GDAL opens: a local file, a COG, a ``/vsi`` path.
        require_crs: Refuse rasters without a CRS. geosound places every product on the map,
            so this is the default; ``False`` is for callers that only inspect files.
    """

    def __init__(self, path: str | os.PathLike[str], require_crs: bool = True) -> None:
        self.path = str(path)
        self.require_crs = require_crs
        self._dataset: rasterio.io.DatasetReader | None = None

    def __enter__(self) -> RasterSource:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        """Open the dataset, checking that it is a usable georeferenced raster."""
        if "://" not in self.path and not self.path.startswith("/vsi"):
            if not Path(self.path).exists():
                raise RasterError("file not found", self.path)
            if Path(self.path).is_dir():
                raise RasterError("is a folder, not a raster file", self.path)
        try:
            dataset = rasterio.open(self.path)
        except RasterioIOError as error:
            raise RasterError(
                f"not a raster GDAL can read ({_first_line(error)})", self.path
            ) from None
        except RasterioError as error:
            raise RasterError(f"cannot open raster ({_first_line(error)})", self.path) from None
        if dataset.count == 0:
            dataset.close()
            raise RasterError("raster has no bands", self.path)
        if self.require_crs and dataset.crs is None:
            dataset.close()
            raise RasterError(
                "raster has no CRS (not georeferenced); assign one first, "
                "e.g. with gdal_edit.py -a_srs",
                self.path,
            )
        self._dataset = dataset

    def close(self) -> None:
        """Close the dataset; safe to call twice."""
        if self._dataset is not None:
            self._dataset.close()
            self._dataset = None

    @property
    def dataset(self) -> rasterio.io.DatasetReader:
        """The open rasterio dataset."""
        if self._dataset is None:
            raise RuntimeError(f"{self.path}: RasterSource is not open; use it in a with-block")
        return self._dataset

    @property
    def crs(self) -> CRS:
        """The raster's CRS (checked to exist when ``require_crs``)."""
        return self.dataset.crs

    @property
    def transform(self) -> rasterio.Affine:
        """Pixel-to-CRS affine transform."""
        return self.dataset.transform

    @property
    def width(self) -> int:
        """Width in pixels."""
        return self.dataset.width

    @property
    def height(self) -> int:
        """Height in pixels."""
        return self.dataset.height

    @property
    def count(self) -> int:
        """Number of bands."""
        return self.dataset.count

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in the raster's CRS."""
        left, bottom, right, top = self.dataset.bounds
        return (left, bottom, right, top)

    @property
    def nodata(self) -> float | None:
        """The nodata value, if the raster declares one."""
        return self.dataset.nodata

    def info(self) -> RasterInfo:
        """Summarise the raster (no pixel reads)."""
        ds = self.dataset
        return RasterInfo(
            path=self.path,
            driver=ds.driver,
            crs=ds.crs.to_string() if ds.crs else None,
            bounds=(ds.bounds.left, ds.bounds.bottom, ds.bounds.right, ds.bounds.top),
            width=ds.width,
            height=ds.height,
            count=ds.count,
            dtypes=tuple(ds.dtypes),
            nodata=ds.nodata,
            resolution=(ds.res[0], ds.res[1]),
            descriptions=tuple(ds.descriptions),
            is_tiled=bool(ds.profile.get("tiled", False)),
            overviews=len(ds.overviews(1)),
        )

    def read_window(
        self, window: Window, indexes: tuple[int, ...] | None = None
    ) -> np.ma.MaskedArray:
        """Read a pixel window that may extend past the raster's edge.

        Pixels outside the raster, and nodata pixels, come back masked, so every tile of a grid
        has the same shape whatever its position. Read masked values with ``np.ma.filled``:
        under the mask, ``.data`` holds zero past the edge and the nodata value inside.

        Args:
            window: Pixel window; offsets may be negative and extents may pass the edge.
            indexes: 1-based band indexes (default: all bands).

        Returns:
            A masked array of shape (bands, window.height, window.width).
        """
        indexes = indexes or tuple(range(1, self.count + 1))
        self._check_bands(indexes)
        inside = _intersection(window, self.width, self.height)
        if inside == window:
            return self._read(indexes, window)  # the common case: no padding, no copy
        out = np.ma.masked_all(
            (len(indexes), int(window.height), int(window.width)), dtype=self.dataset.dtypes[0]
        )
        out.data[:] = 0
        if inside is None:
            return out
        block = self._read(indexes, inside)
        row = int(inside.row_off - window.row_off)
        col = int(inside.col_off - window.col_off)
        out[:, row : row + block.shape[1], col : col + block.shape[2]] = block
        return out

    def part(self, window: Window, indexes: tuple[int, ...] | None = None) -> ImageData:
        """Read a pixel window (see :meth:`read_window`) with its transform and CRS."""
        return ImageData(
            pixels=self.read_window(window, indexes),
            transform=self.dataset.window_transform(window),
            crs=self.dataset.crs,
            window=window,
        )

    def _read(self, indexes: tuple[int, ...], window: Window) -> np.ma.MaskedArray:
        try:
            data = self.dataset.read(list(indexes), window=window, masked=True)
        except RasterioError as error:
            raise RasterError(f"cannot read pixels ({_first_line(error)})", self.path) from None
        return self._mask_non_finite(data)

    def _mask_non_finite(self, data: np.ma.MaskedArray) -> np.ma.MaskedArray:
        """Mask NaN and ±Inf pixels of a float raster as nodata, whatever its nodata tag says.

        A float raster often marks holes with NaN and no nodata tag; unmasked, one such pixel
        would make its tile's embedding NaN and, through the per-raster percentile stretch,
        every tile's. Under the mask the value becomes the nodata value (0 without one).
        """
        if not np.issubdtype(data.dtype, np.floating):
            return data
        bad = ~np.isfinite(data.data)
        if not bad.any():
            return data
        nodata = self.nodata
        data.data[bad] = nodata if nodata is not None and np.isfinite(nodata) else 0
        data.mask = np.ma.getmaskarray(data) | bad
        return data

    def read_decimated(
        self,
        indexes: tuple[int, ...] | None = None,
        max_size: int = 1024,
        window: Window | None = None,
    ) -> np.ma.MaskedArray:
        """The whole raster at reduced resolution (longest side ≤ ``max_size``).

        For previews and statistics; GDAL serves it from overviews when the file has them.
        With ``window``, only that part of the raster (inside its edges), decimated the same way.

        Returns:
            (bands, h, w) masked array.
        """
        indexes = indexes or tuple(range(1, self.count + 1))
        self._check_bands(indexes)
        width = self.width if window is None else int(window.width)
        height = self.height if window is None else int(window.height)
        factor = max(1.0, max(width, height) / max_size)
        shape = (len(indexes), max(1, round(height / factor)), max(1, round(width / factor)))
        try:
            data = self.dataset.read(
                list(indexes),
                window=window,
                out_shape=shape,
                masked=True,
                resampling=Resampling.nearest,
            )
        except RasterioError as error:
            raise RasterError(f"cannot read pixels ({_first_line(error)})", self.path) from None
        return self._mask_non_finite(data)

    def band_percentiles(
        self, indexes: tuple[int, ...], low: float = 2.0, high: float = 98.0, max_size: int = 1024
    ) -> np.ndarray:
        """Per-band (low, high) percentiles over valid pixels, from a decimated read.

        A stretch computed once per raster keeps tiles comparable (a per-tile stretch would
        make every tile look equally bright), and the decimated read keeps memory bounded.

        Returns:
            Array of shape (len(indexes), 2).
        """
        data = self.read_decimated(indexes, max_size)
        result = np.zeros((len(indexes), 2), dtype=np.float64)
        for i, band in enumerate(data):
            valid = band.compressed()
            if valid.size:
                result[i] = np.percentile(valid, [low, high])
        return result

    def _check_bands(self, indexes: tuple[int, ...]) -> None:
        bad = [i for i in indexes if not 1 <= i <= self.count]
        if bad:
            raise RasterError(f"band(s) {bad} do not exist; the raster has {self.count}", self.path)


@contextlib.contextmanager
def opened(raster: str | os.PathLike[str] | RasterSource) -> Iterator[RasterSource]:
    """Borrow an open :class:`RasterSource`, or open a path for the duration of the block.

    Functions that accept either let a caller reading many things from one raster keep it
    open, and close only what they opened themselves.
    """
    if isinstance(raster, RasterSource):
        yield raster
        return
    with RasterSource(raster) as source:
        yield source


def raster_info(path: str | os.PathLike[str], require_crs: bool = True) -> RasterInfo:
    """Open a raster just long enough to describe it."""
    with RasterSource(path, require_crs=require_crs) as src:
        return src.info()


def check_readable(path: str | os.PathLike[str], require_crs: bool = True) -> RasterInfo:
    """Open a raster and decode every pixel (strip by strip) to prove that it is whole.

    Opening reads only the header, so a truncated or half-copied GeoTIFF opens fine and
    fails only when its pixels are read; datasets of small tiles (``geosound sonify``) check
    each tile with this before pairing it. Memory follows one strip.

    Returns:
        The raster's summary.

    Raises:
        RasterError: The file cannot be opened, or some of its pixels cannot be decoded.
    """
    with RasterSource(path, require_crs=require_crs) as source:
        dataset = source.dataset
        rows_per_strip = max(1, (1 << 22) // max(1, dataset.width * dataset.count))
        for row in range(0, dataset.height, rows_per_strip):
            height = min(rows_per_strip, dataset.height - row)
            try:
                dataset.read(window=Window(0, row, dataset.width, height))
            except RasterioError as error:
                raise RasterError(
                    f"truncated or corrupt raster: pixels from row {row} on cannot be decoded "
                    f"({_first_line(error)})",
                    source.path,
                ) from None
        return source.info()


def _intersection(window: Window, width: int, height: int) -> Window | None:
    """The part of ``window`` inside a width × height raster, or None if they do not meet."""
    col_start, row_start = max(int(window.col_off), 0), max(int(window.row_off), 0)
    col_stop = min(int(window.col_off + window.width), width)
    row_stop = min(int(window.row_off + window.height), height)
    if col_start >= col_stop or row_start >= row_stop:
        return None
    return Window(col_start, row_start, col_stop - col_start, row_stop - row_start)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
