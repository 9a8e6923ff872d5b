"""From tiles to layers: grid geometry, similarity maps and their files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from geosound.geo import RasterSource, is_valid_cog, tile_grid
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
