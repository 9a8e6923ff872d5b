"""Retrieve sounds: the real recordings of an audio bank nearest to tiles or to points.

Both algorithms write the same attributes — ``sound_1…k`` (file), ``class_1…k`` (label from
the bank's metadata, empty for a plain folder) and ``score_1…k`` (cosine similarity) — so a
layer of tiles and a layer of points can be styled, filtered and joined alike.
"""

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
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterRasterLayer,
    QgsVectorFileWriter,
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QVariant

from ..runner import RunResult
from ..styling import style_footprints
from .base import GeosoundAlgorithm, MapAlgorithm, Parameters, number_parameter

POINT_ID = "geosound_id"


def point_name(row: int) -> str:
    """The id (and WAV name) of the point in row ``row`` of the input."""
    return f"point_{row}"


def sound_fields(k: int) -> QgsFields:
    """``wav`` plus ``sound_i``, ``class_i``, ``score_i`` for ranks 1…k."""
    fields = QgsFields()
    fields.append(QgsField("wav", QVariant.String))
    for rank in range(1, k + 1):
        fields.append(QgsField(f"sound_{rank}", QVariant.String))
        fields.append(QgsField(f"class_{rank}", QVariant.String))
        fields.append(QgsField(f"score_{rank}", QVariant.Double))
    return fields


def sound_values(wav: str, sources: list[dict[str, Any]], k: int) -> dict[str, Any]:
    """Attribute values of :func:`sound_fields` from a synthesis sidecar's ``sources``."""
    values: dict[str, Any] = {"wav": wav}
    by_rank = {int(source.get("rank", i + 1)): source for i, source in enumerate(sources)}
    for rank in range(1, k + 1):
        source = by_rank.get(rank, {})
        values[f"sound_{rank}"] = source.get("path")
        values[f"class_{rank}"] = source.get("label")
        values[f"score_{rank}"] = source.get("score")
    return values


class RetrieveTilesAlgorithm(MapAlgorithm):
    """``geosound map --retrieve K --bank B``: tile footprints with their top-k recordings."""

    ALG_NAME = "retrievetiles"
    ALG_TIP = "Retrieve sounds for tiles: the nearest recordings of a bank for every tile"
    ALG_ICON = "icons/retrieve_tiles.svg"
    ALG_DISPLAY = "Retrieve sounds for tiles"
    ALG_GROUP = "Sounds"
    ALG_GROUP_ID = "sounds"
    ALG_TAGS = ("retrieval", "bank", "tiles", "vector")
    ALG_HELP = (
        "For every tile of the imagery, the k recordings of an audio bank nearest to it in "
        "geosound's shared space. The output has one polygon per tile footprint (drawn as an "
        "outline) with sound_i (file), class_i (label) and score_i (cosine similarity) "
        "attributes."
    )

    K = "K"
    OUTPUT = "OUTPUT"

    def define_parameters(self) -> None:
        self.add_map_parameters()
        self.add_bank_parameter()
        self.addParameter(number_parameter(self.K, self.tr("Recordings per tile"), int, 5, 1, 50))
        self.addParameter(
            QgsProcessingParameterFeatureSink(
                self.OUTPUT, self.tr("Tiles with sounds"), QgsProcessing.TypeVectorPolygon
            )
        )

    def build_arguments(
        self,
        parameters: Parameters,
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
        work: Path,
    ) -> list[str]:
        k = self.parameterAsInt(parameters, self.K, context)
        bank = self.bank_folder(parameters, context)
        return [*self.map_arguments(parameters, context, work), "--retrieve", str(k),
                "--bank", bank]  # fmt: skip

    def collect_outputs(
        self,
        parameters: Parameters,
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
        work: Path,
        result: RunResult,
    ) -> dict[str, Any]:
        table = QgsVectorLayer(f"{work / 'retrieval.gpkg'}|layername=retrieval", "tiles", "ogr")
        if not table.isValid():
            raise QgsProcessingException("geosound map did not write a readable retrieval.gpkg")
        fields = QgsFields()
        for field in table.fields():
            if field.name().lower() != "fid":  # GeoPackage sinks make their own fid
                fields.append(field)
        sink, destination = self.parameterAsSink(
            parameters, self.OUTPUT, context, fields, table.wkbType(), table.crs()
        )
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, self.OUTPUT))
        total = max(table.featureCount(), 1)
        for i, feature in enumerate(table.getFeatures()):
            if feedback.isCanceled():
                break
            out = QgsFeature(fields)
            out.setGeometry(feature.geometry())
            for field in fields:
                out[field.name()] = feature[field.name()]
            sink.addFeature(out, QgsFeatureSink.FastInsert)
            feedback.setProgress(100.0 * (i + 1) / total)
        self.style_on_load(context, destination, "tiles with sounds", style_footprints)
        outputs: dict[str, Any] = {self.OUTPUT: destination}
        outputs.update(self.region_cache_output())
        return outputs


class RetrievePointsAlgorithm(GeosoundAlgorithm):
    """``geosound synthesize --points``: the top-k recordings (and a mix) for every point."""

    ALG_NAME = "retrievepoints"
    ALG_TIP = "Retrieve sounds for points: the nearest recordings and a mix for every point"
    ALG_ICON = "icons/retrieve_points.svg"
    ALG_DISPLAY = "Retrieve sounds for points"
    ALG_GROUP = "Sounds"
    ALG_GROUP_ID = "sounds"
    ALG_TAGS = ("retrieval", "bank", "points", "synthesis", "vector")
    ALG_HELP = (
        "For every point, embeds an image chip of the imagery around it and finds the k "
        "nearest recordings of an audio bank; also writes a soundscape mix of them per point "
        "(synthesised by retrieval: real recordings, loudness-normalised and mixed, not "
        "generated audio). The output keeps the points' attributes and adds wav, sound_i, "
        "class_i and score_i."
    )

    INPUT = "INPUT"
    RASTER = "RASTER"
    K = "K"
    SECONDS = "SECONDS"
    CHIP_SIZE = "CHIP_SIZE"
    OUTPUT = "OUTPUT"
    OUTPUT_FOLDER = "OUTPUT_FOLDER"

    def define_parameters(self) -> None:
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                self.INPUT, self.tr("Points"), [QgsProcessing.TypeVectorPoint]
            )
        )
        self.addParameter(
            QgsProcessingParameterRasterLayer(self.RASTER, self.tr("Imagery (raster layer)"))
        )
        self.add_bank_parameter()
        self.addParameter(number_parameter(self.K, self.tr("Recordings per point"), int, 3, 1, 20))
        self.addParameter(
            number_parameter(
                self.SECONDS, self.tr("Length of each mix (s)"), float, 10.0, 1.0, 600.0
            )
        )
        self.add_advanced(
            number_parameter(self.CHIP_SIZE, self.tr("Image chip size (pixels)"), int, 64, 8, 4096)
        )
        self.add_checkpoint_parameter()
        self.addParameter(
            QgsProcessingParameterFolderDestination(
                self.OUTPUT_FOLDER, self.tr("Folder for the WAV mixes")
            )
        )
        self.addParameter(
            QgsProcessingParameterFeatureSink(
                self.OUTPUT, self.tr("Points with sounds"), QgsProcessing.TypeVectorPoint
            )
        )

    def build_arguments(
        self,
        parameters: Parameters,
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
        work: Path,
    ) -> list[str]:
        source = self.parameterAsSource(parameters, self.INPUT, context)
        if source is None:
            raise QgsProcessingException(self.invalidSourceError(parameters, self.INPUT))
        if not source.sourceCrs().isValid():
            raise QgsProcessingException(
                f"The point layer '{source.sourceName()}' has no CRS; assign one first."
            )
        _, raster = self.raster_file(parameters, self.RASTER, context)
        points = work / "points.gpkg"
        self._features = self._write_points(source, points, context)
        folder = self.parameterAsFileOutput(parameters, self.OUTPUT_FOLDER, context)
        self._k = self.parameterAsInt(parameters, self.K, context)
        seconds = self.parameterAsDouble(parameters, self.SECONDS, context)
        chip = self.parameterAsInt(parameters, self.CHIP_SIZE, context)
        return ["synthesize", "--points", str(points), "--raster", raster,
                "--bank", self.bank_folder(parameters, context), "--out-dir", folder,
                "--id-column", POINT_ID, "--k", str(self._k), "--seconds", repr(seconds),
                "--chip-size", str(chip),
                *self.checkpoint_arguments(parameters, context)]  # fmt: skip

    def _write_points(self, source: Any, path: Path, context: QgsProcessingContext) -> list[Any]:
        """The points as a GeoPackage geosound can read, each tagged ``point_<row>``.

        Row numbers (not feature ids, which can be negative or repeat across sources) name
        the WAVs (``point_0.wav``) and join the results back to the input features.
        """
        fields = QgsFields()
        fields.append(QgsField(POINT_ID, QVariant.String))
        options = QgsVectorFileWriter.SaveVectorOptions()
        options.driverName = "GPKG"
        writer = QgsVectorFileWriter.create(
            str(path), fields, QgsWkbTypes.Point, source.sourceCrs(),
            context.transformContext(), options,
        )  # fmt: skip
        features = []
        for row, feature in enumerate(source.getFeatures()):
            geometry = QgsGeometry(feature.geometry())
            if geometry.isMultipart():
                parts = geometry.asGeometryCollection()
                if len(parts) != 1:
                    raise QgsProcessingException(
                        f"feature {feature.id()} is a multipoint of {len(parts)} points; "
                        "split it into single points first (Multipart to singleparts)"
                    )
                geometry = parts[0]
            if geometry.isEmpty():
                raise QgsProcessingException(f"feature {feature.id()} has no geometry")
            out = QgsFeature(fields)
            out.setGeometry(geometry)
            out[POINT_ID] = point_name(row)
            writer.addFeature(out)
            features.append((feature, geometry))
        del writer  # flushes and closes the GeoPackage
        if not features:
            raise QgsProcessingException("the point layer has no features")
        return features

    def collect_outputs(
        self,
        parameters: Parameters,
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
        work: Path,
        result: RunResult,
    ) -> dict[str, Any]:
        gpkgs = [p for p in result.outputs if p.endswith(".gpkg")]
        if not gpkgs:
            raise QgsProcessingException("geosound synthesize did not write its point layer")
        gpkg = Path(gpkgs[-1])
        if not gpkg.is_absolute():
            gpkg = work / gpkg
        table = QgsVectorLayer(str(gpkg), "points", "ogr")
        if not table.isValid():
            raise QgsProcessingException(f"cannot read {gpkg}")
        by_name = {str(f[POINT_ID]): f for f in table.getFeatures()}

        source = self.parameterAsSource(parameters, self.INPUT, context)
        fields = QgsFields(source.fields())
        added = sound_fields(self._k)
        for field in added:
            if fields.indexOf(field.name()) < 0:
                fields.append(field)
        sink, destination = self.parameterAsSink(
            parameters, self.OUTPUT, context, fields, QgsWkbTypes.Point, source.sourceCrs()
        )
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, self.OUTPUT))
        for row, (feature, geometry) in enumerate(self._features):
            match = by_name.get(point_name(row))
            if match is None:
                raise QgsProcessingException(f"geosound returned no sounds for feature {row}")
            out = QgsFeature(fields)
            out.setGeometry(geometry)
            for field in source.fields():
                out[field.name()] = feature[field.name()]
            sources = json.loads(match["sources"] or "[]")
            for name, value in sound_values(str(match["wav"]), sources, self._k).items():
                out[name] = value
            sink.addFeature(out, QgsFeatureSink.FastInsert)
        self.style_on_load(context, destination, "points with sounds", None)
        return {
            self.OUTPUT: destination,
            self.OUTPUT_FOLDER: self.parameterAsFileOutput(parameters, self.OUTPUT_FOLDER, context),
        }
