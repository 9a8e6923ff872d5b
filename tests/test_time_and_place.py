"""Tiles chosen in metres and maps at a month and an hour (issue 9, items 2 and 4).

Ground sizes are checked on real GeoTIFFs in UTM and in degrees. The time-and-place tests use a
tiny Sat2Sound *with* metadata fusion on the real encoders; its fusion output layer, zero at
init (so a fresh model ignores metadata), is set to random weights so that the hour changes
the embedding — plumbing, not quality (docs/time_and_place.md has the trained model).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from geosound.errors import RasterError
from geosound.geo import RasterSource
from geosound.geo.ground import ground_tile, pixel_size_m

ENCODERS = {"image": "efficientnet-lite0@1", "audio": "aisfx@1", "text": "minilm-l6@1"}


def _metadata_checkpoint(path: Path, tile_m: float | None = None, seed: int = 0) -> Path:
    """A tiny random Sat2Sound that takes location and time, with a fusion that is not zero."""
    from geosound.models import build_sat2sound
    from geosound.models.checkpoint import save_checkpoint

    torch.manual_seed(seed)
    model = build_sat2sound("tiny", use_metadata=True)
    assert model.metadata_fusion is not None
    torch.nn.init.normal_(model.metadata_fusion.out.weight, std=0.5)
    info: dict[str, object] = {"note": "random heads and fusion, tests only"}
    if tile_m is not None:
        info["tile_m"] = tile_m
    save_checkpoint(path, model, ENCODERS, info)
    return path


# -- ground sizes ------------------------------------------------------------------------------


def test_pixel_size_in_a_projected_crs_is_its_grid_step(make_raster):
    raster = make_raster(resolution=5.0, crs="EPSG:32614", origin=(500000.0, 5200000.0))
    with RasterSource(raster) as source:
        width, height = pixel_size_m(source)
        # UTM's scale factor 0.9996 at the central meridian: ground = grid / 0.9996
        assert width == pytest.approx(5.0 / 0.9996, rel=1e-4)
        assert height == pytest.approx(width, rel=1e-6)
        tile = ground_tile(source, trained_m=640.0)
    assert (tile.pixels, tile.chosen_by) == (128, "checkpoint")


def test_pixel_size_in_degrees_follows_the_latitude(make_raster):
    # 0.0001° pixels at 60° N: a degree of longitude is half a degree of latitude there.
    raster = make_raster(crs="EPSG:4326", origin=(10.0, 60.0), resolution=1e-4)
    with RasterSource(raster) as source:
        width, height = pixel_size_m(source)
        tile = ground_tile(source, tile_m=100.0, trained_m=640.0)
    assert height == pytest.approx(11.12, rel=0.01)  # 1e-4° of latitude, ~11.1 m
    assert width / height == pytest.approx(np.cos(np.radians(60.0)), rel=0.01)
    assert tile.pixels == round(100.0 / np.sqrt(width * height))
    assert tile.chosen_by == "--tile-m" and tile.tile_m == pytest.approx(100.0, rel=0.1)


def test_pixels_win_and_bad_ground_sizes_name_the_raster(make_raster):
    raster = make_raster(width=100, height=80, resolution=10.0)
    with RasterSource(raster) as source:
        assert ground_tile(source, pixels=32, trained_m=640.0).pixels == 32
        with pytest.raises(RasterError, match="smaller than two pixels") as small:
            ground_tile(source, tile_m=15.0, trained_m=640.0)
        with pytest.raises(RasterError, match="larger than the raster") as large:
            ground_tile(source, tile_m=900.0, trained_m=640.0)  # 90 px > 80 px high
    assert "scene.tif" in str(small.value) and "scene.tif" in str(large.value)


# -- time and place ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def timed_map(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A metadata checkpoint trained (it says) on 320 m tiles, and a map at 05:00 and 23:00."""
    from geosound.mapping.maps import map_region

    root = tmp_path_factory.mktemp("timeplace")
    source = Path(__file__).resolve().parent / "data" / "utm_rgb8.tif"  # 256x192 px, 10 m
    raster = root / "scene.tif"
    raster.write_bytes(source.read_bytes())
    checkpoint = _metadata_checkpoint(root / "timed.pt", tile_m=320.0)
    out = root / "out"
    result = map_region(
        raster, out, texts=["birds singing", "crickets at night"], concepts=True,
        checkpoint=checkpoint, hours=[5.0, 23.0], month=5,
    )  # fmt: skip
    return {"root": root, "raster": raster, "checkpoint": checkpoint, "out": out,
            "result": result}  # fmt: skip


@pytest.mark.slow
def test_default_tile_is_the_checkpoints_ground_size_and_the_sidecar_says_so(timed_map):
    sidecar = json.loads((timed_map["out"] / "map.json").read_text())
    tiling = sidecar["tiling"]
    assert tiling["tile_size"] == 32 and tiling["tile_chosen_by"] == "checkpoint"
    assert tiling["tile_m_asked"] == 320.0 and tiling["tile_m"] == pytest.approx(320.0, rel=0.01)
    assert sidecar["time_and_place"]["times"] == [
        {"month": 5, "hour": 5.0},
        {"month": 5, "hour": 23.0},
    ]


@pytest.mark.slow
def test_one_layer_per_hour_and_the_hours_differ(timed_map):
    out = timed_map["out"]
    with rasterio.open(out / "similarity.tif") as src:
        bands = src.read()
        names = src.descriptions
    assert names == (
        "similarity: text: birds singing @ month 5 05:00",
        "similarity: text: crickets at night @ month 5 05:00",
        "similarity: text: birds singing @ month 5 23:00",
        "similarity: text: crickets at night @ month 5 23:00",
    )
    valid = bands[0] != -9999
    assert valid.any()
    assert not np.allclose(bands[0][valid], bands[2][valid], atol=1e-4)  # 05:00 vs 23:00
    for name in ("concepts_h05.tif", "concepts_h23.tif", "concept_weight_h05.tif"):
        assert (out / name).is_file(), name
    with rasterio.open(out / "probability.tif") as src:
        probability = src.read()
    # a softmax over the queries of one hour, never across hours
    assert np.allclose(probability[:2].sum(axis=0)[valid], 1.0, atol=1e-5)
    assert np.allclose(probability[2:].sum(axis=0)[valid], 1.0, atol=1e-5)


@pytest.mark.slow
def test_cached_tiles_at_an_hour_equal_the_place_embedded_at_that_hour(timed_map):
    """The cache holds no hour: 05:00 from its time-free part is the direct 05:00 encode."""
    from geosound.mapping.synthesis import embedding_from_region_cache, place_embedding_from_raster
    from geosound.mapping.timeplace import Moment
    from geosound.space.shared import load_shared_space

    space = load_shared_space(str(timed_map["checkpoint"].resolve()))
    cache = timed_map["out"] / "region_cache.zarr"
    with RasterSource(timed_map["raster"]) as source:
        x, y = source.transform @ (2 * 32 + 16, 1 * 32 + 16)  # the centre of tile (1, 2)
        crs = source.crs.to_string()
    at = {}
    for hour in (5.0, 23.0, None):
        moment = Moment(5 if hour is not None else None, hour)
        cached = embedding_from_region_cache(cache, x, y, crs, space=space, moment=moment)
        direct = place_embedding_from_raster(
            space, timed_map["raster"], x, y, crs, chip_size=32, moment=moment
        )
        np.testing.assert_allclose(cached, direct, atol=1e-5)
        at[hour] = cached
    assert not np.allclose(at[5.0], at[23.0], atol=1e-4)
    assert not np.allclose(at[5.0], at[None], atol=1e-4)


@pytest.mark.slow
def test_another_hour_on_the_same_cache_reencodes_nothing(timed_map):
    from geosound.mapping.maps import map_region

    out = timed_map["out"]
    markers = sorted((out / "region_cache.zarr" / "_geosound_done").iterdir())
    stamps = [m.stat().st_mtime_ns for m in markers]
    again = map_region(
        timed_map["raster"], out, texts=["birds singing"], checkpoint=timed_map["checkpoint"],
        hours=[12.0],
    )  # fmt: skip
    assert [m.stat().st_mtime_ns for m in markers] == stamps
    assert again.queries is not None
    assert [str(b) for b in again.queries["band"].values] == ["text: birds singing @ 12:00"]
    noon = again.queries["similarity"].values[0]
    dawn = timed_map["result"].queries["similarity"].values[0]
    both = ~np.isnan(noon) & ~np.isnan(dawn)
    assert both.any() and not np.allclose(noon[both], dawn[both], atol=1e-4)


@pytest.mark.slow
def test_a_model_without_metadata_refuses_an_hour_in_the_library(tmp_path, random_checkpoint):
    from geosound.errors import InputError
    from geosound.mapping.maps import map_region

    checkpoint = random_checkpoint(tmp_path / "plain.pt", seed=1)
    source = Path(__file__).resolve().parent / "data" / "utm_rgb8.tif"
    with pytest.raises(InputError, match="without location and time"):
        map_region(source, tmp_path / "out", texts=["rain"], checkpoint=checkpoint, hours=[5.0])
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_synthesize_at_an_hour_from_the_raster_and_from_the_cache(timed_map, run_cli):
    import pandas as pd
    import soundfile as sf

    from geosound.retrieval.bank import AudioBank
    from geosound.space.shared import load_shared_space

    root, checkpoint = timed_map["root"], timed_map["checkpoint"]
    space = load_shared_space(str(checkpoint.resolve()))
    paths = []
    for i, frequency in enumerate((300.0, 900.0)):
        path = root / f"tone{i}.wav"
        sf.write(path, 0.3 * np.sin(2 * np.pi * frequency * np.arange(16000) / 16000), 16000)
        paths.append(str(path))
    vectors = np.random.default_rng(0).standard_normal((2, space.dim)).astype(np.float32)
    bank = AudioBank.build(vectors, pd.DataFrame({"path": paths}), space.space_id, kind="flat")
    bank.save(root / "bank")
    with RasterSource(timed_map["raster"]) as source:
        x, y = source.transform @ (80, 48)
        crs = source.crs.to_string()
    common = ("synthesize", "--bank", str(root / "bank"), "--checkpoint", str(checkpoint),
              "--x", str(x), "--y", str(y), "--crs", crs, "--hour", "5", "--k", "1")  # fmt: skip
    from_raster = run_cli(*common, "--raster", str(timed_map["raster"]), "--tile-m", "320",
                          "-o", str(root / "raster.wav"))  # fmt: skip
    assert from_raster.returncode == 0, from_raster.stderr
    from_cache = run_cli(*common, "--embedding-cache", str(timed_map["out"] / "region_cache.zarr"),
                         "-o", str(root / "cache.wav"))  # fmt: skip
    assert from_cache.returncode == 0, from_cache.stderr
    raster_point = json.loads((root / "raster.json").read_text())["point"]
    cache_point = json.loads((root / "cache.json").read_text())["point"]
    assert raster_point["time"] == cache_point["time"] == {"month": None, "hour": 5.0}
    assert raster_point["chip_size"] == 32  # 320 m at 10 m


@pytest.mark.slow
def test_bench_timeplace_runs_and_both_ways_agree(run_benchmark):
    lines, result = run_benchmark("bench_timeplace")
    assert result["same_embeddings"] is True
    assert result["tiles"] == 16 and result["tokens_per_tile"] == 4
    assert any("per hour" in line for line in lines)
