"""The QGIS plugin: Processing provider, toolbar and menu, Listen map tool and its dock."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QAction, QToolBar

from .algorithms import ALGORITHMS
from .algorithms.base import plugin_icon
from .listen import ListenController, ListenMapTool
from .provider import PROVIDER_ID, GeosoundProvider
from .settings_dialog import SettingsDialog
from .sound_dock import SoundDock

MENU = "&geosound"
TOOLBAR_ALGORITHMS = ("soundscapemap", "conceptmap")


class GeosoundPlugin:
    """What QGIS loads: ``initProcessing``/``initGui`` add everything, ``unload`` removes it."""

    def __init__(self, iface: Any) -> None:
        self.iface = iface
        self.provider: GeosoundProvider | None = None
        self.toolbar: QToolBar | None = None
        self.actions: list[QAction] = []
        self.listen_action: QAction | None = None
        self.dock: SoundDock | None = None
        self.map_tool: ListenMapTool | None = None
        self.listener: ListenController | None = None

    # -- QGIS plugin API ---------------------------------------------------------------------

    def initProcessing(self) -> None:
        """Register the provider; QGIS also calls this without a GUI (hasProcessingProvider)."""
        if self.provider is None:
            self.provider = GeosoundProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:
        self.initProcessing()
        window = self.iface.mainWindow()
        self.toolbar = self.iface.addToolBar("geosound")
        self.toolbar.setObjectName("geosoundToolbar")

        canvas = self.iface.mapCanvas()
        self.dock = SoundDock(window)
        self.iface.addDockWidget(Qt.RightDockWidgetArea, self.dock)
        self.dock.hide()
        self.map_tool = ListenMapTool(canvas)
        self.listener = ListenController(canvas, self.dock, self.iface.activeLayer)
        self.map_tool.canvasClicked.connect(self.listener.listen_at)

        self.listen_action = self._action(
            "Listen here", self._toggle_listen, icon="listen.svg",
            tip="Click the map over imagery: the nearest real recordings and a mix of them",
        )  # fmt: skip
        self.listen_action.setCheckable(True)
        self.map_tool.setAction(self.listen_action)
        self.toolbar.addAction(self.listen_action)

        for algorithm in ALGORITHMS:
            instance = algorithm()
            action = self._action(
                f"{instance.ALG_DISPLAY}…",
                lambda _checked=False, name=instance.ALG_NAME: self.open_algorithm(name),
                tip=instance.ALG_HELP.split("\n")[0],
            )  # fmt: skip
            action.setObjectName(f"geosound_{instance.ALG_NAME}")
            if instance.ALG_NAME in TOOLBAR_ALGORITHMS:
                self.toolbar.addAction(action)
        self._action("Settings…", self.open_settings, tip="geosound environment and audio bank")

    def unload(self) -> None:
        if self.listener is not None:
            self.listener.cancel()
        canvas = self.iface.mapCanvas()
        if self.map_tool is not None and canvas.mapTool() is self.map_tool:
            canvas.unsetMapTool(self.map_tool)
        for action in self.actions:
            self.iface.removePluginMenu(MENU, action)
            action.deleteLater()
        self.actions.clear()
        if self.dock is not None:
            self.dock.player.stop()
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        if self.toolbar is not None:
            self.toolbar.deleteLater()
            self.toolbar = None
        self.map_tool = None
        self.listener = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None

    # -- actions -------------------------------------------------------------------------------

    def open_algorithm(self, name: str) -> None:
        """Open an algorithm's dialog, as the Toolbox would."""
        import processing  # the Processing plugin: imported late, it may load after us

        processing.execAlgorithmDialog(f"{PROVIDER_ID}:{name}", {})

    def open_settings(self) -> None:
        SettingsDialog(self.iface.mainWindow()).exec_()

    def _toggle_listen(self, checked: bool) -> None:
        canvas = self.iface.mapCanvas()
        if checked and self.map_tool is not None:
            canvas.setMapTool(self.map_tool)
            if self.dock is not None:
                self.dock.show()
        elif self.map_tool is not None and canvas.mapTool() is self.map_tool:
            canvas.unsetMapTool(self.map_tool)

    def _action(self, text: str, slot: Any, *, icon: str = "icon.svg", tip: str = "") -> QAction:
        action = QAction(plugin_icon(icon), text, self.iface.mainWindow())
        action.triggered.connect(slot)
        action.setStatusTip(tip)
        action.setToolTip(tip or text)
        self.iface.addPluginToMenu(MENU, action)
        self.actions.append(action)
        return action
