"""Soundscape synthesis by retrieval (geosound/mapping/synthesis.py, ``geosound synthesize``).

The model is a tiny Sat2Sound with random heads on the real encoders (plumbing, not quality);
the bank holds real WAVs written here, indexed under random unit vectors of the model's space
so that which clip ranks first is known; the raster is a small uint8 RGB GeoTIFF in UTM.
Tests that run the image encoder are marked slow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import soundfile as sf
from pyproj import Transformer
from rasterio.transform import from_origin
from shapely.geometry import LineString, Point

from geosound.audio import load_audio, measure_lufs, normalize_lufs
from geosound.errors import InputError, OutsideRasterError
from geosound.mapping.synthesis import (
    METHOD_NOTE,
    SOURCE_COLUMNS,
    embedding_from_region_cache,
    loop_to_length,
    place_embedding_from_raster,
    synthesize_at,
    synthesize_points,
    write_points_layer,
    write_synthesis,
)
from geosound.models.checkpoint import load_checkpoint
from geosound.retrieval.bank import AudioBank
from geosound.space.shared import SharedSpace

SR = 16000
RASTER_CRS = "EPSG:32633"
ORIGIN = (500000.0, 5800000.0)  # UTM 33N: about 15° E, 52.3° N
PIXEL = 10.0
SIZE = 96
LICENCES = ["CC0-1.0", "CC-BY-4.0", "CC-BY-NC-4.0", "CC0-1.0"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, random_checkpoint) -> dict:
    """Checkpoint, space, clips, a saved bank and a raster, shared by the module's tests."""
    root = tmp_path_factory.mktemp("synthesis")
    checkpoint = random_checkpoint(root / "model.pt", seed=0)
    space = SharedSpace(load_checkpoint(checkpoint), cache_root=root / "cache")

    clips = root / "clips"
    clips.mkdir()
    rng = np.random.default_rng(0)
    t2, t3 = np.arange(2 * SR) / SR, np.arange(int(1.5 * SR)) / SR
    signals = {
        "tone.wav": 0.3 * np.sin(2 * np.pi * 440 * t2),  # 2 s: looped
        "noise.wav": 0.1 * rng.standard_normal(3 * SR),  # 3 s: looped
        "chirp.wav": 0.3 * np.sin(2 * np.pi * (300 + 900 * t3) * t3),  # 1.5 s: looped
        "rumble.wav": 0.2 * np.sin(2 * np.pi * 60 * np.arange(12 * SR) / SR),  # 12 s: trimmed
    }
    paths = []
    for name, signal in signals.items():
        sf.write(clips / name, signal.astype(np.float32), SR)
        paths.append(str(clips / name))
    vectors = rng.standard_normal((len(paths), space.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    metadata = pd.DataFrame(
        {"path": paths, "label": [n.split(".")[0] for n in signals], "licence": LICENCES}
    )
    bank = AudioBank.build(vectors, metadata, space.space_id, kind="flat")
    bank.save(root / "bank")

    raster = root / "scene.tif"
    pixels = rng.integers(0, 256, size=(3, SIZE, SIZE), dtype=np.uint8)
    profile = {
        "driver": "GTiff",
        "width": SIZE,
        "height": SIZE,
        "count": 3,
        "dtype": "uint8",
        "crs": RASTER_CRS,
        "transform": from_origin(*ORIGIN, PIXEL, PIXEL),
    }
    with rasterio.open(raster, "w", **profile) as dst:
        dst.write(pixels)
    return {
        "root": root,
        "checkpoint": checkpoint,
        "space": space,
        "bank": bank,
        "bank_dir": root / "bank",
        "vectors": vectors,
        "paths": paths,
        "raster": raster,
    }


# ``geosound synthesize`` as a user runs it, in a subprocess. The command is registered here
# if geosound/cli/app.py does not register it yet (the app is owned elsewhere); once it does,
# this is the same as the ``run_cli("synthesize", ...)`` fixture.
_CLI = (
    "import sys\n"
    "from geosound.cli.app import app, main\n"
    "from geosound.cli.synthesize import synthesize_command\n"
    "if not any(c.name == 'synthesize' for c in app.registered_commands):\n"
    "    app.command('synthesize')(synthesize_command)\n"
    "main(sys.argv[1:])\n"
)


def run_synthesize(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _CLI, "synthesize", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=600,
    )


def near(world: dict, row: int, seed: int = 1) -> np.ndarray:
    """A place embedding whose nearest bank clip is ``row``."""
    noise = np.random.default_rng(seed).standard_normal(world["vectors"].shape[1])
    return world["vectors"][row] + 0.05 * noise.astype(np.float32)


def raster_xy_to_lonlat(x: float, y: float) -> tuple[float, float]:
    return Transformer.from_crs(RASTER_CRS, "EPSG:4326", always_xy=True).transform(x, y)


def centre_lonlat() -> tuple[float, float]:
    half = SIZE * PIXEL / 2
    return raster_xy_to_lonlat(ORIGIN[0] + half, ORIGIN[1] - half)


# --------------------------------------------------------------------------- one place


def test_mix_is_top_k_real_clips_with_rank_one_loudest(world: dict):
    synthesis = synthesize_at(world["space"], world["bank"], near(world, 1), k=3, seed=7)

    clip = synthesis.clip
    assert clip.sample_rate == SR and clip.samples.shape == (10 * SR,)
    assert float(np.max(np.abs(clip.samples))) <= 0.99 + 1e-6
    table = synthesis.sources
    assert list(table.columns) == list(SOURCE_COLUMNS)
    assert table["rank"].tolist() == [1, 2, 3]
    assert table["path"].iloc[0] == world["paths"][1]
    assert table["licence"].iloc[0] == LICENCES[1] and table["licence"].notna().all()
    targets = table["target_lufs"].to_numpy()
    assert np.all(np.diff(targets) < 0) and targets.min() >= -26 and targets.max() <= -20

    # Rebuild the mix from the table: each source looped to 10 s, normalised to its target.
    contributions = [
        normalize_lufs(loop_to_length(load_audio(path).samples, 10 * SR, SR), SR, target)
        for path, target in zip(table["path"], targets, strict=True)
    ]
    total = np.sum(contributions, axis=0, dtype=np.float64)
    total *= min(1.0, 0.99 / np.max(np.abs(total)))
    np.testing.assert_allclose(clip.samples, total, atol=1e-5)
    loudness = [measure_lufs(c, SR) for c in contributions]
    assert loudness == sorted(loudness, reverse=True)
    np.testing.assert_allclose(loudness, targets, atol=0.05)


def test_same_seed_same_mix_other_seed_other_balance(world: dict):
    place = near(world, 2)
    first = synthesize_at(world["space"], world["bank"], place, k=3, seconds=3.0, seed=5)
    again = synthesize_at(world["space"], world["bank"], place, k=3, seconds=3.0, seed=5)
    other = synthesize_at(world["space"], world["bank"], place, k=3, seconds=3.0, seed=6)
    assert np.array_equal(first.clip.samples, again.clip.samples)
    pd.testing.assert_frame_equal(first.sources, again.sources)
    assert not np.allclose(first.sources["target_lufs"], other.sources["target_lufs"])
    assert first.sources["path"].tolist() == other.sources["path"].tolist()


def test_loud_targets_are_scaled_as_a_whole_not_clipped(world: dict):
    loud = synthesize_at(
        world["space"], world["bank"], near(world, 0), k=4, seconds=2.0, lufs_range=(-8, -6)
    )
    peak = float(np.max(np.abs(loud.clip.samples)))
    assert peak == pytest.approx(0.99, abs=1e-5)


def test_write_synthesis_writes_wav_and_sidecar_with_licences(world: dict, tmp_path: Path):
    point = {"x": 15.0, "y": 52.3, "crs": "EPSG:4326"}
    synthesis = synthesize_at(world["space"], world["bank"], near(world, 3), k=3, point=point)
    wav, sidecar = write_synthesis(synthesis, tmp_path / "place.wav")

    assert sidecar == tmp_path / "place.json"
    info = sf.info(wav)
    assert info.samplerate == SR and info.frames == 10 * SR and info.channels == 1
    assert float(np.max(np.abs(sf.read(wav)[0]))) <= 0.99 + 1 / 32768
    meta = json.loads(sidecar.read_text())
    assert meta["method"] == METHOD_NOTE and "not generated audio" in meta["method"]
    assert meta["space_id"] == world["space"].space_id
    assert meta["point"] == point
    assert meta["parameters"]["k"] == 3 and meta["parameters"]["seed"] == 0
    assert len(meta["sources"]) == 3
    assert all(s["licence"] in LICENCES and Path(s["path"]).exists() for s in meta["sources"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["place.json", "place.wav"]


def test_min_score_above_every_match_is_refused(world: dict):
    with pytest.raises(InputError, match="min_score"):
        synthesize_at(world["space"], world["bank"], near(world, 0), min_score=0.9999)


def test_point_outside_the_raster_fails_before_embedding(world: dict):
    with pytest.raises(OutsideRasterError, match="outside the raster") as caught:
        place_embedding_from_raster(world["space"], world["raster"], 0.0, 0.0)
    assert "scene.tif" in str(caught.value)


def test_layer_with_a_point_outside_names_it_and_writes_nothing(world: dict, tmp_path: Path):
    lon, lat = centre_lonlat()
    layer = gpd.GeoDataFrame(
        {"name": ["inside", "far"]}, geometry=[Point(lon, lat), Point(2.35, 48.85)], crs=4326
    )
    out = tmp_path / "sounds"
    with pytest.raises(OutsideRasterError, match="far"):
        synthesize_points(
            world["space"], world["bank"], world["raster"], layer, out, id_column="name"
        )
    assert not out.exists()


def test_layer_needs_points_and_distinct_ids(world: dict, tmp_path: Path):
    lon, lat = centre_lonlat()
    line = gpd.GeoDataFrame(
        {"name": ["a"]}, geometry=[LineString([(lon, lat), (lon, lat + 1e-4)])], crs=4326
    )
    with pytest.raises(InputError, match="not a point: a"):
        synthesize_points(
            world["space"], world["bank"], world["raster"], line, tmp_path / "o", id_column="name"
        )
    twins = gpd.GeoDataFrame({"name": ["x", "x"]}, geometry=[Point(lon, lat)] * 2, crs=4326)
    with pytest.raises(InputError, match="distinct id"):
        synthesize_points(
            world["space"], world["bank"], world["raster"], twins, tmp_path / "o", id_column="name"
        )
    assert not (tmp_path / "o").exists()


def test_a_failed_write_leaves_no_partial_folder(
    world: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import geosound.mapping.synthesis as synthesis_module

    layer = gpd.GeoDataFrame(geometry=[Point(15.0, 52.3)] * 3, crs=4326)
    places = np.stack([near(world, row) for row in (0, 1, 2)])
    real_write = synthesis_module.write_audio
    calls = []

    def failing_write(path, clip):  # the disk fills up at the second point
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_write(path, clip)

    monkeypatch.setattr(synthesis_module, "write_audio", failing_write)
    out = tmp_path / "sounds"
    with pytest.raises(OSError, match="No space"):
        synthesize_points(
            world["space"], world["bank"], None, layer, out, k=2, seconds=1.0, embeddings=places
        )
    assert not out.exists() and len(calls) == 2


@pytest.mark.slow
def test_place_embedding_from_a_region_cache(world: dict, tmp_path: Path):
    """The vector at a point comes from the cache a map made, and only in the bank's space."""
    from geosound.mapping.region import embed_region

    cache = embed_region(
        tmp_path / "cache.zarr", world["raster"], space=world["space"], tile_size=32
    )
    lon, lat = centre_lonlat()
    vector = embedding_from_region_cache(cache.path, lon, lat, "EPSG:4326", world["space"])
    expected = place_embedding_from_raster(world["space"], world["raster"], lon, lat, chip_size=32)
    # The centre (48, 48) lies in the cache's middle 32-px tile, pixels 32-64: the chip
    # centred there covers exactly those pixels.
    assert vector.shape == (world["space"].dim,)
    np.testing.assert_allclose(vector, expected, atol=1e-5)

    other = SharedSpace(load_checkpoint(world["checkpoint"]), cache_root=tmp_path / "features")
    other.loaded.model_id = "other"
    with pytest.raises(InputError, match="sat2sound:other"):
        embedding_from_region_cache(cache.path, lon, lat, "EPSG:4326", other)


# --------------------------------------------------------------------------- with the encoder


@pytest.mark.slow
def test_place_embedding_is_the_same_chip_in_any_crs(world: dict):
    x, y = ORIGIN[0] + 300.0, ORIGIN[1] - 400.0
    lon, lat = raster_xy_to_lonlat(x, y)
    in_utm = place_embedding_from_raster(world["space"], world["raster"], x, y, RASTER_CRS)
    in_lonlat = place_embedding_from_raster(world["space"], world["raster"], lon, lat)
    assert in_utm.shape == (world["space"].dim,)
    assert np.linalg.norm(in_utm) == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(in_utm, in_lonlat, atol=1e-5)


@pytest.mark.slow
def test_layer_of_three_points_gives_three_wavs_and_attributes(world: dict, tmp_path: Path):
    corners = [(200.0, -200.0), (500.0, -600.0), (800.0, -300.0)]
    lonlat = [raster_xy_to_lonlat(ORIGIN[0] + dx, ORIGIN[1] + dy) for dx, dy in corners]
    layer = gpd.GeoDataFrame(
        {"site": ["marsh", "road", "wood/edge"]},
        geometry=[Point(lon, lat) for lon, lat in lonlat],
        crs=4326,
    )
    out = tmp_path / "sounds"
    result = synthesize_points(
        world["space"], world["bank"], world["raster"], layer, out, k=2, seconds=2.0,
        id_column="site",
    )  # fmt: skip

    assert sorted(p.name for p in out.glob("*.wav")) == ["marsh.wav", "road.wav", "wood_edge.wav"]
    assert len(list(out.glob("*.json"))) == 3
    assert list(result.columns) == ["site", "geometry", "wav", "sources"]
    for wav, sources in zip(result["wav"], result["sources"], strict=True):
        assert sf.info(wav).frames == 2 * SR
        listed = json.loads(sources)
        assert [s["rank"] for s in listed] == [1, 2] and all(s["licence"] for s in listed)
    sidecar = json.loads((out / "road.json").read_text())
    assert sidecar["point"]["id"] == "road" and sidecar["parameters"]["seed"] == 1

    gpkg = write_points_layer(result, out / "points_with_sounds.gpkg")
    back = gpd.read_file(gpkg)
    assert {"site", "wav", "sources"} <= set(back.columns) and len(back) == 3
    assert back.crs.to_epsg() == 4326


@pytest.mark.slow
def test_cli_one_point_and_a_layer(world: dict, tmp_path: Path):
    env = {"GEOSOUND_CACHE": str(tmp_path / "cache")}
    common = ["--bank", str(world["bank_dir"]), "--checkpoint", str(world["checkpoint"])]
    lon, lat = centre_lonlat()
    result = run_synthesize(
        "--lon", str(lon), "--lat", str(lat), "--raster", str(world["raster"]),
        "-o", str(tmp_path / "place.wav"), "--k", "2", "--seconds", "3", "--seed", "4",
        "--progress", "none", *common, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "not generated audio" in result.stdout
    assert sf.info(tmp_path / "place.wav").frames == 3 * SR
    meta = json.loads((tmp_path / "place.json").read_text())
    assert len(meta["sources"]) == 2 and meta["parameters"]["seed"] == 4
    assert meta["point"]["crs"] == "EPSG:4326" and meta["point"]["raster"].endswith("scene.tif")

    layer = tmp_path / "sites.geojson"
    utm = gpd.GeoDataFrame(
        geometry=[Point(ORIGIN[0] + 150, ORIGIN[1] - 150), Point(ORIGIN[0] + 700, ORIGIN[1] - 500)],
        crs=RASTER_CRS,
    )
    utm.to_file(layer, driver="GeoJSON")
    result = run_synthesize(
        "--points", str(layer), "--raster", str(world["raster"]),
        "--out-dir", str(tmp_path / "sounds"), "--seconds", "2", "--progress", "json",
        *common, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    final = json.loads(result.stdout.strip().splitlines()[-1])
    assert final["ok"] and final["outputs"][-1].endswith("points_with_sounds.gpkg")
    back = gpd.read_file(tmp_path / "sounds" / "points_with_sounds.gpkg")
    assert len(back) == 2 and {"wav", "sources"} <= set(back.columns)
    assert all(Path(w).is_file() for w in back["wav"])


def test_cli_point_outside_is_one_line_exit_2_and_no_files(world: dict, tmp_path: Path):
    result = run_synthesize(
        "--lon", "2.35", "--lat", "48.85", "--raster", str(world["raster"]),
        "--bank", str(world["bank_dir"]), "--checkpoint", str(world["checkpoint"]),
        "-o", str(tmp_path / "place.wav"), "--progress", "none",
        env={"GEOSOUND_CACHE": str(tmp_path / "cache")},
    )  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "scene.tif" in result.stderr and "outside the raster" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.glob("place.*")) == []
