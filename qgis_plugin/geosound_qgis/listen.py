"""The Listen map tool: click a spot, hear what it probably sounds like.

A click picks the imagery under the spot, then ``geosound synthesize`` runs in a background
:class:`QgsTask` (the canvas stays responsive for the ~10 s it takes) and the dock lists the
nearest recordings and the mix. Only one spot is listened to at a time: a new click cancels
the previous run.

Once the sounds are listed, "Picture of this place" runs ``geosound generate`` the same way
(its own background task) on the selected recording, or the mix, at the clicked spot, and the
dock shows the picture SounDiT generated.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsCsException,
    QgsPointXY,
    QgsProcessingUtils,
    QgsProject,
    QgsRasterLayer,
    QgsSettings,
    QgsTask,
)
from qgis.gui import QgsMapCanvas, QgsMapToolEmitPoint

from .algorithms.base import crs_argument
from .algorithms.landscape import GENERATOR_SETTINGS_KEY, PRODUCT, lon_lat
from .algorithms.sources import SEPARATOR_SETTINGS_KEY
from .environment import BANK_SETTINGS_KEY, EnvironmentNotFound, child_environment
from .profile import qgis_environment
from .runner import GeosoundRunError, RunResult, run_geosound
from .sound_dock import SoundDock
from .styling import mark_product, product_of

K_SETTINGS_KEY = "geosound/listen_k"
SECONDS_SETTINGS_KEY = "geosound/listen_seconds"


class ListenMapTool(QgsMapToolEmitPoint):
    """Emits ``canvasClicked(point, button)`` in the canvas CRS; the controller listens."""

    def __init__(self, canvas: QgsMapCanvas) -> None:
        super().__init__(canvas)
        self.setCursor(QgsApplication.getThemeCursor(QgsApplication.CrossHair))


class ListenTask(QgsTask):
    """Runs one ``geosound synthesize`` in the background; ``on_done`` runs in the GUI thread."""

    def __init__(
        self, description: str, command: list[str], wav: Path,
        on_done: Callable[[ListenTask], None],
    ) -> None:  # fmt: skip
        super().__init__(description, QgsTask.CanCancel)
        self.command = command
        self.wav = wav
        self.on_done = on_done
        self.result: RunResult | None = None
        self.error: str | None = None

    def run(self) -> bool:
        try:
            self.result = run_geosound(
                self.command,
                on_progress=lambda fraction, message: self.setProgress(100.0 * fraction),
                is_canceled=self.isCanceled,
                env=child_environment(),
            )
        except GeosoundRunError as error:
            self.error = error.message
            return False
        return True

    def finished(self, result: bool) -> None:
        if not result and self.error is None:
            self.error = "canceled"
        self.on_done(self)

    def sources(self) -> list[dict[str, Any]]:
        """The recordings mixed, from the sidecar geosound wrote beside the WAV."""
        with open(self.wav.with_suffix(".json"), encoding="utf-8") as handle:
            return list(json.load(handle).get("sources", []))


class PictureTask(ListenTask):
    """Runs one ``geosound generate`` in the background; ``wav`` is the recording heard."""

    def __init__(
        self, description: str, command: list[str], recording: Path, picture: Path,
        on_done: Callable[[ListenTask], None],
    ) -> None:  # fmt: skip
        super().__init__(description, command, recording, on_done)
        self.picture = picture

    def preview(self) -> Path:
        """The picture as a PNG Qt can always show (Qt's TIFF reader is an optional plugin)."""
        from osgeo import gdal  # QGIS always ships GDAL's Python bindings

        png = self.picture.with_suffix(".png")
        done = gdal.Translate(str(png), str(self.picture), format="PNG", bandList=[1, 2, 3])
        if done is None:
            raise OSError(gdal.GetLastErrorMsg() or f"cannot convert {self.picture}")
        done = None  # closes the file
        return png


class ListenController:
    """Turns clicks into listen tasks and their results into the dock's contents."""

    def __init__(self, canvas: QgsMapCanvas, dock: SoundDock, active_layer: Callable[[], Any]):
        self.canvas = canvas
        self.dock = dock
        self.active_layer = active_layer
        self.task: ListenTask | None = None
        self.layer_name: str | None = None
        self.spot: tuple[QgsPointXY, QgsCoordinateReferenceSystem] | None = None
        self.picture_task: PictureTask | None = None
        self.sources_task: ListenTask | None = None
        dock.picture_button.clicked.connect(self.picture_of_place)
        dock.sources_button.clicked.connect(self.sources_of_recording)

    def raster_under(
        self, point: QgsPointXY, crs: QgsCoordinateReferenceSystem
    ) -> QgsRasterLayer | None:
        """The imagery to listen to: the topmost raster under the point that is imagery.

        Layers are taken top first, as the map draws them, whichever layer is active; a
        geosound product (recognised however it was styled, ``styling.product_of``) and
        rasters geosound cannot read (web services, layers without a CRS) are skipped.
        """
        # The canvas's layers, top first; right after layers were added the canvas may not
        # have them yet (its bridge updates later), the layer tree's checked ones then.
        layers = self.canvas.layers() or QgsProject.instance().layerTreeRoot().checkedLayers()
        for layer in layers:
            if not isinstance(layer, QgsRasterLayer) or not layer.isValid():
                continue
            if layer.providerType() != "gdal" or not layer.crs().isValid():
                continue
            try:
                transform = QgsCoordinateTransform(crs, layer.crs(), QgsProject.instance())
                local = transform.transform(point)
            except QgsCsException:
                continue
            if not layer.extent().contains(local) or product_of(layer):
                continue
            return layer
        return None

    def listen_at(self, point: QgsPointXY, button: Any = None) -> ListenTask | None:
        """Start listening at ``point`` (canvas CRS); returns the task, None if it cannot."""
        crs = self.canvas.mapSettings().destinationCrs()
        where = describe_point(point, crs)
        self._drop_picture()  # a picture of the previous spot must not appear under this one
        if self.sources_task is not None and not self._finished(self.sources_task):
            self.sources_task.cancel()
        self.sources_task = None
        self.dock.show()
        settings = QgsSettings()
        bank = settings.value(BANK_SETTINGS_KEY, "", type=str)
        if not bank:
            self.dock.show_error("choose an audio bank in Plugins ▸ geosound ▸ Settings… first")
            return None
        try:
            environment = qgis_environment()
        except EnvironmentNotFound as error:
            self.dock.show_error(str(error))
            return None
        layer = self.raster_under(point, crs)
        if layer is None:
            self.dock.show_error(
                "no imagery under this spot (a raster file with a CRS that is not a geosound "
                "output)"
            )
            return None
        where = describe_point(point, crs, layer.crs())
        if self.task is not None and not self._finished(self.task):
            self.task.cancel()
        from qgis.core import QgsProviderRegistry

        raster = QgsProviderRegistry.instance().decodeUri("gdal", layer.source()).get("path")
        folder = Path(
            tempfile.mkdtemp(prefix="geosound_listen_", dir=QgsProcessingUtils.tempFolder())
        )
        wav = folder / "listen.wav"
        k = settings.value(K_SETTINGS_KEY, 3, type=int)
        seconds = settings.value(SECONDS_SETTINGS_KEY, 10.0, type=float)
        command = environment.command(
            "synthesize", f"--x={point.x()!r}", f"--y={point.y()!r}", f"--crs={crs_argument(crs)}",
            "--raster", str(raster or layer.source()), "--bank", bank, "-o", str(wav),
            "--k", str(k), "--seconds", repr(seconds), "--progress", "json",
        )  # fmt: skip
        task = ListenTask(f"geosound: listening at {where}", command, wav,
                          lambda done: self._done(done, where))  # fmt: skip
        task.progressChanged.connect(self.dock.set_progress)
        self.task = task
        self.layer_name = layer.name()
        self.spot = (QgsPointXY(point), crs)
        self.dock.show_running(where, layer.name())
        QgsApplication.taskManager().addTask(task)
        return task

    def cancel(self) -> None:
        for task in (self.task, self.picture_task, self.sources_task):
            if task is not None and not self._finished(task):
                task.cancel()

    def picture_of_place(self, _checked: bool = False) -> PictureTask | None:
        """Generate the picture of the listened spot from the selected recording (or the mix).

        Returns the task, None when there is nothing to generate from or no environment.
        """
        recording = self.dock.picture_recording()
        if not recording or self.spot is None:
            self.dock.show_picture_error("listen to a spot first")
            return None
        try:
            environment = qgis_environment()
            lon, lat = lon_lat(*self.spot, QgsProject.instance().transformContext())
        except (EnvironmentNotFound, QgsCsException) as error:
            self.dock.show_picture_error(str(error))
            return None
        self._drop_picture()
        folder = Path(
            tempfile.mkdtemp(prefix="geosound_picture_", dir=QgsProcessingUtils.tempFolder())
        )
        picture = folder / f"{Path(recording).stem}_landscape.tif"
        model = QgsSettings().value(GENERATOR_SETTINGS_KEY, "", type=str)
        command = environment.command(
            "generate", f"--audio={recording}", f"--lon={lon!r}", f"--lat={lat!r}",
            "-o", str(picture),  # as wide as geosound generate's default (--ground-m)
            *(["--model", model] if model else []), "--progress", "json",
        )  # fmt: skip
        task = PictureTask(f"geosound: picture of {Path(recording).name}", command,
                           Path(recording), picture, self._picture_done)  # fmt: skip
        task.progressChanged.connect(self.dock.set_progress)
        self.picture_task = task
        self.dock.show_picture_running(recording)
        QgsApplication.taskManager().addTask(task)
        return task

    def sources_of_recording(self, _checked: bool = False) -> ListenTask | None:
        """List the sources of the selected recording (or the mix) with ``geosound separate``.

        Returns the task, None when there is nothing to separate or no environment.
        """
        recording = self.dock.picture_recording()
        if not recording:
            self.dock.show_sources_error("listen to a spot first")
            return None
        try:
            environment = qgis_environment()
        except EnvironmentNotFound as error:
            self.dock.show_sources_error(str(error))
            return None
        if self.sources_task is not None and not self._finished(self.sources_task):
            self.sources_task.cancel()
        model = QgsSettings().value(SEPARATOR_SETTINGS_KEY, "", type=str)
        command = environment.command(
            "separate", recording, *(["--model", model] if model else []), "--progress", "json"
        )
        task = ListenTask(f"geosound: sources of {Path(recording).name}", command,
                          Path(recording), self._sources_done)  # fmt: skip
        self.sources_task = task
        self.dock.show_sources_running(recording)
        QgsApplication.taskManager().addTask(task)
        return task

    def _sources_done(self, task: ListenTask) -> None:
        if task is not self.sources_task:
            return  # a later request replaced this one
        if task.error is not None or task.result is None:
            self.dock.show_sources_error(task.error or "geosound reported no result")
            return
        found = task.result.payload.get("sources")
        self.dock.show_recording_sources(str(task.wav), found if isinstance(found, list) else [])

    def _drop_picture(self) -> None:
        """Forget the running picture task (cancelled): its result would belong elsewhere."""
        if self.picture_task is not None and not self._finished(self.picture_task):
            self.picture_task.cancel()
        self.picture_task = None

    def _picture_done(self, task: ListenTask) -> None:
        if task is not self.picture_task or not isinstance(task, PictureTask):
            return  # a later request replaced this one
        if task.error is not None or task.result is None:
            self.dock.show_picture_error(task.error or "geosound reported no result")
            return
        try:
            preview = task.preview()
            mark_product(task.picture, PRODUCT)  # opened on the map, Listen still skips it
        except OSError as error:
            self.dock.show_picture_error(str(error))
            return
        self.dock.show_picture(str(preview), str(task.picture), str(task.wav), task.result.note)

    def _done(self, task: ListenTask, where: str) -> None:
        if task is not self.task:  # a later click replaced this one
            return
        if task.error is not None or task.result is None:
            self.dock.show_error(task.error or "geosound reported no result")
            return
        try:
            sources = task.sources()
        except (OSError, ValueError) as error:
            self.dock.show_error(f"cannot read the sidecar of {task.wav}: {error}")
            return
        self.dock.show_sounds(where, str(task.wav), sources, task.result.note, self.layer_name)

    @staticmethod
    def _finished(task: QgsTask) -> bool:
        try:
            return task.status() in (QgsTask.Complete, QgsTask.Terminated)
        except RuntimeError:  # the C++ task was already deleted by the task manager
            return True


def _grouped(value: float, decimals: int) -> str:
    return f"{value:,.{decimals}f}"


def format_in(point: QgsPointXY, crs: QgsCoordinateReferenceSystem) -> str:
    """A point in its CRS, as a GIS user reads it: projected metres as ``488,248 E 5,206,940 N``
    (whole units), geographic degrees as ``47.02000° N, 99.16000° W``."""
    if crs.isGeographic():
        lat = f"{abs(point.y()):.5f}° {'N' if point.y() >= 0 else 'S'}"
        lon = f"{abs(point.x()):.5f}° {'E' if point.x() >= 0 else 'W'}"
        return f"{lat}, {lon}"
    return f"{_grouped(point.x(), 0)} E, {_grouped(point.y(), 0)} N"


def describe_point(
    point: QgsPointXY,
    crs: QgsCoordinateReferenceSystem,
    layer_crs: QgsCoordinateReferenceSystem | None = None,
) -> str:
    """Where a click was: in the layer's CRS (or the map's) with its code, and in lon/lat."""
    target = layer_crs if layer_crs is not None and layer_crs.isValid() else crs
    parts = []
    try:
        local = QgsCoordinateTransform(crs, target, QgsProject.instance()).transform(point)
        parts.append(f"{format_in(local, target)} ({target.authid() or 'custom CRS'})")
    except QgsCsException:
        local = None
    if not target.isGeographic() or local is None:
        wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
        try:
            lonlat = QgsCoordinateTransform(crs, wgs84, QgsProject.instance()).transform(point)
            parts.append(format_in(lonlat, wgs84))
        except QgsCsException:
            pass
    return " · ".join(parts) or f"{point.x():.6g}, {point.y():.6g}"
