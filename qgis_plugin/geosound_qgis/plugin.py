"""The QGIS plugin: Processing provider, toolbar and menu, Listen map tool and its dock."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import Qt, QTimer
from qgis.PyQt.QtWidgets import QAction, QToolBar

from .algorithms import ALGORITHMS
from .algorithms.base import plugin_icon
from .environment import EnvironmentNotFound
from .listen import ListenController, ListenMapTool
from .profile import configured_python, qgis_environment
from .provider import PROVIDER_ID, GeosoundProvider
from .settings_dialog import SettingsDialog
from .setup_dialog import SetupDialog
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
        self.setup_action: QAction | None = None
        self.environment_problem: str | None = None

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
            tip="Listen here: click the map to hear the nearest recordings of that spot",
        )  # fmt: skip
        self.listen_action.setCheckable(True)
        self.map_tool.setAction(self.listen_action)
        self.toolbar.addAction(self.listen_action)

        for algorithm in ALGORITHMS:
            instance = algorithm()
            action = self._action(
                f"{instance.ALG_DISPLAY}…",
                lambda _checked=False, name=instance.ALG_NAME: self.open_algorithm(name),
                icon=instance.ALG_ICON, tip=instance.ALG_TIP or instance.ALG_DISPLAY,
            )  # fmt: skip
            action.setObjectName(f"geosound_{instance.ALG_NAME}")
            if instance.ALG_NAME in TOOLBAR_ALGORITHMS:
                self.toolbar.addAction(action)
        self.setup_action = self._action(
            "Set up geosound…", self.open_setup, icon="icons/setup.svg",
            tip="Set up geosound: create its Python environment and install it",
        )  # fmt: skip
        settings_tip = "Settings: the geosound environment, audio bank and Listen options"
        self._action("Settings…", self.open_settings, icon="icons/settings.svg", tip=settings_tip)
        QTimer.singleShot(0, self.check_environment)

    def check_environment(self) -> str | None:
        """First run: find an environment by itself; when none is found, offer to set one up.

        Returns the problem (None when an environment was found). The check runs one short
        subprocess; the answer is cached per interpreter for the session.
        """
        try:
            qgis_environment()
        except EnvironmentNotFound as error:
            self.environment_problem = str(error)
        else:
            self.environment_problem = None
            return None
        bar = getattr(self.iface, "messageBar", None)
        if bar is not None and not configured_python():
            from qgis.core import Qgis
            from qgis.PyQt.QtWidgets import QPushButton

            item = bar().createMessage("geosound", "no geosound environment found yet.")
            button = QPushButton("Set up geosound…")
            button.clicked.connect(self.open_setup)
            item.layout().addWidget(button)
            bar().pushWidget(item, Qgis.Warning, 0)
        return self.environment_problem

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

    def open_setup(self) -> SetupDialog:
        dialog = SetupDialog(self.iface.mainWindow())
        dialog.show()
        self._setup_dialog = dialog  # kept: a non-modal dialog must outlive this call
        return dialog

    def _toggle_listen(self, checked: bool) -> None:
        canvas = self.iface.mapCanvas()
        if checked and self.map_tool is not None:
            canvas.setMapTool(self.map_tool)
            if self.dock is not None:
                self.dock.show()
                self.dock.fit_to(self.iface.mainWindow())
        elif self.map_tool is not None and canvas.mapTool() is self.map_tool:
            canvas.unsetMapTool(self.map_tool)

    def _action(self, text: str, slot: Any, *, icon: str = "icon.svg", tip: str = "") -> QAction:
        action = QAction(plugin_icon(icon), text, self.iface.mainWindow())
        action.triggered.connect(slot)
        action.setStatusTip(tip)
        action.setToolTip(tip or text.rstrip("…"))
        self.iface.addPluginToMenu(MENU, action)
        self.actions.append(action)
        return action
