"""The QGIS algorithm "Landscape from sound" and the Listen dock's picture, in real QGIS.

As in ``test_qgis_plugin.py``, QGIS's own Python (``/usr/bin/python3``, offscreen) runs
``tests/qgis/landscape_checks.py``, which drives the real ``geosound generate`` of this venv on a
tiny untrained SounDiT checkpoint and ESC-50 dev clips, and writes a JSON report; the tests
assert on it. Where a picture lies is checked here with pyproj, independently of QGIS's
transforms. They skip, saying why, where QGIS or the dev data are missing.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pyproj import CRS, Transformer

from geosound.config import dev_data_dir

REPO = Path(__file__).resolve().parents[1]
CHECKS = REPO / "tests" / "qgis" / "landscape_checks.py"
QGIS_PYTHON = os.environ.get("GEOSOUND_QGIS_PYTHON", "/usr/bin/python3")
SCENE = "opengeos_naip_m_4709963_se_14_1_20200831.tif"
POINT_LONLAT = (11.5761, 48.1372)  # the recording's place (given to QGIS in EPSG:3857)
SITES_LONLAT = ((-99.160, 47.020), (-99.150, 47.015))  # two recording sites, one UTM zone
LISTEN_LONLAT = (-99.160, 47.020)  # a spot of the NAIP scene
GROUND_M = 640.0
NO_QGIS_EXIT = 3  # what landscape_checks.py exits with when it cannot import qgis


def tiny_generator(path: Path) -> Path:
    """An untrained SounDiT (32-px pictures) in the space of the shipped Sat2Sound model.

    Untrained weights draw noise, which is all these tests need: where the picture lands and
    how QGIS shows it, not what it looks like.
    """
    import torch

    from geosound.models.autoencoder import AutoencoderConfig, LatentCodec, build_autoencoder
    from geosound.models.default import load_default_model
    from geosound.models.soundit import build_soundit
    from geosound.models.soundit_checkpoint import save_generator

    sat2sound = load_default_model()
    torch.manual_seed(0)
    ae_config = AutoencoderConfig(image_size=32, block_out_channels=[16, 16, 16], norm_num_groups=8)
    codec = LatentCodec(build_autoencoder(ae_config).eval(), 1.0, ae_config)
    model = build_soundit(
        "tiny", hidden_dim=32, depth=1, heads=4, num_experts=2, latent_size=8,
        sound_dim=sat2sound.model.config.embed_dim,
    )  # fmt: skip
    scenes = {"forest": torch.randn(model.config.scene_dim)}
    save_generator(path, model, codec, f"sat2sound:{sat2sound.model_id}", sat2sound.encoders,
                   scenes, {"note": "untrained, tests only"})  # fmt: skip
    return path


def tiny_separator(path: Path) -> Path:
    """An untrained separator beside the shipped Sat2Sound model, naming ESC-50 classes."""
    import torch

    from geosound.models.default import load_default_model
    from geosound.models.separator import build_separator
    from geosound.models.separator_checkpoint import save_separator

    sat2sound = load_default_model()
    torch.manual_seed(0)
    prototypes = torch.nn.functional.normalize(torch.randn(3, 512), dim=-1)
    save_separator(path, build_separator("tiny", layers=1), sat2sound.encoders["audio"],
                   f"sat2sound:{sat2sound.model_id}", ["dog", "rain", "wind"], prototypes,
                   {"note": "untrained, tests only"})  # fmt: skip
    return path


def dev_clips(folder: Path, count: int) -> list[Path]:
    """The first clip of ``count`` ESC-50 classes (real recordings)."""
    clips, seen = [], set()
    with open(folder / "index.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["class"] not in seen and len(seen) < count:
                seen.add(row["class"])
                clips.append(folder / row["filename"])
    return clips


def recording_sites(folder: Path, clips: list[Path]) -> Path:
    """A GeoPackage of points naming their recordings relative to itself (copied beside it)."""
    import geopandas as gpd
    from shapely.geometry import Point

    folder.mkdir(parents=True)
    names = []
    for clip in clips:
        shutil.copy(clip, folder / clip.name)
        names.append(clip.name)
    sites = gpd.GeoDataFrame(
        {"clip": names, "site": [f"site {i}" for i in range(len(names))]},
        geometry=[Point(*lonlat) for lonlat in SITES_LONLAT],
        crs="EPSG:4326",
    )
    path = folder / "sites.gpkg"
    sites.to_file(path, driver="GPKG")
    return path


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run every landscape check once in QGIS (minutes: several real geosound runs)."""
    data = dev_data_dir()
    clips_folder = data / "esc50_outdoor_16k"
    scene = data / "georaster_scenes" / SCENE
    if not scene.is_file() or not (clips_folder / "index.csv").is_file():
        pytest.skip(f"dev data not found at {data} (set GEOSOUND_DEV_DATA)")
    tmp = tmp_path_factory.mktemp("landscape")
    clips = dev_clips(clips_folder, 3)
    bank_folder = tmp / "recordings"
    bank_folder.mkdir()
    for clip in clips:
        shutil.copy(clip, bank_folder / clip.name)
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True).transform(*POINT_LONLAT)
    setup = {
        "model": str(tiny_generator(tmp / "soundit_tiny.pt")),
        "separator": str(tiny_separator(tmp / "separator_tiny.pt")),
        "clips": [str(clip) for clip in clips],
        "point_3857": [x, y],
        "points_gpkg": str(recording_sites(tmp / "sites", clips[:2])),
        "audio_field": "clip",
        "scene": "forest",
        "recordings": str(bank_folder),
        "scene_raster": str(scene),
        "listen_lonlat": list(LISTEN_LONLAT),
    }
    (tmp / "setup.json").write_text(json.dumps(setup))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(
        QT_QPA_PLATFORM="offscreen", GEOSOUND_PYTHON=sys.executable,
        XDG_CONFIG_HOME=str(tmp / "config"), XDG_DATA_HOME=str(tmp / "data"),
        XDG_RUNTIME_DIR=str(tmp / "runtime"), GEOSOUND_CACHE=str(tmp / "cache"),
    )  # fmt: skip
    (tmp / "runtime").mkdir(mode=0o700)
    path = tmp / "report.json"
    try:
        done = subprocess.run(
            [QGIS_PYTHON, "-X", "faulthandler", str(CHECKS), str(path), str(tmp / "work"),
             str(tmp / "setup.json")],
            capture_output=True, text=True, env=env, timeout=1200, check=False,
        )  # fmt: skip
    except OSError as error:
        pytest.skip(f"{QGIS_PYTHON} cannot run ({error})")
    if done.returncode == NO_QGIS_EXIT:
        pytest.skip(f"{done.stdout.strip()}; install QGIS: apt-get install python3-qgis")
    if not path.is_file():
        pytest.fail(f"the QGIS checks wrote no report (exit {done.returncode}):\n{done.stderr}")
    result = json.loads(path.read_text())
    result.update(_exit=done.returncode, _stderr=done.stderr[-4000:], _setup=setup)
    return result


def qgis_run(test):
    """QGIS's Python runs real geosound commands on dev clips: ``slow`` and ``devdata``."""
    return pytest.mark.slow(pytest.mark.devdata(test))


def check(report: dict[str, Any], name: str) -> dict[str, Any]:
    """One check's measurements; fails with its traceback (or the crash) if it failed."""
    if name not in report:
        pytest.fail(f"check {name} did not run (exit {report['_exit']}):\n{report['_stderr']}")
    entry = report[name]
    assert entry["ok"], entry.get("error")
    return entry


def utm_zone(lon: float, lat: float) -> str:
    """The EPSG code of the WGS 84 UTM zone of a place (the CRS geosound generate places in)."""
    zone = int((lon + 180) // 6) + 1
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


def centre_lonlat(layer: dict[str, Any]) -> tuple[float, float]:
    """The centre of a layer's extent in lon/lat, by pyproj (not by QGIS)."""
    x0, y0, x1, y1 = layer["extent"]
    to_lonlat = Transformer.from_crs(CRS.from_user_input(layer["crs"]), "EPSG:4326",
                                     always_xy=True)  # fmt: skip
    return to_lonlat.transform((x0 + x1) / 2, (y0 + y1) / 2)


def assert_within_a_pixel(layer: dict[str, Any], lon: float, lat: float) -> None:
    """The layer's centre is at lon/lat, to less than one of its pixels (in metres)."""
    pixel_m = max(layer["pixel"])
    for found in (centre_lonlat(layer), layer["centre_lonlat"]):  # pyproj, then QGIS
        north_m = (found[1] - lat) * 111_320.0
        east_m = (found[0] - lon) * 111_320.0 * math.cos(math.radians(lat))
        assert math.hypot(east_m, north_m) < pixel_m, (found, (lon, lat), pixel_m)


@qgis_run
def test_landscape_checks_ran_cleanly(report):
    assert report["_exit"] == 0, report["_stderr"]


@qgis_run
def test_a_recording_at_a_point_becomes_a_raster_layer_centred_there(report):
    entry = check(report, "point")
    (layer,) = entry["layers"]  # exactly one layer added to the project
    assert layer["valid"] and layer["bands"] == 3
    assert layer["crs"] == utm_zone(*POINT_LONLAT) and layer["metric"]
    x0, y0, x1, y1 = layer["extent"]
    assert (x1 - x0, y1 - y0) == pytest.approx((GROUND_M, GROUND_M), abs=1e-6)
    assert layer["pixel"] == pytest.approx([GROUND_M / layer["size"][0]] * 2)
    assert_within_a_pixel(layer, *POINT_LONLAT)
    clip = Path(report["_setup"]["clips"][0])
    assert layer["name"] == f"{clip.stem} (generated landscape)"
    assert layer["source"] == entry["outputs"]["OUTPUT"]
    # A generated picture is a geosound product: the Listen tool never takes it for imagery.
    assert layer["product"] == "generated landscape"
    assert entry["sidecar"] is not None and entry["outputs"]["SIDECAR"].endswith(".json")
    assert entry["progress"][-1] == 100.0 and any(0 < p < 100 for p in entry["progress"])
    command = entry["commands"][0]
    assert "-m geosound generate" in command and "--steps 2" in command


@qgis_run
def test_a_points_layer_becomes_one_vrt_layer_over_its_sites(report):
    entry = check(report, "layer")
    (layer,) = entry["layers"]
    assert layer["valid"] and layer["source"].endswith(".vrt")
    assert entry["outputs"]["OUTPUT"] == layer["source"]  # the .tif asked for became a .vrt
    assert layer["name"] == "recording sites (generated landscapes)"
    assert layer["product"] == "generated landscape"
    to_layer = Transformer.from_crs("EPSG:4326", CRS.from_user_input(layer["crs"]),
                                    always_xy=True)  # fmt: skip
    x0, y0, x1, y1 = layer["extent"]
    for lon, lat in SITES_LONLAT:
        x, y = to_layer.transform(lon, lat)
        assert x0 < x < x1 and y0 < y < y1, (lon, lat)
    command = entry["commands"][0]
    assert "--audio-column clip" in command and "--scene=forest" in command


@qgis_run
def test_bad_input_is_refused_with_the_reason(report):
    entry = check(report, "errors")
    assert "has no recording in the field 'clip'" in entry["no_recording_in_field"]
    # geosound's own error names the point by the id QGIS shows (3: feature 2 was deleted).
    assert entry["missing_recording_fids"] == [1, 3]
    assert entry["missing_recording"].startswith("geosound generate:")
    assert "feature 3" in entry["missing_recording"]
    assert "no_such_clip.wav" in entry["missing_recording"]
    assert entry["both"].startswith("Give a recording and its point, or a points layer")
    assert entry["no_point"].startswith("Give the point where the recording was made")
    assert entry["nothing"].startswith("Choose a recording")
    assert "STEPS" in entry["steps_zero_refused"] or "steps" in entry["steps_zero_refused"]
    assert entry["unknown_scene"].startswith("geosound generate:")  # geosound's own line
    assert "scene" in entry["unknown_scene"] and not entry["e4_written"]


@qgis_run
def test_listen_dock_shows_the_picture_of_the_place(report):
    entry = check(report, "dock")
    # The landscapes generated above lie over the spot, yet the scene under them is heard.
    assert "recording sites (generated landscapes)" in entry["layers_above"]
    assert entry["listened_to"] == "scene"
    assert entry["rows"] > 0, entry["status"]
    assert not entry["button_before"] and entry["button_after_sounds"]
    # The selected recording is the one heard, at the clicked spot.
    assert entry["chosen"] == entry["first_source"]
    assert f"--audio={entry['chosen']}" in entry["command"]
    assert entry["running_caption"].startswith("Generating a picture")
    assert entry["picture_visible"] and entry["pixmap"] == [256, 256], entry["caption"]
    assert "not imagery of this spot" in entry["caption"]
    assert_within_a_pixel(entry["picture_layer"], *LISTEN_LONLAT)
    # The dock leaves the width to geosound generate's own --ground-m default.
    assert "--ground-m" not in entry["command"]
    x0, y0, x1, y1 = entry["picture_layer"]["extent"]
    assert (x1 - x0, y1 - y0) == pytest.approx((GROUND_M, GROUND_M), abs=1e-6)
    assert entry["after_new_spot"] == {"visible": False, "file": None, "sources": ""}
    # The sources of the selected recording, through the separator the settings name.
    assert entry["sources_running"].startswith("Separating the sources of")
    assert entry["sources_command"][-6:-3] == ["separate", entry["chosen"], "--model"]
    text = entry["sources_text"]
    assert "No sources" not in text, text
    assert f"{Path(entry['chosen']).name}: " in text and "% of the loudness" in text


@qgis_run
def test_sources_in_recordings_adds_the_layer_with_source_columns(report):
    entry = check(report, "sources")
    (layer,) = entry["layers"]
    assert layer["valid"] and layer["name"] == "recording sites (sources)"
    assert {"clip", "site", "n_sources", "source1", "score1", "share1", "source2"} <= set(
        layer["fields"]
    )
    assert "source3" not in layer["fields"]  # MAX_SOURCES 2
    sites = sorted(feature["site"] for feature in layer["features"])
    assert sites == ["site 0", "site 1"]
    for feature in layer["features"]:
        assert 1 <= int(feature["n_sources"]) <= 2
        assert feature["source1"] in ("dog", "rain", "wind")
    assert any("separate --points" in command for command in entry["commands"])
    message = entry["no_field"]  # refused before geosound runs
    assert message and ("AUDIO_FIELD" in message or "Recording field" in message), message
