"""Property-based tests (hypothesis) of tile grids, areas of interest and CRS round trips.

Each property is checked against an independent oracle (the grid's origins written out from
their definition, shapely intersections, pyproj's inverse) over many raster shapes, tile
sizes, strides and boxes. Runs are deterministic (``derandomize=True``, no example database)
and small enough for the whole module to take seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyproj import Transformer
from rasterio.transform import from_origin

from geosound.errors import RasterError
from geosound.geo import RasterSource, points_inside, points_to_raster_xy, tile_grid

ORIGIN = (500000.0, 5200000.0)  # EPSG:32632, in northern Italy / Switzerland
RESOLUTION = 10.0

PROPERTIES = settings(
    max_examples=40,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

RasterOf = Callable[[int, int], Path]


@pytest.fixture(scope="module")
def raster_of(tmp_path_factory: pytest.TempPathFactory) -> RasterOf:
    """``raster_of(width, height)``: a one-band UTM GeoTIFF of that shape (written once)."""
    folder = tmp_path_factory.mktemp("properties")

    def make(width: int, height: int) -> Path:
        path = folder / f"r{width}x{height}.tif"
        if not path.exists():
            with rasterio.open(
                path, "w", driver="GTiff", width=width, height=height, count=1,
                dtype="uint8", crs="EPSG:32632",
                transform=from_origin(*ORIGIN, RESOLUTION, RESOLUTION),
            ) as dst:  # fmt: skip
                dst.write(np.ones((1, height, width), np.uint8))
        return path

    return make


def expected_origins(extent: int, tile: int, stride: int, partial: str) -> list[int]:
    """The tile origins along one axis (grid index order), from their definition.

    ``"pad"``: the tiles a stride needs to reach the edge, each centred on its cell of an even
    split of the axis (less half the overlap at each end), rounded half up, kept inside.
    """
    if partial == "drop":
        return list(range(0, extent - tile + 1, stride))
    if extent <= tile:
        return [0]
    count = 1 + math.ceil((extent - tile) / stride)
    margin = Fraction(max(0, tile - stride), 2)
    cell = (extent - 2 * margin) / count
    centres = [margin + (k + Fraction(1, 2)) * cell for k in range(count)]
    return [min(max(math.floor(c - Fraction(tile - 1, 2)), 0), extent - tile) for c in centres]


def coverage(origins: list[int], tile: int, extent: int) -> np.ndarray:
    """How many of these tiles cover each pixel along the axis."""
    counts = np.zeros(extent, dtype=int)
    for origin in origins:
        counts[origin : origin + tile] += 1
    return counts


grids = st.tuples(
    st.integers(1, 150),  # width
    st.integers(1, 150),  # height
    st.integers(1, 48),  # tile
    st.integers(1, 64),  # stride (may exceed the tile: gaps between tiles)
)


@PROPERTIES
@given(shape=grids, partial=st.sampled_from(["pad", "drop"]))
def test_every_pixel_is_covered_by_exactly_the_expected_tiles(
    raster_of: RasterOf, shape: tuple[int, int, int, int], partial: str
):
    width, height, tile, stride = shape
    if partial == "drop" and (tile > width or tile > height):
        return  # no whole tile fits: tile_grid refuses (tested elsewhere)
    with RasterSource(raster_of(width, height)) as src:
        grid = tile_grid(src, tile, stride, partial=partial)
    cols = expected_origins(width, tile, stride, partial)
    rows = expected_origins(height, tile, stride, partial)
    assert sorted(set(grid["col_off"])) == sorted(set(cols))
    assert sorted(set(grid["row_off"])) == sorted(set(rows))
    assert len(grid) == len(cols) * len(rows)
    assert (np.asarray(cols)[grid["col"]] == grid["col_off"]).all()
    assert (np.asarray(rows)[grid["row"]] == grid["row_off"]).all()
    assert grid["tile_id"].tolist() == list(range(len(grid)))

    covered = np.zeros((height, width), dtype=int)
    for row_off, col_off in zip(grid["row_off"], grid["col_off"], strict=True):
        covered[row_off : row_off + tile, col_off : col_off + tile] += 1
    expected = np.outer(coverage(rows, tile, height), coverage(cols, tile, width))
    np.testing.assert_array_equal(covered, expected)
    if stride <= tile and partial == "pad":
        assert covered.min() >= 1  # nothing left out
    if partial == "pad":  # only an axis shorter than a tile has a tile reaching past it
        assert (grid["col_off"] + tile <= max(width, tile)).all()
        assert (grid["row_off"] + tile <= max(height, tile)).all()
    if partial == "drop":
        assert (grid["col_off"] + tile <= width).all() and (grid["row_off"] + tile <= height).all()


@PROPERTIES
@given(shape=grids)
def test_footprints_are_the_tiles_pixel_boxes_clipped_to_the_raster(
    raster_of: RasterOf, shape: tuple[int, int, int, int]
):
    width, height, tile, stride = shape
    with RasterSource(raster_of(width, height)) as src:
        grid = tile_grid(src, tile, stride)
    x0, y0 = ORIGIN
    for row_off, col_off, footprint in zip(
        grid["row_off"], grid["col_off"], grid.geometry, strict=True
    ):
        left, right = x0 + RESOLUTION * col_off, x0 + RESOLUTION * min(col_off + tile, width)
        top, bottom = y0 - RESOLUTION * row_off, y0 - RESOLUTION * min(row_off + tile, height)
        assert footprint.equals(shapely.box(left, bottom, right, top))


# Boxes on a quarter-pixel lattice, so that the intersection areas the oracle compares are
# exact; they may stick out of the raster on any side.
quarter_boxes = st.tuples(
    st.integers(-40, 600), st.integers(-40, 600), st.integers(1, 400), st.integers(1, 400)
)


@PROPERTIES
@given(shape=grids, box=quarter_boxes)
def test_a_bbox_selects_the_tiles_of_the_whole_grid_that_it_intersects(
    raster_of: RasterOf, shape: tuple[int, int, int, int], box: tuple[int, int, int, int]
):
    width, height, tile, stride = shape
    quarter = RESOLUTION / 4
    col4, row4, width4, height4 = box
    minx = ORIGIN[0] + quarter * col4
    maxx = minx + quarter * width4
    maxy = ORIGIN[1] - quarter * row4
    miny = maxy - quarter * height4
    bbox = shapely.box(minx, miny, maxx, maxy)
    with RasterSource(raster_of(width, height)) as src:
        whole = tile_grid(src, tile, stride)
        overlaps = bbox.intersection(shapely.box(*src.bounds)).area > 0
        if not overlaps:
            return  # refused with OutsideRasterError (tested in test_geo_tiles)
        hit = {
            (r, c)
            for r, c, footprint in zip(whole["row"], whole["col"], whole.geometry, strict=True)
            if footprint.intersection(bbox).area > 0
        }
        if not hit:  # only where a stride wider than the tile leaves gaps, and the box is in one
            assert stride > tile
            with pytest.raises(RasterError, match="falls between tiles"):
                tile_grid(src, tile, stride, bounds=(minx, miny, maxx, maxy))
            return
        part = tile_grid(src, tile, stride, bounds=(minx, miny, maxx, maxy))
    keyed = whole.set_index(["row", "col"])
    for _, tile_row in part.iterrows():  # a subset of the whole grid, with identical geometry
        same = keyed.loc[(tile_row["row"], tile_row["col"])]
        assert (same["row_off"], same["col_off"]) == (tile_row["row_off"], tile_row["col_off"])
        assert same["geometry"].equals(tile_row["geometry"])
    assert set(zip(part["row"], part["col"], strict=True)) == hit


@PROPERTIES
@given(
    shape=grids,
    corner=st.tuples(st.floats(0.0, 0.9), st.floats(0.0, 0.9)),
    size=st.tuples(st.floats(0.05, 1.0), st.floats(0.05, 1.0)),
)
def test_a_bbox_in_lon_lat_selects_a_subset_of_the_whole_grid(
    raster_of: RasterOf,
    shape: tuple[int, int, int, int],
    corner: tuple[float, float],
    size: tuple[float, float],
):
    width, height, tile, stride = shape
    to_lonlat = Transformer.from_crs("EPSG:32632", "EPSG:4326", always_xy=True)
    extent_x, extent_y = width * RESOLUTION, height * RESOLUTION
    left = ORIGIN[0] + corner[0] * extent_x
    top = ORIGIN[1] - corner[1] * extent_y
    right = min(left + size[0] * extent_x, ORIGIN[0] + extent_x)
    bottom = max(top - size[1] * extent_y, ORIGIN[1] - extent_y)
    if right <= left or top <= bottom:
        return
    west, south = to_lonlat.transform(left, bottom)
    east, north = to_lonlat.transform(right, top)
    with RasterSource(raster_of(width, height)) as src:
        whole = tile_grid(src, tile, stride)
        try:
            part = tile_grid(src, tile, stride, bounds=(west, south, east, north),
                             bounds_crs="EPSG:4326")  # fmt: skip
        except RasterError as error:  # a box in a gap between tiles
            assert stride > tile and "falls between tiles" in str(error)
            return
    assert 1 <= len(part) <= len(whole)
    merged = part.merge(whole, on=["row", "col"], suffixes=("", "_whole"))
    assert len(merged) == len(part)
    assert (merged["row_off"] == merged["row_off_whole"]).all()
    assert (merged["col_off"] == merged["col_off_whole"]).all()
    assert all(a.equals(b) for a, b in zip(merged.geometry, merged["geometry_whole"], strict=True))
    # The tile under the box's centre (inside the raster) is always selected.
    centre_col = int(((left + right) / 2 - ORIGIN[0]) // RESOLUTION)
    centre_row = int((ORIGIN[1] - (top + bottom) / 2) // RESOLUTION)
    under = whole[
        (whole["col_off"] <= centre_col) & (whole["col_off"] + tile > centre_col)
        & (whole["row_off"] <= centre_row) & (whole["row_off"] + tile > centre_row)
    ]  # fmt: skip
    assert set(zip(under["row"], under["col"], strict=True)) <= set(
        zip(part["row"], part["col"], strict=True)
    )


# ------------------------------------------------------------------ CRS round trips

pixels = st.tuples(st.floats(0.001, 99.999), st.floats(0.001, 79.999))


@PROPERTIES
@given(points=st.lists(pixels, min_size=1, max_size=8))
def test_pixel_to_lon_lat_and_back_is_the_identity(
    raster_of: RasterOf, points: list[tuple[float, float]]
):
    with RasterSource(raster_of(100, 80)) as src:
        transform = src.transform
        xy = [transform @ point for point in points]
        to_lonlat = Transformer.from_crs("EPSG:32632", "EPSG:4326", always_xy=True)
        lonlat = np.column_stack(to_lonlat.transform(*np.asarray(xy).T))
        xs, ys = points_to_raster_xy(src, lonlat)
        np.testing.assert_allclose(np.column_stack([xs, ys]), xy, atol=1e-6)
        cols, rows = points_inside(src, lonlat)
        np.testing.assert_allclose(np.column_stack([cols, rows]), points, atol=1e-6)
        same_xs, same_ys = points_to_raster_xy(src, np.asarray(xy), crs="EPSG:32632")
        np.testing.assert_array_equal(np.column_stack([same_xs, same_ys]), xy)


@PROPERTIES
@given(
    lons=st.lists(st.floats(179.5, 180.49), min_size=1, max_size=8),
    turns=st.lists(st.integers(-2, 2), min_size=8, max_size=8),
)
def test_longitudes_any_turn_away_land_on_a_raster_across_the_antimeridian(
    tmp_path_factory: pytest.TempPathFactory, lons: list[float], turns: list[int]
):
    path = tmp_path_factory.getbasetemp() / "dateline_property.tif"
    if not path.exists():
        with rasterio.open(
            path, "w", driver="GTiff", width=10, height=10, count=1, dtype="uint8",
            crs="EPSG:4326", transform=from_origin(179.5, 0.5, 0.1, 0.1),
        ) as dst:  # fmt: skip
            dst.write(np.ones((1, 10, 10), np.uint8))
    given_lons = [lon + 360.0 * turn for lon, turn in zip(lons, turns, strict=False)]
    with RasterSource(path) as src:
        xs, _ = points_to_raster_xy(src, [(lon, 0.0) for lon in given_lons])
        cols, _ = points_inside(src, [(lon, 0.0) for lon in given_lons])
    np.testing.assert_allclose(xs, lons, atol=1e-9)
    np.testing.assert_allclose(cols, (np.asarray(lons) - 179.5) / 0.1, atol=1e-6)
