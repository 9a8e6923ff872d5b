"""Scene truth from NDWI/NDVI on tiny written rasters, its AUC table, and evaluate-scene."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from geosound.errors import InputError, RasterError
from geosound.evaluation.scene_truth import (
    DEFAULT_SCENE_QUERIES,
    band_view,
    dark_objects,
    parse_band_spec,
    pixel_classes,
    pixel_metres,
    scene_auc_table,
    scene_bands,
    tile_truth,
)
from geosound.geo import RasterSource, tile_grid

# Reflectance-like values (×10000) of three covers, as (red, green, blue, nir).
WATER = (300, 600, 700, 100)  # NDWI (600-100)/(700) > 0
VEGETATION = (300, 700, 400, 4000)  # NDVI (4000-300)/4300 = 0.86; NDWI < 0
BUILT = (2000, 1900, 1800, 2300)  # NDVI 0.07, NDWI < 0


def _write(path: Path, pixels: np.ndarray, descriptions: tuple[str, ...] | None = None,
           colorinterp: list | None = None, dtype: str = "uint16") -> Path:  # fmt: skip
    count, height, width = pixels.shape
    with rasterio.open(
        path, "w", driver="GTiff", width=width, height=height, count=count, dtype=dtype,
        crs="EPSG:32632", transform=from_origin(500000.0, 5200000.0, 10.0, 10.0),
    ) as dst:  # fmt: skip
        dst.write(pixels.astype(dtype))
        if descriptions:
            for i, text in enumerate(descriptions, start=1):
                dst.set_band_description(i, text)
        if colorinterp:
            dst.colorinterp = colorinterp
    return path


def _quadrant_scene(size: int = 32) -> np.ndarray:
    """Top half water, bottom-left vegetation, bottom-right built; one mixed column band."""
    pixels = np.zeros((4, size, size), dtype=np.int64)
    half = size // 2
    for band in range(4):
        pixels[band, :half, :] = WATER[band]
        pixels[band, half:, :half] = VEGETATION[band]
        pixels[band, half:, half:] = BUILT[band]
    return pixels


def test_pixel_classes_follow_the_literature_thresholds():
    green = np.ma.array([600.0, 700, 1900, 0, 500], mask=[0, 0, 0, 0, 1])
    red = np.ma.array([300.0, 300, 2000, 0, 1])
    nir = np.ma.array([100.0, 4000, 2300, 0, 1])
    # water, vegetation, bare/built, undefined (0/0), masked
    assert pixel_classes(green, red, nir).tolist() == [0, 1, 2, -1, -1]
    # NDVI exactly at 0.3 is not vegetation; just above is.
    assert pixel_classes(np.array([1.0]), np.array([35.0]), np.array([65.0])).tolist() == [2]
    assert pixel_classes(np.array([1.0]), np.array([34.0]), np.array([66.0])).tolist() == [1]


def test_tile_truth_shares_and_pure_tiles(tmp_path: Path):
    scene = _write(tmp_path / "quad.tif", _quadrant_scene(32))
    with RasterSource(scene) as source:
        bands = scene_bands(source)
        grid = tile_grid(source, 16)
        truth = tile_truth(source, grid, bands, 16).set_index(["row", "col"])
        mixed = tile_truth(source, tile_grid(source, 16, 8), bands, 16).set_index(["row", "col"])
    assert (bands.green, bands.red, bands.nir) == (2, 1, 4)
    assert truth.loc[(0, 0), "truth"] == "water" and truth.loc[(0, 1), "water"] == 1.0
    assert truth.loc[(1, 0), "truth"] == "vegetation"
    assert truth.loc[(1, 1), "truth"] == "bare/built"
    # A tile straddling water and vegetation half and half is mixed and left out.
    assert mixed.loc[(1, 0), "water"] == pytest.approx(0.5)
    assert mixed.loc[(1, 0), "truth"] == "mixed"
    # 3/4 water is not pure enough (80 %).
    edge = _quadrant_scene(32)
    edge[:, 12:16, :] = np.array(VEGETATION)[:, None, None]
    with RasterSource(_write(tmp_path / "edge.tif", edge)) as source:
        cut = tile_truth(source, tile_grid(source, 16), scene_bands(source), 16)
    assert cut.loc[0, "water"] == pytest.approx(0.75) and cut.loc[0, "truth"] == "mixed"


def test_dark_object_offsets_are_subtracted(tmp_path: Path):
    # Digital numbers with a +60 offset on every band make water look like bare ground.
    dn = _quadrant_scene(32) // 40 + 60
    dn[:, 0, 0] = 60  # the dark object
    scene = _write(tmp_path / "dn.tif", dn, dtype="uint8")
    with RasterSource(scene) as source:
        bands = scene_bands(source)
        offsets = dark_objects(source, bands, percentile=0.0)
        raw = tile_truth(source, tile_grid(source, 16), bands, 16)
        corrected = tile_truth(source, tile_grid(source, 16), bands, 16, offsets)
    assert offsets.tolist() == [60.0, 60.0, 60.0]
    assert raw.loc[0, "water"] < corrected.loc[0, "water"] and corrected.loc[0, "truth"] == "water"


def test_bands_from_descriptions_override_and_errors(tmp_path: Path):
    pixels = _quadrant_scene(8)[[3, 0, 1, 2]]  # nir, red, green, blue
    described = _write(tmp_path / "d.tif", pixels, ("NIR", "Red", "Green", "Blue"))
    with RasterSource(described) as source:
        found = scene_bands(source)
        assert (found.green, found.red, found.nir, found.source) == (3, 2, 1, "band descriptions")
        given = scene_bands(source, {"green": 4, "red": 2, "nir": 1})
        assert (given.green, given.source) == (4, "--bands")
        with pytest.raises(RasterError, match="--bands nir=9 is past the last band"):
            scene_bands(source, {"green": 3, "red": 2, "nir": 9})
    rgb = _write(tmp_path / "rgb.tif", _quadrant_scene(8)[:3], ("red", "green", "blue"))
    with RasterSource(rgb) as source, pytest.raises(RasterError) as error:
        scene_bands(source)
    message = str(error.value)
    assert "no near-infrared band" in message and "1 (red), 2 (green), 3 (blue)" in message
    assert "rgb.tif" in message and "--bands" in message
    from rasterio.enums import ColorInterp

    alpha = _quadrant_scene(8) // 20
    alpha[3] = np.where(np.arange(8)[None, :] < 4, 0, 255)  # a mask: transparent or opaque
    tags = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]
    rgba = _write(tmp_path / "rgba.tif", alpha, dtype="uint8", colorinterp=tags)
    with RasterSource(rgba) as source, pytest.raises(RasterError, match="4 \\(alpha\\)"):
        scene_bands(source)
    # GDAL tags any 4th 8-bit band alpha; one holding image values is taken for NIR.
    nir = _write(tmp_path / "rgbn.tif", _quadrant_scene(8) // 20, dtype="uint8", colorinterp=tags)
    with RasterSource(nir) as source:
        assert scene_bands(source).nir == 4


def test_band_spec_parsing():
    assert parse_band_spec("green=2, red=3,nir=4") == {"green": 2, "red": 3, "nir": 4}
    for bad in ("green=0", "blue=1", "nir=x", "nir=1,nir=2"):
        with pytest.raises(InputError, match="bad band spec"):
            parse_band_spec(bad)


def test_scene_auc_table_by_hand():
    truth = ["water", "water", "vegetation", "bare/built", "mixed", "none"]
    sims = np.array([[0.9, 0.1], [0.4, 0.2], [0.5, 0.8], [0.1, 0.3], [1.0, 1.0], [np.nan, np.nan]])
    table = scene_auc_table(sims, truth, {"waves": "water", "birds": "vegetation"})
    waves, birds = table.iloc[0], table.iloc[1]
    # Water 0.9, 0.4 against 0.5, 0.1: 3 of 4 pairs won; mixed and empty tiles left out.
    assert (waves.n_pos, waves.n_neg, waves.roc_auc) == (2, 2, pytest.approx(0.75))
    assert (birds.n_pos, birds.n_neg, birds.roc_auc) == (1, 3, pytest.approx(1.0))
    none = scene_auc_table(sims[:2, :1], truth[:2], {"waves": "water"})
    assert np.isnan(none.loc[0, "roc_auc"])  # no negative tile: undefined, not 0.5
    with pytest.raises(InputError, match="not one of"):
        scene_auc_table(sims[:, :1], truth, {"waves": "sea"})


def test_band_view_reorders_bands_without_copying(tmp_path: Path):
    pixels = np.stack([np.full((8, 8), v) for v in (1, 2, 3, 4, 5)])
    scene = _write(tmp_path / "l7.tif", pixels, dtype="uint8")
    view = band_view(scene, [3, 2, 1], tmp_path)
    with rasterio.open(view) as ds:
        assert [int(ds.read(b)[0, 0]) for b in range(1, 6)] == [3, 2, 1, 4, 5]
        assert ds.crs == "EPSG:32632" and ds.transform == from_origin(500000, 5200000, 10, 10)
    with pytest.raises(InputError, match="three bands between 1 and 5"):
        band_view(scene, [6, 2, 1], tmp_path)


def test_pixel_metres_in_metres_and_degrees(tmp_path: Path):
    scene = _write(tmp_path / "m.tif", _quadrant_scene(8))
    with RasterSource(scene) as source:
        assert pixel_metres(source) == pytest.approx(10.0)
    degrees = tmp_path / "deg.tif"
    with rasterio.open(
        degrees, "w", driver="GTiff", width=8, height=8, count=1, dtype="uint8",
        crs="EPSG:4326", transform=from_origin(6.0, 60.0, 1e-4, 1e-4),
    ) as dst:  # fmt: skip
        dst.write(np.ones((1, 8, 8), np.uint8))
    with RasterSource(degrees) as source:
        # At ~60° N a degree of longitude is half a degree of latitude.
        assert pixel_metres(source) == pytest.approx(np.sqrt(11.132 * 0.5 * 11.054), rel=0.01)


def test_evaluate_scene_without_nir_is_one_line_exit_2(tmp_path: Path, run_cli):
    rgb = _write(tmp_path / "rgb.tif", _quadrant_scene(64)[:3], ("red", "green", "blue"))
    started = time.monotonic()
    result = run_cli("evaluate-scene", str(rgb))
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("geosound: error: ")
    assert "rgb.tif" in lines[0] and "1 (red), 2 (green), 3 (blue)" in lines[0]
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert time.monotonic() - started < 60  # refused before the model loads
    bad_query = run_cli("evaluate-scene", str(rgb), "--query", "waves=sea")
    assert bad_query.returncode == 2 and "--query" in bad_query.stderr


@pytest.mark.slow
def test_evaluate_scene_end_to_end_on_a_tiny_four_band_raster(
    tmp_path: Path, run_cli, random_checkpoint
):
    # 4 bands (R, G, B, NIR) of reflectance × 10000, like the 4-band COG: water above,
    # vegetation below.
    pixels = _quadrant_scene(128)
    pixels[:, 64:, 64:] = np.array(VEGETATION)[:, None, None]
    scene = _write(tmp_path / "four_band.tif", pixels)
    checkpoint = random_checkpoint(tmp_path / "random.pt", 0)
    result = run_cli(
        "evaluate-scene", str(scene), "--checkpoint", str(checkpoint), "--tile", "32",
        "--query", "sea waves=water", "--query", "birds=vegetation", "--progress", "json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    final = json.loads(result.stdout.strip().splitlines()[-1])
    assert final["ok"] is True
    aucs = final["roc_auc"]
    assert set(aucs) == {"sea waves", "birds"}
    assert all(0.0 <= v <= 1.0 for v in aucs.values())
    assert re.search(r"[1-9]\d* water, [1-9]\d* vegetation", final["table"])
    assert "4-band layout" in final["table"] and "no dark-object subtraction" in final["table"]
    assert list(tmp_path.glob("**/*.tmp")) == []
    assert set(DEFAULT_SCENE_QUERIES.values()) == {"water", "vegetation", "bare/built"}
