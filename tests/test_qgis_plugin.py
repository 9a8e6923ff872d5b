"""The QGIS plugin (qgis_plugin/geosound_qgis): loads, registers, runs, styles, fails cleanly.

The venv's Python cannot import ``qgis`` and QGIS's Python must never import ``geosound`` —
the split the plugin is built around — so the QGIS parts run in one ``/usr/bin/python3``
subprocess (``tests/qgis/qgis_checks.py``, offscreen) that drives the real geosound CLI of this
venv and writes a JSON report; the tests below assert on it. They skip, saying why, where QGIS
or the dev data are missing. The subprocess takes about a minute (six geosound runs).

The runner and environment modules import nothing from QGIS, so their tests run here directly.
"""

from __future__ import annotations

import configparser
import csv
import importlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil
import pytest

from geosound.config import dev_data_dir

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "qgis_plugin" / "geosound_qgis"
CHECKS = REPO / "tests" / "qgis" / "qgis_checks.py"
QGIS_PYTHON = os.environ.get("GEOSOUND_QGIS_PYTHON", "/usr/bin/python3")
SCENE = "opengeos_naip_m_4709963_se_14_1_20200831.tif"
SCENE_TILE_METRES = 64 * 5.0  # tile 64 on a 5 m scene: one output pixel


def plugin_module(name: str) -> ModuleType:
    """A QGIS-free module of the plugin (``runner``, ``environment``), imported from source."""
    root = str(REPO / "qgis_plugin")
    if root not in sys.path:
        sys.path.insert(0, root)
    return importlib.import_module(f"geosound_qgis.{name}")


# -- without QGIS: packaging and the subprocess protocol ---------------------------------------


def test_metadata_has_what_the_plugin_repository_requires():
    parser = configparser.ConfigParser()
    parser.read(PLUGIN / "metadata.txt", encoding="utf-8")
    general = parser["general"]
    for key in ("name", "description", "about", "author", "email", "repository", "tracker"):
        assert general.get(key, "").strip(), key
    assert general["qgisMinimumVersion"] == "3.22"
    assert general["version"] == "0.1.0"
    assert general["license"] == "Apache-2.0"
    assert (PLUGIN / general["icon"]).is_file()


def test_plugin_never_imports_torch_or_geosound():
    heavy = re.compile(r"^\s*(import|from)\s+(torch|geosound)(\s|\.|$)", re.MULTILINE)
    offenders = [str(p) for p in PLUGIN.rglob("*.py") if heavy.search(p.read_text())]
    assert offenders == []


def test_plugin_zip_has_the_folder_at_its_root(tmp_path: Path):
    out = tmp_path / "geosound_qgis-0.1.0.zip"
    done = subprocess.run(
        [sys.executable, str(REPO / "qgis_plugin" / "build_zip.py"), str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    names = zipfile.ZipFile(out).namelist()
    assert {n.split("/")[0] for n in names} == {"geosound_qgis"}
    for required in ("__init__.py", "metadata.txt", "icon.svg", "provider.py", "LICENSE"):
        assert f"geosound_qgis/{required}" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def fake_cli(tmp_path: Path, body: str) -> list[str]:
    """A stand-in for ``python -m geosound`` that prints what ``body`` prints."""
    script = tmp_path / "fake_geosound.py"
    script.write_text("import json, os, sys, time\n" + body)
    return [sys.executable, str(script)]


def test_runner_streams_progress_and_returns_outputs(tmp_path: Path):
    runner = plugin_module("runner")
    command = fake_cli(
        tmp_path,
        "for i in range(3):\n"
        "    print(json.dumps({'progress': i / 2, 'message': f'step {i}'}), flush=True)\n"
        "print('a stray line', file=sys.stderr)\n"
        "print(json.dumps({'ok': True, 'outputs': ['a.tif'], 'note': 'stand-in'}))\n",
    )
    progress: list[tuple[float, str]] = []
    logs: list[str] = []
    result = runner.run_geosound(
        command, on_progress=lambda f, m: progress.append((f, m)), on_log=logs.append
    )
    assert progress == [(0.0, "step 0"), (0.5, "step 1"), (1.0, "step 2")]
    assert result.outputs == ["a.tif"] and result.note == "stand-in"
    assert logs == ["a stray line"]


def test_runner_raises_geosound_error_messages(tmp_path: Path):
    runner = plugin_module("runner")
    reported = fake_cli(
        tmp_path, "print(json.dumps({'error': 'scene.tif: no CRS'}))\nsys.exit(2)\n"
    )
    with pytest.raises(runner.GeosoundRunError, match=r"^scene\.tif: no CRS$"):
        runner.run_geosound(reported)
    # Errors found before the progress protocol starts only reach stderr.
    early = fake_cli(
        tmp_path, "print('geosound: error: x.tif: not found', file=sys.stderr)\nsys.exit(2)\n"
    )
    with pytest.raises(runner.GeosoundRunError, match=r"^x\.tif: not found$") as caught:
        runner.run_geosound(early)
    assert caught.value.returncode == 2
    silent = fake_cli(tmp_path, "pass\n")
    with pytest.raises(runner.GeosoundRunError, match="without reporting its outputs"):
        runner.run_geosound(silent)


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting for its reaper is not)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_runner_cancel_kills_a_silent_process_and_its_children(tmp_path: Path):
    runner = plugin_module("runner")
    finished = tmp_path / "finished"  # what either process writes if it is not stopped
    command = fake_cli(
        tmp_path,
        "import subprocess\n"
        f"out = {str(tmp_path)!r}\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import sys, time; time.sleep(60); "
        "open(sys.argv[1], \"w\")', out + '/finished'])\n"  # a Dask worker, say
        "open(out + '/pids', 'w').write(f'{os.getpid()} {child.pid}')\n"
        "print(json.dumps({'progress': 0.1, 'message': 'embedding'}), flush=True)\n"
        "time.sleep(60)\n"
        "open(out + '/finished', 'w')\n",
    )
    seen: list[float] = []
    with pytest.raises(runner.GeosoundCanceled) as caught:
        runner.run_geosound(
            command, on_progress=lambda f, m: seen.append(f), is_canceled=lambda: bool(seen)
        )
    assert seen == [0.1]
    assert caught.value.returncode == -signal.SIGTERM  # stopped by the signal, not finished
    parent, child = (int(pid) for pid in (tmp_path / "pids").read_text().split())
    assert not running(parent)
    deadline = time.monotonic() + 30  # bounds a hang only: the group got SIGTERM already
    while running(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not running(child), "the child of the geosound process survived the cancel"
    assert not finished.exists()


def test_environment_found_from_variable_and_refused_when_wrong(monkeypatch, tmp_path: Path):
    environment = plugin_module("environment")
    monkeypatch.setenv("GEOSOUND_PYTHON", sys.executable)
    found = environment.find_environment("")
    assert found.python == Path(sys.executable) and found.version
    assert found.command("info")[1:] == ["-m", "geosound", "info"]
    with pytest.raises(environment.EnvironmentNotFound, match="geosound environment not found"):
        environment.find_environment(str(tmp_path / "missing" / "python"))
    not_geosound = tmp_path / "python"
    not_geosound.write_text("#!/bin/sh\nexit 1\n")
    not_geosound.chmod(0o755)
    with pytest.raises(environment.EnvironmentNotFound, match="cannot import geosound"):
        environment.find_environment(str(not_geosound))
    child = environment.child_environment({"PYTHONPATH": "/usr/share/qgis/python", "A": "1"})
    assert "PYTHONPATH" not in child and child["A"] == "1"


def test_environment_detection_order_managed_then_recorded(monkeypatch, tmp_path: Path):
    environment = plugin_module("environment")
    monkeypatch.delenv("GEOSOUND_PYTHON", raising=False)
    record = tmp_path / "build_environment.json"
    record.write_text(json.dumps({"python": sys.executable}))
    monkeypatch.setattr(environment, "BUILD_RECORD", record)
    monkeypatch.setattr(environment, "recorded_build_python",
                        lambda record=record: json.loads(record.read_text())["python"])  # fmt: skip
    profile = tmp_path / "profile"
    sources = [source for _, source in environment.candidates("", profile)]
    assert sources[0] == "the environment the plugin zip was built from"
    assert not any("managed" in source for source in sources)  # none set up yet
    (profile / "geosound" / "venv").mkdir(parents=True)
    sources = [source for _, source in environment.candidates("", profile)]
    assert sources[0].startswith("the managed environment")
    assert sources[1] == "the environment the plugin zip was built from"
    # An empty managed folder is skipped; the recorded environment is found and works.
    found = environment.find_environment("", profile)
    assert found.source == "the environment the plugin zip was built from"
    assert found.python == Path(sys.executable)
    # An explicit choice is the only candidate.
    assert environment.candidates("/x/python", profile) == [
        ("/x/python", "the setting geosound/python")
    ]


def fake_python(tmp_path: Path, has_aisfx: bool, pip_exit: int = 0) -> tuple[Path, Path]:
    """A stand-in for a new environment's python that records how it is called."""
    calls = tmp_path / "calls.jsonl"
    python = tmp_path / "python"
    python.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"open({str(calls)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        f"sys.exit({0 if has_aisfx else 1} if sys.argv[1] == '-c' else {pip_exit})\n"
    )
    python.chmod(0o755)
    return python, calls


def test_set_up_adds_the_audio_encoder_the_wheel_cannot_depend_on(tmp_path: Path):
    """A wheel installed with its dependencies from an index still lacks aisfx (its pins clash
    with geosound's): the installer adds it with --no-deps from the same place."""
    installer = plugin_module("installer")
    plan = installer.InstallPlan(
        target=tmp_path / "venv", source="geosound.whl", index_url="file:///mirror/simple",
        pip_options=["--no-deps", "--find-links", "/wheels"],
    )  # fmt: skip
    python, calls = fake_python(tmp_path, has_aisfx=False)
    installer.Installer(plan).ensure_audio_encoder(python)
    probe, pip = (json.loads(line) for line in calls.read_text().splitlines())
    assert probe[0] == "-c" and "aisfx" in probe[1]
    assert pip[:3] == ["-m", "pip", "install"] and pip[-1] == installer.AUDIO_ENCODER
    assert pip.count("--no-deps") == 1 and "--find-links" in pip
    assert pip[pip.index("--index-url") + 1] == "file:///mirror/simple"

    calls.unlink()  # an environment that has it (shared packages): nothing installed
    python, calls = fake_python(tmp_path, has_aisfx=True)
    installer.Installer(plan).ensure_audio_encoder(python)
    assert len(calls.read_text().splitlines()) == 1

    calls.unlink()  # no index that has it: the error says what is missing and what to do
    python, calls = fake_python(tmp_path, has_aisfx=False, pip_exit=1)
    with pytest.raises(installer.InstallError, match=r"audio encoder aisfx==.*not a dependency"):
        installer.Installer(plan).ensure_audio_encoder(python)


def test_plugin_zip_records_the_environment_it_was_built_from(tmp_path: Path):
    out = tmp_path / "plugin.zip"
    env = {**os.environ, "GEOSOUND_PYTHON": sys.executable}
    done = subprocess.run(
        [sys.executable, str(REPO / "qgis_plugin" / "build_zip.py"), str(out)],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    record = json.loads(zipfile.ZipFile(out).read("geosound_qgis/build_environment.json"))
    assert record["python"] == str(Path(sys.executable).absolute())
    assert record["source"] == "GEOSOUND_PYTHON at build time"


# -- inside QGIS -------------------------------------------------------------------------------


def qgis_missing() -> str | None:
    """Why QGIS's Python cannot run the checks, or None when it can."""
    try:
        done = subprocess.run(
            [QGIS_PYTHON, "-c", "import qgis.core, qgis.gui"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
            check=False,
        )
    except OSError as error:
        return f"{QGIS_PYTHON} cannot run ({error})"
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return (
            f"{QGIS_PYTHON} cannot import qgis ({lines[-1] if lines else done.returncode}); "
            "install QGIS: apt-get install python3-qgis qgis-providers"
        )
    return None


def recordings_table(folder: Path, out: Path, classes: int = 8) -> Path:
    """A small labelled bank source: the first clip of a few ESC-50 classes (real audio)."""
    rows, seen = [], set()
    with open(folder / "index.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["class"] in seen or len(seen) >= classes:
                continue
            seen.add(row["class"])
            path = str(folder / row["filename"])
            rows.append({"path": path, "label": row["class"], "licence": row["license"]})
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "licence"])
        writer.writeheader()
        writer.writerows(rows)
    return out


def build_wheel(folder: Path) -> Path:
    """A wheel of this repository, as a user would download one (no dependencies inside)."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(folder), str(REPO)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    wheels = sorted(folder.glob("geosound-*.whl"))
    if done.returncode != 0 or not wheels:
        pytest.fail(f"could not build the geosound wheel: {done.stderr[-2000:]}")
    return wheels[-1]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run every QGIS check once (about a minute) and return the JSON report."""
    reason = qgis_missing()
    if reason:
        pytest.skip(reason)
    data = dev_data_dir()
    scene = data / "georaster_scenes" / SCENE
    clips = data / "esc50_outdoor_16k"
    if not scene.is_file() or not (clips / "index.csv").is_file():
        pytest.skip(f"dev data not found at {data} (set GEOSOUND_DEV_DATA)")
    tmp = tmp_path_factory.mktemp("qgis")
    table = recordings_table(clips, tmp / "recordings.csv")
    wheel = build_wheel(tmp / "wheel")
    path = tmp / "report.json"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(
        QT_QPA_PLATFORM="offscreen",
        GEOSOUND_PYTHON=sys.executable,
        XDG_CONFIG_HOME=str(tmp / "config"),  # QGIS settings of the run, not the user's
        XDG_DATA_HOME=str(tmp / "data"),
        XDG_RUNTIME_DIR=str(tmp / "runtime"),
        GEOSOUND_CACHE=str(tmp / "cache"),
        GEOSOUND_TEST_WHEEL=str(wheel),
        # The managed venv installs the wheel with --no-deps --no-index and borrows torch and
        # the rest from this venv's site-packages: offline, seconds instead of a 2 GB download.
        GEOSOUND_TEST_SHARED_SITE=sysconfig.get_paths()["purelib"],
    )
    (tmp / "runtime").mkdir(mode=0o700)
    done = subprocess.run(
        [QGIS_PYTHON, "-X", "faulthandler", str(CHECKS), str(path), str(tmp / "work"),
         str(scene), str(table)],
        capture_output=True, text=True, env=env, timeout=1200, check=False,
    )  # fmt: skip
    if not path.is_file():
        pytest.fail(f"the QGIS checks wrote no report (exit {done.returncode}):\n{done.stderr}")
    result = json.loads(path.read_text())
    result["_exit"] = done.returncode
    result["_stderr"] = done.stderr[-4000:]
    return result


def qgis_run(test):
    """Mark a test on the report: QGIS's Python runs six real geosound commands on a dev
    scene, about a minute, so it is ``slow`` and ``devdata``."""
    return pytest.mark.slow(pytest.mark.devdata(test))


def check(report: dict[str, Any], name: str) -> dict[str, Any]:
    """One check's measurements; fails with its traceback (or the crash) if it failed."""
    if name not in report:
        pytest.fail(f"check {name} did not run (exit {report['_exit']}):\n{report['_stderr']}")
    entry = report[name]
    assert entry["ok"], entry.get("error")
    return entry


@qgis_run
def test_qgis_checks_ran_cleanly(report):
    assert report["_exit"] == 0, report["_stderr"]
    assert check(report, "environment")["source"] == "the environment variable GEOSOUND_PYTHON"


@qgis_run
def test_provider_registers_every_algorithm_with_processing_types(report):
    entry = check(report, "registration")
    algorithms = entry["algorithms"]
    assert entry["added"]
    assert set(algorithms) == {
        "geosound:soundscapemap", "geosound:conceptmap", "geosound:retrievetiles",
        "geosound:retrievepoints", "geosound:synthesizepoint", "geosound:buildindex",
        "geosound:landscape", "geosound:sources",
    }  # fmt: skip
    soundscape = algorithms["geosound:soundscapemap"]
    assert soundscape["parameters"]["INPUT"] == "raster"
    assert soundscape["parameters"]["QUERIES"] == "string"
    assert soundscape["parameters"]["EXTENT"] == "extent"
    assert soundscape["parameters"]["OUTPUT"] == "rasterDestination"
    assert soundscape["outputs"]["OUTPUT"] == "outputRaster"
    assert algorithms["geosound:retrievepoints"]["parameters"]["INPUT"] == "source"
    assert algorithms["geosound:retrievetiles"]["parameters"]["OUTPUT"] == "sink"
    assert algorithms["geosound:synthesizepoint"]["parameters"]["POINT"] == "point"
    assert algorithms["geosound:buildindex"]["parameters"]["OUTPUT"] == "folderDestination"
    assert algorithms["geosound:sources"]["parameters"]["OUTPUT"] == "vectorDestination"
    assert all(a["help"] for a in algorithms.values())
    assert entry["model_child_valid"], entry["model_issues"]  # usable in the modeler


@qgis_run
def test_toolbox_and_batch_dialogs_build_every_parameter_widget(report):
    entry = check(report, "dialogs")
    algorithms = {k: v for k, v in entry.items() if k.startswith("geosound:")}
    assert len(algorithms) == 8
    for name, counts in algorithms.items():
        assert counts["widgets"] == counts["parameters"] == counts["batch_columns"], name


@qgis_run
def test_dialogs_render_the_whole_help_and_show_every_browse_button(report):
    entry = check(report, "dialogs")
    for name, dialog in entry.items():
        if not name.startswith("geosound:"):
            continue
        rendered = " ".join(dialog["help_rendered"].split())
        for paragraph in dialog["help_source"].split("\n\n"):
            for sentence in re.split(r"(?<=[.!?])\s+", paragraph.strip()):
                assert " ".join(sentence.split()) in rendered, (name, sentence)
        assert dialog["hidden_browse_buttons"] == [], name
        assert max(dialog["overflow"]) <= 0, (name, dialog["overflow"])  # no sideways scroll


@qgis_run
def test_build_index(report):
    entry = check(report, "buildindex")
    assert entry["outputs"]["COUNT"] == 8
    assert {"bank.json", "index.faiss", "metadata.parquet"} <= set(entry["files"])
    assert entry["progress"][-1] == 100.0
    assert any(0.0 < value < 100.0 for value in entry["progress"])  # steps, not a busy bar
    # The new bank is the default from now on; a new one goes under the profile by default.
    assert entry["default_bank"] == entry["outputs"]["OUTPUT"]
    assert entry["default_output"].startswith(os.path.join(entry["profile"], "geosound", "banks"))
    assert "-m geosound index build" in entry["commands"][0]


@qgis_run
def test_soundscape_map_is_a_styled_raster_on_the_scene(report):
    entry = check(report, "soundscapemap")
    assert entry["valid"]
    assert entry["crs"] == entry["scene_crs"] == "EPSG:26914"
    assert entry["bands"] == entry["outputs"]["BAND_COUNT"] == 2
    # One pixel per tile: the scene split evenly into as many cells as 64-pixel tiles need to
    # reach its edges, a little under a tile where 64 pixels do not fit (clipping: next test).
    sx0, sy0, sx1, sy1 = entry["scene_extent"]
    cols, rows = (math.ceil(((end - start) / 5.0 - 64) / 64) + 1
                  for start, end in ((sx0, sx1), (sy0, sy1)))  # fmt: skip
    assert entry["pixel_size"] == pytest.approx([(sx1 - sx0) / cols, (sy1 - sy0) / rows])
    assert all(size <= SCENE_TILE_METRES for size in entry["pixel_size"])
    assert "birds chirping in trees" in entry["band_names"][0]
    assert "cars driving on a road" in entry["band_names"][1]
    assert entry["renderer"] == "singlebandpseudocolor"  # from the .qml saved beside it
    assert entry["probability_valid"]
    assert entry["per_query"] == [[True, 1, "singlebandpseudocolor"]] * 2
    assert "Sat2Sound" in entry["note"] or "stand-in" in entry["note"]


@qgis_run
def test_soundscape_map_is_clipped_exactly_to_the_scene(report):
    entry = check(report, "soundscapemap")
    assert entry["extent"] == pytest.approx(entry["scene_extent"], abs=1e-6)
    # The edge cells are mapped (from tiles shifted inward), not nodata.
    for corner in ("top_left", "bottom_right"):
        value, found = entry["corner_values"][corner]
        assert found and -1.0 <= value <= 1.0, (corner, value)


@qgis_run
def test_concept_map_is_paletted_with_concept_names(report):
    entry = check(report, "conceptmap")
    assert entry["valid"] and entry["crs"] == "EPSG:26914"
    assert entry["renderer"] == "paletted"
    labels = {int(value): label for value, label in entry["classes"]}
    assert entry["legend"], "map.json has no concept legend"
    for concept, item in entry["legend"].items():
        assert labels[int(concept)] == item["name"]
    assert entry["weight_renderer"] == "singlebandpseudocolor"
    # The concept map reused the region cache the soundscape map wrote.
    assert entry["region_cache"] == report["soundscapemap"]["outputs"]["REGION_CACHE"]


@qgis_run
def test_retrieval_for_tiles_is_an_outlined_polygon_layer(report):
    entry = check(report, "retrievetiles")
    assert entry["valid"] and entry["count"] > 0 and entry["geometry"] == 2  # polygons
    assert entry["crs"] == "EPSG:26914"
    for rank in (1, 2, 3):
        assert {f"sound_{rank}", f"class_{rank}", f"score_{rank}"} <= set(entry["fields"])
    assert Path(entry["first"]["sound_1"]).is_file()
    assert entry["first"]["class_1"]  # labels of the bank's table
    assert -1.0 <= entry["first"]["score_1"] <= 1.0
    # Only tiles of the requested extent (whole cells, so up to one tile more on each side).
    x0, y0, x1, y1 = entry["extent"]
    assert x0 >= 486859 - SCENE_TILE_METRES and x1 <= 488779 + SCENE_TILE_METRES
    assert y0 >= 5206050 - SCENE_TILE_METRES and y1 <= 5207650 + SCENE_TILE_METRES
    assert entry["fill_alpha"] == 0 and entry["brush"] == 0  # outline only


@qgis_run
def test_retrieval_for_points_keeps_attributes_and_adds_sounds(report):
    entry = check(report, "retrievepoints")
    assert entry["valid"] and entry["geometry"] == 0 and entry["crs"] == "EPSG:4326"
    assert [row["name"] for row in entry["rows"]] == ["pond", "field"]
    assert {"wav", "sound_1", "class_1", "score_1", "sound_2"} <= set(entry["fields"])
    assert all(entry["wavs_exist"])
    assert all(Path(row["sound_1"]).is_file() for row in entry["rows"])


@qgis_run
def test_synthesis_at_a_point_writes_a_wav_and_a_point(report):
    entry = check(report, "synthesizepoint")
    assert entry["wav_exists"] and entry["wav_bytes"] > 44 and entry["sidecar_exists"]
    assert [s["rank"] for s in entry["sources"]] == [1, 2]
    assert entry["layer_valid"] and entry["layer_wav"] == entry["wav"]
    assert entry["layer_sound_1"] == entry["sources"][0]["path"]
    assert entry["layer_crs"] == "EPSG:26914"


@qgis_run
def test_failures_are_processing_exceptions_with_the_reason(report):
    entry = check(report, "errors")
    assert entry["bad_python"].startswith("geosound environment not found")
    assert "Set it in" in entry["bad_python"]
    assert "has no CRS" in entry["no_crs"]
    assert "at least one sound query" in entry["no_queries"]
    assert "outside the raster" in entry["outside"] and entry["outside_wrote_nothing"]
    assert entry["canceled"].startswith("Canceled")
    # The process was stopped by the plugin's signal, with its whole group, and wrote nothing.
    assert entry["cancel_kills"] == 1
    # SIGTERM (raised, or handled by geosound as exit 128+15), or SIGKILL after the grace.
    assert entry["canceled_returncode"] in (-15, -9, 143)
    assert entry["canceled_group_left"] == [] and not entry["canceled_output_exists"]


@qgis_run
def test_plugin_loads_adds_its_gui_and_unloads(report):
    entry = check(report, "plugin")
    assert entry["provider_after_init"] and len(entry["algorithms"]) == 8
    assert entry["toolbar"][0] == "Listen here"
    assert entry["opened"] == ["geosound:soundscapemap", "geosound:conceptmap"]
    assert "Settings…" in entry["menu"] and "Set up geosound…" in entry["menu"]
    assert len(entry["menu"]) == 11 and entry["setup_dialog"] == "Set up geosound"
    assert entry["environment_problem"] is None  # GEOSOUND_PYTHON is found at start-up
    # Every action has its own icon, and a one-line tooltip that starts with its name.
    assert len(set(entry["icons"].values())) == len(entry["icons"])
    for text, tooltip in entry["tooltips"].items():
        assert tooltip.startswith(text.rstrip("…") + ":"), (text, tooltip)
        assert "\n" not in tooltip and len(tooltip) <= 100, tooltip
    assert entry["docks"] == ["geosoundListenDock"]
    assert entry["listen_tool_active"] and entry["listen_tool_off"]
    assert not entry["provider_after_unload"]
    assert entry["menu_after_unload"] == 0 and entry["docks_after_unload"] == 0


@qgis_run
def test_map_outputs_are_one_named_layer_per_query_grouped_under_the_run(report):
    layers = check(report, "plugin")["layers"]
    groups = {group["group"].split(" (")[0]: group["layers"] for group in layers["tree"]}
    queries = groups["soundscape map of scene"]
    assert [layer["name"] for layer in queries] == [
        "birds chirping in trees", "cars driving on a road"
    ]  # fmt: skip
    for layer in queries:
        assert layer["bands"] == 1 and 0.3 <= layer["opacity"] <= 0.8  # the scene shows
        assert layer["legend"][0] == "cosine similarity to the query (higher = more alike)"
        assert layer["product"].startswith("similarity:")


@qgis_run
def test_concept_legends_name_the_top_concepts_and_one_other_entry(report):
    layers = check(report, "plugin")["layers"]
    groups = {group["group"].split(" (")[0]: group["layers"] for group in layers["tree"]}
    concept, subtile = groups["concept map of scene"]
    assert concept["name"] == "sound concepts (strongest per tile)"
    assert subtile["name"] == "sound concepts (strongest per sub-tile cell)"
    legend = report["conceptmap"]["legend"]
    named = [item["name"] for item in legend.values()]
    assert concept["legend"][0] == "strongest sound concept per tile"
    assert concept["legend"][1 : 1 + len(named)] == named
    others = concept["legend"][1 + len(named) :]
    assert len(others) <= 1 and all(o.startswith("other concepts") for o in others)
    assert subtile["legend"][0] == "strongest sound concept per sub-tile cell"
    # Names of the tile legend, then at most one "other" entry (counting its own kinds).
    fine = subtile["legend"][1:]
    fine_others = [entry for entry in fine if entry.startswith("other concepts")]
    assert fine and len(fine_others) <= 1 and set(fine) - set(fine_others) <= set(named)
    for layer in (concept, subtile):
        assert 0.3 <= layer["opacity"] <= 0.8


@qgis_run
def test_outputs_are_recognised_however_styled_and_listen_takes_the_scene(report):
    entry = check(report, "plugin")
    layers, listen = entry["layers"], entry["listen"]
    # Right after the runs the newest output is active and on top, as in QGIS.
    assert layers["active"] == layers["canvas_top"][0] != "scene"
    assert layers["restyled_product"].startswith("similarity:")  # from its .aux.xml
    assert layers["cli_product"].startswith("geosound map")  # from map.json beside it
    assert layers["scene_product"] is None
    assert listen["chosen"] == "scene"
    assert "over <b>scene</b>" in listen["running_status"]
    assert "over <b>scene</b>" in listen["status"]


@qgis_run
def test_listen_dock_formats_places_clears_on_error_and_plays(report):
    entry = check(report, "plugin")
    listen = entry["listen"]
    width, height = entry["dock_size"]
    assert width >= 300 and height >= 300  # several rows, not one
    # Layer CRS (metres, grouped, with its code) and lon/lat.
    assert re.search(r"\d{3},\d{3} E, \d,\d{3},\d{3} N \(EPSG:26914\)", listen["status"])
    assert "47.02000° N, 99.16000° W" in listen["status"]
    after = listen["after_error"]
    assert after["status"].startswith("<b>Could not listen here:</b>")
    assert after["rows"] == 0 and after["wav"] is None and not after["mix_enabled"]
    # The fallback player command gets the mix when Qt Multimedia is not used.
    assert listen["external"]["started"] and listen["external"]["played"] == listen["wav"]
    if listen["player_backend"] == "Qt Multimedia":
        assert listen["qt_media_mix"] == listen["wav"]
        assert listen["qt_media_first"].endswith(Path(listen["qt_media_first"]).name)


@qgis_run
def test_set_up_geosound_installs_a_wheel_into_the_managed_environment(report):
    entry = check(report, "setup")
    managed = entry["managed"]
    assert managed.startswith(entry["profile"])
    assert not any(source.startswith("the managed environment") for source in entry["before"])
    assert entry["task_started"] and entry["status"].startswith("<b>Done:</b>"), entry["log"]
    assert entry["progress"] == sorted(entry["progress"]) and entry["progress"][-1] == 100
    assert len(set(entry["progress"])) >= 4  # real steps
    assert entry["setting"].startswith(managed)
    # Detection alone now finds it, first, and it imports the wheel's geosound.
    assert entry["after"][0].startswith("the managed environment")
    assert entry["found"]["source"].startswith("the managed environment")
    assert entry["found"]["python"].startswith(managed) and entry["found"]["version"]
    assert entry["geosound_file"].startswith(managed)
    diagnostics = entry["diagnostics"]
    assert "pip install" in diagnostics and "exit code: 0" in diagnostics
    assert entry["clipboard"] == diagnostics[:200]


@qgis_run
def test_listen_tool_lists_the_sounds_of_a_clicked_spot(report):
    listen = check(report, "plugin")["listen"]
    assert listen["raster_outside"] and listen["task_started"]
    assert listen["rows"] == 3 and listen["wav_exists"], listen["status"]
    assert all(listen["labels"])
    assert "not generated audio" in listen["note"]
    # Play buttons work where Qt Multimedia can play, and say why not elsewhere.
    assert listen["buttons_enabled"] == [listen["player_available"]] * 4
    if listen["player_available"]:
        assert listen["playing_mix"] and listen["playing_first"]
    else:
        assert listen["button_tooltips"] == [listen["player_reason"]]
    assert listen["playback_line"]


@qgis_run
def test_map_algorithms_tile_at_the_models_ground_size_unless_given_pixels(report):
    entry = check(report, "tiling")
    default, pixels = entry["arguments"]["default"], entry["arguments"]["pixels"]
    assert "--tile" not in default  # the CLI takes the checkpoint's ground size (640 m)
    assert pixels[pixels.index("--tile") + 1] == "48"
    assert default[default.index("--cache") + 1] != pixels[pixels.index("--cache") + 1]
