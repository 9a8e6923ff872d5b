"""Landscape from sound: a generated picture of a place that sounds like a recording, on the map.

``geosound generate`` (SounDiT) draws the picture and, given a location, writes it as a
GeoTIFF centred there in the local UTM zone, ``--ground-m`` metres across; with a points layer
it draws one per recording point and writes a VRT that opens as one layer. The plugin only
turns the dialog into that command line: the point is sent as lon/lat (EPSG:4326) whatever its
CRS, and the output is marked as a geosound product, so the Listen tool never takes a
generated picture for imagery.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsCoordinateTransformContext,
    QgsCsException,
    QgsPointXY,
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputFile,
    QgsProcessingOutputString,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterPoint,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
    QgsSettings,
)

from ..runner import RunResult
from ..styling import mark_product
from .base import GeosoundAlgorithm, Parameters, number_parameter
from .points import recording_points_argument

GENERATOR_SETTINGS_KEY = "geosound/generator"
"""A SounDiT checkpoint used instead of geosound's default (empty: the default)."""
AUDIO_FILTER = "Recordings (*.wav *.flac *.ogg *.mp3 *.aif *.aiff);;All files (*)"
PRODUCT = "generated landscape"
WGS84 = "EPSG:4326"


def landscape_name(recording: str) -> str:
    """The layer name of one generated picture: the recording it was heard from."""
    return f"{Path(recording).stem} (generated landscape)"


def lon_lat(
    point: QgsPointXY, crs: QgsCoordinateReferenceSystem, transforms: QgsCoordinateTransformContext
) -> tuple[float, float]:
    """A point of any CRS in degrees, as ``geosound generate --lon --lat`` takes it.

    Raises:
        QgsCsException: The point has no place in lon/lat.
    """
    wgs84 = QgsCoordinateReferenceSystem(WGS84)
    degrees = QgsCoordinateTransform(crs, wgs84, transforms).transform(point)
    return degrees.x(), degrees.y()


class LandscapeAlgorithm(GeosoundAlgorithm):
    """``geosound generate``: one recording at a point → a GeoTIFF; a points layer → a VRT."""

    ALG_NAME = "landscape"
    ALG_DISPLAY = "Landscape from sound"
    ALG_TIP = "Landscape from sound: a generated picture of a place that sounds like a recording"
    ALG_ICON = "icons/landscape.svg"
    ALG_GROUP = "Sounds"
    ALG_GROUP_ID = "sounds"
    ALG_TAGS = ("generate", "soundit", "diffusion", "picture", "landscape", "raster")
    ALG_HELP = (
        "What does a place that sounds like this look like? SounDiT hears the recording "
        "through geosound's audio side and generates a picture of such a place: a plausible "
        "picture, not imagery of the real site.\n\n"
        "Give a recording and the point it was made at (any CRS), or a points layer with a "
        "field holding each point's recording (relative paths are read from the layer's "
        "folder). The picture is placed on the map centred at the point in the local UTM zone, "
        "ground size metres across, and added as a layer named by the recording; a points "
        "layer gives one picture per point in one VRT layer (the output is then written as "
        ".vrt, with the pictures beside it).\n\n"
        "The scene word (forest, river, ...) steers the picture; left empty, the scene of the "
        "most similar training sound near the point is used. A JSON sidecar beside the output "
        "records the model, the sound, the scene, the retrieved neighbours and the seed."
    )

    AUDIO = "AUDIO"
    POINT = "POINT"
    POINTS = "POINTS"
    AUDIO_FIELD = "AUDIO_FIELD"
    SCENE = "SCENE"
    GROUND_M = "GROUND_M"
    STEPS = "STEPS"
    SEED = "SEED"
    MODEL = "MODEL"
    OUTPUT = "OUTPUT"
    SIDECAR = "SIDECAR"
    SCENE_USED = "SCENE_USED"

    def define_parameters(self) -> None:
        self.addParameter(QgsProcessingParameterFile(
            self.AUDIO, self.tr("Recording"), behavior=QgsProcessingParameterFile.File,
            fileFilter=AUDIO_FILTER, optional=True,
        ))  # fmt: skip
        self.addParameter(
            QgsProcessingParameterPoint(
                self.POINT, self.tr("Point of the recording"), optional=True
            )
        )
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.POINTS, self.tr("Or: recording points"),
            [QgsProcessing.TypeVectorPoint], optional=True,
        ))  # fmt: skip
        self.addParameter(QgsProcessingParameterField(
            self.AUDIO_FIELD, self.tr("Recording field"),
            parentLayerParameterName=self.POINTS, type=QgsProcessingParameterField.String,
            optional=True,
        ))  # fmt: skip
        self.addParameter(QgsProcessingParameterString(
            self.SCENE, self.tr("Scene word"), optional=True,
        ))  # fmt: skip
        self.addParameter(
            number_parameter(self.GROUND_M, self.tr("Ground size (m)"), float, 640.0, 1.0)
        )
        self.addParameter(number_parameter(self.STEPS, self.tr("DDIM steps"), int, 25, 1, 1000))
        self.add_advanced(number_parameter(self.SEED, self.tr("Seed of the noise"), int, 0, 0))
        default = QgsSettings().value(GENERATOR_SETTINGS_KEY, "", type=str) or None
        self.add_advanced(QgsProcessingParameterFile(
            self.MODEL, self.tr("SounDiT checkpoint"),
            behavior=QgsProcessingParameterFile.File, fileFilter="Checkpoints (*.pt *.ckpt)",
            defaultValue=default, optional=True,
        ))  # fmt: skip
        self.addParameter(
            QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Generated landscape"))
        )
        self.addOutput(QgsProcessingOutputFile(self.SIDECAR, self.tr("Sidecar (JSON)")))
        self.addOutput(QgsProcessingOutputString(self.SCENE_USED, self.tr("Scene used")))

    # -- the command line ---------------------------------------------------------------------

    def build_arguments(
        self,
        parameters: Parameters,
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
        work: Path,
    ) -> list[str]:
        recording = self.parameterAsFile(parameters, self.AUDIO, context)
        recording = os.path.abspath(recording) if recording else ""
        has_point = parameters.get(self.POINT) not in (None, "")
        has_layer = parameters.get(self.POINTS) not in (None, "")
        if has_layer and (recording or has_point):
            raise QgsProcessingException(
                "Give a recording and its point, or a points layer with a recording field — "
                "not both."
            )
        # Absolute paths: geosound runs in the work folder, where relative ones would land.
        requested = os.path.abspath(self.parameterAsOutputLayer(parameters, self.OUTPUT, context))
        if has_layer:
            arguments = self._layer_arguments(parameters, context, work)
            self._output = str(Path(requested).with_suffix(".vrt"))
            if self._output != requested:
                feedback.pushInfo(f"a points layer gives a VRT: writing {self._output}")
        else:
            arguments = self._point_arguments(parameters, context, recording, has_point)
            self._output = requested
            if Path(requested).suffix.lower() not in (".tif", ".tiff"):
                raise QgsProcessingException(
                    f"One landscape is written as a GeoTIFF (.tif), not {requested}"
                )
        Path(requested).parent.mkdir(parents=True, exist_ok=True)
        return [*arguments, *self._common_arguments(parameters, context), "-o", self._output]

    def _point_arguments(
        self, parameters: Parameters, context: QgsProcessingContext, recording: str,
        has_point: bool,
    ) -> list[str]:  # fmt: skip
        """``--audio CLIP --lon X --lat Y``: the recording and where to place its picture."""
        if not recording:
            raise QgsProcessingException(
                "Choose a recording (and the point it was made at), or a points layer."
            )
        if not has_point:
            raise QgsProcessingException(
                "Give the point where the recording was made: the picture is placed there."
            )
        point = self.parameterAsPoint(parameters, self.POINT, context)
        crs = self.parameterAsPointCrs(parameters, self.POINT, context)
        if not crs.isValid():
            raise QgsProcessingException("The point has no CRS.")
        try:
            lon, lat = lon_lat(point, crs, context.transformContext())
        except QgsCsException as error:
            raise QgsProcessingException(f"The point has no place in lon/lat: {error}") from None
        self._name = landscape_name(recording)
        return ["generate", f"--audio={recording}", f"--lon={lon!r}", f"--lat={lat!r}"]

    def _layer_arguments(
        self, parameters: Parameters, context: QgsProcessingContext, work: Path
    ) -> list[str]:
        """``--points LAYER --audio-column COL``, the layer written to a GeoPackage geosound
        reads (any QGIS source: memory layers, selections, services)."""
        path = work / "recording_points.gpkg"
        source, field = recording_points_argument(
            self, parameters, context, self.POINTS, self.AUDIO_FIELD, path
        )
        self._name = f"{source.sourceName()} (generated landscapes)"
        return ["generate", "--points", str(path), "--audio-column", field]

    def _common_arguments(self, parameters: Parameters, context: QgsProcessingContext) -> list[str]:
        """Scene, ground size, steps, seed and model: the same for both cases."""
        arguments = [
            "--ground-m", repr(self.parameterAsDouble(parameters, self.GROUND_M, context)),
            "--steps", str(self.parameterAsInt(parameters, self.STEPS, context)),
            "--seed", str(self.parameterAsInt(parameters, self.SEED, context)),
        ]  # fmt: skip
        scene = self.parameterAsString(parameters, self.SCENE, context).strip()
        if scene:
            arguments.append(f"--scene={scene}")
        model = self.parameterAsFile(parameters, self.MODEL, context)
        if model:
            arguments += ["--model", os.path.abspath(model)]
        return arguments

    # -- the products ---------------------------------------------------------------------------

    def collect_outputs(
        self,
        parameters: Parameters,
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
        work: Path,
        result: RunResult,
    ) -> dict[str, Any]:
        output = self._output
        if not Path(output).is_file():
            raise QgsProcessingException(f"geosound generate did not write {output}")
        sidecars = [p for p in result.outputs if p.endswith(".json")]
        sidecar = sidecars[0] if sidecars else str(Path(output).with_suffix(".json"))
        scene = self._report_sidecar(sidecar, feedback)
        mark_product(output, PRODUCT)
        requested = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        if output == os.path.abspath(requested):
            self.style_on_load(context, requested, self._name, None, product=PRODUCT)
        elif context.willLoadLayerOnCompletion(requested):
            # The layer case wrote a VRT instead of the .tif Processing expects to load.
            loading = context.layersToLoadOnCompletion()
            loading.pop(requested, None)
            context.setLayersToLoadOnCompletion(loading)
            self.load_on_completion(context, output, self._name, None, product=PRODUCT)
        return {
            self.OUTPUT: output,
            self.SIDECAR: sidecar if Path(sidecar).is_file() else None,
            self.SCENE_USED: scene,
        }

    @staticmethod
    def _report_sidecar(path: str, feedback: QgsProcessingFeedback) -> str:
        """The scene(s) used, from the sidecar; its neighbours go to the log."""
        try:
            with open(path, encoding="utf-8") as handle:
                sidecar = json.load(handle)
        except (OSError, ValueError):
            return ""
        points = sidecar.get("points")  # a VRT's sidecar lists its points, each like a picture's
        items = points if isinstance(points, list) else [sidecar]
        scenes = []
        for item in items:
            if not isinstance(item, dict):
                continue
            scene = item.get("scene")
            scenes.append(str(scene) if scene else "none")
            for neighbour in item.get("neighbours") or []:
                if isinstance(neighbour, dict):
                    feedback.pushInfo(
                        f"neighbour {neighbour.get('id')}: scene {neighbour.get('scene')}"
                    )
        return ", ".join(dict.fromkeys(scenes))
