"""Checks of the geosound QGIS plugin, run inside QGIS's own Python (``/usr/bin/python3``).

The project's virtual environment cannot import ``qgis`` and QGIS's Python cannot import
``geosound`` — exactly the split the plugin is built for — so ``tests/test_qgis_plugin.py``
runs this script in a subprocess (``QT_QPA_PLATFORM=offscreen``, ``GEOSOUND_PYTHON`` set to
the venv's python) and asserts on the JSON report it writes: one entry per check with
``ok`` and what was measured, or ``error`` with the traceback. Every check runs even when an
earlier one fails, so one report shows every problem.

Usage: python3 qgis_checks.py REPORT.json WORK_DIR SCENE.tif RECORDINGS [CHECK ...]
(RECORDINGS: a folder of audio files or a CSV table with path and label columns)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "qgis_plugin"))
sys.path.append("/usr/share/qgis/python/plugins")

from qgis.core import (  # noqa: E402 (after the sys.path set-up above)
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsGeometry,
    QgsPointXY,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelChildParameterSource,
    QgsProcessingModelParameter,
    QgsProcessingParameterRasterLayer,
    QgsProject,
    QgsRasterLayer,
    QgsSettings,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QSize  # noqa: E402
from qgis.PyQt.QtWidgets import QMainWindow, QToolBar  # noqa: E402

Report = dict[str, Any]


class Feedback(QgsProcessingFeedback):
    """Records what the algorithm reports; optionally cancels at the first progress update."""

    def __init__(self, cancel_on_progress: bool = False) -> None:
        super().__init__()
        self.progress: list[float] = []
        self.infos: list[str] = []
        self.commands: list[str] = []
        self.cancel_on_progress = cancel_on_progress

    def setProgress(self, progress: float) -> None:  # Qt API
        self.progress.append(float(progress))
        super().setProgress(progress)
        if self.cancel_on_progress:
            self.cancel()

    def pushInfo(self, info: str) -> None:  # Qt API
        self.infos.append(info)
        super().pushInfo(info)

    def pushCommandInfo(self, info: str) -> None:  # Qt API
        self.commands.append(info)
        super().pushCommandInfo(info)


class IfaceStub:
    """The parts of ``QgisInterface`` the plugin uses, with a real window and map canvas."""

    def __init__(self) -> None:
        from qgis.core import QgsProject
        from qgis.gui import QgsLayerTreeMapCanvasBridge, QgsMapCanvas, QgsMessageBar

        self.window = QMainWindow()
        self.window.resize(QSize(1200, 800))
        self.canvas = QgsMapCanvas(self.window)
        self.canvas.resize(QSize(400, 400))
        self.window.setCentralWidget(self.canvas)
        # As in QGIS: the canvas draws the project's layer tree, top layer first.
        root = QgsProject.instance().layerTreeRoot()
        self.bridge = QgsLayerTreeMapCanvasBridge(root, self.canvas, self.canvas)  # Qt-owned
        self.bar = QgsMessageBar(self.window)
        self.toolbars: list[QToolBar] = []
        self.menu: dict[str, list[Any]] = {}
        self.removed_menu: list[Any] = []
        self.docks: list[Any] = []
        self.active: Any = None

    def mainWindow(self) -> QMainWindow:
        return self.window

    def mapCanvas(self) -> Any:
        return self.canvas

    def messageBar(self) -> Any:
        return self.bar

    def activeLayer(self) -> Any:
        return self.active

    def addToolBar(self, name: str) -> QToolBar:
        toolbar = self.window.addToolBar(name)
        self.toolbars.append(toolbar)
        return toolbar

    def addPluginToMenu(self, menu: str, action: Any) -> None:
        self.menu.setdefault(menu, []).append(action)

    def removePluginMenu(self, menu: str, action: Any) -> None:
        self.removed_menu.append(action)
        self.menu.get(menu, []).remove(action)

    def addDockWidget(self, area: Any, dock: Any) -> None:
        self.window.addDockWidget(area, dock)
        self.docks.append(dock)

    def removeDockWidget(self, dock: Any) -> None:
        self.window.removeDockWidget(dock)
        self.docks.remove(dock)


def live_group_members(group: int) -> list[int]:
    """Processes of process group ``group`` still running (zombies excluded), from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, pgrp = fields[0], int(fields[2])
        if pgrp == group and state not in ("Z", "X"):
            members.append(int(stat.parent.name))
    return members


def raises(call: Callable[[], Any]) -> str | None:
    """The QgsProcessingException message ``call`` raises, None if it succeeds."""
    try:
        call()
    except QgsProcessingException as error:
        return str(error)
    return None


class Checks:
    """Each ``check_*`` method returns a dict of measurements; ``run`` catches failures."""

    def __init__(self, work: Path, scene: Path, audio: Path) -> None:
        import processing

        self.processing = processing
        self.work = work
        self.scene = scene
        self.audio = audio
        self.bank: str | None = None
        self.registered = False
        self.timings: dict[str, float] = {}

    def run(self, name: str) -> Report:
        start = time.monotonic()
        try:
            result = getattr(self, f"check_{name}")()
            result.setdefault("ok", True)
        except Exception:
            result = {"ok": False, "error": traceback.format_exc()}
        result["seconds"] = round(time.monotonic() - start, 1)
        return result

    # -- environment and registration ----------------------------------------------------------

    def check_environment(self) -> Report:
        from geosound_qgis.environment import find_environment

        environment = find_environment(QgsSettings().value("geosound/python", "", type=str))
        return {"python": str(environment.python), "source": environment.source,
                "version": environment.version}  # fmt: skip

    def register(self) -> bool:
        """Register the provider alone (as the plugin would) for the algorithm checks."""
        from geosound_qgis.provider import GeosoundProvider

        self.provider = GeosoundProvider()
        return QgsApplication.processingRegistry().addProvider(self.provider)

    def check_registration(self) -> Report:
        algorithms = {}
        for algorithm in self.provider.algorithms():
            algorithms[algorithm.id()] = {
                "display": algorithm.displayName(),
                "group": algorithm.group(),
                "parameters": {p.name(): p.type() for p in algorithm.parameterDefinitions()},
                "outputs": {o.name(): o.type() for o in algorithm.outputDefinitions()},
                "help": bool(algorithm.shortHelpString()),
                "instance": type(algorithm.create()).__name__,
            }
        # The graphical modeler: a model with a raster input feeding the soundscape map.
        model = QgsProcessingModelAlgorithm("listen model", "geosound tests")
        model.addModelParameter(
            QgsProcessingParameterRasterLayer("scene", "Scene"),
            QgsProcessingModelParameter("scene"),
        )
        child = QgsProcessingModelChildAlgorithm("geosound:soundscapemap")
        child.setChildId("map")
        child.addParameterSources(
            "INPUT", [QgsProcessingModelChildParameterSource.fromModelParameter("scene")]
        )
        for parameter in child.algorithm().parameterDefinitions():  # as the modeler does
            if parameter.name() != "INPUT" and parameter.defaultValue() is not None:
                source = QgsProcessingModelChildParameterSource.fromStaticValue(
                    parameter.defaultValue()
                )
                child.addParameterSources(parameter.name(), [source])
        model.addChildAlgorithm(child)
        valid, issues = model.validateChildAlgorithm("map")
        return {"added": self.registered, "algorithms": algorithms,
                "model_child_valid": valid, "model_issues": list(issues)}  # fmt: skip

    def check_dialogs(self) -> Report:
        """Every algorithm's Toolbox dialog and batch dialog build their parameter widgets."""
        import qgis.utils
        from processing.gui.AlgorithmDialog import AlgorithmDialog
        from processing.gui.BatchAlgorithmDialog import BatchAlgorithmDialog

        iface = IfaceStub()
        qgis.utils.iface = iface  # the dialogs look for the main window through it
        report: Report = {}
        try:
            for algorithm in self.provider.algorithms():
                dialog = AlgorithmDialog(algorithm.create(), False, iface.mainWindow())
                batch = BatchAlgorithmDialog(algorithm.create(), iface.mainWindow())
                report[algorithm.id()] = {
                    "widgets": len(dialog.mainWidget().wrappers),
                    "parameters": len(algorithm.parameterDefinitions()),
                    "batch_columns": batch.mainWidget().tblParameters.columnCount(),
                    **self._dialog_layout(dialog, algorithm),
                }
                dialog.deleteLater()
                batch.deleteLater()
        finally:
            qgis.utils.iface = None
        return report

    @staticmethod
    def _dialog_layout(dialog: Any, algorithm: Any) -> Report:
        """What the user sees of a dialog at its first size: the help as rendered, and
        whether every browse button lies inside the visible part of the parameter panel."""
        from qgis.gui import QgsFileWidget
        from qgis.PyQt.QtCore import QPoint, QRect
        from qgis.PyQt.QtWidgets import QScrollArea, QTextBrowser, QToolButton

        dialog.show()
        QgsApplication.processEvents()
        helps = [b.toPlainText() for b in dialog.findChildren(QTextBrowser) if b.toPlainText()]
        hidden, overflow = [], []
        for area in dialog.findChildren(QScrollArea):
            viewport = area.viewport()
            if area.widget() is not None and area.widget().findChildren(QgsFileWidget):
                overflow.append(area.widget().minimumSizeHint().width() - viewport.width())
            visible = QRect(QPoint(0, 0), viewport.size())
            for widget in area.widget().findChildren(QgsFileWidget) if area.widget() else []:
                for button in widget.findChildren(QToolButton):
                    if not button.isVisibleTo(dialog):
                        continue
                    corner = button.mapTo(viewport, QPoint(button.width() - 1, 0))
                    if corner.x() >= visible.width():
                        hidden.append(widget.objectName() or type(widget).__name__)
        dialog.hide()
        return {
            "help_rendered": " ".join(helps),
            "help_source": algorithm.ALG_HELP,
            "hidden_browse_buttons": hidden,
            "overflow": overflow,
        }

    # -- algorithms ----------------------------------------------------------------------------

    def check_buildindex(self) -> Report:
        feedback = Feedback()
        result = self.processing.run(
            "geosound:buildindex",
            {
                "TABLE" if self.audio.is_file() else "INPUT": str(self.audio),
                "OUTPUT": str(self.work / "bank"),
            },
            feedback=feedback,
        )
        self.bank = result["OUTPUT"]
        default_output = QgsApplication.processingRegistry().algorithmById(
            "geosound:buildindex").parameterDefinition("OUTPUT").defaultValue()  # fmt: skip
        return {
            "outputs": result, "default_bank": QgsSettings().value("geosound/bank", ""),
            "default_output": default_output, "profile": QgsApplication.qgisSettingsDirPath(),
            "files": sorted(os.listdir(result["OUTPUT"])),
            "progress": feedback.progress, "commands": feedback.commands,
        }  # fmt: skip

    def check_soundscapemap(self) -> Report:
        feedback = Feedback()
        result = self.processing.run(
            "geosound:soundscapemap",
            {
                "INPUT": str(self.scene),
                "QUERIES": "birds chirping in trees\ncars driving on a road",
                "TILE": 64,
                "OUTPUT": str(self.work / "similarity.tif"),
                "PROBABILITY": str(self.work / "probability.tif"),
                "QUERY_FOLDER": str(self.work / "per_query"),
            },
            feedback=feedback,
        )
        layer = QgsRasterLayer(result["OUTPUT"], "similarity")
        scene = QgsRasterLayer(str(self.scene), "scene")
        per_query = [QgsRasterLayer(p, "q") for p in result["QUERY_RASTERS"]]
        inside = scene.extent().buffered(-1.0)  # a metre inside the scene's corners
        corners = {"top_left": QgsPointXY(inside.xMinimum(), inside.yMaximum()),
                   "bottom_right": QgsPointXY(inside.xMaximum(), inside.yMinimum())}  # fmt: skip
        return {
            "outputs": {k: v for k, v in result.items() if k != "NOTE"},
            "note": result["NOTE"],
            "valid": layer.isValid(),
            "crs": layer.crs().authid(),
            "scene_crs": scene.crs().authid(),
            "extent": _extent(layer),
            "scene_extent": _extent(scene),
            "corner_values": {
                name: layer.dataProvider().sample(point, 1) for name, point in corners.items()
            },
            "pixel_size": [layer.rasterUnitsPerPixelX(), layer.rasterUnitsPerPixelY()],
            "bands": layer.bandCount(),
            "band_names": [layer.bandName(b) for b in range(1, layer.bandCount() + 1)],
            "renderer": layer.renderer().type() if layer.renderer() else None,
            "probability_valid": QgsRasterLayer(result["PROBABILITY"], "p").isValid(),
            "per_query": [(q.isValid(), q.bandCount(), q.renderer().type()) for q in per_query],
            "progress": feedback.progress,
            "infos": feedback.infos,
        }

    def check_tiling(self) -> Report:
        """The ``geosound map`` arguments a map algorithm builds, with and without a tile size."""
        algorithm = QgsApplication.processingRegistry().algorithmById("geosound:soundscapemap")
        context = QgsProcessingContext()
        base = {"INPUT": str(self.scene), "QUERIES": "rain",
                "OUTPUT": str(self.work / "tiling.tif")}  # fmt: skip
        arguments = {}
        for name, parameters in (("default", base), ("pixels", {**base, "TILE": 48})):
            arguments[name] = algorithm.create().map_arguments(
                parameters, context, self.work / "tiling"
            )
        return {"arguments": arguments}

    def check_conceptmap(self) -> Report:
        feedback = Feedback()
        result = self.processing.run(
            "geosound:conceptmap",
            {"INPUT": str(self.scene), "TILE": 64, "OUTPUT": str(self.work / "concepts.tif"),
             "WEIGHT": str(self.work / "concept_weight.tif")},
            feedback=feedback,
        )  # fmt: skip
        layer = QgsRasterLayer(result["OUTPUT"], "concepts")
        weight = QgsRasterLayer(result["WEIGHT"], "weight")  # kept: renderers die with layers
        renderer = layer.renderer()
        classes = [(c.value, c.label) for c in renderer.classes()] if renderer else []
        return {
            "valid": layer.isValid(),
            "crs": layer.crs().authid(),
            "renderer": renderer.type() if renderer else None,
            "classes": classes,
            "legend": json.loads(result["LEGEND"]),
            "weight_renderer": weight.renderer().type(),
            "region_cache": result["REGION_CACHE"],
            "infos": feedback.infos,
        }

    def check_retrievetiles(self) -> Report:
        from geosound_qgis.styling import style_footprints

        extent = "486859,488779,5206050,5207650 [EPSG:26914]"
        result = self.processing.run(
            "geosound:retrievetiles",
            {"INPUT": str(self.scene), "BANK": self.bank, "K": 3, "TILE": 64,
             "EXTENT": extent, "OUTPUT": str(self.work / "tiles.gpkg")},
        )  # fmt: skip
        layer = QgsVectorLayer(result["OUTPUT"], "tiles", "ogr")
        style_footprints(layer)
        symbol = layer.renderer().symbol()
        first = next(layer.getFeatures())
        return {
            "valid": layer.isValid(),
            "count": layer.featureCount(),
            "geometry": layer.geometryType(),
            "crs": layer.crs().authid(),
            "fields": layer.fields().names(),
            "extent": _extent(layer),
            "first": {n: first[n] for n in ("sound_1", "score_1", "class_1")},
            "fill_alpha": symbol.symbolLayer(0).fillColor().alpha(),
            "brush": int(symbol.symbolLayer(0).brushStyle()),
        }

    def check_retrievepoints(self) -> Report:
        points = QgsVectorLayer("Point?crs=EPSG:4326&field=name:string", "spots", "memory")
        features = []
        for name, lon, lat in (("pond", -99.160, 47.020), ("field", -99.150, 47.015)):
            feature = QgsFeature(points.fields())
            feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(lon, lat)))
            feature["name"] = name
            features.append(feature)
        points.dataProvider().addFeatures(features)
        result = self.processing.run(
            "geosound:retrievepoints",
            {"INPUT": points, "RASTER": str(self.scene), "BANK": self.bank, "K": 2,
             "SECONDS": 3.0, "OUTPUT_FOLDER": str(self.work / "point_wavs"),
             "OUTPUT": str(self.work / "points.gpkg")},
        )  # fmt: skip
        layer = QgsVectorLayer(result["OUTPUT"], "points", "ogr")
        rows = [{n: f[n] for n in ("name", "wav", "sound_1", "score_1", "sound_2")}
                for f in layer.getFeatures()]  # fmt: skip
        return {"valid": layer.isValid(), "crs": layer.crs().authid(),
                "geometry": layer.geometryType(), "fields": layer.fields().names(),
                "rows": rows, "wavs_exist": [os.path.isfile(r["wav"]) for r in rows]}  # fmt: skip

    def check_synthesizepoint(self) -> Report:
        result = self.processing.run(
            "geosound:synthesizepoint",
            {"POINT": "488000,5207000 [EPSG:26914]", "RASTER": str(self.scene),
             "BANK": self.bank, "K": 2, "SECONDS": 3.0, "OUTPUT": str(self.work / "spot.wav"),
             "OUTPUT_LAYER": "memory:"},
        )  # fmt: skip
        layer = as_vector_layer(result["OUTPUT_LAYER"])
        feature = next(layer.getFeatures())
        return {
            "wav": result["OUTPUT"],
            "wav_exists": os.path.isfile(result["OUTPUT"]),
            "wav_bytes": os.path.getsize(result["OUTPUT"]),
            "sidecar_exists": os.path.isfile(result["SIDECAR"]),
            "sources": json.loads(result["SOURCES"]),
            "layer_valid": layer.isValid(),
            "layer_wav": feature["wav"],
            "layer_sound_1": feature["sound_1"],
            "layer_crs": layer.crs().authid(),
        }

    # -- failures ------------------------------------------------------------------------------

    def check_errors(self) -> Report:
        from osgeo import gdal

        settings = QgsSettings()
        report: Report = {}
        settings.setValue("geosound/python", "/nonexistent/geosound-env/bin/python")
        try:
            report["bad_python"] = raises(lambda: self.processing.run(
                "geosound:soundscapemap",
                {"INPUT": str(self.scene), "OUTPUT": str(self.work / "never.tif")},
            ))  # fmt: skip
        finally:
            settings.remove("geosound/python")

        no_crs = self.work / "no_crs.tif"
        dataset = gdal.GetDriverByName("GTiff").Create(str(no_crs), 64, 64, 3, gdal.GDT_Byte)
        dataset.GetRasterBand(1).Fill(100)
        dataset = None
        report["no_crs"] = raises(lambda: self.processing.run(
            "geosound:soundscapemap",
            {"INPUT": str(no_crs), "OUTPUT": str(self.work / "never2.tif")},
        ))  # fmt: skip
        report["no_queries"] = raises(lambda: self.processing.run(
            "geosound:soundscapemap",
            {"INPUT": str(self.scene), "QUERIES": "  \n", "OUTPUT": str(self.work / "n3.tif")},
        ))  # fmt: skip
        # An error that only geosound itself can find: its message must come through.
        report["outside"] = raises(lambda: self.processing.run(
            "geosound:synthesizepoint",
            {"POINT": "0,0 [EPSG:26914]", "RASTER": str(self.scene), "BANK": self.bank,
             "OUTPUT": str(self.work / "never.wav")},
        ))  # fmt: skip
        report["outside_wrote_nothing"] = not (self.work / "never.wav").exists()

        # Cancel at the first progress update: the geosound process must have been stopped
        # by the plugin's signal (not have run to its end), with its whole process group.
        import geosound_qgis.runner as runner

        killed: list[Any] = []
        original_kill = runner._kill_tree

        def recording_kill(process: Any, grace: float) -> None:
            killed.append(process)
            original_kill(process, grace)

        runner._kill_tree = recording_kill
        feedback = Feedback(cancel_on_progress=True)
        start = time.monotonic()
        try:
            report["canceled"] = raises(lambda: self.processing.run(
                "geosound:soundscapemap",
                {"INPUT": str(self.scene), "TILE": 32, "QUERIES": "rain",
                 "OUTPUT": str(self.work / "canceled.tif")},
                feedback=feedback,
            ))  # fmt: skip
        finally:
            runner._kill_tree = original_kill
        report["cancel_seconds"] = round(time.monotonic() - start, 1)  # informative only
        report["cancel_kills"] = len(killed)
        report["canceled_returncode"] = killed[0].returncode if killed else None
        deadline = time.monotonic() + 60  # bounds a hang only: the group was signalled
        while killed and live_group_members(killed[0].pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        report["canceled_group_left"] = live_group_members(killed[0].pid) if killed else None
        report["canceled_output_exists"] = (self.work / "canceled.tif").exists()
        return report

    # -- the plugin in a (stub) QGIS window ----------------------------------------------------

    def check_plugin(self) -> Report:
        import geosound_qgis

        registry = QgsApplication.processingRegistry()
        if registry.providerById("geosound") is not None:  # the standalone one from above
            registry.removeProvider("geosound")
        iface = IfaceStub()
        plugin = geosound_qgis.classFactory(iface)
        plugin.initGui()
        menu = iface.menu.get("&geosound", [])
        report: Report = {
            "provider_after_init": registry.providerById("geosound") is not None,
            "algorithms": sorted(a.id() for a in registry.providerById("geosound").algorithms()),
            "toolbar": [a.text() for a in iface.toolbars[0].actions()],
            "menu": [a.text() for a in menu],
            "tooltips": {a.text(): a.toolTip() for a in menu},
            "icons": {a.text(): _icon_bytes(a.icon()) for a in menu},
            "docks": [d.objectName() for d in iface.docks],
            "environment_problem": plugin.check_environment(),
        }
        opened: list[str] = []
        original = self.processing.execAlgorithmDialog
        self.processing.execAlgorithmDialog = lambda alg_id, params=None: opened.append(alg_id)
        try:
            for action in iface.toolbars[0].actions()[1:]:
                action.trigger()
        finally:
            self.processing.execAlgorithmDialog = original
        report["opened"] = opened
        setup = plugin.open_setup()
        report["setup_dialog"] = setup.windowTitle()
        setup.close()
        iface.window.show()
        plugin.listen_action.trigger()
        report["listen_tool_active"] = iface.canvas.mapTool() is plugin.map_tool
        report["dock_size"] = [plugin.dock.width(), plugin.dock.height()]
        report["layers"] = self._loaded_layers(iface)
        report["listen"] = self._listen(plugin, iface) if self.bank else {"skipped": "no bank"}
        plugin.listen_action.trigger()
        report["listen_tool_off"] = iface.canvas.mapTool() is not plugin.map_tool
        plugin.unload()
        report["provider_after_unload"] = registry.providerById("geosound") is not None
        report["menu_after_unload"] = len(iface.menu.get("&geosound", []))
        report["docks_after_unload"] = len(iface.docks)
        return report

    def _loaded_layers(self, iface: IfaceStub) -> Report:
        """A soundscape map and a concept map run as the Toolbox runs them (outputs loaded
        into the project); what the Layers panel then shows."""
        from qgis.core import QgsLayerTreeModel

        project = QgsProject.instance()
        self.scene_layer = QgsRasterLayer(str(self.scene), "scene")
        project.addMapLayer(self.scene_layer)
        iface.canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:4326"))
        result = self.processing.runAndLoadResults(
            "geosound:soundscapemap",
            {"INPUT": str(self.scene), "TILE": 64,
             "QUERIES": "birds chirping in trees\ncars driving on a road",
             "OUTPUT": str(self.work / "loaded" / "similarity.tif")},
        )  # fmt: skip
        concepts = self.processing.runAndLoadResults(
            "geosound:conceptmap",
            {"INPUT": str(self.scene), "TILE": 64, "OUTPUT": str(self.work / "loaded" / "c.tif"),
             "SUBTILE": str(self.work / "loaded" / "c_subtile.tif")},
        )  # fmt: skip
        root = project.layerTreeRoot()
        model = QgsLayerTreeModel(root)
        tree = []
        for group in root.children():
            if not hasattr(group, "findLayers") or group.nodeType() != 0:  # groups only
                continue
            entries = []
            for node in group.findLayers():
                layer = node.layer()
                legend = [n.data(0) for n in model.layerLegendNodes(node)]
                entries.append({
                    "name": layer.name(), "opacity": layer.renderer().opacity(),
                    "legend": [str(text) for text in legend],
                    "product": layer.customProperty("geosound/product"),
                    "bands": layer.bandCount(),
                })  # fmt: skip
            tree.append({"group": group.name(), "layers": entries})
        # Listen after a map run: the newest output is the active layer, as in QGIS.
        newest = root.findGroups()[0].findLayers()[0].layer()
        iface.active = newest
        iface.canvas.refresh()
        QgsApplication.processEvents()
        # The output re-styled by hand (another .qml, no property): still recognised.
        from geosound_qgis.styling import product_of

        restyled = QgsRasterLayer(result["QUERY_RASTERS"][0], "restyled")
        restyled.setRenderer(self.scene_layer.renderer().clone())
        # geosound's own output folder (the algorithm's work folder): map.json names the file.
        from qgis.core import QgsProcessingUtils

        temp = Path(QgsProcessingUtils.tempFolder())
        work = [f for f in temp.glob("geosound_soundscapemap_*/similarity.tif")
                if f.with_name("map.json").is_file()]  # fmt: skip
        cli_output = QgsRasterLayer(str(work[0]), "cli") if work else None
        return {
            "tree": tree,
            "query_rasters": result["QUERY_RASTERS"],
            "canvas_top": [layer.name() for layer in iface.canvas.layers()][:3],
            "active": newest.name(),
            "restyled_product": product_of(restyled),
            "scene_product": product_of(self.scene_layer),
            "cli_product": product_of(cli_output) if cli_output is not None else "no cli output",
            "subtile": concepts.get("SUBTILE"),
        }

    def _listen(self, plugin: Any, iface: IfaceStub) -> Report:
        """Click the map over the scene (outputs above it, one active) and wait for the dock."""
        dock = plugin.dock
        report: Report = {"raster_outside": plugin.listener.raster_under(
            QgsPointXY(0.0, 0.0), QgsCoordinateReferenceSystem("EPSG:4326")) is None}  # fmt: skip
        chosen = plugin.listener.raster_under(
            QgsPointXY(-99.160, 47.020), QgsCoordinateReferenceSystem("EPSG:4326")
        )
        report["chosen"] = chosen.name() if chosen is not None else None
        task = plugin.listener.listen_at(QgsPointXY(-99.160, 47.020))
        report["task_started"] = task is not None
        report["running_status"] = dock.status.text()
        wait_for(lambda: dock.wav is not None or "Could not" in dock.status.text(), 180)
        buttons = dock.play_buttons()
        report.update(
            status=dock.status.text(),
            rows=dock.table.rowCount(),
            labels=[dock.table.item(r, 2).text() for r in range(dock.table.rowCount())],
            wav=dock.wav,
            wav_exists=bool(dock.wav) and os.path.isfile(dock.wav),
            note=dock.note.text(),
            player_available=dock.player.available,
            player_backend=dock.player.backend,
            player_reason=dock.player.reason,
            buttons_enabled=[b.isEnabled() for b in buttons],
            button_tooltips=sorted({b.toolTip() for b in buttons}),
            playback_line=dock.playback.text(),
        )
        if dock.player.available:  # press "Play the mix", then a recording's button
            dock.play_mix.click()
            report["playing_mix"] = dock.player.current == dock.wav
            report["qt_media_mix"] = dock.player.media_url()
            buttons[1].click()
            report["playing_first"] = dock.player.current == dock.sources[0]["path"]
            report["qt_media_first"] = dock.player.media_url()
            dock.player.stop()
        report["external"] = self._external_player(dock.wav) if dock.wav else None
        # A failing click afterwards: the old sounds must not stay under the error.
        plugin.listener.listen_at(QgsPointXY(0.0, 0.0))
        report["after_error"] = {
            "status": dock.status.text(), "rows": dock.table.rowCount(), "wav": dock.wav,
            "mix_enabled": dock.play_mix.isEnabled(),
        }  # fmt: skip
        return report

    def _external_player(self, wav: str) -> Report:
        """The fallback without Qt Multimedia: an external player command gets the file."""
        from geosound_qgis.media import AudioPlayer

        record = self.work / "played.txt"
        script = self.work / "fake_player.py"
        script.write_text(f"import sys\nopen({str(record)!r}, 'w').write(sys.argv[-1])\n")
        player = AudioPlayer(f"{sys.executable} {script}", use_qt=False)
        started = player.play(wav)
        wait_for(lambda: record.exists() and record.read_text() == wav, 30)
        return {"backend": player.backend, "started": started,
                "played": record.read_text() if record.exists() else None}  # fmt: skip

    # -- setting up an environment from a wheel -------------------------------------------------

    def check_setup(self) -> Report:
        """The managed environment: detected when present; "Set up geosound" creates it from a
        wheel of this repository (offline: --no-deps --no-index, the venv's packages shared)."""
        from geosound_qgis.environment import ENV_VAR, find_environment
        from geosound_qgis.profile import looked_at, managed_folder, profile_folder
        from geosound_qgis.setup_dialog import SetupDialog

        wheel = os.environ.get("GEOSOUND_TEST_WHEEL", "")
        shared = os.environ.get("GEOSOUND_TEST_SHARED_SITE", "")
        if not wheel:
            return {"ok": False, "error": "GEOSOUND_TEST_WHEEL not set"}
        saved = os.environ.pop(ENV_VAR, None)
        settings = QgsSettings()
        settings.remove("geosound/python")
        report: Report = {"profile": profile_folder(), "managed": str(managed_folder()),
                          "before": looked_at("")}  # fmt: skip
        try:
            dialog = SetupDialog()
            dialog.from_wheel.setChecked(True)
            dialog.wheel.setFilePath(wheel)
            dialog.shared.setText(shared)
            dialog.pip_options.setText("--no-deps --no-index")
            progress: list[int] = []
            dialog.progress.valueChanged.connect(progress.append)
            task = dialog.install()
            report["task_started"] = task is not None
            wait_for(lambda: dialog.task is None, 600)
            report.update(
                status=dialog.status.text(), progress=progress,
                log=dialog.log.toPlainText()[-3000:],
                diagnostics=dialog.copy_diagnostics(),
                clipboard=QgsApplication.clipboard().text()[:200],
                setting=settings.value("geosound/python", "", type=str),
            )  # fmt: skip
            settings.remove("geosound/python")  # detection alone must find it now
            report["after"] = looked_at("")
            found = find_environment("", profile_folder())
            report["found"] = {"python": str(found.python), "source": found.source,
                               "version": found.version}  # fmt: skip
            done = subprocess.run(
                [str(found.python), "-c", "import geosound, sys; print(geosound.__file__)"],
                capture_output=True, text=True, timeout=120, cwd=str(self.work),
            )  # fmt: skip
            report["geosound_file"] = done.stdout.strip()
            dialog.deleteLater()
            QgsApplication.processEvents()
        finally:
            if saved is not None:
                os.environ[ENV_VAR] = saved
        return report


def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    """Process Qt events until ``condition`` holds; the deadline only bounds a hang."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        QgsApplication.processEvents()
        time.sleep(0.05)
    return condition()


def _icon_bytes(icon: Any) -> str:
    """The icon drawn at 32 px, hashed: equal hashes mean identical icons."""
    import hashlib

    from qgis.PyQt.QtCore import QBuffer, QByteArray, QIODevice

    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.WriteOnly)
    icon.pixmap(32, 32).save(buffer, "PNG")
    return hashlib.sha1(bytes(data)).hexdigest()


def as_vector_layer(value: Any) -> QgsVectorLayer:
    """An output given as a layer, a layer id or a path, as a vector layer."""
    if isinstance(value, QgsVectorLayer):
        return value
    layer = QgsProject.instance().mapLayer(value)
    return layer if layer is not None else QgsVectorLayer(value, "output", "ogr")


def _extent(layer: Any) -> list[float]:
    e = layer.extent()
    return [e.xMinimum(), e.yMinimum(), e.xMaximum(), e.yMaximum()]


ORDER = ("environment", "registration", "dialogs", "tiling", "buildindex", "soundscapemap",
         "conceptmap", "retrievetiles", "retrievepoints", "synthesizepoint", "errors", "plugin",
         "setup")  # fmt: skip


def main(argv: list[str]) -> int:
    report_path, work, scene, audio = (Path(a) for a in argv[1:5])
    wanted = argv[5:] or list(ORDER)
    work.mkdir(parents=True, exist_ok=True)
    app = QgsApplication([], True)
    app.initQgis()
    from processing.core.Processing import Processing

    Processing.initialize()
    checks = Checks(work, scene, audio)
    checks.registered = checks.register()
    report: Report = {"qgis": QgsApplication.instance().applicationVersion()}
    for name in ORDER:
        if name in wanted:
            report[name] = checks.run(name)
            report_path.write_text(json.dumps(report, indent=1, default=str))
            print(f"{name}: {'ok' if report[name]['ok'] else 'FAILED'} "
                  f"({report[name]['seconds']} s)", flush=True)  # fmt: skip
    QgsProject.instance().clear()  # layers and tree nodes go before the application does
    app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
