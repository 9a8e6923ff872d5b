"""Rebuild ``docs/qgis_screenshot.png``: the real QGIS desktop with the geosound plugin at work.

The picture is made the way a user would see it: QGIS 3 (the ``qgis`` executable) starts under
Xvfb in a fresh profile with the plugin copied into it, runs the plugin's
``geosound:soundscapemap`` on a real aerial scene (outputs loaded as the Toolbox loads them:
one layer per query, grouped under the run, half-transparent over the scene), opens the
Processing Toolbox on the geosound provider, clicks **Listen here** on the scene, waits for
the Listen dock to list the sounds, and grabs the main window (Layers panel, toolbar, Toolbox,
Listen dock) to PNG:

    python3 docs/make_qgis_screenshot.py          # needs qgis and xvfb-run (apt: qgis xvfb)

The geosound environment is the checkout's ``.venv`` (or ``GEOSOUND_PYTHON``), the scene and
the ESC-50 clips come from the dev data (``GEOSOUND_DEV_DATA``, default ``../shared/data``).
Takes about a minute. Inside QGIS this same file runs with ``GEOSOUND_SCREENSHOT_INNER=1``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# QGIS runs --code files without __file__; the outer run passes the repository along.
HERE = globals().get("__file__") or os.environ["GEOSOUND_SCREENSHOT_REPO"]
REPO = Path(HERE).resolve().parents[1]
SCENE = "georaster_scenes/opengeos_naip_m_4709963_se_14_1_20200831.tif"
CLIPS = "esc50_outdoor_16k"
QUERIES = ("water waves lapping on a lake shore", "birds chirping in trees",
           "cars driving on a road")  # fmt: skip
LISTEN_AT = (-99.160, 47.020)  # lon, lat: over the scene


def dev_data() -> Path:
    configured = os.environ.get("GEOSOUND_DEV_DATA")
    return Path(configured).expanduser() if configured else REPO.parent / "shared" / "data"


def geosound_python() -> str:
    return os.environ.get("GEOSOUND_PYTHON") or str(REPO / ".venv" / "bin" / "python")


def build_bank(tmp: Path, clips: Path, classes: int = 8) -> Path:
    """A small labelled bank: the first clip of a few ESC-50 classes."""
    rows, seen = [], set()
    with open(clips / "index.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["class"] not in seen and len(seen) < classes:
                seen.add(row["class"])
                rows.append({"path": str(clips / row["filename"]), "label": row["class"],
                             "licence": row["license"]})  # fmt: skip
    table = tmp / "recordings.csv"
    with open(table, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "licence"])
        writer.writeheader()
        writer.writerows(rows)
    bank = tmp / "bank"
    subprocess.run([geosound_python(), "-m", "geosound", "index", "build", str(table), "-o",
                    str(bank), "--progress", "none"], check=True)  # fmt: skip
    return bank


def outer(args: argparse.Namespace) -> int:
    """Prepare a profile, start QGIS under Xvfb with this file as its start-up code."""
    for tool in ("qgis", "xvfb-run"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found (apt-get install qgis xvfb)")
    scene = dev_data() / SCENE
    if not scene.is_file():
        raise SystemExit(f"scene not found: {scene} (set GEOSOUND_DEV_DATA)")
    with tempfile.TemporaryDirectory(prefix="geosound_screenshot_") as name:
        tmp = Path(name)
        profile = tmp / "profiles" / "default"
        shutil.copytree(REPO / "qgis_plugin" / "geosound_qgis",
                        profile / "python" / "plugins" / "geosound_qgis",
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
        bank = build_bank(tmp, dev_data() / CLIPS)
        (profile / "QGIS").mkdir(parents=True)
        (profile / "QGIS" / "QGIS3.ini").write_text(
            "[PythonPlugins]\ngeosound_qgis=true\nprocessing=true\n"
            f"[geosound]\npython={geosound_python()}\nbank={bank}\n"
            "[qgis]\ncheckVersion=false\nshowTips=false\nshowTips322=false\n"
            "[core]\nNewsFeed\\\\httpsfeedqgisorg\\\\disabled=true\n",
            encoding="utf-8",
        )
        job = {"scene": str(scene), "out": str(args.out.resolve()), "queries": list(QUERIES),
               "work": str(tmp / "work"), "size": [args.width, args.height]}  # fmt: skip
        env = {**os.environ, "GEOSOUND_SCREENSHOT_INNER": json.dumps(job),
               "GEOSOUND_SCREENSHOT_REPO": str(Path(HERE).resolve()),
               "GEOSOUND_CACHE": str(tmp / "cache"), "XDG_RUNTIME_DIR": str(tmp)}  # fmt: skip
        env.pop("QT_QPA_PLATFORM", None)
        # QGIS's embedded Python must find the system Python it was built with, not a pyenv
        # or venv interpreter earlier on the PATH (whose standard library lacks qgis/sip).
        for name in ("PYTHONHOME", "PYTHONPATH", "VIRTUAL_ENV", "PYENV_VERSION"):
            env.pop(name, None)
        env["PATH"] = os.pathsep.join(
            part
            for part in env.get("PATH", "").split(os.pathsep)
            if ".pyenv" not in part and "venv" not in part
        )
        os.chmod(tmp, 0o700)
        done = subprocess.run(
            ["xvfb-run", "-a", "-s", f"-screen 0 {args.width}x{args.height}x24", "qgis",
             "--profiles-path", str(tmp), "--profile", "default", "--nologo",
             "--noversioncheck", "--code", str(Path(HERE).resolve())],
            env=env, timeout=900, check=False,
        )  # fmt: skip
        inner_log = tmp / "inner.log"
        if inner_log.is_file():  # what the run inside QGIS did, step by step
            print(inner_log.read_text(encoding="utf-8"), end="")
    if not args.out.is_file():
        raise SystemExit(f"QGIS wrote no screenshot (exit {done.returncode})")
    print(f"wrote {args.out}")
    return 0


def wait(condition, seconds: float) -> bool:
    from qgis.core import QgsApplication

    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        QgsApplication.processEvents()
        time.sleep(0.05)
    return bool(condition())


def inner(job: dict) -> None:
    """Inside QGIS (``--code``): run the map, open the Toolbox, listen, grab the window."""
    import processing
    import qgis.utils
    from qgis.core import (
        QgsApplication,
        QgsCoordinateReferenceSystem,
        QgsPointXY,
        QgsProject,
        QgsRasterLayer,
    )
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtWidgets import QDockWidget, QLineEdit

    log = open(Path(job["work"]).parent / "inner.log", "a", encoding="utf-8")  # noqa: SIM115

    def say(text: str) -> None:
        log.write(f"{time.strftime('%H:%M:%S')} {text}\n")
        log.flush()

    iface = qgis.utils.iface
    window = iface.mainWindow()
    window.resize(*job["size"])  # the whole screen: QGIS opens at its own default size
    say(f"started; plugins {sorted(qgis.utils.plugins)}")
    wait(lambda: "geosound_qgis" in qgis.utils.plugins, 60)
    plugin = qgis.utils.plugins["geosound_qgis"]
    wait(lambda: QgsApplication.processingRegistry().providerById("geosound") is not None, 60)
    say(f"plugin loaded; provider {QgsApplication.processingRegistry().providerById('geosound')}")
    project = QgsProject.instance()
    scene = QgsRasterLayer(job["scene"], Path(job["scene"]).stem)
    project.addMapLayer(scene)
    project.setCrs(scene.crs())
    work = Path(job["work"])
    processing.runAndLoadResults(
        "geosound:soundscapemap",
        {"INPUT": job["scene"], "QUERIES": "\n".join(job["queries"]), "TILE": 64,
         "OUTPUT": str(work / "similarity.tif")},
    )  # fmt: skip
    say("map done")
    group = project.layerTreeRoot().findGroups()[0]
    for index, node in enumerate(group.findLayers()):  # the first query shown, others listed
        node.setItemVisibilityChecked(index == 0)
    group.setExpanded(True)
    iface.mapCanvas().setExtent(scene.extent())
    iface.setActiveLayer(group.findLayers()[0].layer())
    # The Browser makes way for the Layers panel, wide enough for the run's group, the layer
    # names and their legend titles.
    browser = window.findChild(QDockWidget, "Browser")
    if browser is not None:
        browser.hide()
    layers_panel = window.findChild(QDockWidget, "Layers")
    if layers_panel is not None:
        window.resizeDocks([layers_panel], [430], Qt.Horizontal)
    toolbox = window.findChild(QDockWidget, "ProcessingToolbox")
    if toolbox is not None:
        toolbox.show()
        search = toolbox.findChild(QLineEdit)
        if search is not None:
            search.setText("geosound")
    plugin.listen_action.trigger()
    wait(lambda: len(iface.mapCanvas().layers()) > 1, 30)  # the canvas follows the tree later
    wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
    from qgis.core import QgsCoordinateTransform

    canvas_crs = iface.mapCanvas().mapSettings().destinationCrs()
    point = QgsCoordinateTransform(wgs84, canvas_crs, project).transform(QgsPointXY(*LISTEN_AT))
    from geosound_qgis.styling import product_of

    say(
        f"at {point.toString()} ({canvas_crs.authid()}): "
        + "; ".join(
            f"{layer.name()} {layer.extent().toString(0)} {product_of(layer)}"
            for layer in iface.mapCanvas().layers()
        )
    )
    say(f"listening with the active layer {iface.activeLayer().name()!r} (an output)")
    plugin.listener.listen_at(point)
    dock = plugin.dock
    wait(lambda: dock.wav is not None or "Could not" in dock.status.text(), 300)
    iface.messageBar().clearWidgets()  # the "Task complete" notice would cover the map
    iface.mapCanvas().refresh()
    wait(lambda: False, 3)  # let the canvas and panels paint
    say(f"listened: {dock.status.text()}")
    window.grab().save(job["out"])
    say("saved")
    QgsApplication.exit(0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "qgis_screenshot.png")
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=1000)
    return outer(parser.parse_args())


if os.environ.get("GEOSOUND_SCREENSHOT_INNER"):  # started by QGIS with --code
    inner(json.loads(os.environ["GEOSOUND_SCREENSHOT_INNER"]))
elif __name__ == "__main__":
    sys.exit(main())
