"""Soundscape map: how similar each tile of a raster is to text or recorded sound queries."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
    QgsRasterLayer,
)

from ..runner import RunResult
from ..styling import StylePostProcessor, load_qml, save_default_style, style_similarity
from .base import MapAlgorithm, Parameters

DEFAULT_QUERIES = "birds chirping in trees\ncars driving on a road\nwind blowing over open fields"


def query_lines(text: str) -> list[str]:
    """One query per non-empty line; lines starting with # are comments."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def slug(text: str, limit: int = 48) -> str:
    """A file-name-safe version of a query."""
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:limit] or "query"


class SoundscapeMapAlgorithm(MapAlgorithm):
    """``geosound map --text … --audio …``: one similarity band per query."""

    ALG_NAME = "soundscapemap"
    ALG_DISPLAY = "Soundscape map"
    ALG_GROUP = "Soundscape maps"
    ALG_GROUP_ID = "maps"
    ALG_TAGS = ("map", "similarity", "query", "text", "raster")
    ALG_HELP = (
        "Maps where sounds are likely heard: every tile of the imagery is embedded into "
        "geosound's shared image–sound–text space and compared with each query (one sound "
        "description per line, and/or recordings). The output has one band per query (cosine "
        "similarity per tile, higher = more alike), styled with a colour ramp on band 1.\n\n"
        "Embeddings are kept in a region cache, so more queries on the same raster and tiling "
        "take seconds. Runs geosound in its own Python environment (plugin settings)."
    )

    QUERIES = "QUERIES"
    AUDIO = "AUDIO"
    OUTPUT = "OUTPUT"
    PROBABILITY = "PROBABILITY"
    QUERY_FOLDER = "QUERY_FOLDER"
    QUERY_RASTERS = "QUERY_RASTERS"
    BAND_COUNT = "BAND_COUNT"
    BANDS = "BANDS"

    def define_parameters(self) -> None:
        self.add_map_parameters()
        self.addParameter(
            QgsProcessingParameterString(
                self.QUERIES,
                self.tr("Sound queries (one description per line)"),
                defaultValue=DEFAULT_QUERIES,
                multiLine=True,
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                self.AUDIO,
                self.tr("Recordings as queries"),
                layerType=QgsProcessing.TypeFile,
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                self.OUTPUT, self.tr("Similarity (one band per query)")
            )
        )
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                self.PROBABILITY,
                self.tr("Probability (softmax over the queries)"),
                optional=True,
                createByDefault=False,
            )
        )
        self.addParameter(
            QgsProcessingParameterFolderDestination(
                self.QUERY_FOLDER,
                self.tr("Folder for one similarity raster per query"),
                optional=True,
                createByDefault=False,
            )
        )
        self.addOutput(
            QgsProcessingOutputMultipleLayers(self.QUERY_RASTERS, self.tr("One raster per query"))
        )
        self.addOutput(QgsProcessingOutputNumber(self.BAND_COUNT, self.tr("Number of bands")))
        self.addOutput(QgsProcessingOutputString(self.BANDS, self.tr("Band names")))

    def build_arguments(
        self,
        parameters: Parameters,
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
        work: Path,
    ) -> list[str]:
        texts = query_lines(self.parameterAsString(parameters, self.QUERIES, context))
        # An empty parameter comes back as [''] or ['.'], not [].
        recordings = [
            path
            for path in self.parameterAsFileList(parameters, self.AUDIO, context)
            if path and path != "."
        ]
        if not texts and not recordings:
            raise QgsProcessingException(
                self.tr("Give at least one sound query (a line of text) or a recording.")
            )
        arguments = self.map_arguments(parameters, context, work)
        # --text=VALUE, not --text VALUE: a query starting with "-" must stay a value.
        arguments += [f"--text={text}" for text in texts]
        arguments += [f"--audio={path}" for path in recordings]
        return arguments

    def collect_outputs(
        self,
        parameters: Parameters,
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
        work: Path,
        result: RunResult,
    ) -> dict[str, Any]:
        sidecar = self.read_sidecar(work)
        bands = [str(b) for b in sidecar["products"]["queries"]["bands"]]
        outputs: dict[str, Any] = {self.BAND_COUNT: len(bands), self.BANDS: "\n".join(bands)}

        destination = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        outputs[self.OUTPUT] = self._styled_copy(
            work / "similarity.tif", destination, context, f"similarity: {bands[0]}"
        )
        probability = self.parameterAsOutputLayer(parameters, self.PROBABILITY, context)
        outputs[self.PROBABILITY] = (
            self._styled_copy(
                work / "probability.tif", probability, context, f"probability: {bands[0]}"
            )
            if probability
            else None
        )
        folder = self.parameterAsFileOutput(parameters, self.QUERY_FOLDER, context)
        rasters: list[str] = []
        if folder:
            rasters = self._split_bands(work / "similarity.tif", Path(folder), bands, context)
        outputs[self.QUERY_FOLDER] = folder or None
        outputs[self.QUERY_RASTERS] = rasters
        outputs.update(self.region_cache_output())
        return outputs

    def _styled_copy(
        self, source: Path, destination: str, context: QgsProcessingContext, name: str
    ) -> str:
        self.copy_product(source, destination)
        layer = QgsRasterLayer(destination, name, "gdal")
        style_similarity(layer)
        qml = save_default_style(layer)
        self.style_on_load(context, destination, name, load_qml(qml))
        return destination

    def _split_bands(
        self, source: Path, folder: Path, bands: list[str], context: QgsProcessingContext
    ) -> list[str]:
        """One single-band GeoTIFF per query, each styled and loaded as its own layer."""
        from osgeo import gdal  # QGIS always ships GDAL's Python bindings

        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for index, band in enumerate(bands, start=1):
            path = folder / f"{index:02d}_{slug(band)}.tif"
            done = gdal.Translate(
                str(path), str(source), bandList=[index],
                creationOptions=["COMPRESS=DEFLATE", "TILED=YES"],
            )  # fmt: skip
            if done is None:
                raise QgsProcessingException(f"could not write {path}")
            done = None  # closes the file
            name = f"similarity: {band}"
            layer = QgsRasterLayer(str(path), name, "gdal")
            style_similarity(layer)
            qml = save_default_style(layer)
            details = QgsProcessingContext.LayerDetails(name, context.project(), name)
            details.setPostProcessor(StylePostProcessor.create(load_qml(qml), name))
            context.addLayerToLoadOnCompletion(str(path), details)
            written.append(str(path))
        return written
