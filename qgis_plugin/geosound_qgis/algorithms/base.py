"""The base of every geosound Processing algorithm: build a command line, run it, collect.

An algorithm is one subclass with three hooks — :meth:`define_parameters`,
:meth:`build_arguments` (the ``geosound`` arguments for the parameters) and
:meth:`collect_outputs` (copy, style and return the products) — while this class does what
all of them share: find the geosound environment, run ``python -m geosound ... --progress
json`` in a subprocess, map its JSON lines onto the feedback (progress bar, log, cancel button),
and turn every failure into a :class:`QgsProcessingException` carrying geosound's own message.

:class:`MapAlgorithm` adds what the ``geosound map`` products share: the input raster, the
extent, the tiling, and a region cache reused between runs (a second query on a mapped raster
takes seconds instead of re-embedding every tile).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsMapLayer,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputFolder,
    QgsProcessingOutputString,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingUtils,
    QgsProviderRegistry,
    QgsRasterLayer,
    QgsSettings,
)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from ..environment import (
    BANK_SETTINGS_KEY,
    EnvironmentNotFound,
    GeosoundEnvironment,
    child_environment,
)
from ..profile import qgis_environment
from ..runner import GeosoundCanceled, GeosoundRunError, RunResult, run_geosound
from ..styling import (
    PRODUCT_PROPERTY,
    StylePostProcessor,
    load_qml,
    mark_product,
    save_default_style,
)

PLUGIN_DIR = Path(__file__).resolve().parents[1]
Parameters = dict[str, Any]


def number_parameter(
    name: str,
    description: str,
    kind: type[int] | type[float],
    default: float,
    minimum: float,
    maximum: float | None = None,
) -> QgsProcessingParameterNumber:
    """A bounded integer or decimal parameter: the one shape every algorithm's numbers take."""
    number_type = (
        QgsProcessingParameterNumber.Integer if kind is int else QgsProcessingParameterNumber.Double
    )
    parameter = QgsProcessingParameterNumber(
        name, description, type=number_type, defaultValue=default, minValue=minimum
    )
    if maximum is not None:
        parameter.setMaximum(maximum)
    return parameter


def plugin_icon(name: str = "icon.svg") -> QIcon:
    """An icon shipped in the plugin folder."""
    return QIcon(str(PLUGIN_DIR / name))


def crs_argument(crs: QgsCoordinateReferenceSystem) -> str:
    """A CRS as geosound's CLI (pyproj/rasterio) reads it: the EPSG code if any, else WKT."""
    authid = crs.authid()
    if authid.upper().startswith("EPSG:"):
        return authid
    return crs.toWkt(QgsCoordinateReferenceSystem.WKT_PREFERRED)


def region_cache_root() -> Path:
    """Where region caches live unless a run names its own: beside geosound's feature cache."""
    base = os.environ.get("GEOSOUND_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "geosound"
    )
    return Path(base) / "qgis_regions"


class GeosoundAlgorithm(QgsProcessingAlgorithm):
    """A Processing algorithm that runs one geosound command in the geosound environment."""

    ALG_NAME: ClassVar[str] = ""
    ALG_DISPLAY: ClassVar[str] = ""
    ALG_GROUP: ClassVar[str] = ""
    ALG_GROUP_ID: ClassVar[str] = ""
    ALG_HELP: ClassVar[str] = ""
    ALG_TIP: ClassVar[str] = ""
    """One line naming what the action does (toolbar and menu tooltips)."""
    ALG_ICON: ClassVar[str] = "icon.svg"
    ALG_TAGS: ClassVar[tuple[str, ...]] = ()

    NOTE = "NOTE"
    CHECKPOINT = "CHECKPOINT"
    BANK = "BANK"

    # -- QgsProcessingAlgorithm ---------------------------------------------------------------

    def name(self) -> str:
        return self.ALG_NAME

    def displayName(self) -> str:
        return self.tr(self.ALG_DISPLAY)

    def group(self) -> str:
        return self.tr(self.ALG_GROUP)

    def groupId(self) -> str:
        return self.ALG_GROUP_ID

    def shortHelpString(self) -> str:
        """The help as HTML paragraphs: Processing renders it as rich text, so plain text
        would lose its paragraph breaks (and anything that looks like markup)."""
        import html

        paragraphs = [p.strip() for p in self.tr(self.ALG_HELP).split("\n\n") if p.strip()]
        return "".join(f"<p>{html.escape(p, quote=False)}</p>" for p in paragraphs)

    def tags(self) -> list[str]:
        return [*self.ALG_TAGS, "geosound", "soundscape", "sound", "audio"]

    def icon(self) -> QIcon:
        return plugin_icon(self.ALG_ICON)

    def createInstance(self) -> GeosoundAlgorithm:
        return type(self)()

    def tr(self, text: str) -> str:
        return QCoreApplication.translate("geosound", text)

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.define_parameters()
        self.addOutput(QgsProcessingOutputString(self.NOTE, self.tr("Model note")))

    def processAlgorithm(
        self,
        parameters: Parameters,
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback | None,
    ) -> dict[str, Any]:
        feedback = feedback or QgsProcessingFeedback()
        environment = self.environment()
        work = self.new_work_folder()
        arguments = self.build_arguments(parameters, context, feedback, work)
        if feedback.isCanceled():
            return {}
        result = self.run_command(environment, arguments, feedback, cwd=work)
        outputs = self.collect_outputs(parameters, context, feedback, work, result)
        outputs[self.NOTE] = result.note
        return outputs

    # -- hooks for subclasses -----------------------------------------------------------------

    def define_parameters(self) -> None:
        """Add the parameters and any extra outputs."""
        raise NotImplementedError

    def build_arguments(
        self,
        parameters: Parameters,
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
        work: Path,
    ) -> list[str]:
        """The arguments after ``geosound`` (``["map", RASTER, "-o", ...]``)."""
        raise NotImplementedError

    def collect_outputs(
        self,
        parameters: Parameters,
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
        work: Path,
        result: RunResult,
    ) -> dict[str, Any]:
        """Move geosound's products to the output destinations; return the outputs dict."""
        raise NotImplementedError

    # -- shared machinery ---------------------------------------------------------------------

    def environment(self) -> GeosoundEnvironment:
        """The geosound environment from the settings (or auto-detected), checked."""
        try:
            return qgis_environment()
        except EnvironmentNotFound as error:
            raise QgsProcessingException(str(error)) from None

    def new_work_folder(self) -> Path:
        """A fresh folder under Processing's temporary folder (QGIS removes it on exit)."""
        name = f"geosound_{self.name()}_{uuid.uuid4().hex}"
        folder = Path(QgsProcessingUtils.tempFolder()) / name
        folder.mkdir(parents=True)
        return folder

    def run_command(
        self,
        environment: GeosoundEnvironment,
        arguments: list[str],
        feedback: QgsProcessingFeedback,
        cwd: Path | None = None,
    ) -> RunResult:
        """Run ``geosound <arguments> --progress json``, streaming progress onto ``feedback``."""
        command = environment.command(*arguments, "--progress", "json")
        feedback.pushCommandInfo(" ".join(shlex.quote(part) for part in command))
        last_message: list[str] = [""]

        def on_progress(fraction: float, message: str) -> None:
            feedback.setProgress(100.0 * fraction)
            if message and message != last_message[0]:
                last_message[0] = message
                feedback.pushInfo(message)

        try:
            result = run_geosound(
                command,
                on_progress=on_progress,
                on_log=feedback.pushDebugInfo,
                is_canceled=feedback.isCanceled,
                env=child_environment(),
                cwd=str(cwd) if cwd else None,
            )
        except GeosoundCanceled:
            raise QgsProcessingException(
                self.tr("Canceled: the geosound process was stopped.")
            ) from None
        except GeosoundRunError as error:
            raise QgsProcessingException(f"geosound {arguments[0]}: {error.message}") from None
        if result.note:
            feedback.pushInfo(f"note: {result.note}")
        return result

    # -- parameter helpers --------------------------------------------------------------------

    def add_advanced(self, parameter: QgsProcessingParameterDefinition) -> None:
        """Add a parameter under "Advanced parameters" in the dialog."""
        parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(parameter)

    def add_checkpoint_parameter(self) -> None:
        self.add_advanced(
            QgsProcessingParameterFile(
                self.CHECKPOINT,
                self.tr("Sat2Sound checkpoint"),
                behavior=QgsProcessingParameterFile.File,
                fileFilter="Checkpoints (*.pt *.ckpt)",
                optional=True,
            )
        )

    def add_bank_parameter(self) -> None:
        default = QgsSettings().value(BANK_SETTINGS_KEY, "", type=str) or None
        self.addParameter(
            QgsProcessingParameterFile(
                self.BANK,
                self.tr("Audio bank folder"),
                behavior=QgsProcessingParameterFile.Folder,
                defaultValue=default,
            )
        )

    def checkpoint_arguments(
        self, parameters: Parameters, context: QgsProcessingContext
    ) -> list[str]:
        checkpoint = self.parameterAsFile(parameters, self.CHECKPOINT, context)
        return ["--checkpoint", checkpoint] if checkpoint else []

    def bank_folder(self, parameters: Parameters, context: QgsProcessingContext) -> str:
        bank = self.parameterAsFile(parameters, self.BANK, context)
        if not bank:
            raise QgsProcessingException(
                self.tr("Choose an audio bank folder (build one with 'Build audio bank').")
            )
        return bank

    def raster_file(
        self, parameters: Parameters, name: str, context: QgsProcessingContext
    ) -> tuple[QgsRasterLayer, str]:
        """The raster layer of parameter ``name`` and the file geosound should read.

        geosound reads rasters with GDAL itself, so the layer must be a GDAL raster, and it
        must have a CRS: a layer without one would map to nowhere.
        """
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None or not layer.isValid():
            raise QgsProcessingException(self.tr("The input raster layer could not be loaded."))
        if layer.providerType() != "gdal":
            raise QgsProcessingException(
                f"The raster layer '{layer.name()}' is not a file geosound can read "
                f"(provider {layer.providerType()}); save it as a GeoTIFF first."
            )
        if not layer.crs().isValid():
            raise QgsProcessingException(
                f"The raster layer '{layer.name()}' has no CRS: geosound maps georeferenced "
                "imagery only. Assign one (Raster ▸ Projections ▸ Assign Projection) and "
                "run again."
            )
        path = QgsProviderRegistry.instance().decodeUri("gdal", layer.source()).get("path")
        return layer, str(path or layer.source())

    def copy_product(self, source: Path, destination: str) -> str:
        """Copy a product from the work folder to where the user asked for it."""
        if not source.is_file():
            raise QgsProcessingException(f"geosound did not write {source.name}")
        Path(destination).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)
        return destination

    def style_on_load(
        self,
        context: QgsProcessingContext,
        destination: str,
        name: str,
        style: Callable[[QgsMapLayer], None] | None,
        **where: Any,
    ) -> None:
        """Name and style an output when Processing loads it into the project.

        ``where`` goes to :meth:`StylePostProcessor.create` (``group``, ``title``, ``product``).
        """
        if destination and context.willLoadLayerOnCompletion(destination):
            details = context.layerToLoadOnCompletionDetails(destination)
            details.name = name
            details.setPostProcessor(StylePostProcessor.create(style, name, **where))

    def load_on_completion(
        self,
        context: QgsProcessingContext,
        path: str,
        name: str,
        style: Callable[[QgsMapLayer], None] | None,
        **where: Any,
    ) -> None:
        """Have Processing load one more file when the algorithm is done (a per-query layer)."""
        details = QgsProcessingContext.LayerDetails(name, context.project(), name)
        details.setPostProcessor(StylePostProcessor.create(style, name, **where))
        context.addLayerToLoadOnCompletion(path, details)

    @staticmethod
    def styled_product(
        path: str, name: str, product: str, style: Callable[[QgsRasterLayer], None]
    ) -> Callable[[QgsMapLayer], None]:
        """Mark ``path`` as a geosound product, style it, save the ``.qml``; returns the loader.

        The product property is set before the style is saved, so the ``.qml`` carries it.
        """
        mark_product(path, product)
        layer = QgsRasterLayer(path, name, "gdal")
        style(layer)
        layer.setCustomProperty(PRODUCT_PROPERTY, product)
        return load_qml(save_default_style(layer))


class MapAlgorithm(GeosoundAlgorithm):
    """An algorithm built on ``geosound map``: a raster, an extent, tiles, a region cache."""

    INPUT = "INPUT"
    EXTENT = "EXTENT"
    TILE = "TILE"
    STRIDE = "STRIDE"
    CACHE = "CACHE"
    REGION_CACHE = "REGION_CACHE"

    def add_map_parameters(self) -> None:
        """Raster, extent and tiling, in the order the dialog shows them."""
        self.addParameter(
            QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Imagery (raster layer)"))
        )
        self.addParameter(
            QgsProcessingParameterExtent(
                self.EXTENT, self.tr("Extent (empty: whole raster)"), optional=True
            )
        )
        self.addParameter(
            number_parameter(
                self.TILE,
                self.tr("Tile size (px; 0: the model's ground size)"),
                int,
                0,
                0,
                4096,
            )
        )
        self.add_advanced(
            number_parameter(
                self.STRIDE, self.tr("Tile step (pixels; 0: tile size)"), int, 0, 0, 4096
            )
        )
        self.add_checkpoint_parameter()
        self.add_advanced(
            QgsProcessingParameterFile(
                self.CACHE,
                self.tr("Region cache folder"),
                behavior=QgsProcessingParameterFile.Folder,
                optional=True,
            )
        )
        self.addOutput(QgsProcessingOutputFolder(self.REGION_CACHE, self.tr("Region cache")))

    def map_arguments(
        self, parameters: Parameters, context: QgsProcessingContext, work: Path
    ) -> list[str]:
        """``map RASTER -o WORK [--tile …] [--stride …] [--bbox …] --cache …`` for the inputs.

        Without a tile size the CLI tiles at the ground size the model was trained on (640 m
        for the shipped one), whatever the raster's pixel size: 64 px of a 0.6 m aerial photo
        would be a 38 m patch of roof to a model that learnt from 640 m tiles.
        """
        layer, raster = self.raster_file(parameters, self.INPUT, context)
        tile = self.parameterAsInt(parameters, self.TILE, context)
        stride = self.parameterAsInt(parameters, self.STRIDE, context)
        arguments = ["map", raster, "-o", str(work)]
        if tile > 0:
            arguments += ["--tile", str(tile)]
        if stride > 0:
            arguments += ["--stride", str(stride)]
        bbox: list[str] = []
        if parameters.get(self.EXTENT) not in (None, ""):
            rect = self.parameterAsExtent(parameters, self.EXTENT, context, layer.crs())
            if not rect.isNull() and not rect.isEmpty():
                bbox = [repr(v) for v in (rect.xMinimum(), rect.yMinimum(),
                                          rect.xMaximum(), rect.yMaximum())]  # fmt: skip
                arguments += ["--bbox", *bbox, "--bbox-crs", crs_argument(layer.crs())]
        checkpoint = self.checkpoint_arguments(parameters, context)
        arguments += checkpoint
        cache = self.parameterAsFile(parameters, self.CACHE, context)
        if not cache:
            cache = str(self.default_cache(raster, tile, stride, bbox, checkpoint))
        self._region_cache = cache
        return [*arguments, "--cache", cache]

    def default_cache(
        self, raster: str, tile: int, stride: int, bbox: list[str], checkpoint: list[str]
    ) -> Path:
        """A region cache folder keyed by everything that decides the embeddings.

        Same raster file (path, size, time), tiling, extent and model → same folder, so the
        next algorithm on that raster reads the embeddings instead of recomputing them; any
        change → another folder, so a cache never mixes two tilings or models.
        """
        key: dict[str, Any] = {"raster": os.path.abspath(raster), "tile": tile, "stride": stride,
                               "bbox": bbox, "checkpoint": checkpoint}  # fmt: skip
        checkpoint_file = checkpoint[-1] if checkpoint else ""
        for name, path in (("raster_stat", raster), ("checkpoint_stat", checkpoint_file)):
            if path and os.path.exists(path):
                stat = os.stat(path)
                key[name] = [stat.st_size, stat.st_mtime_ns]
        digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        return region_cache_root() / f"{Path(raster).stem[:40]}_{digest}.zarr"

    def region_cache_output(self) -> dict[str, Any]:
        return {self.REGION_CACHE: getattr(self, "_region_cache", None)}

    @staticmethod
    def read_sidecar(work: Path) -> dict[str, Any]:
        """``map.json`` of the run: band names, concept legend, model."""
        path = work / "map.json"
        if not path.is_file():
            raise QgsProcessingException("geosound map did not write map.json")
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
