"""Recording points handed to geosound: any QGIS point source, written as a GeoPackage it reads.

Algorithms that take "a points layer with a field holding each point's recording" (Landscape
from sound, Sources in recordings) accept any QGIS source — memory layers, selections,
services — so the points are first written to a GeoPackage in the run's work folder, with
each recording as an absolute path (tables usually name recordings relative to where the table
lives, and geosound runs elsewhere). A feature without a recording, or one that is not a
single point, is refused naming its id.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsFeature,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProviderRegistry,
    QgsVectorFileWriter,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QVariant


def resolve_recording(value: Any, base: Path | None) -> str:
    """A recording path of an attribute table as an absolute path (relative: to ``base``)."""
    path = Path(str(value)).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    return str(path.absolute())


def layer_folder(layer: Any) -> Path | None:
    """The folder of a file-based layer (where its relative recording paths start)."""
    if layer is None:
        return None
    decoded = QgsProviderRegistry.instance().decodeUri(layer.providerType(), layer.source())
    path = decoded.get("path") or ""
    return Path(path).parent if path and os.path.exists(path) else None


def recording_points_argument(
    algorithm: Any,
    parameters: dict[str, Any],
    context: QgsProcessingContext,
    points: str,
    audio_field: str,
    path: Path,
    keep_attributes: bool = False,
) -> tuple[Any, str]:
    """The points parameter and its recording field, checked and written to ``path``.

    Returns ``(source, field)``.

    Raises:
        QgsProcessingException: No source, no CRS, no field chosen, or a bad feature.
    """
    source = algorithm.parameterAsSource(parameters, points, context)
    if source is None:
        raise QgsProcessingException(algorithm.invalidSourceError(parameters, points))
    if not source.sourceCrs().isValid():
        raise QgsProcessingException(
            f"The point layer '{source.sourceName()}' has no CRS; assign one first."
        )
    fields = algorithm.parameterAsFields(parameters, audio_field, context)
    if not fields:
        raise QgsProcessingException(
            "Choose the field that holds each point's recording (a file path)."
        )
    layer = algorithm.parameterAsVectorLayer(parameters, points, context)
    write_recording_points(source, fields[0], layer_folder(layer), path, context, keep_attributes)
    return source, fields[0]


def write_recording_points(
    source: Any,
    field: str,
    base: Path | None,
    path: Path,
    context: QgsProcessingContext,
    keep_attributes: bool = False,
) -> int:
    """Write the points with their recording (absolute) to a GeoPackage; returns the count.

    Args:
        source: The point source.
        field: Its field holding each point's recording.
        base: Where relative recordings start (:func:`layer_folder`).
        path: The GeoPackage to write.
        context: The algorithm's context (transforms).
        keep_attributes: Keep every field of the source (for outputs that are "the same layer
            with more columns"); otherwise only the recording field.

    Raises:
        QgsProcessingException: A feature without a recording or not one point, or no
            feature at all.
    """
    # A "fid" field becomes the GeoPackage's FID: each point keeps the id QGIS shows for it,
    # so geosound's errors ("recording of feature 7 …") name the feature the user can find.
    fields = QgsFields()
    fields.append(QgsField("fid", QVariant.LongLong))
    if keep_attributes:
        for source_field in source.fields():
            if source_field.name().lower() != "fid":
                fields.append(QgsField(source_field))
    else:
        fields.append(QgsField(field, QVariant.String))
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    writer = QgsVectorFileWriter.create(
        str(path), fields, QgsWkbTypes.Point, source.sourceCrs(),
        context.transformContext(), options,
    )  # fmt: skip
    count = 0
    try:
        for feature in source.getFeatures():
            value = feature[field]
            if value is None or not str(value).strip() or str(value) == "NULL":
                raise QgsProcessingException(
                    f"feature {feature.id()} has no recording in the field '{field}'"
                )
            geometry = QgsGeometry(feature.geometry())
            if geometry.isEmpty() or geometry.constGet().partCount() != 1:
                raise QgsProcessingException(
                    f"feature {feature.id()} is not one point; split multipoints first "
                    "(Multipart to singleparts)"
                )
            geometry.convertToSingleType()
            out = QgsFeature(fields)
            out.setGeometry(geometry)
            for name in fields.names():
                out[name] = feature.id() if name == "fid" else feature[name]
            out[field] = resolve_recording(value, base)
            writer.addFeature(out)
            count += 1
    finally:
        del writer  # flushes and closes the GeoPackage, also when a feature is refused
    if not count:
        raise QgsProcessingException("the point layer has no features")
    return count
