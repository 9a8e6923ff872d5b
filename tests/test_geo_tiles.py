"""Tile grids in the raster's CRS and on a TMS, and streamed tile reading."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from geosound.errors import OutsideRasterError
from geosound.geo import RasterSource, read_tiles, read_tms_tiles, tile_grid, tms_tile_grid


def test_grid_reaches_every_edge_with_tiles_of_real_pixels(data_raster):
    with RasterSource(data_raster("utm_uint16.tif")) as src:
        grid = tile_grid(src, 32)
    assert len(grid) == 4 * 3  # ceil(100/32) x ceil(80/32)
    assert grid.crs.to_epsg() == 32632
    # Each tile centred on its cell (100/4 = 25 and 80/3 px), kept inside: no padded tile.
    assert sorted(grid["col_off"].unique()) == [0, 22, 47, 68]
    assert sorted(grid["row_off"].unique()) == [0, 24, 48]
    assert (grid.geometry.area == 320.0 * 320.0).all()
    assert shapely.union_all(grid.geometry).area == pytest.approx(100 * 80 * 10 * 10)
    assert grid.geometry.iloc[0].bounds == (500000.0, 5199680.0, 500320.0, 5200000.0)
    assert grid.attrs["cell_start"] == (0.0, 0.0)
    assert grid.attrs["cell_size"] == pytest.approx((25.0, 80 / 3))


def test_a_stride_that_fits_keeps_the_plain_stride_grid(make_raster):
    with RasterSource(make_raster(width=128, height=96)) as src:
        grid = tile_grid(src, 32)
        overlapping = tile_grid(src, 64, stride=16)
    assert sorted(grid["col_off"].unique()) == [0, 32, 64, 96]
    assert (grid["col"] * 32 == grid["col_off"]).all()
    assert (grid["row"] * 32 == grid["row_off"]).all()
    assert grid.attrs["cell_size"] == (32.0, 32.0) and grid.attrs["cell_start"] == (0.0, 0.0)
    assert sorted(overlapping["col_off"].unique()) == list(range(0, 65, 16))
    assert overlapping.attrs["cell_size"] == (16.0, 16.0)
    assert overlapping.attrs["cell_start"] == (24.0, 24.0)  # cells centred on their tiles


def test_a_raster_narrower_than_a_tile_gets_one_padded_tile(make_raster):
    with RasterSource(make_raster(width=20, height=40)) as src:
        grid = tile_grid(src, 32)
        (batch,) = read_tiles(src, grid, indexes=(1,))
    assert grid["col_off"].tolist() == [0, 0] and grid["row_off"].tolist() == [0, 8]
    assert grid.attrs["cell_size"] == (20.0, 20.0)  # the one column's cell: the whole width
    assert batch.pixels.mask[:, 0, :, 20:].all() and not batch.pixels.mask[:, 0, :, :20].any()
    assert grid.geometry.iloc[0].bounds == (500000.0, 5199680.0, 500200.0, 5200000.0)


def test_drop_keeps_whole_tiles_only(data_raster):
    with RasterSource(data_raster("utm_uint16.tif")) as src:
        grid = tile_grid(src, 32, partial="drop")
    assert len(grid) == 3 * 2
    assert (grid.geometry.area == 320.0 * 320.0).all()


def test_overlapping_stride_adds_no_redundant_tiles(make_raster):
    with RasterSource(make_raster(width=100, height=64)) as src:
        grid = tile_grid(src, 64, stride=32)
    # Three tiles as a 32-px stride needs to reach the edge, spread so the last one ends there.
    assert sorted(grid["col_off"].unique()) == [0, 18, 36]
    assert sorted(grid["row_off"].unique()) == [0]


def test_bounds_in_another_crs_select_tiles(data_raster):
    with RasterSource(data_raster("utm_uint16.tif")) as src:
        full = tile_grid(src, 20)
        # The raster's top-left 200 m x 200 m, given in lon/lat.
        from pyproj import Transformer

        to_lonlat = Transformer.from_crs("EPSG:32632", "EPSG:4326", always_xy=True)
        west, north = to_lonlat.transform(500010.0, 5199990.0)
        east, south = to_lonlat.transform(500190.0, 5199810.0)
        aoi = tile_grid(src, 20, bounds=(west, south, east, north), bounds_crs="EPSG:4326")
    assert 0 < len(aoi) < len(full)
    # The same grid as the whole raster's: an AOI selects tiles, it does not shift them.
    assert set(aoi["col_off"]) <= {0, 20} and set(aoi["row_off"]) <= {0, 20}
    merged = aoi.merge(full, on=["row", "col"], suffixes=("", "_full"))
    assert (merged["col_off"] == merged["col_off_full"]).all()


def test_bounds_outside_raster_raise(make_raster):
    with RasterSource(make_raster()) as src, pytest.raises(OutsideRasterError, match=r"scene\.tif"):
        tile_grid(src, 16, bounds=(0.0, 0.0, 10.0, 10.0))


def test_read_tiles_matches_windows(make_raster):
    with RasterSource(make_raster(width=50, height=40)) as src:
        grid = tile_grid(src, 32)
        batches = list(read_tiles(src, grid, indexes=(1,), batch_size=3))
    ids = np.concatenate([b.tile_ids for b in batches])
    pixels = np.ma.concatenate([b.pixels for b in batches])
    assert list(ids) == list(grid["tile_id"])
    assert pixels.shape == (4, 1, 32, 32)
    last = grid.set_index("tile_id").loc[3]
    assert (last.row_off, last.col_off) == (8, 18)  # shifted inward: ends at the edge
    assert pixels[3, 0, 0, 0] == 8 * 100 + 18 and pixels[3, 0, 31, 31] == 39 * 100 + 49
    assert not np.ma.getmaskarray(pixels).any()


def test_read_tiles_on_a_filtered_grid(make_raster):
    with RasterSource(make_raster(width=64, height=64)) as src:
        grid = tile_grid(src, 16)
        subset = grid[grid["col"] == 2]
        (batch,) = read_tiles(src, subset, indexes=(1,))
    assert list(batch.tile_ids) == list(subset["tile_id"])
    assert batch.pixels[1, 0, 0, 0] == 16 * 100 + 32


def test_tms_grid_and_tiles(make_raster):
    with RasterSource(make_raster(width=200, height=200, count=3, dtype="uint8")) as src:
        grid = tms_tile_grid(src, zoom=14)
        (batch,) = read_tms_tiles(src, grid, tile_size=64, batch_size=len(grid))
    assert grid.crs.to_epsg() == 3857
    assert set(grid["z"]) == {14}
    assert batch.pixels.shape == (len(grid), 3, 64, 64)
    assert (~batch.pixels.mask).any()  # some pixels of the raster land in its tiles
    assert (
        grid.to_crs("EPSG:32632")
        .union_all()
        .contains(shapely.box(500100.0, 5198200.0, 501900.0, 5199900.0))
    )


def test_tms_default_zoom_follows_resolution(make_raster):
    with RasterSource(make_raster(width=64, height=64, resolution=10.0)) as src:
        grid = tms_tile_grid(src)
    # 10 m at 47° N spans 14.7 web-mercator metres; z13 (19.1 m/px) is the finest level
    # that rio-tiler takes without upsampling.
    assert set(grid["z"]) == {13}


@pytest.mark.parametrize("bounds", [None, (500_300.0, 5_199_400.0, 500_900.0, 5_199_900.0)])
def test_a_range_of_grid_rows_is_exactly_those_rows_of_the_whole_grid(data_raster, bounds):
    """What a region chunk builds for itself is the same tiles the whole grid has there."""
    with RasterSource(data_raster("utm_uint16.tif")) as src:
        whole = tile_grid(src, 16, stride=8, bounds=bounds)
        first = int(whole["row"].min())
        part = tile_grid(src, 16, stride=8, bounds=bounds, rows=(first + 2, first + 5))
    expected = whole[(whole["row"] >= first + 2) & (whole["row"] < first + 5)]
    columns = ["row", "col", "row_off", "col_off"]
    assert part[columns].reset_index(drop=True).equals(expected[columns].reset_index(drop=True))
    assert (
        part.geometry.reset_index(drop=True)
        .geom_equals(expected.geometry.reset_index(drop=True))
        .all()
    )
    assert sorted(set(part["row"])) == [first + 2, first + 3, first + 4]
