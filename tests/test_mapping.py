"""From tiles to layers: grid geometry, similarity maps and their files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.windows import Window

from geosound.geo import RasterSource, get_preset, is_valid_cog, read_rgb, tile_grid
from geosound.mapping import layer_transform, layers_dataset, tiles_to_layers
from geosound.mapping.similarity import text_similarity_map, write_similarity_layers
from geosound.space.imagenet_bridge import imagenet_class_names


def test_layer_pixels_sit_on_tile_centres(data_raster):
    with RasterSource(data_raster("utm_uint16.tif")) as src:
        grid = tile_grid(src, 20, stride=10)
    transform = layer_transform(grid)
    assert (transform.a, transform.e) == (100.0, -100.0)  # one pixel per 10-px stride
    first = grid.geometry.iloc[0].centroid
    assert transform @ (0.5, 0.5) == pytest.approx((first.x, first.y))


@pytest.mark.parametrize(
    ("width", "height", "tile", "stride"),
    [(97, 61, 32, 32), (100, 80, 32, 32), (130, 70, 64, 20), (128, 96, 64, 16), (90, 50, 16, 24)],
)
def test_a_layer_ends_exactly_at_the_raster_edges(make_raster, width, height, tile, stride):
    """Also where the stride does not fit the raster: no cell sticks out, none is missing."""
    with RasterSource(make_raster(width=width, height=height)) as src:
        grid = tile_grid(src, tile, stride)
        left, bottom, right, top = src.bounds
    ds = layers_dataset(grid, np.ones(len(grid)), ["a"], "similarity")
    # Overlapping tiles leave a margin of half the overlap where no tile is centred.
    margin = max(0, tile - stride) / 2 * 10.0
    expected = (left + margin, bottom + margin, right - margin, top - margin)
    assert ds.rio.bounds() == pytest.approx(expected, abs=1e-6)
    assert ds.sizes["x"] * ds.sizes["y"] == len(grid)


def test_each_tile_is_centred_on_its_cell_and_lies_inside_the_raster(make_raster):
    with RasterSource(make_raster(width=100, height=72)) as src:
        grid = tile_grid(src, 32)
    transform = layer_transform(grid)
    for row, col, footprint in zip(grid["row"], grid["col"], grid.geometry, strict=True):
        cell_x, cell_y = transform @ (col + 0.5, row + 0.5)
        centre = footprint.centroid
        # Half a source pixel of rounding; the edge tiles, kept inside, by (tile - cell) / 2.
        assert abs(centre.x - cell_x) <= (32 - 25) / 2 * 10 + 5
        assert abs(centre.y - cell_y) <= (32 - 24) / 2 * 10 + 5
    # Every tile whole (none padded), the last ones ending at the right and bottom edges.
    assert (grid.geometry.area == 320.0 * 320.0).all()
    assert grid.total_bounds.tolist() == [500000.0, 5200000.0 - 720.0, 501000.0, 5200000.0]


def test_an_area_of_interest_layer_lies_on_the_whole_raster_layer(make_raster):
    with RasterSource(make_raster(width=100, height=72)) as src:
        whole = tile_grid(src, 32)
        aoi = tile_grid(src, 32, bounds=(500600.0, 5199400.0, 500950.0, 5199600.0))
    assert 0 < len(aoi) < len(whole)
    first_row, first_col = int(aoi["row"].min()), int(aoi["col"].min())
    assert layer_transform(aoi) == layer_transform(whole) @ Affine.translation(first_col, first_row)


def test_tiles_scatter_onto_grid_and_missing_tiles_are_nan(make_raster):
    with RasterSource(make_raster(width=60, height=40)) as src:
        grid = tile_grid(src, 20)
    subset = grid[grid["tile_id"] != 4]
    layers = tiles_to_layers(subset, np.arange(len(subset) * 2).reshape(-1, 2))
    assert layers.shape == (2, 2, 3)
    assert np.isnan(layers[:, 1, 1]).all()
    assert layers[1, 0, 2] == 5  # tile 2 → second value column


def test_layers_dataset_has_crs_and_named_bands(make_raster):
    with RasterSource(make_raster(width=60, height=40)) as src:
        grid = tile_grid(src, 20)
    ds = layers_dataset(grid, np.ones((len(grid), 2)), ["a", "b"], "similarity")
    assert ds.rio.crs.to_epsg() == 32632
    assert list(ds["band"].values) == ["a", "b"]
    assert ds.rio.transform() == layer_transform(grid)


def test_imagenet_names_come_in_classifier_order():
    names = imagenet_class_names()
    assert len(names) == 1000 and names[0] == "tench" and names[-1] == "toilet paper"


@pytest.mark.slow
def test_text_similarity_map_end_to_end(make_raster, tmp_path: Path):
    path = make_raster(width=96, height=64, count=3, dtype="uint8", nodata=None)
    ds = text_similarity_map(path, ["birds chirping", "traffic"], tile_size=32)
    assert ds["similarity"].shape == (2, 2, 3)
    assert np.isfinite(ds["similarity"].values).all()
    assert np.abs(ds["similarity"].values).max() <= 1.0
    assert ds.attrs["model"].startswith("sat2sound:sat2sound-")  # the shipped checkpoint

    out = write_similarity_layers(ds, tmp_path / "out" / "similarity.tif")
    assert is_valid_cog(out)
    with rasterio.open(out) as src:
        assert src.count == 2 and src.crs.to_epsg() == 32632
        assert src.descriptions == ("similarity: birds chirping", "similarity: traffic")
        assert src.bounds == pytest.approx((500000.0, 5199360.0, 500960.0, 5200000.0))
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["queries"] == ["birds chirping", "traffic"]
    assert sidecar["model"] == ds.attrs["model"]


@pytest.mark.slow
def test_stand_in_bridge_says_so(make_raster):
    from geosound.encoders import get_encoder
    from geosound.space.imagenet_bridge import ImageNetTextBridge

    bridge = ImageNetTextBridge(get_encoder("efficientnet-lite0"), get_encoder("minilm-l6"))
    path = make_raster(width=64, height=64, count=3, dtype="uint8")
    ds = text_similarity_map(path, ["rain"], tile_size=32, space=bridge)
    assert "stand-in" in ds.attrs["note"] and "imagenet-bridge" in ds.attrs["model"]
    assert ds["similarity"].shape == (1, 2, 2)


@pytest.mark.slow
def test_nodata_tiles_become_nodata(make_raster):
    path = make_raster(width=64, height=32, count=3, dtype="uint8", nodata=0)
    with rasterio.open(path, "r+") as dst:
        dst.write(np.zeros((3, 32, 32), dtype=np.uint8), window=((0, 32), (0, 32)))
    ds = text_similarity_map(path, ["wind"], tile_size=32)
    values = ds["similarity"].values[0, 0]
    assert np.isnan(values[0]) and np.isfinite(values[1])


@pytest.mark.slow
def test_edge_cells_of_a_map_are_the_model_on_the_inward_shifted_tiles(make_raster):
    """The shipped model on a raster the tiles do not fit: the edge is mapped, not nodata."""
    from geosound.space import default_space
    from geosound.space.prompts import query_vectors

    path = make_raster(width=100, height=72, count=3, dtype="uint8", nodata=None)
    space = default_space()
    ds = text_similarity_map(path, ["birds chirping"], tile_size=32, space=space)
    similarity = ds["similarity"].values[0]
    assert similarity.shape == (3, 4) and np.isfinite(similarity).all()
    with RasterSource(path) as src:
        assert ds.rio.bounds() == pytest.approx(src.bounds, abs=1e-6)
        # The last column's tiles end at the right edge, the last row's at the bottom edge.
        windows = [Window(100 - 32, 72 - 32, 32, 32), Window(100 - 32, 0, 32, 32)]
        rgb = read_rgb(src, windows, get_preset(ds.attrs["band_preset"]))
    query = query_vectors(space.embed_texts, ["birds chirping"])[0]  # a map's text query
    expected = space.embed_rgb(rgb) @ query
    np.testing.assert_allclose([similarity[2, 3], similarity[0, 3]], expected, atol=1e-5)
