"""Tile grids over a raster, as GeoDataFrames, and streamed reading of their pixels.

Two kinds of grid:

* :func:`tile_grid` — square pixel tiles in the raster's own CRS (no resampling: what the
  sensor recorded is what the encoder sees), with a stride for overlap and an optional area of
  interest given in any CRS;
* :func:`tms_tile_grid` — the tiles of a standard TileMatrixSet (morecantile, e.g. web
  mercator), read through rio-tiler with reprojection, for products that must line up with
  web maps.

Each grid row is one tile footprint, so a grid can be filtered, joined or saved like any
vector layer before reading. :func:`read_tiles` then streams the pixels in row strips:
memory follows one strip and one batch, never the raster.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import geopandas as gpd
import morecantile
import numpy as np
import shapely
from rasterio.crs import CRS
from rasterio.warp import transform_bounds
from rasterio.windows import Window
from rio_tiler.errors import TileOutsideBounds
from rio_tiler.io import Reader

from geosound.errors import OutsideRasterError, RasterError
from geosound.geo.raster import RasterSource

Bounds = tuple[float, float, float, float]

MIN_VALID_FRACTION = 0.5
"""Share of valid pixels a tile needs to be embedded; tiles below it become nodata in maps."""


@dataclass(frozen=True)
class TileBatch:
    """A batch of tiles read from a grid.

    Attributes:
        tile_ids: The ``tile_id`` of each tile, in grid order.
        pixels: (N, bands, tile, tile) masked array; masked = outside the raster or nodata.
    """

    tile_ids: np.ndarray
    pixels: np.ma.MaskedArray


def tile_grid(
    source: RasterSource,
    tile_size: int,
    stride: int | None = None,
    bounds: Bounds | None = None,
    bounds_crs: CRS | str | None = None,
    partial: Literal["pad", "drop"] = "pad",
    clip_footprints: bool = True,
    rows: tuple[int, int] | None = None,
) -> gpd.GeoDataFrame:
    """Lay a grid of square pixel tiles over the raster, in the raster's CRS.

    The grid is made for maps: each tile has a *cell*, and the cells of a grid are a regular
    raster that ends exactly at the raster's edges (see :func:`_axis_layout`). Where
    ``stride`` does not fit the raster, the cells are slightly narrower than ``stride`` and
    each tile is centred on its cell, so the edge cells are mapped from tiles of real pixels
    instead of from half-empty tiles that stick out of the scene. Shifting only the last tile
    inward would keep the other origins on multiples of ``stride`` but then no regular layer
    could place each value over its own tile (cells drift from their tiles by up to a tile).

    Args:
        source: An open raster.
        tile_size: Tile edge in pixels.
        stride: Step between tile origins in pixels (default: ``tile_size``, no overlap;
            smaller means overlapping tiles).
        bounds: Optional area of interest (minx, miny, maxx, maxy); only tiles that
            intersect it are kept.
        bounds_crs: CRS of ``bounds`` (default: the raster's CRS).
        partial: ``"pad"``: tiles reach every edge (only an axis shorter than one tile
            gets a tile reaching past the raster, whose outside pixels are read as masked);
            ``"drop"``: only whole tiles at multiples of ``stride``, leaving the edge out.
        clip_footprints: Clip footprints of edge tiles to the raster extent.
        rows: Only the grid rows ``[start, stop)`` (row indices of the whole-raster grid): a
            region worked on chunk by chunk builds one chunk's tiles at a time, so memory
            follows the chunk, never the raster.

    Returns:
        One row per tile: ``tile_id``, ``row``, ``col`` (position in the grid over the whole
        raster, also when ``bounds`` select part of it), ``row_off``,
        ``col_off`` (pixel offset of the tile's corner) and the footprint ``geometry``.
        ``attrs`` hold the raster path, ``tile_size``, ``stride``, the raster's ``transform``
        and, in pixels per axis (x, y), the ``cell_start`` and ``cell_size`` of the layer
        cells (:func:`geosound.mapping.layers.layer_transform`).

    Raises:
        OutsideRasterError: ``bounds`` do not overlap the raster.
    """
    stride = stride or tile_size
    if tile_size < 1 or stride < 1:
        raise ValueError("tile_size and stride must be positive")
    col_start, row_start, col_stop, row_stop = _aoi_window(source, bounds, bounds_crs)
    x_axis = _axis_layout(source.width, tile_size, stride, partial)
    y_axis = _axis_layout(source.height, tile_size, stride, partial)
    col_index, col_offsets = _offsets(col_start, col_stop, tile_size, stride, x_axis, partial)
    row_index, row_offsets = _offsets(row_start, row_stop, tile_size, stride, y_axis, partial)
    if rows is not None:
        keep = (row_index >= rows[0]) & (row_index < rows[1])
        row_index, row_offsets = row_index[keep], row_offsets[keep]

    row_pos, col_pos = np.meshgrid(
        np.arange(len(row_index)), np.arange(len(col_index)), indexing="ij"
    )
    row_pos, col_pos = row_pos.ravel(), col_pos.ravel()
    rows, cols = row_index[row_pos], col_index[col_pos]
    row_off, col_off = row_offsets[row_pos], col_offsets[col_pos]

    left, right = col_off.astype(np.float64), (col_off + tile_size).astype(np.float64)
    top, bottom = row_off.astype(np.float64), (row_off + tile_size).astype(np.float64)
    if clip_footprints:
        left, right = np.clip(left, 0, source.width), np.clip(right, 0, source.width)
        top, bottom = np.clip(top, 0, source.height), np.clip(bottom, 0, source.height)
    footprints = _pixel_boxes_to_polygons(source, left, top, right, bottom)

    grid = gpd.GeoDataFrame(
        {
            "tile_id": np.arange(len(rows), dtype=np.int64),
            "row": rows,
            "col": cols,
            "row_off": row_off,
            "col_off": col_off,
        },
        geometry=footprints,
        crs=source.crs.to_string(),
    )
    grid.attrs.update(
        {
            "raster": source.path,
            "tile_size": tile_size,
            "stride": stride,
            "kind": "pixel",
            "transform": tuple(source.transform)[:6],
            "cell_start": (x_axis.cell_start, y_axis.cell_start),
            "cell_size": (x_axis.cell_size, y_axis.cell_size),
        }
    )
    return grid


def check_tileable(
    source: RasterSource,
    tile_size: int,
    stride: int | None = None,
    indexes: tuple[int, ...] | None = None,
    bounds: Bounds | None = None,
    bounds_crs: CRS | str | None = None,
    min_valid_fraction: float = MIN_VALID_FRACTION,
) -> None:
    """Refuse a raster on which no tile of a :func:`tile_grid` could ever be embedded.

    Two cases give a map without one valid cell: a raster smaller than what one tile needs
    on the raster (``min_valid_fraction`` of its pixels, e.g. a 1×1 raster and 64-pixel
    tiles), and a raster (or area of interest) whose every pixel is nodata, NaN or ±Inf.
    Both are refused here, before anything is written, instead of giving an empty map.

    The nodata test reads a decimated view first (one small read finds valid pixels in any
    ordinary raster); only when that finds none are the pixels scanned in full-width strips,
    so a raster with a few valid pixels is never refused by mistake.

    Args:
        source: An open raster.
        tile_size: Tile edge in pixels.
        stride: Step between tiles (default: ``tile_size``).
        indexes: 1-based bands that are read (default: all).
        bounds: Optional area of interest, as for :func:`tile_grid`.
        bounds_crs: CRS of ``bounds`` (default: the raster's).
        min_valid_fraction: Share of valid pixels a tile needs (as in
            :func:`geosound.mapping.embed.embed_tiles`).

    Raises:
        RasterError: The raster is too small for one tile, or holds no valid pixel where the
            tiles are; the message names the raster.
        OutsideRasterError: ``bounds`` do not overlap the raster.
    """
    if tile_size < 1:
        raise ValueError("tile_size must be positive")
    covered = min(source.width, tile_size) * min(source.height, tile_size)
    if covered < min_valid_fraction * tile_size * tile_size:
        raise RasterError(
            f"the raster is {source.width}×{source.height} pixels, too small for one tile "
            f"(--tile {tile_size}: a tile needs {min_valid_fraction:.0%} of its pixels on the "
            "raster); use a smaller --tile",
            source.path,
        )
    window = _tiles_window(source, tile_size, stride or tile_size, bounds, bounds_crs)
    if not _has_valid_pixel(source, window, indexes):
        where = "in the area of interest" if bounds is not None else "of the raster"
        raise RasterError(
            f"every pixel {where} is nodata (or NaN/Inf): there is nothing to map", source.path
        )


def _tiles_window(
    source: RasterSource,
    tile_size: int,
    stride: int,
    bounds: Bounds | None,
    bounds_crs: CRS | str | None,
) -> Window:
    """The pixels (inside the raster) that the tiles of the grid over ``bounds`` read."""
    col_start, row_start, col_stop, row_stop = _aoi_window(source, bounds, bounds_crs)
    x_axis = _axis_layout(source.width, tile_size, stride, "pad")
    y_axis = _axis_layout(source.height, tile_size, stride, "pad")
    _, cols = _offsets(col_start, col_stop, tile_size, stride, x_axis, "pad")
    _, rows = _offsets(row_start, row_stop, tile_size, stride, y_axis, "pad")
    col_first, row_first = int(cols.min()), int(rows.min())
    col_stop = min(source.width, int(cols.max()) + tile_size)
    row_stop = min(source.height, int(rows.max()) + tile_size)
    return Window(col_first, row_first, col_stop - col_first, row_stop - row_first)


def _has_valid_pixel(source: RasterSource, window: Window, indexes: tuple[int, ...] | None) -> bool:
    """Whether any band of any pixel of ``window`` is valid (not nodata, NaN or ±Inf)."""
    if not np.ma.getmaskarray(source.read_decimated(indexes, 512, window=window)).all():
        return True
    bands = len(indexes) if indexes else source.count
    rows_per_strip = max(1, (1 << 22) // max(1, int(window.width) * bands))
    row, row_stop = int(window.row_off), int(window.row_off + window.height)
    while row < row_stop:
        height = min(rows_per_strip, row_stop - row)
        strip = source.read_window(Window(window.col_off, row, window.width, height), indexes)
        if not np.ma.getmaskarray(strip).all():
            return True
        row += height
    return False


def read_tiles(
    source: RasterSource,
    grid: gpd.GeoDataFrame,
    indexes: tuple[int, ...] | None = None,
    batch_size: int = 64,
) -> Iterator[TileBatch]:
    """Stream the pixels of a :func:`tile_grid` in batches.

    Tiles are read one grid row at a time as a single strip (one GDAL read instead of one per
    tile, which matters for striped GeoTIFFs), then cut. Peak memory is one strip plus one
    batch, whatever the raster's size.

    Args:
        source: The raster the grid was made on.
        grid: A pixel grid from :func:`tile_grid`, possibly filtered.
        indexes: 1-based bands to read (default: all).
        batch_size: Tiles per yielded batch.

    Yields:
        Batches in the grid's order.
    """
    _check_grid(grid, "pixel")
    return _batched(_strip_tiles(source, grid, indexes), batch_size)


def _strip_tiles(
    source: RasterSource, grid: gpd.GeoDataFrame, indexes: tuple[int, ...] | None
) -> Iterator[tuple[int, np.ma.MaskedArray]]:
    tile = int(grid.attrs["tile_size"])
    for row_off, strip_tiles in grid.groupby("row_off", sort=False):
        col_first = int(strip_tiles["col_off"].min())
        col_last = int(strip_tiles["col_off"].max()) + tile
        strip = source.read_window(
            Window(col_first, int(row_off), col_last - col_first, tile), indexes
        )
        for tile_id, col_off in zip(strip_tiles["tile_id"], strip_tiles["col_off"], strict=True):
            start = int(col_off) - col_first
            yield int(tile_id), strip[:, :, start : start + tile]


def _batched(
    tiles: Iterator[tuple[int, np.ma.MaskedArray]], batch_size: int
) -> Iterator[TileBatch]:
    ids: list[int] = []
    pixels: list[np.ma.MaskedArray] = []
    for tile_id, tile_pixels in tiles:
        ids.append(tile_id)
        pixels.append(tile_pixels)
        if len(ids) == batch_size:
            yield TileBatch(np.asarray(ids), np.ma.stack(pixels))
            ids, pixels = [], []
    if ids:
        yield TileBatch(np.asarray(ids), np.ma.stack(pixels))


def tms_tile_grid(
    source: RasterSource,
    zoom: int | None = None,
    tms: str | morecantile.TileMatrixSet = "WebMercatorQuad",
) -> gpd.GeoDataFrame:
    """The tiles of a TileMatrixSet that cover the raster, at one zoom level.

    Args:
        source: An open raster.
        zoom: Zoom level (default: the level whose resolution best matches the raster's).
        tms: A morecantile TileMatrixSet or the id of a registered one.

    Returns:
        One row per tile: ``tile_id``, ``x``, ``y``, ``z`` and the footprint ``geometry`` in
        the TileMatrixSet's CRS.
    """
    matrix_set = morecantile.tms.get(tms) if isinstance(tms, str) else tms
    with Reader(source.path, dataset=source.dataset, tms=matrix_set) as reader:
        zoom = reader.maxzoom if zoom is None else zoom
        west, south, east, north = reader.get_geographic_bounds(matrix_set.rasterio_geographic_crs)
    tiles = list(matrix_set.tiles(west, south, east, north, [zoom]))
    boxes = [matrix_set.xy_bounds(t) for t in tiles]
    grid = gpd.GeoDataFrame(
        {
            "tile_id": np.arange(len(tiles), dtype=np.int64),
            "x": [t.x for t in tiles],
            "y": [t.y for t in tiles],
            "z": [t.z for t in tiles],
        },
        geometry=[shapely.box(b.left, b.bottom, b.right, b.top) for b in boxes],
        crs=matrix_set.rasterio_crs.to_string(),
    )
    grid.attrs.update({"raster": source.path, "tms": matrix_set.id, "kind": "tms"})
    return grid


def read_tms_tiles(
    source: RasterSource,
    grid: gpd.GeoDataFrame,
    tile_size: int = 256,
    indexes: tuple[int, ...] | None = None,
    batch_size: int = 64,
) -> Iterator[TileBatch]:
    """Stream the pixels of a :func:`tms_tile_grid`, reprojected by rio-tiler.

    Yields:
        Batches of (N, bands, tile_size, tile_size) masked arrays; pixels outside the raster
        are masked.
    """
    _check_grid(grid, "tms")
    return _batched(_tms_tiles(source, grid, tile_size, indexes), batch_size)


def _tms_tiles(
    source: RasterSource,
    grid: gpd.GeoDataFrame,
    tile_size: int,
    indexes: tuple[int, ...] | None,
) -> Iterator[tuple[int, np.ma.MaskedArray]]:
    matrix_set = morecantile.tms.get(grid.attrs["tms"])
    with Reader(source.path, dataset=source.dataset, tms=matrix_set) as reader:
        for tile_id, x, y, z in zip(grid["tile_id"], grid["x"], grid["y"], grid["z"], strict=True):
            try:
                image = reader.tile(int(x), int(y), int(z), tilesize=tile_size, indexes=indexes)
            except TileOutsideBounds:
                raise OutsideRasterError(
                    f"tile {z}/{x}/{y} is outside the raster", source.path
                ) from None
            yield int(tile_id), image.array


def _aoi_window(
    source: RasterSource, bounds: Bounds | None, bounds_crs: CRS | str | None
) -> tuple[int, int, int, int]:
    """Pixel extent (col_start, row_start, col_stop, row_stop) of the area of interest."""
    if bounds is None:
        return 0, 0, source.width, source.height
    minx, miny, maxx, maxy = bounds
    if not (minx < maxx and miny < maxy):
        raise ValueError(f"bounds {bounds} are empty (need minx < maxx and miny < maxy)")
    if bounds_crs is not None and CRS.from_user_input(bounds_crs) != source.crs:
        minx, miny, maxx, maxy = transform_bounds(bounds_crs, source.crs, *bounds, densify_pts=21)
    inverse = ~source.transform
    corners = [inverse @ (x, y) for x in (minx, maxx) for y in (miny, maxy)]
    cols = [c for c, _ in corners]
    rows = [r for _, r in corners]
    col_start = max(0, int(np.floor(min(cols))))
    row_start = max(0, int(np.floor(min(rows))))
    col_stop = min(source.width, int(np.ceil(max(cols))))
    row_stop = min(source.height, int(np.ceil(max(rows))))
    if col_start >= col_stop or row_start >= row_stop:
        raise OutsideRasterError(
            f"bounds {tuple(round(v, 6) for v in bounds)} do not overlap the raster "
            f"(raster bounds {tuple(round(v, 6) for v in source.bounds)} in {source.crs})",
            source.path,
        )
    return col_start, row_start, col_stop, row_stop


@dataclass(frozen=True)
class _AxisLayout:
    """The whole-raster grid along one axis: tile origins, and the layer cells they map to.

    Cell ``k`` spans pixels ``[cell_start + k * cell_size, cell_start + (k + 1) * cell_size)``
    and holds the value of tile ``k``.
    """

    origins: np.ndarray
    cell_start: float
    cell_size: float


def _axis_layout(extent: int, tile: int, stride: int, partial: str) -> _AxisLayout:
    """Tile origins and layer cells along one axis of the grid over the whole raster.

    ``"pad"`` (the mapping grid): as many tiles as stride-spaced tiles need to reach the edge,
    ``n = ceil((extent - tile) / stride) + 1``; their ``n`` cells split the axis evenly —
    less a margin of ``(tile - stride) / 2`` on each side where overlapping tiles centre no
    tile — so a layer ends exactly at the raster's edge, and each tile is the ``tile``-pixel
    window centred on its cell (rounded to a whole pixel, kept inside the raster). Where the
    stride fits the raster exactly (``stride <= tile`` and ``extent - tile`` a multiple of
    ``stride``), cells are ``stride`` pixels wide and origins are the multiples of
    ``stride``, as a plain stride grid has them; otherwise cells are a little narrower than
    the stride and every tile still holds only real pixels. An axis no longer than one tile
    has one tile (reaching past the raster where shorter; its outside is masked) whose cell
    is the whole axis.

    ``"drop"``: whole tiles at the multiples of ``stride`` only; cells ``stride`` wide,
    centred on the tiles.
    """
    if partial == "drop":
        origins = np.arange(0, extent - tile + 1, stride)
        return _AxisLayout(origins, (tile - stride) / 2, float(stride))
    if partial != "pad":
        raise ValueError(f"partial must be 'pad' or 'drop', not {partial!r}")
    if extent <= tile:
        return _AxisLayout(np.zeros(1, dtype=np.int64), 0.0, float(extent))
    count = -(-(extent - tile) // stride) + 1
    margin2 = max(0, tile - stride)  # twice the margin: integer arithmetic, exact origins
    span = extent - margin2
    k = np.arange(count, dtype=np.int64)
    # origin_k = round(margin + (k + 1/2) * span / count - tile / 2), times 2 * count.
    origins = (count * margin2 + (2 * k + 1) * span - count * tile + count) // (2 * count)
    origins = np.clip(origins, 0, extent - tile)
    return _AxisLayout(origins, margin2 / 2, span / count)


def _offsets(
    start: int, stop: int, tile: int, stride: int, layout: _AxisLayout, partial: str
) -> tuple[np.ndarray, np.ndarray]:
    """Grid indices and tile origins along one axis that intersect [start, stop).

    Origins are always those of the grid over the whole raster, so an area of interest selects
    tiles of the same grid, and per-tile caches stay reusable.
    """
    origins = layout.origins
    index = np.flatnonzero((origins < stop) & (origins + tile > start))
    if index.size == 0 and partial == "pad":
        raise RasterError(
            f"the area of interest ({stop - start} pixels across) falls between tiles: a stride "
            f"of {stride} pixels leaves gaps between {tile}-pixel tiles; use a stride no larger "
            "than the tile"
        )
    if index.size == 0:
        raise RasterError(
            f"no whole {tile}-pixel tile fits in the area of interest "
            f"({stop - start} pixels across); use a smaller tile or partial='pad'"
        )
    return index, origins[index]


def _pixel_boxes_to_polygons(
    source: RasterSource, left: np.ndarray, top: np.ndarray, right: np.ndarray, bottom: np.ndarray
) -> np.ndarray:
    """Footprint polygons of pixel boxes; four transformed corners, so rotated rasters work."""
    a, b, c, d, e, f = source.transform[:6]
    cols = np.stack([left, right, right, left, left], axis=1)
    rows = np.stack([top, top, bottom, bottom, top], axis=1)
    xs = a * cols + b * rows + c
    ys = d * cols + e * rows + f
    return shapely.polygons(np.stack([xs, ys], axis=-1))


def _check_grid(grid: gpd.GeoDataFrame, kind: str) -> None:
    if grid.attrs.get("kind") != kind:
        maker = "tile_grid" if kind == "pixel" else "tms_tile_grid"
        raise ValueError(f"this grid was not made by {maker} (grid.attrs lost or wrong kind)")
