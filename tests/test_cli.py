"""The command line as users meet it: a subprocess, its output, its exit code, its files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import soundfile as sf

from geosound.geo import is_valid_cog


def assert_clean_failure(result, filename: str) -> None:
    """Bad input: non-zero exit, one line on stderr naming the file, no traceback."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("geosound: error:") and filename in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_help_lists_commands(run_cli):
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("info", "demo", "data", "chip", "audio"):
        assert command in result.stdout


def test_info_prints_crs_bounds_bands(data_raster, run_cli):
    result = run_cli("info", str(data_raster("utm_uint16_nodata0.tif", "scene.tif")))
    assert result.returncode == 0, result.stderr
    assert "EPSG:32632" in result.stdout and "100 x 80 px" in result.stdout
    assert "nodata      0.0" in result.stdout


def test_info_json(data_raster, run_cli):
    result = run_cli("info", "--json", str(data_raster("utm_uint16.tif", "scene.tif")))
    assert json.loads(result.stdout)[0]["count"] == 3


def test_text_file_as_raster(tmp_path: Path, run_cli):
    bad = tmp_path / "readme.tif"
    bad.write_text("hello")
    assert_clean_failure(run_cli("info", str(bad)), "readme.tif")


def test_raster_without_crs(data_raster, run_cli):
    nocrs = data_raster("nocrs_uint16.tif", "nocrs.tif")
    assert_clean_failure(run_cli("info", str(nocrs)), "nocrs.tif")


def test_point_outside_raster_writes_nothing(data_raster, tmp_path: Path, run_cli):
    out = tmp_path / "chip.tif"
    scene = data_raster("utm_uint16.tif", "scene.tif")
    result = run_cli("chip", str(scene), "--x", "0", "--y", "0", "-o", str(out))
    assert_clean_failure(result, "scene.tif")
    assert "outside the raster" in result.stderr
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif"]


def test_chip_inside_raster(data_raster, tmp_path: Path, run_cli):
    out = tmp_path / "chip.tif"
    result = run_cli(
        "chip",
        str(data_raster("utm_uint16.tif", "scene.tif")),
        "--x",
        "500300",
        "--y",
        "5199800",
        "--crs",
        "EPSG:32632",
        "--size",
        "16",
        "-o",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    with rasterio.open(out) as src:
        assert (src.width, src.height, src.crs.to_epsg()) == (16, 16, 32632)


def test_empty_wav_writes_nothing(tmp_path: Path, run_cli):
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 16000)
    out = tmp_path / "emb.npz"
    assert_clean_failure(run_cli("audio", "embed", str(empty), "-o", str(out)), "empty.wav")
    assert not out.exists()


def test_truncated_flac_writes_nothing(tmp_path: Path, run_cli):
    clip = tmp_path / "cut.flac"
    sf.write(clip, np.random.default_rng(0).uniform(-0.5, 0.5, 16000 * 3), 16000)
    clip.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    out = tmp_path / "emb.npz"
    assert_clean_failure(run_cli("audio", "embed", str(clip), "-o", str(out)), "cut.flac")
    assert not out.exists()
    assert_clean_failure(run_cli("audio", "info", str(clip)), "cut.flac")


@pytest.mark.slow
def test_audio_embed_writes_vectors(tmp_path: Path, run_cli):
    clip = tmp_path / "tone.wav"
    t = np.arange(16000 * 2) / 16000
    sf.write(clip, 0.3 * np.sin(2 * np.pi * 440 * t), 16000)
    out = tmp_path / "emb.npz"
    result = run_cli("audio", "embed", str(clip), str(clip), "-o", str(out), "--progress", "none")
    assert result.returncode == 0, result.stderr
    saved = np.load(out)
    assert saved["embeddings"].shape == (2, 512) and str(saved["encoder"]) == "aisfx@1"


def test_data_list_shows_cards(run_cli):
    result = run_cli("data", "list", "--json")
    assert result.returncode == 0, result.stderr
    ids = {row["id"] for row in json.loads(result.stdout)}
    assert {"esc50", "eurosat_ms_geotiff", "geosound", "soundingearth"} <= ids


@pytest.mark.slow
def test_demo_writes_valid_cog_and_preview(tmp_path: Path, run_cli):
    result = run_cli("demo", "--out", "demo-out", "--progress", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    messages = [json.loads(line) for line in result.stdout.splitlines()]
    assert messages[-1]["ok"] is True and "Sat2Sound sat2sound-" in messages[-1]["note"]
    assert any("progress" in m for m in messages[:-1])

    cog = tmp_path / "demo-out" / "soundscape_similarity.tif"
    assert is_valid_cog(cog)
    with rasterio.open(cog) as src:
        assert src.crs.to_epsg() == 26914
        assert src.count == 4
        assert all(d.startswith("similarity: ") for d in src.descriptions)
        data = src.read(masked=True)
        assert data.count() > 0 and float(data.std()) > 0
    assert (tmp_path / "demo-out" / "soundscape_similarity.png").stat().st_size > 10_000
    assert (tmp_path / "demo-out" / "soundscape_similarity.json").exists()
