"""Issue 13's acceptance, walked through in the real QGIS desktop (``qgis`` under Xvfb).

A fresh profile gets only the plugin zip (``make plugin``) and a geosound wheel built from the
repository (``pip wheel --no-deps -w dist .``). Inside QGIS, this file then does what a new
user does: installs the zip with QGIS's own "Install from ZIP" code, lets the plugin look for
an environment (none: no ``GEOSOUND_PYTHON``, no ``geosound`` on the PATH, no setting), runs
"Set up geosound" from the wheel, maps the scene with the environment it made, and clicks
Listen with the new output still the active layer. It writes a JSON report of what it saw
and a PNG of the window:

    python3 tests/qgis/desktop_acceptance.py --zip dist/geosound_qgis-0.1.0.zip \\
        --wheel dist/geosound-0.1.0-py3-none-any.whl --mode shared --out /tmp/acceptance

``--mode shared`` is the offline way: the wheel with ``--no-deps --no-index`` and the
packages (torch and the rest) shared from an existing environment's site-packages
(``--shared``, default this checkout's ``.venv``). ``--mode index`` installs the wheel with
its dependencies from whatever package index pip is configured to reach (no offline way: it
downloads torch and the rest unless the index is a local mirror). Not a pytest test: it takes
minutes, needs a display server and, for ``index``, a package index.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = globals().get("__file__") or os.environ["GEOSOUND_ACCEPTANCE_FILE"]
REPO = Path(HERE).resolve().parents[2]
SCENE = "georaster_scenes/opengeos_naip_m_4709963_se_14_1_20200831.tif"
LISTEN_AT = (-99.160, 47.020)  # lon, lat: over the scene
BANK_CLASSES = 6


def dev_data() -> Path:
    configured = os.environ.get("GEOSOUND_DEV_DATA")
    return Path(configured).expanduser() if configured else REPO.parent / "shared" / "data"


def outer(args: argparse.Namespace) -> int:
    """A fresh profile and a clean environment; QGIS runs this file as its start-up code."""
    scene = dev_data() / SCENE
    for needed in (args.zip, args.wheel, scene):
        if not Path(needed).is_file():
            raise SystemExit(f"not found: {needed}")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    shared = args.shared or str(REPO / ".venv" / "lib" / "python3.11" / "site-packages")
    with tempfile.TemporaryDirectory(prefix="geosound_acceptance_") as name:
        tmp = Path(name)
        profile = tmp / "profiles" / "default"
        (profile / "QGIS").mkdir(parents=True)
        # Only what a new user's QGIS has: Processing on, no geosound anything.
        (profile / "QGIS" / "QGIS3.ini").write_text(
            "[PythonPlugins]\nprocessing=true\n"
            "[qgis]\ncheckVersion=false\nshowTips=false\nshowTips322=false\n"
            "[app]\nplugin_installer\\checkOnStart=false\n"
            "[core]\nNewsFeed\\\\httpsfeedqgisorg\\\\disabled=true\n",
            encoding="utf-8",
        )
        job = {
            "zip": str(Path(args.zip).resolve()), "wheel": str(Path(args.wheel).resolve()),
            "mode": args.mode, "shared": shared, "scene": str(scene), "out": str(out),
            "work": str(tmp / "work"), "clips": str(dev_data() / "esc50_outdoor_16k"),
        }  # fmt: skip
        env = {**os.environ, "GEOSOUND_ACCEPTANCE_INNER": json.dumps(job),
               "GEOSOUND_ACCEPTANCE_FILE": str(Path(HERE).resolve()),
               "GEOSOUND_CACHE": str(tmp / "cache"), "XDG_RUNTIME_DIR": str(tmp)}  # fmt: skip
        for variable in ("QT_QPA_PLATFORM", "GEOSOUND_PYTHON", "PYTHONHOME", "PYTHONPATH",
                         "VIRTUAL_ENV", "PYENV_VERSION"):  # fmt: skip
            env.pop(variable, None)
        env["PATH"] = os.pathsep.join(  # no geosound, no venv or pyenv Python on the PATH
            part
            for part in env.get("PATH", "").split(os.pathsep)
            if ".pyenv" not in part and "venv" not in part
        )
        os.chmod(tmp, 0o700)
        started = time.monotonic()
        done = subprocess.run(
            ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", "qgis", "--profiles-path",
             str(tmp), "--profile", "default", "--nologo", "--noversioncheck", "--code",
             str(Path(HERE).resolve())],
            env=env, timeout=3000, check=False,
        )  # fmt: skip
        log = tmp / "inner.log"
        if log.is_file():
            print(log.read_text(encoding="utf-8"), end="")
    report = out / "acceptance.json"
    if not report.is_file():
        raise SystemExit(f"QGIS wrote no report (exit {done.returncode})")
    print(f"wrote {report} ({time.monotonic() - started:.0f} s)")
    return 0


def wait(condition, seconds: float) -> bool:
    from qgis.core import QgsApplication

    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        QgsApplication.processEvents()
        time.sleep(0.05)
    return bool(condition())


def inner(job: dict) -> None:
    """Inside QGIS: install the zip, set up geosound from the wheel, map, listen."""
    import qgis.utils
    from qgis.core import Qgis, QgsApplication

    work = Path(job["work"])
    work.mkdir(parents=True, exist_ok=True)
    log = open(work.parent / "inner.log", "a", encoding="utf-8")  # noqa: SIM115
    report: dict = {"qgis": Qgis.QGIS_VERSION, "mode": job["mode"]}

    def say(text: str) -> None:
        log.write(f"{time.strftime('%H:%M:%S')} {text}\n")
        log.flush()

    def save() -> None:
        Path(job["out"], "acceptance.json").write_text(json.dumps(report, indent=1, default=str))

    try:
        _walk_through(job, report, say, save)
    except Exception as error:  # the report says what broke, and QGIS still exits
        import traceback

        report["error"] = f"{error!r}\n{traceback.format_exc()}"
        say(f"error: {error!r}")
    save()
    qgis.utils.iface.mainWindow().grab().save(str(Path(job["out"], "acceptance.png")))
    say("saved")
    QgsApplication.exit(0)


def _walk_through(job: dict, report: dict, say, save) -> None:
    import processing
    import pyplugin_installer
    import qgis.utils
    from qgis.core import (
        QgsCoordinateReferenceSystem,
        QgsCoordinateTransform,
        QgsPointXY,
        QgsProject,
        QgsRasterLayer,
        QgsSettings,
    )

    iface = qgis.utils.iface
    say(f"started; plugins {sorted(qgis.utils.plugins)}")
    # 1. Plugins ▸ Manage and Install Plugins ▸ Install from ZIP.
    pyplugin_installer.instance().installFromZipFile(job["zip"])
    loaded = wait(lambda: "geosound_qgis" in qgis.utils.plugins, 60)
    plugin = qgis.utils.plugins.get("geosound_qgis")
    report["zip_installed"] = loaded and "geosound_qgis" in qgis.utils.active_plugins
    # 2. The plugin looks for an environment by itself: none yet.
    wait(lambda: plugin is not None and plugin.environment_problem is not None, 30)
    from geosound_qgis.profile import looked_at, managed_folder, profile_folder

    report["problem_before"] = plugin.environment_problem
    report["looked_at_before"] = looked_at("")
    say(f"zip installed: {report['zip_installed']}; problem: {plugin.environment_problem}")
    save()
    # 3. Plugins ▸ geosound ▸ Set up geosound…, from the wheel.
    dialog = plugin.open_setup()
    dialog.from_wheel.setChecked(True)
    dialog.wheel.setFilePath(job["wheel"])
    if job["mode"] == "shared":
        dialog.shared.setText(job["shared"])
        dialog.pip_options.setText("--no-deps --no-index")
    started = time.monotonic()
    dialog.install()
    finished = wait(lambda: dialog.task is None, 2700)
    report["setup"] = {
        "finished": finished, "seconds": round(time.monotonic() - started),
        "status": dialog.status.text(), "progress": dialog.progress.value(),
        "managed": str(managed_folder()), "diagnostics_tail": dialog.diagnostics()[-2500:],
        "setting": QgsSettings().value("geosound/python", "", type=str),
    }  # fmt: skip
    say(f"set-up: {dialog.status.text()} ({report['setup']['seconds']} s)")
    save()
    dialog.close()
    from geosound_qgis.environment import find_environment

    found = find_environment("", profile_folder())
    report["found"] = {"python": str(found.python), "source": found.source,
                       "version": found.version}  # fmt: skip
    plugin.check_environment()
    report["problem_after"] = plugin.environment_problem
    # 4. A soundscape map of the scene with that environment, loaded as the Toolbox loads it.
    project = QgsProject.instance()
    scene = QgsRasterLayer(job["scene"], "scene")
    project.addMapLayer(scene)
    project.setCrs(scene.crs())
    work = Path(job["work"])
    bank = _build_bank(found.python, Path(job["clips"]), work)
    QgsSettings().setValue("geosound/bank", str(bank))
    started = time.monotonic()
    result = processing.runAndLoadResults(
        "geosound:soundscapemap",
        {"INPUT": job["scene"], "QUERIES": "birds chirping in trees\ncars driving on a road",
         "TILE": 64, "OUTPUT": str(work / "similarity.tif")},
    )  # fmt: skip
    output = QgsRasterLayer(result["OUTPUT"], "similarity")
    extent, scene_extent = output.extent(), scene.extent()
    report["map"] = {
        "seconds": round(time.monotonic() - started), "valid": output.isValid(),
        "extent": [extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum()],
        "scene_extent": [scene_extent.xMinimum(), scene_extent.yMinimum(),
                         scene_extent.xMaximum(), scene_extent.yMaximum()],
        "layers": [layer.name() for layer in project.mapLayers().values()],
    }  # fmt: skip
    say(f"map: {report['map']}")
    save()
    # 5. Listen here, with the new output (not the scene) the active layer.
    group = project.layerTreeRoot().findGroups()[0]
    active = group.findLayers()[0].layer()
    iface.setActiveLayer(active)
    iface.mapCanvas().setExtent(scene.extent())
    wait(lambda: len(iface.mapCanvas().layers()) > 1, 30)
    plugin.listen_action.trigger()
    crs = iface.mapCanvas().mapSettings().destinationCrs()
    to_canvas = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"), crs, project)
    plugin.listener.listen_at(to_canvas.transform(QgsPointXY(*LISTEN_AT)))
    dock = plugin.dock
    wait(lambda: dock.wav is not None or "Could not" in dock.status.text(), 600)
    report["listen"] = {
        "active_layer": iface.activeLayer().name(), "status": dock.status.text(),
        "wav": dock.wav, "rows": dock.table.rowCount(),
    }  # fmt: skip
    say(f"listen: {report['listen']}")
    wait(lambda: False, 2)  # let the panels paint before the window is grabbed


def _build_bank(python: Path, clips: Path, work: Path) -> Path:
    """A small labelled bank (the first clip of a few ESC-50 classes) for Listen."""
    import csv

    rows, seen = [], set()
    with open(clips / "index.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["class"] not in seen and len(seen) < BANK_CLASSES:
                seen.add(row["class"])
                rows.append({"path": str(clips / row["filename"]), "label": row["class"]})
    table = work / "recordings.csv"
    with open(table, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label"])
        writer.writeheader()
        writer.writerows(rows)
    bank = work / "bank"
    from geosound_qgis.environment import child_environment

    subprocess.run([str(python), "-m", "geosound", "index", "build", str(table), "-o", str(bank),
                    "--progress", "none"], check=True, env=child_environment())  # fmt: skip
    return bank


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zip", type=Path, required=True, help="the plugin zip (make plugin)")
    parser.add_argument("--wheel", type=Path, required=True, help="a geosound wheel")
    parser.add_argument("--mode", choices=("shared", "index"), default="shared")
    parser.add_argument("--shared", default="", help="site-packages to share (mode shared)")
    parser.add_argument("--out", type=Path, default=Path("acceptance"))
    return outer(parser.parse_args())


if os.environ.get("GEOSOUND_ACCEPTANCE_INNER"):  # started by QGIS with --code
    inner(json.loads(os.environ["GEOSOUND_ACCEPTANCE_INNER"]))
elif __name__ == "__main__":
    sys.exit(main())
