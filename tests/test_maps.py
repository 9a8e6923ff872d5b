"""`geosound map` end to end on small real rasters: layers, re-query, errors, Dask resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import rasterio
import soundfile as sf

from geosound.geo import is_valid_cog


@pytest.fixture
def scene(data_raster) -> Path:
    """A 256 × 192 px, 8-bit RGB raster in UTM (EPSG:32632, 10 m) with real structure (stripes
    and a gradient): tests/data/utm_rgb8.tif."""
    return data_raster("utm_rgb8.tif", "scene.tif")


@pytest.mark.slow
def test_map_writes_layers_and_requeries_from_the_cache(scene: Path, tmp_path: Path, run_cli):
    out = tmp_path / "out"
    first = run_cli(
        "map",
        str(scene),
        "-o",
        str(out),
        "-t",
        "sea waves",
        "-t",
        "traffic",
        "--tile",
        "64",
        "--concepts",
        "--progress",
        "json",
    )
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout.splitlines()[-1])["ok"] is True
    for name in ("similarity.tif", "probability.tif", "concepts.tif", "concepts_subtile.tif"):
        assert is_valid_cog(out / name), name
    with rasterio.open(out / "similarity.tif") as src, rasterio.open(scene) as ref:
        assert src.crs == ref.crs
        assert src.bounds == pytest.approx(tuple(ref.bounds))
        assert src.descriptions == ("similarity: text: sea waves", "similarity: text: traffic")
    with rasterio.open(out / "probability.tif") as src:
        assert np.allclose(src.read().sum(axis=0), 1.0, atol=1e-5)
    with rasterio.open(out / "concepts.tif") as src:
        assert src.colormap(1) and src.dtypes[0] == "uint16"
    with rasterio.open(out / "concepts_subtile.tif") as src:
        assert src.res[0] == pytest.approx(64 * 10 / 2)  # 2x2 tokens per 64-px tile at 10 m
    sidecar = json.loads((out / "map.json").read_text())
    assert sidecar["model"].startswith("sat2sound:") and sidecar["products"]["concepts"]["legend"]

    markers = sorted((out / "region_cache.zarr" / "_geosound_done").iterdir())
    stamps = [m.stat().st_mtime_ns for m in markers]
    again = run_cli("map", str(scene), "-o", str(out), "-t", "rain", "--tile", "64",
                    "--progress", "json")  # fmt: skip
    assert again.returncode == 0, again.stderr
    messages = [json.loads(line) for line in again.stdout.splitlines()]
    assert any("already embedded" in m.get("message", "") for m in messages)
    assert [m.stat().st_mtime_ns for m in markers] == stamps  # no chunk was recomputed
    with rasterio.open(out / "similarity.tif") as src:
        assert src.descriptions == ("similarity: text: rain",)


@pytest.mark.slow
def test_cache_of_another_model_is_refused(scene: Path, tmp_path: Path, run_cli, random_checkpoint):
    out = tmp_path / "out"
    assert run_cli("map", str(scene), "-o", str(out), "-t", "rain", "--tile", "64").returncode == 0
    other = random_checkpoint(tmp_path / "other.pt", seed=3)
    result = run_cli(
        "map", str(scene), "-o", str(out), "-t", "rain", "--tile", "64",
        "--checkpoint", str(other),
    )  # fmt: skip
    assert result.returncode == 2 and "built with model" in result.stderr
    assert "region_cache.zarr" in result.stderr and "Traceback" not in result.stderr


def test_bbox_outside_the_raster(scene: Path, tmp_path: Path, run_cli):
    result = run_cli(
        "map", str(scene), "-o", str(tmp_path / "out"), "-t", "rain",
        "--bbox", "0", "0", "1", "1", "--bbox-crs", "EPSG:4326",
    )  # fmt: skip
    assert result.returncode == 2 and "scene.tif" in result.stderr
    assert "do not overlap the raster" in result.stderr
    assert not (tmp_path / "out" / "similarity.tif").exists()


@pytest.mark.slow
def test_silent_audio_query(scene: Path, tmp_path: Path, run_cli):
    silent = tmp_path / "silence.wav"
    sf.write(silent, np.zeros(16000, dtype=np.float32), 16000)
    result = run_cli("map", str(scene), "-o", str(tmp_path / "out"), "-a", str(silent))
    assert result.returncode == 2 and "silence.wav" in result.stderr and "silent" in result.stderr
    assert not (tmp_path / "out" / "similarity.tif").exists()


def live_members(group: int) -> list[int]:
    """Processes of a process group that still run (zombies awaiting their reaper excluded)."""
    alive = []
    for process in psutil.process_iter(["status"]):
        try:
            if os.getpgid(process.pid) == group and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return alive


@pytest.mark.slow
def test_interrupted_dask_run_resumes_to_the_same_cog(make_raster, tmp_path: Path, run_cli):
    """Kill a 2-worker Dask run once some chunks are done; the rerun keeps exactly the chunks
    finished before the kill, computes the rest, and writes exactly the COG an uninterrupted
    in-process run writes."""
    raster = make_raster("big.tif", width=512, height=384, count=3, dtype="uint8")
    args = ["-t", "birds chirping in trees", "--tile", "32", "--chunk-rows", "1"]
    every_chunk = {f"{i}.ok" for i in range(384 // 32)}  # one chunk per row of 32-px tiles
    reference = run_cli("map", str(raster), "-o", str(tmp_path / "ref"), *args,
                        "--progress", "none")  # fmt: skip
    assert reference.returncode == 0, reference.stderr

    out = tmp_path / "dask"
    command = [sys.executable, "-m", "geosound", "map", str(raster), "-o", str(out), *args,
               "--progress", "none", "--workers", "2"]  # fmt: skip
    job = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)  # fmt: skip
    done = out / "region_cache.zarr" / "_geosound_done"
    deadline = time.monotonic() + 300  # bounds a hang only
    while time.monotonic() < deadline and job.poll() is None:
        if done.exists() and len(list(done.glob("*.ok"))) >= 2:
            break
        time.sleep(0.2)
    assert job.poll() is None, "the job ended before it could be interrupted"
    os.killpg(job.pid, signal.SIGKILL)  # the CLI, its scheduler and both workers
    assert job.wait() == -signal.SIGKILL
    deadline = time.monotonic() + 60  # bounds a hang only
    while live_members(job.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert live_members(job.pid) == [], "a worker survived the kill"
    # What the killed run left: the chunks it finished (at least the two waited for), no layer.
    before = {m.name: m.stat().st_mtime_ns for m in done.glob("*.ok")}
    assert len(before) >= 2 and set(before) <= every_chunk
    assert not (out / "similarity.tif").exists()

    resumed = run_cli("map", str(raster), "-o", str(out), *args, "--progress", "json",
                      "--workers", "2")  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    messages = [json.loads(line).get("message", "") for line in resumed.stdout.splitlines()]
    assert f"{len(before)}/{len(every_chunk)} chunks already embedded" in messages
    after = {m.name: m.stat().st_mtime_ns for m in done.glob("*.ok")}
    assert set(after) == every_chunk
    assert {name: after[name] for name in before} == before  # finished chunks were kept
    with (
        rasterio.open(out / "similarity.tif") as a,
        rasterio.open(tmp_path / "ref" / "similarity.tif") as b,
    ):
        # The same numbers up to float rounding: worker processes run torch on other thread
        # counts than the in-process reference, and oneDNN may then sum in another order
        # (differences of about 1e-7 on some CPUs). A lost, doubled or shifted chunk would
        # differ by far more.
        np.testing.assert_allclose(a.read(), b.read(), rtol=0, atol=1e-6)
        assert a.transform == b.transform and a.crs == b.crs


@pytest.mark.slow
@pytest.mark.devdata
def test_every_dev_scene_maps_to_valid_layers(dev_data: Path, tmp_path: Path):
    """All georaster scenes (any CRS, 1-6 bands, uint8 to float64) give valid COG layers with
    the scene's CRS, covering the scene (tiles at the edge may reach past it, never short)."""
    from geosound.mapping.maps import map_region

    scenes = sorted((dev_data / "georaster_scenes").glob("*.tif"))
    assert len(scenes) == 8
    for scene in scenes:
        out = tmp_path / scene.stem
        result = map_region(scene, out, texts=["rain", "traffic"], concepts=True)
        assert out / "similarity.tif" in result.outputs
        for product in ("similarity.tif", "probability.tif", "concepts.tif"):
            assert is_valid_cog(out / product), (scene.name, product)
        with rasterio.open(out / "similarity.tif") as layer, rasterio.open(scene) as source:
            assert layer.crs == source.crs, scene.name
            # the default tile is the model's ground size (640 m): pixels differ per scene
            tile = json.loads((out / "map.json").read_text())["tiling"]["tile_size"]
            tile *= abs(source.res[0])
            left, bottom, right, top = layer.bounds
            assert left == pytest.approx(source.bounds.left)
            assert top == pytest.approx(source.bounds.top)
            assert source.bounds.right <= right < source.bounds.right + tile
            assert source.bounds.bottom - tile < bottom <= source.bounds.bottom


@pytest.mark.slow
@pytest.mark.parametrize("layout", [[], ["--kind", "flat", "--shard-size", "2"]],
                         ids=["one index", "sharded"])  # fmt: skip
def test_retrieval_layer_is_a_geopackage_of_tile_footprints(
    scene: Path, tmp_path: Path, run_cli, layout: list[str]
):
    import geopandas as gpd

    clips = tmp_path / "clips"
    clips.mkdir()
    t = np.arange(16000 * 2) / 16000
    for i, freq in enumerate((220, 440, 880)):
        sf.write(clips / f"tone{i}.wav", 0.3 * np.sin(2 * np.pi * freq * t), 16000)
    env = {"GEOSOUND_CACHE": str(tmp_path / "cache")}
    bank = tmp_path / "bank"
    built = run_cli("index", "build", str(clips), "-o", str(bank), "--progress", "none",
                    *layout, env=env)  # fmt: skip
    assert built.returncode == 0, built.stderr
    assert ("2 shards" in built.stdout) == bool(layout)
    out = tmp_path / "out"
    mapped = run_cli(
        "map", str(scene), "-o", str(out), "--retrieve", "2", "--bank", str(bank),
        "--progress", "none", env=env,
    )  # fmt: skip
    assert mapped.returncode == 0, mapped.stderr
    table = gpd.read_file(out / "retrieval.gpkg")
    assert len(table) == 4 * 3  # 64-px tiles over 256 × 192 px
    assert {"sound_1", "score_1", "sound_2", "class_2"} <= set(table.columns)
    assert table.crs.to_epsg() == 32632 and table.geometry.is_valid.all()
    assert (table["score_1"] >= table["score_2"]).all()
