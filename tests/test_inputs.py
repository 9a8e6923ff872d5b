"""Hostile-but-realistic inputs (issue 14, item 4): each is handled or refused by name.

NaN/Inf pixels are nodata; rasters that cannot give one valid tile, truncated tiles and
recordings, and checkpoints whose weights no longer match their id are refused with an
InputError naming the file; long recordings stream in flat memory; previews of many queries
stay small; rasters across the antimeridian take points given either side of it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import soundfile as sf
import torch
import xarray as xr
from PIL import Image
from rasterio.transform import from_origin

from geosound.audio import audio_blocks, check_audio, load_audio, read_header
from geosound.data.pairs_table import manifest_from_pairs_table
from geosound.data.sonify import check_inputs_whole
from geosound.errors import AudioError, DataError, InputError, OutsideRasterError, RasterError
from geosound.geo import (
    BandPreset,
    RasterSource,
    check_readable,
    check_tileable,
    chip_windows,
    points_inside,
    tile_grid,
)
from geosound.mapping.embed import embed_tiles
from geosound.mapping.preview import MAX_PREVIEW_LAYERS, write_layers_preview
from geosound.models.checkpoint import load_checkpoint

STRETCH = BandPreset("stretch-rgb", (1, 2, 3), None, "test")


def write_raster(
    path: Path,
    data: np.ndarray,
    crs: str = "EPSG:32632",
    transform: rasterio.Affine | None = None,
    nodata: float | None = None,
) -> Path:
    """A GeoTIFF of ``data`` (bands, rows, cols) as given."""
    profile = {
        "driver": "GTiff",
        "count": data.shape[0],
        "height": data.shape[1],
        "width": data.shape[2],
        "dtype": str(data.dtype),
        "crs": crs,
        "transform": transform or from_origin(500000.0, 5200000.0, 10.0, 10.0),
        "nodata": nodata,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def float_scene(height: int = 64, width: int = 96, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((3, height, width)) * 1000.0).astype(np.float32)


def per_tile_embed(rgb: np.ndarray) -> np.ndarray:
    """A per-tile embedding (mean and spread per channel): what a tile gets alone or in a batch.

    Any NaN reaching it would come out as NaN, so it shows where NaN pixels go.
    """
    return np.concatenate([rgb.mean(axis=(2, 3)), rgb.std(axis=(2, 3))], axis=1)


# ------------------------------------------------------------------ NaN / Inf pixels


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_pixels_are_read_as_nodata(tmp_path: Path, bad: float):
    data = float_scene()
    data[1, 5, 7] = bad
    with RasterSource(write_raster(tmp_path / "holes.tif", data)) as src:
        block = src.read_window(rasterio.windows.Window(0, 0, 16, 16))
        padded = src.read_window(rasterio.windows.Window(-4, -4, 16, 16))
        decimated = src.read_decimated()
        percentiles = src.band_percentiles((1, 2, 3))
    assert block.mask[1, 5, 7] and block.mask.sum() == 1
    assert np.isfinite(block.data).all()
    assert padded.mask[1, 9, 11] and np.isfinite(padded.data).all()
    assert np.isfinite(decimated.filled(0)).all() and decimated.mask.sum() == 1
    assert np.isfinite(percentiles).all()


def test_a_nan_tile_leaves_the_rest_of_its_batch_as_it_is_alone(tmp_path: Path):
    data = float_scene()
    data[0, 3, 40] = np.nan  # in tile (0, 1) of the 32-pixel grid
    with RasterSource(write_raster(tmp_path / "nan.tif", data)) as src:
        grid = tile_grid(src, 32)
        batch = embed_tiles(src, grid, per_tile_embed, 6, STRETCH, batch_size=64)
        alone = np.concatenate(
            [embed_tiles(src, grid.iloc[[i]], per_tile_embed, 6, STRETCH) for i in range(len(grid))]
        )
    assert len(grid) == 6
    assert np.isfinite(batch).all()  # the NaN tile too: one masked pixel, filled like nodata
    np.testing.assert_array_equal(batch, alone)


def test_a_tile_of_nan_pixels_is_nodata_and_the_others_are_kept(tmp_path: Path):
    data = float_scene()
    data[:, :32, :32] = np.nan
    with RasterSource(write_raster(tmp_path / "nan.tif", data)) as src:
        grid = tile_grid(src, 32)
        embedded = embed_tiles(src, grid, per_tile_embed, 6, STRETCH)
    assert np.isnan(embedded[0]).all()
    assert np.isfinite(embedded[1:]).all()


@pytest.mark.slow
def test_map_of_a_float_raster_with_nan_pixels_and_no_nodata_tag(tmp_path: Path, run_cli):
    data = float_scene(128, 128)
    data[:, 10, 10] = np.nan
    data[:, 64:, 64:] = np.nan  # a whole quarter: its tiles are nodata
    raster = write_raster(tmp_path / "nan.tif", data)
    result = run_cli("map", str(raster), "-o", str(tmp_path / "out"), "-t", "birds",
                     "--tile", "32", "--progress", "none")  # fmt: skip
    assert result.returncode == 0, result.stderr
    with rasterio.open(tmp_path / "out" / "similarity.tif") as layer:
        values = layer.read(1, masked=True)
    assert values.shape == (4, 4)
    assert values.mask[2:, 2:].all() and not values.mask[:2].any()
    assert np.isfinite(values.compressed()).all()


# ------------------------------------------------------------------ rasters with no tile to map


def test_a_raster_smaller_than_a_tile_is_refused_by_name(tmp_path: Path):
    tiny = write_raster(tmp_path / "one_pixel.tif", np.ones((3, 1, 1), np.uint8))
    with RasterSource(tiny) as src, pytest.raises(RasterError) as info:
        check_tileable(src, 64)
    assert "one_pixel.tif" in str(info.value) and "too small" in str(info.value)
    assert isinstance(info.value, InputError)


def test_a_raster_covering_half_a_tile_is_still_mapped(tmp_path: Path):
    # 32 x 64 pixels cover half a 64-pixel tile: the edge tile is embedded, so it is mappable.
    half = write_raster(tmp_path / "half.tif", np.ones((3, 32, 64), np.uint8))
    with RasterSource(half) as src:
        check_tileable(src, 64)
    narrower = write_raster(tmp_path / "narrower.tif", np.ones((3, 31, 64), np.uint8))
    with RasterSource(narrower) as src, pytest.raises(RasterError, match="too small"):
        check_tileable(src, 64)


@pytest.mark.parametrize("kind", ["nodata tag", "nan"])
def test_an_all_nodata_raster_is_refused_by_name(tmp_path: Path, kind: str):
    if kind == "nan":
        path = write_raster(tmp_path / "empty.tif", np.full((3, 80, 80), np.nan, np.float32))
    else:
        path = write_raster(tmp_path / "empty.tif", np.zeros((3, 80, 80), np.uint8), nodata=0)
    with RasterSource(path) as src, pytest.raises(RasterError) as info:
        check_tileable(src, 32)
    assert "empty.tif" in str(info.value) and "nodata" in str(info.value)


def test_one_valid_pixel_that_a_decimated_read_misses_is_found(tmp_path: Path):
    data = np.zeros((1, 2000, 2000), np.uint8)
    data[0, 1000, 1000] = 7  # a pixel the nearest-neighbour decimation skips
    path = write_raster(tmp_path / "sparse.tif", data, nodata=0)
    with RasterSource(path) as src:
        assert np.ma.getmaskarray(src.read_decimated(max_size=512)).all()  # missed there
        check_tileable(src, 64)


def test_an_area_of_interest_of_nodata_is_refused(tmp_path: Path):
    data = np.zeros((3, 96, 96), np.uint8)
    data[:, :32, :32] = 100  # valid only in the top-left tile
    path = write_raster(tmp_path / "corner.tif", data, nodata=0)
    with RasterSource(path) as src:
        check_tileable(src, 32)
        check_tileable(src, 32, bounds=(500000.0, 5199700.0, 500300.0, 5200000.0))
        with pytest.raises(RasterError, match="area of interest is nodata"):
            check_tileable(src, 32, bounds=(500650.0, 5199050.0, 500950.0, 5199350.0))


# ------------------------------------------------------------------ long recordings


def _long_recording(path: Path, seconds: float, rate: int = 16000, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    sweep = 0.3 * np.sin(2 * np.pi * (200 + 40 * t) * t)
    sf.write(path, sweep + 0.05 * rng.standard_normal(t.size), rate, subtype="PCM_16")
    return path


def test_audio_blocks_give_the_samples_load_audio_gives(tmp_path: Path):
    path = tmp_path / "stereo.flac"
    rng = np.random.default_rng(3)
    sf.write(path, 0.2 * rng.standard_normal((40000, 2)), 16000)
    whole = load_audio(path, sample_rate=None)
    blocks = list(audio_blocks(path, block_frames=7000))
    assert [b.shape[0] for b in blocks] == [7000] * 5 + [5000]
    np.testing.assert_array_equal(np.concatenate(blocks), whole.samples)
    header = read_header(path)
    assert (header.frames, header.sample_rate, header.channels) == (40000, 16000, 2)


def test_audio_blocks_refuse_what_load_audio_refuses(tmp_path: Path):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000, np.float32), 16000)
    with pytest.raises(AudioError, match=r"silent\.wav: is silent"):
        list(audio_blocks(silent))
    assert check_audio(silent).frames == 16000  # decodable: check_audio accepts silence
    cut = _long_recording(tmp_path / "cut.flac", 3.0)
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    with pytest.raises(AudioError, match=r"cut\.flac: truncated or corrupt"):
        check_audio(cut)


@pytest.mark.slow
def test_a_streamed_long_recording_embeds_as_the_whole_file(tmp_path: Path):
    from geosound.encoders import get_encoder

    encoder = get_encoder("aisfx")
    for name, rate, seconds in (("a.wav", 16000, 21.7), ("b.flac", 44100, 12.3)):
        path = _long_recording(tmp_path / name, seconds, rate)
        whole = encoder.encode([load_audio(path, sample_rate=None)]).pooled.numpy()[0]
        assert encoder.pooled_long(path) is None  # short: left to the whole-clip path
        streamed = encoder.pooled_long(path, min_seconds=1.0, window_seconds=2.5)
        assert streamed is not None and streamed.shape == whole.shape
        np.testing.assert_allclose(streamed, whole, rtol=0, atol=1e-5)


PEAK_RSS = """
import resource, sys
from geosound.cli.app import main
try:
    main(sys.argv[1:])
except SystemExit as exit:
    assert not exit.code, exit.code
print("peak_kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.slow
def test_audio_embed_memory_is_flat_in_the_recording_length(tmp_path: Path):
    """1 and 10 minutes: peak RSS may not grow by 300 MB (it grew by ~3.5 GB before).

    Streamed, both peak near 600 MB; the margin covers run-to-run noise of the allocator
    and thread pools (up to ~150 MB seen), while a growth of even 0.6 MB per second of
    audio (a tenth of what whole-file encoding needed) would fail.
    """
    peaks = {}
    for minutes in (1, 10):
        path = _long_recording(tmp_path / f"rec_{minutes}.wav", 60.0 * minutes)
        out = tmp_path / f"rec_{minutes}.npz"
        result = subprocess.run(
            [sys.executable, "-c", PEAK_RSS, "audio", "embed", str(path), "-o", str(out),
             "--progress", "none"],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        peaks[minutes] = int(result.stdout.split("peak_kb")[-1]) / 1024
        assert np.load(out)["embeddings"].shape == (1, 512)
    assert peaks[10] - peaks[1] < 300, peaks


# ------------------------------------------------------------------ many queries


def _layers(bands: int, height: int = 20, width: int = 30) -> xr.DataArray:
    values = np.random.default_rng(0).random((bands, height, width)).astype(np.float32)
    return xr.DataArray(
        values,
        dims=("band", "y", "x"),
        coords={
            "band": [f"query {i}" for i in range(bands)],
            "y": 5200000.0 - 10.0 * np.arange(height),
            "x": 500000.0 + 10.0 * np.arange(width),
        },
    )


def test_a_preview_of_1000_queries_is_a_contact_sheet_that_says_so(tmp_path: Path):
    start = time.perf_counter()
    path = write_layers_preview(tmp_path / "many.png", _layers(1000), note="test layers")
    assert time.perf_counter() - start < 60  # drawing 1000 panels took minutes
    with Image.open(path) as image:
        text = image.text.get("Description", "")
        width, height = image.size
    assert f"first {MAX_PREVIEW_LAYERS} of 1000" in text and "COG" in text
    assert height < 3000 and width < 3000


def test_a_preview_of_few_queries_shows_them_all(tmp_path: Path):
    path = write_layers_preview(tmp_path / "few.png", _layers(MAX_PREVIEW_LAYERS))
    with Image.open(path) as image:
        assert "Description" not in image.text


# ------------------------------------------------------------------ truncated inputs


def test_pairs_refuses_a_truncated_flac_by_name(raster_pairs: tuple[Path, Path]):
    table, raster = raster_pairs
    frame = pd.read_csv(table)
    column = next(c for c in ("audio", "audio_path", "recording") if c in frame.columns)
    victim = (table.parent / str(frame[column].iloc[1])).resolve()
    flac = victim.with_suffix(".flac")
    sf.write(flac, load_audio(victim, sample_rate=None).samples, 16000)
    flac.write_bytes(flac.read_bytes()[: flac.stat().st_size // 2])
    frame.loc[1, column] = os.path.relpath(flac, table.parent)
    frame.to_csv(table, index=False)
    with pytest.raises(DataError) as info:
        manifest_from_pairs_table(table, imagery=raster)
    message = str(info.value)
    assert flac.name in message and "truncated or corrupt" in message and "row 1" in message
    assert isinstance(info.value, InputError)


def _cut_tile(tmp_path: Path) -> Path:
    tile = write_raster(tmp_path / "Forest_1.tif", (float_scene(64, 64) * 3).astype(np.uint16))
    tile.write_bytes(tile.read_bytes()[: tile.stat().st_size // 2])
    return tile


def test_a_truncated_tile_is_named_before_it_is_paired(tmp_path: Path):
    good = write_raster(tmp_path / "Forest_0.tif", (float_scene(64, 64) * 3).astype(np.uint16))
    assert check_readable(good).width == 64
    cut = _cut_tile(tmp_path)
    clip = _long_recording(tmp_path / "clip.wav", 1.0)
    with pytest.raises(RasterError) as info:
        check_inputs_whole([str(good), str(cut)], [str(clip)])
    assert "Forest_1.tif" in str(info.value) and "truncated or corrupt" in str(info.value)
    bad_clip = _long_recording(tmp_path / "bad.flac", 2.0)
    bad_clip.write_bytes(bad_clip.read_bytes()[:2000])
    with pytest.raises(AudioError, match=r"bad\.flac"):
        check_inputs_whole([str(good)], [str(clip), str(bad_clip)])


@pytest.mark.slow
def test_sonify_refuses_a_truncated_dev_tile(tmp_path: Path, run_cli):
    tiles = tmp_path / "dev" / "eurosat_ms_geotiff"
    clips = tmp_path / "dev" / "esc50_outdoor_16k"
    tiles.mkdir(parents=True)
    clips.mkdir(parents=True)
    write_raster(tiles / "Forest_0.tif", (float_scene(64, 64) * 3).astype(np.uint16))
    _cut_tile(tiles)
    pd.DataFrame(
        {
            "filename": ["Forest_0.tif", "Forest_1.tif"], "eurosat_class": ["Forest"] * 2,
            "orig_split": ["train"] * 2, "crs": ["EPSG:32632"] * 2,
            "center_lon": [9.0, 9.01], "center_lat": [46.9] * 2,
            "lon_min": [8.99, 9.0], "lat_min": [46.89] * 2,
            "lon_max": [9.0, 9.02], "lat_max": [46.91] * 2,
        }
    ).to_csv(tiles / "index.csv", index=False)  # fmt: skip
    _long_recording(clips / "wind.flac", 5.0)
    pd.DataFrame(
        {"filename": ["wind.flac"], "class": ["wind"], "fold": [1], "target": [16],
         "freesound_id": [1], "license": ["CC BY"]}
    ).to_csv(clips / "index.csv", index=False)  # fmt: skip
    out = tmp_path / "pairs.parquet"
    result = run_cli("sonify", "-o", str(out), "--data-dir", str(tmp_path / "dev"),
                     "--progress", "none")  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Forest_1.tif" in lines[-1] and "truncated or corrupt" in lines[-1], result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


# ------------------------------------------------------------------ checkpoint ids


def test_a_hand_edited_checkpoint_is_refused_by_name(tmp_path: Path, random_checkpoint):
    path = random_checkpoint(tmp_path / "model.pt", 0)
    original = load_checkpoint(path)
    payload = torch.load(path, map_location="cpu", weights_only=True)
    name = next(k for k, v in payload["state_dict"].items() if v.is_floating_point())
    payload["state_dict"][name] = payload["state_dict"][name] + 0.01
    edited = tmp_path / "edited.pt"
    torch.save(payload, edited)
    with pytest.raises(InputError) as info:
        load_checkpoint(edited)
    message = str(info.value)
    assert "edited.pt" in message and original.model_id in message
    del payload["model_id"]
    torch.save(payload, edited)
    with pytest.raises(InputError, match=r"edited\.pt: checkpoint records model id None"):
        load_checkpoint(edited)


def test_shipped_checkpoint_ids_are_those_of_their_weights():
    from geosound.config import assets_dir
    from geosound.models.checkpoint import model_fingerprint
    from geosound.models.default import DEFAULT_CHECKPOINT, NO_CODEBOOK_CHECKPOINT

    for name in (DEFAULT_CHECKPOINT, NO_CODEBOOK_CHECKPOINT):
        payload = torch.load(assets_dir() / name, map_location="cpu", weights_only=True)
        loaded = load_checkpoint(assets_dir() / name)
        assert loaded.model_id == payload["model_id"]
        assert loaded.model_id == f"sat2sound-{model_fingerprint(loaded.model)}"


# ------------------------------------------------------------------ the antimeridian


def _antimeridian_raster(tmp_path: Path) -> Path:
    """EPSG:4326, 179.5° E to 180.5° E (i.e. −179.5°), 0.1° pixels, 10 x 10."""
    data = np.arange(300, dtype=np.uint8).reshape(3, 10, 10)
    return write_raster(
        tmp_path / "dateline.tif", data, "EPSG:4326", from_origin(179.5, 0.5, 0.1, 0.1)
    )


def test_a_point_east_of_the_antimeridian_falls_on_a_raster_that_spans_it(tmp_path: Path):
    with RasterSource(_antimeridian_raster(tmp_path)) as src:
        cols, rows = points_inside(src, [(-179.7, 0.05), (179.7, 0.05), (180.3, -0.05)])
        np.testing.assert_allclose(cols, [8.0, 2.0, 8.0], atol=1e-9)
        np.testing.assert_allclose(rows, [4.5, 4.5, 5.5], atol=1e-9)
        # The same place given in web mercator, too.
        from pyproj import Transformer

        x, y = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True).transform(
            -179.7, 0.05
        )
        col, _ = points_inside(src, [(x, y)], crs="EPSG:3857")
        assert col[0] == pytest.approx(8.0, abs=1e-6)
        window = chip_windows(src, [(-179.7, 0.05)], 4)[0]
        assert (window.col_off, window.row_off) == (6, 2)
        with pytest.raises(OutsideRasterError, match=r"dateline\.tif"):
            points_inside(src, [(-179.0, 0.0)])  # 181° E: past the raster's east edge


def test_rasters_that_do_not_cross_the_antimeridian_are_unchanged(tmp_path: Path):
    data = np.ones((3, 10, 10), np.uint8)
    path = write_raster(tmp_path / "east.tif", data, "EPSG:4326", from_origin(179.0, 0.5, 0.1, 0.1))
    with RasterSource(path) as src:
        with pytest.raises(OutsideRasterError):
            points_inside(src, [(-179.7, 0.0)])
        cols, _ = points_inside(src, [(179.55, 0.0)])
        assert cols[0] == pytest.approx(5.5)


@pytest.mark.slow
def test_the_cli_chips_a_point_across_the_antimeridian(tmp_path: Path, run_cli):
    raster = _antimeridian_raster(tmp_path)
    out = tmp_path / "chip.tif"
    result = run_cli("chip", str(raster), "--x", "-179.7", "--y", "0.05", "--size", "4",
                     "-o", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    with rasterio.open(out) as chip:
        assert chip.width == 4 and chip.bounds.left == pytest.approx(180.1)
        assert chip.read().shape == (3, 4, 4)
