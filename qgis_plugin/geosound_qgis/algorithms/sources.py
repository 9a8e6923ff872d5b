"""Sources in recordings: what is heard at each recording point, as columns of the layer.

``geosound separate --points`` runs the AV-GAS separator on every point's recording and writes
the layer back with ``n_sources`` and, loudest first, ``source1``, ``score1``, ``share1``,
``source2``, … The plugin writes the points (every attribute, recordings as absolute paths) to
a GeoPackage geosound reads, and adds the result as a layer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterVectorDestination,
    QgsSettings,
)

from ..runner import RunResult
from .base import GeosoundAlgorithm, Parameters, number_parameter
from .points import recording_points_argument

SEPARATOR_SETTINGS_KEY = "geosound/separator"
"""A separator checkpoint used instead of geosound's default (empty: the default)."""


class SourcesAlgorithm(GeosoundAlgorithm):
    """``geosound separate --points``: a points layer with recordings → source columns."""

    ALG_NAME = "sources"
    ALG_DISPLAY = "Sources in recordings"
    ALG_TIP = "Sources in recordings: what is heard at each recording point"
    ALG_ICON = "icons/sources.svg"
    ALG_GROUP = "Sounds"
    ALG_GROUP_ID = "sounds"
    ALG_TAGS = ("separate", "sources", "av-gas", "soundscape", "recordings", "points")
    ALG_HELP = (
        "A recording of a place mixes many sources — birds over traffic over wind. The "
        "separator finds each of them in every point's recording and adds them to the layer: "
        "n_sources, and loudest first source1, score1 (cosine to the nearest class), share1 "
        "(share of the recording's loudness), source2, ...\n\n"
        "Give a points layer with a field holding each point's recording (relative paths are "
        "read from the layer's folder). A recording of one source gives one source; stereo "
        "recordings are downmixed. The classes are those the separator was trained on "
        "(ESC-50 outdoor sounds for the shipped one)."
    )

    POINTS = "POINTS"
    AUDIO_FIELD = "AUDIO_FIELD"
    MAX_SOURCES = "MAX_SOURCES"
    MODEL = "MODEL"
    OUTPUT = "OUTPUT"

    def define_parameters(self) -> None:
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.POINTS, self.tr("Recording points"), [QgsProcessing.TypeVectorPoint],
        ))  # fmt: skip
        self.addParameter(QgsProcessingParameterField(
            self.AUDIO_FIELD, self.tr("Recording field"),
            parentLayerParameterName=self.POINTS, type=QgsProcessingParameterField.String,
        ))  # fmt: skip
        self.addParameter(
            number_parameter(self.MAX_SOURCES, self.tr("At most this many sources"), int, 3, 1, 8)
        )
        default = QgsSettings().value(SEPARATOR_SETTINGS_KEY, "", type=str) or None
        self.add_advanced(QgsProcessingParameterFile(
            self.MODEL, self.tr("Separator checkpoint"),
            behavior=QgsProcessingParameterFile.File, fileFilter="Checkpoints (*.pt)",
            defaultValue=default, optional=True,
        ))  # fmt: skip
        self.addParameter(QgsProcessingParameterVectorDestination(
            self.OUTPUT, self.tr("Points with their sources"), QgsProcessing.TypeVectorPoint,
        ))  # fmt: skip

    def build_arguments(
        self,
        parameters: Parameters,
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
        work: Path,
    ) -> list[str]:
        points = work / "recording_points.gpkg"
        source, field = recording_points_argument(
            self, parameters, context, self.POINTS, self.AUDIO_FIELD, points, keep_attributes=True
        )
        self._output = os.path.abspath(
            self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        )
        if Path(self._output).suffix.lower() != ".gpkg":
            raise QgsProcessingException(
                f"The layer with sources is written as a GeoPackage (.gpkg), not {self._output}"
            )
        self._name = f"{source.sourceName()} (sources)"
        arguments = [
            "separate", "--points", str(points), "--audio-column", field,
            "--max-sources", str(self.parameterAsInt(parameters, self.MAX_SOURCES, context)),
            "-o", self._output,
        ]  # fmt: skip
        model = self.parameterAsFile(parameters, self.MODEL, context)
        if model:
            arguments += ["--model", os.path.abspath(model)]
        Path(self._output).parent.mkdir(parents=True, exist_ok=True)
        return arguments

    def collect_outputs(
        self,
        parameters: Parameters,
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
        work: Path,
        result: RunResult,
    ) -> dict[str, Any]:
        if not Path(self._output).is_file():
            raise QgsProcessingException(f"geosound separate did not write {self._output}")
        requested = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        if context.willLoadLayerOnCompletion(requested):
            details = context.layerToLoadOnCompletionDetails(requested)
            details.name = self._name
        return {self.OUTPUT: self._output}
