"""Synthesise the soundscape at a point: a WAV mixed from the real recordings nearest to it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputFile,
    QgsProcessingOutputString,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterPoint,
    QgsProcessingParameterRasterLayer,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QVariant

from ..runner import RunResult
from .base import GeosoundAlgorithm, Parameters, crs_argument, number_parameter
from .retrieve import sound_fields, sound_values


class SynthesizePointAlgorithm(GeosoundAlgorithm):
    """``geosound synthesize --x --y --crs``: one WAV, its sidecar, and optionally a point."""

    ALG_NAME = "synthesizepoint"
    ALG_TIP = "Synthesise the soundscape at a point: a WAV mixed from the nearest recordings"
    ALG_ICON = "icons/synthesize.svg"
    ALG_DISPLAY = "Synthesise the soundscape at a point"
    ALG_GROUP = "Sounds"
    ALG_GROUP_ID = "sounds"
    ALG_TAGS = ("synthesis", "wav", "point", "listen")
    ALG_HELP = (
        "What a place probably sounds like: embeds an image chip of the imagery around the "
        "point, retrieves the k nearest recordings of an audio bank and mixes them, loudness-"
        "normalised, into one WAV (synthesised by retrieval — real recordings, not generated "
        "audio). A JSON sidecar beside the WAV lists the recordings, their scores and licences; "
        "the optional point layer carries the WAV path and the sounds as attributes."
    )

    POINT = "POINT"
    RASTER = "RASTER"
    K = "K"
    SECONDS = "SECONDS"
    SEED = "SEED"
    CHIP_SIZE = "CHIP_SIZE"
    OUTPUT = "OUTPUT"
    OUTPUT_LAYER = "OUTPUT_LAYER"
    SIDECAR = "SIDECAR"
    SOURCES = "SOURCES"

    def define_parameters(self) -> None:
        self.addParameter(QgsProcessingParameterPoint(self.POINT, self.tr("Point")))
        self.addParameter(
            QgsProcessingParameterRasterLayer(self.RASTER, self.tr("Imagery (raster layer)"))
        )
        self.add_bank_parameter()
        self.addParameter(number_parameter(self.K, self.tr("Recordings to mix"), int, 3, 1, 20))
        self.addParameter(
            number_parameter(self.SECONDS, self.tr("Length (seconds)"), float, 10.0, 1.0, 600.0)
        )
        self.add_advanced(
            number_parameter(self.SEED, self.tr("Seed of the loudness balance"), int, 0, 0)
        )
        self.add_advanced(
            number_parameter(self.CHIP_SIZE, self.tr("Image chip size (pixels)"), int, 64, 8, 4096)
        )
        self.add_checkpoint_parameter()
        self.addParameter(
            QgsProcessingParameterFileDestination(
                self.OUTPUT, self.tr("Soundscape (WAV)"), fileFilter="WAV files (*.wav)"
            )
        )
        self.addParameter(
            QgsProcessingParameterFeatureSink(
                self.OUTPUT_LAYER, self.tr("Point with its soundscape"),
                QgsProcessing.TypeVectorPoint, optional=True, createByDefault=True,
            )
        )  # fmt: skip
        self.addOutput(QgsProcessingOutputFile(self.SIDECAR, self.tr("Sidecar (JSON)")))
        self.addOutput(QgsProcessingOutputString(self.SOURCES, self.tr("Recordings (JSON)")))

    def build_arguments(
        self,
        parameters: Parameters,
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
        work: Path,
    ) -> list[str]:
        _, raster = self.raster_file(parameters, self.RASTER, context)
        point = self.parameterAsPoint(parameters, self.POINT, context)
        crs = self.parameterAsPointCrs(parameters, self.POINT, context)
        if not crs.isValid():
            raise QgsProcessingException("The point has no CRS.")
        wav = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        if not wav.lower().endswith(".wav"):
            raise QgsProcessingException(f"The soundscape must be written as .wav, not {wav}")
        self._point, self._crs = point, crs
        self._k = self.parameterAsInt(parameters, self.K, context)
        return ["synthesize", f"--x={point.x()!r}", f"--y={point.y()!r}",
                f"--crs={crs_argument(crs)}", "--raster", raster,
                "--bank", self.bank_folder(parameters, context), "-o", wav,
                "--k", str(self._k),
                "--seconds", repr(self.parameterAsDouble(parameters, self.SECONDS, context)),
                "--seed", str(self.parameterAsInt(parameters, self.SEED, context)),
                "--chip-size", str(self.parameterAsInt(parameters, self.CHIP_SIZE, context)),
                *self.checkpoint_arguments(parameters, context)]  # fmt: skip

    def collect_outputs(
        self,
        parameters: Parameters,
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
        work: Path,
        result: RunResult,
    ) -> dict[str, Any]:
        wav = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        sidecar = str(Path(wav).with_suffix(".json"))
        with open(sidecar, encoding="utf-8") as handle:
            sources = json.load(handle).get("sources", [])
        for source in sources:
            feedback.pushInfo(
                f"{source['rank']}. {source['score']:.3f} {source.get('label') or '-'} "
                f"{source['path']}"
            )
        outputs: dict[str, Any] = {self.OUTPUT: wav, self.SIDECAR: sidecar,
                                   self.SOURCES: json.dumps(sources)}  # fmt: skip
        fields = QgsFields()
        fields.append(QgsField("sources", QVariant.String))
        for field in sound_fields(self._k):
            fields.append(field)
        sink, destination = self.parameterAsSink(
            parameters, self.OUTPUT_LAYER, context, fields, QgsWkbTypes.Point, self._crs
        )
        if sink is not None:
            feature = QgsFeature(fields)
            feature.setGeometry(QgsGeometry.fromPointXY(self._point))
            feature["sources"] = json.dumps(sources)
            for name, value in sound_values(wav, sources, self._k).items():
                feature[name] = value
            sink.addFeature(feature, QgsFeatureSink.FastInsert)
            self.style_on_load(context, destination, "soundscape point", None)
            outputs[self.OUTPUT_LAYER] = destination
        return outputs
