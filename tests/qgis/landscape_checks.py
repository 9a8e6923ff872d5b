"""Checks of "Landscape from sound" and the Listen dock's picture, inside QGIS's own Python.

Run by ``tests/test_qgis_landscape.py`` as ``qgis_checks.py`` is run by
``tests/test_qgis_plugin.py`` (``/usr/bin/python3``, offscreen, ``GEOSOUND_PYTHON`` set to the
venv's python): it drives the real ``geosound generate`` on a tiny SounDiT checkpoint and writes
a JSON report, one entry per check with ``ok`` and what was measured, or ``error`` with the
traceback.

Usage: python3 landscape_checks.py REPORT.json WORK_DIR SETUP.json [CHECK ...]
(SETUP.json: model, separator, clips, point_3857, points_gpkg, audio_field, scene, recordings)

"Sources in recordings" (``geosound separate --points``) is checked here too: it takes the same
recording sites.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "qgis_plugin"))
sys.path.insert(0, str(HERE))
sys.path.append("/usr/share/qgis/python/plugins")

try:
    from qgis.core import (
        QgsApplication,
        QgsCoordinateReferenceSystem,
        QgsCoordinateTransform,
        QgsPointXY,
        QgsProject,
        QgsRasterLayer,
        QgsSettings,
    )
except ImportError as missing:  # the test skips on this exit code, with the reason
    print(f"{sys.executable} cannot import qgis ({missing})")
    sys.exit(3)
from qgis_checks import Feedback, IfaceStub, raises, wait_for  # noqa: E402

Report = dict[str, Any]
ALGORITHM = "geosound:landscape"


def layer_report(layer: QgsRasterLayer) -> Report:
    """Where a raster layer lies: CRS, extent, pixel size, and its centre in lon/lat."""
    from geosound_qgis.styling import product_of

    extent = layer.extent()
    wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
    centre = QgsCoordinateTransform(layer.crs(), wgs84, QgsProject.instance()).transform(
        extent.center()
    )
    return {
        "name": layer.name(), "valid": layer.isValid(), "source": layer.source(),
        "crs": layer.crs().authid(), "metric": not layer.crs().isGeographic(),
        "extent": [extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum()],
        "size": [layer.width(), layer.height()], "bands": layer.bandCount(),
        "pixel": [layer.rasterUnitsPerPixelX(), layer.rasterUnitsPerPixelY()],
        "centre_lonlat": [centre.x(), centre.y()], "product": product_of(layer),
    }  # fmt: skip


class Checks:
    """Each ``check_*`` method returns a dict of measurements; ``run`` catches failures."""

    def __init__(self, work: Path, setup: Report) -> None:
        import processing

        self.processing = processing
        self.work = work
        self.setup = setup

    def run(self, name: str) -> Report:
        start = time.monotonic()
        try:
            result = getattr(self, f"check_{name}")()
            result.setdefault("ok", True)
        except Exception:
            result = {"ok": False, "error": traceback.format_exc()}
        result["seconds"] = round(time.monotonic() - start, 1)
        return result

    def _new_layers(self, run: Any) -> tuple[Report, list[QgsRasterLayer]]:
        """Run ``run`` (a runAndLoadResults call); its result and the layers it added."""
        project = QgsProject.instance()
        before = set(project.mapLayers())
        result = run()
        added = [project.mapLayer(i) for i in project.mapLayers() if i not in before]
        return result, [layer for layer in added if isinstance(layer, QgsRasterLayer)]

    def check_point(self) -> Report:
        """A recording at a point given in EPSG:3857: one layer, placed there."""
        x, y = self.setup["point_3857"]
        feedback = Feedback()
        output = self.work / "landscape.tif"
        result, layers = self._new_layers(lambda: self.processing.runAndLoadResults(
            ALGORITHM,
            {"AUDIO": self.setup["clips"][0], "POINT": f"{x!r},{y!r} [EPSG:3857]",
             "GROUND_M": 640.0, "STEPS": 2, "SEED": 3, "MODEL": self.setup["model"],
             "OUTPUT": str(output)},
            feedback=feedback,
        ))  # fmt: skip
        return {
            "outputs": {k: v for k, v in result.items() if k != "NOTE"},
            "layers": [layer_report(layer) for layer in layers],
            "progress": feedback.progress, "commands": feedback.commands,
            "sidecar": json.loads(Path(result["SIDECAR"]).read_text()) if result["SIDECAR"]
            else None,
        }  # fmt: skip

    def check_layer(self) -> Report:
        """A points layer (a GeoPackage naming its recordings relative to itself): one VRT."""
        from qgis.core import QgsVectorLayer

        points = QgsVectorLayer(self.setup["points_gpkg"], "recording sites", "ogr")
        feedback = Feedback()
        result, layers = self._new_layers(lambda: self.processing.runAndLoadResults(
            ALGORITHM,
            {"POINTS": points, "AUDIO_FIELD": self.setup["audio_field"], "STEPS": 2,
             "SCENE": self.setup["scene"], "MODEL": self.setup["model"],
             "OUTPUT": str(self.work / "sites.tif")},
            feedback=feedback,
        ))  # fmt: skip
        wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
        sites = []
        for feature in points.getFeatures():
            site = QgsCoordinateTransform(points.crs(), wgs84, QgsProject.instance()).transform(
                feature.geometry().asPoint()
            )
            sites.append([site.x(), site.y()])
        return {
            "outputs": {k: v for k, v in result.items() if k != "NOTE"},
            "layers": [layer_report(layer) for layer in layers],
            "sites_lonlat": sites, "commands": feedback.commands, "infos": feedback.infos,
        }  # fmt: skip

    def check_errors(self) -> Report:
        """Bad combinations are refused before geosound runs; geosound's own errors come
        through as its one line."""
        from qgis.core import QgsFeature, QgsGeometry, QgsVectorLayer

        run = self.processing.run
        clip, model = self.setup["clips"][0], self.setup["model"]
        blank = QgsVectorLayer("Point?crs=EPSG:4326&field=clip:string", "blank", "memory")
        feature = QgsFeature(blank.fields())
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(10.0, 50.0)))
        blank.dataProvider().addFeatures([feature])  # its clip is NULL
        gone = QgsVectorLayer("Point?crs=EPSG:4326&field=clip:string", "gone", "memory")
        sites = []
        for path in (clip, clip, str(self.work / "no_such_clip.wav")):
            site = QgsFeature(gone.fields())
            site.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(10.0, 50.0)))
            site["clip"] = path
            sites.append(site)
        gone.dataProvider().addFeatures(sites)
        gone.dataProvider().deleteFeatures([2])  # the missing clip's point stays feature 3
        return {
            "missing_recording": raises(lambda: run(
                ALGORITHM, {"POINTS": gone, "AUDIO_FIELD": "clip", "MODEL": model, "STEPS": 1,
                            "OUTPUT": str(self.work / "e6.vrt")}
            )),
            "missing_recording_fids": [f.id() for f in gone.getFeatures()],
            "no_recording_in_field": raises(lambda: run(
                ALGORITHM, {"POINTS": blank, "AUDIO_FIELD": "clip", "MODEL": model,
                            "OUTPUT": str(self.work / "e0.tif")}
            )),
            "both": raises(lambda: run(
                ALGORITHM, {"AUDIO": clip, "POINT": "10,50 [EPSG:4326]", "POINTS": blank,
                            "AUDIO_FIELD": "clip", "OUTPUT": str(self.work / "e5.tif")}
            )),
            "no_point": raises(lambda: run(
                ALGORITHM, {"AUDIO": clip, "MODEL": model, "OUTPUT": str(self.work / "e1.tif")}
            )),
            "nothing": raises(lambda: run(ALGORITHM, {"OUTPUT": str(self.work / "e2.tif")})),
            "steps_zero_refused": raises(lambda: run(
                ALGORITHM, {"AUDIO": clip, "POINT": "0,0 [EPSG:4326]", "STEPS": 0,
                            "MODEL": model, "OUTPUT": str(self.work / "e3.tif")}
            )),
            "unknown_scene": raises(lambda: run(
                ALGORITHM, {"AUDIO": clip, "POINT": "10,50 [EPSG:4326]", "STEPS": 1,
                            "SCENE": "no such scene xyz", "MODEL": model,
                            "OUTPUT": str(self.work / "e4.tif")}
            )),
            "e4_written": (self.work / "e4.tif").exists(),
        }  # fmt: skip

    def check_sources(self) -> Report:
        """ "Sources in recordings" on the recording sites: the layer again, with source
        columns, every attribute kept, added to the project under its name."""
        from qgis.core import QgsVectorLayer

        points = QgsVectorLayer(self.setup["points_gpkg"], "recording sites", "ogr")
        feedback = Feedback()
        project = QgsProject.instance()
        before = set(project.mapLayers())
        result = self.processing.runAndLoadResults(
            "geosound:sources",
            {"POINTS": points, "AUDIO_FIELD": self.setup["audio_field"], "MAX_SOURCES": 2,
             "MODEL": self.setup["separator"], "OUTPUT": str(self.work / "sources.gpkg")},
            feedback=feedback,
        )  # fmt: skip
        added = [project.mapLayer(i) for i in project.mapLayers() if i not in before]
        vectors = [layer for layer in added if isinstance(layer, QgsVectorLayer)]
        return {
            "outputs": result, "commands": feedback.commands, "progress": feedback.progress,
            "layers": [
                {"name": layer.name(), "valid": layer.isValid(), "crs": layer.crs().authid(),
                 "fields": layer.fields().names(),
                 "features": [dict(zip(layer.fields().names(),
                                       [str(v) for v in f.attributes()], strict=True))
                              for f in layer.getFeatures()]}
                for layer in vectors
            ],
            "no_field": raises(lambda: self.processing.run(
                "geosound:sources", {"POINTS": points, "OUTPUT": str(self.work / "s1.gpkg")}
            )),
        }  # fmt: skip

    def check_dock(self) -> Report:
        """Listen at a spot of the scene, select the first recording, press "Picture of this
        place": the dock shows the picture generated from that recording."""
        import geosound_qgis

        feedback = Feedback()
        bank = self.processing.run(
            "geosound:buildindex",
            {"INPUT": self.setup["recordings"], "OUTPUT": str(self.work / "bank")},
            feedback=feedback,
        )["OUTPUT"]
        QgsSettings().setValue("geosound/generator", self.setup["model"])
        QgsSettings().setValue("geosound/separator", self.setup["separator"])
        registry = QgsApplication.processingRegistry()
        if registry.providerById("geosound") is not None:  # the standalone one: the plugin's now
            registry.removeProvider("geosound")
        iface = IfaceStub()
        plugin = geosound_qgis.classFactory(iface)
        plugin.initGui()
        dock = plugin.dock
        try:
            # The scene goes under the landscapes generated above (the sites' VRT covers the
            # spot): Listen must skip a generated picture and hear the imagery beneath it.
            project = QgsProject.instance()
            scene = QgsRasterLayer(self.setup["scene_raster"], "scene")
            project.addMapLayer(scene, False)
            project.layerTreeRoot().addLayer(scene)
            iface.canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:4326"))
            wait_for(lambda: scene in iface.canvas.layers(), 10)
            spot = QgsPointXY(*self.setup["listen_lonlat"])
            wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
            above = [layer.name() for layer in iface.canvas.layers()
                     if layer is not scene and isinstance(layer, QgsRasterLayer)]  # fmt: skip
            chosen_layer = plugin.listener.raster_under(spot, wgs84)
            before = dock.picture_button.isEnabled()
            plugin.listener.listen_at(spot)
            wait_for(lambda: dock.wav is not None or "Could not" in dock.status.text(), 300)
            report: Report = {
                "bank": bank, "status": dock.status.text(), "rows": dock.table.rowCount(),
                "layers_above": above,
                "listened_to": chosen_layer.name() if chosen_layer is not None else None,
                "button_before": before, "button_after_sounds": dock.picture_button.isEnabled(),
            }  # fmt: skip
            if dock.wav is None:
                return report  # nothing listed to make a picture from: the test says why
            dock.table.selectRow(0)
            chosen = dock.picture_recording()
            dock.picture_button.click()
            task = plugin.listener.picture_task
            report["running_caption"] = dock.picture_caption.text()
            wait_for(lambda: dock.picture_file is not None or "No picture" in
                     dock.picture_caption.text(), 300)  # fmt: skip
            pixmap = dock.picture.pixmap()
            report.update(
                chosen=chosen, first_source=dock.sources[0]["path"] if dock.sources else None,
                command=task.command if task is not None else None,
                caption=dock.picture_caption.text(), picture_file=dock.picture_file,
                picture_visible=dock.picture.isVisibleTo(dock),
                pixmap=[pixmap.width(), pixmap.height()] if pixmap is not None else None,
                picture_layer=layer_report(QgsRasterLayer(dock.picture_file, "picture"))
                if dock.picture_file else None,
            )  # fmt: skip
            # "Sources in this recording" lists what the separator hears in the selection.
            dock.sources_button.click()
            sources_task = plugin.listener.sources_task
            report["sources_running"] = dock.sources_list.text()
            wait_for(lambda: sources_task is not None and plugin.listener._finished(sources_task),
                     300)  # fmt: skip
            report.update(
                sources_command=sources_task.command if sources_task is not None else None,
                sources_text=dock.sources_list.text(),
            )  # fmt: skip
            # A new spot clears the picture and the sources of the old one.
            plugin.listener.listen_at(QgsPointXY(0.0, 0.0))
            report["after_new_spot"] = {"visible": dock.picture.isVisibleTo(dock),
                                        "file": dock.picture_file,
                                        "sources": dock.sources_list.text()}  # fmt: skip
        finally:
            plugin.unload()
            QgsSettings().remove("geosound/generator")
            QgsSettings().remove("geosound/separator")
        return report


ORDER = ("point", "layer", "errors", "sources", "dock")


def main(argv: list[str]) -> int:
    report_path, work, setup_path = (Path(a).resolve() for a in argv[1:4])
    wanted = argv[4:] or list(ORDER)
    work.mkdir(parents=True, exist_ok=True)
    app = QgsApplication([], True)
    app.initQgis()
    from geosound_qgis.provider import GeosoundProvider
    from processing.core.Processing import Processing

    Processing.initialize()
    provider = GeosoundProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    checks = Checks(work, json.loads(setup_path.read_text()))
    report: Report = {"qgis": QgsApplication.instance().applicationVersion()}
    for name in ORDER:
        if name in wanted:
            report[name] = checks.run(name)
            report_path.write_text(json.dumps(report, indent=1, default=str))
            print(f"{name}: {'ok' if report[name]['ok'] else 'FAILED'} "
                  f"({report[name]['seconds']} s)", flush=True)  # fmt: skip
    QgsProject.instance().clear()
    app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
