"""Soundscape map: how similar each tile of a raster is to text or recorded sound queries."""

from __future__ import annotations

import re
from datetime import datetime
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
)

from ..runner import RunResult
from ..styling import SIMILARITY_TITLE, style_similarity
from .base import MapAlgorithm, Parameters

DEFAULT_QUERIES = "birds chirping in trees\ncars driving on a road\nwind blowing over open fields"


def query_lines(text: str) -> list[str]:
    """One query per non-empty line; lines starting with # are comments."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def query_name(band: str) -> str:
    """A band's query as a layer name: ``text: birds chirping`` → ``birds chirping``."""
    for prefix in ("similarity: ", "text: "):
        if band.startswith(prefix):
            band = band[len(prefix) :]
    return band


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
    ALG_TIP = "Soundscape map: where each sound query is likely heard on the imagery"
    ALG_ICON = "icons/soundscape_map.svg"
    ALG_HELP = (
        "Maps where sounds are likely heard. Every tile of the imagery is embedded into "
        "geosound's shared image–sound–text space and compared with each query: one sound "
        "description per line, and/or recordings.\n\n"
        "Each query becomes its own layer, named by the query, grouped under the run and "
        "drawn half-transparent over the imagery; the value is the cosine similarity of a tile "
        "to the query (higher = more alike). The similarity output holds all queries as bands "
        "of one raster, for scripts and models.\n\n"
        "Embeddings are kept in a region cache, so more queries on the same raster and tiling "
        "take seconds. Runs geosound in its own Python environment (Plugins ▸ geosound)."
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
                self.tr("Sound queries (one per line)"),
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
                self.OUTPUT, self.tr("Similarity (all queries)")
            )
        )
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                self.PROBABILITY,
                self.tr("Probability (softmax)"),
                optional=True,
                createByDefault=False,
            )
        )
        self.addParameter(
            QgsProcessingParameterFolderDestination(
                self.QUERY_FOLDER,
                self.tr("Folder of per-query rasters"),
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
        layer, _ = self.raster_file(parameters, self.INPUT, context)
        group = f"soundscape map of {layer.name()} ({datetime.now():%H:%M:%S})"

        destination = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        self.copy_product(work / "similarity.tif", destination)
        stack = f"similarity: {len(bands)} queries (band 1: {query_name(bands[0])})"
        self.styled_product(destination, stack, "similarity", style_similarity)
        outputs[self.OUTPUT] = destination
        probability = self.parameterAsOutputLayer(parameters, self.PROBABILITY, context)
        outputs[self.PROBABILITY] = None
        if probability:
            self.copy_product(work / "probability.tif", probability)
            name = f"probability over {len(bands)} queries (band 1: {query_name(bands[0])})"
            load_p = self.styled_product(probability, name, "probability", style_similarity)
            self.style_on_load(context, probability, name, load_p, group=group,
                               title="probability (softmax over the queries)")  # fmt: skip
            outputs[self.PROBABILITY] = probability
        folder = self.parameterAsFileOutput(parameters, self.QUERY_FOLDER, context)
        if not folder:  # one layer per query, always: beside the stack unless asked elsewhere
            folder = str(Path(destination).with_name(Path(destination).stem + "_queries"))
        rasters = self._split_bands(Path(destination), Path(folder), bands, context, group)
        if context.willLoadLayerOnCompletion(destination):
            # The layers of the queries replace the stack, whose legend shows band 1 only.
            loading = context.layersToLoadOnCompletion()
            loading.pop(destination, None)
            context.setLayersToLoadOnCompletion(loading)
        outputs[self.QUERY_FOLDER] = folder
        outputs[self.QUERY_RASTERS] = rasters
        outputs.update(self.region_cache_output())
        return outputs

    def _split_bands(
        self, source: Path, folder: Path, bands: list[str], context: QgsProcessingContext,
        group: str,
    ) -> list[str]:  # fmt: skip
        """One single-band GeoTIFF per query, each styled, named by its query, in the group."""
        from osgeo import gdal  # QGIS always ships GDAL's Python bindings

        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for index, band in enumerate(bands, start=1):
            path = folder / f"{index:02d}_{slug(query_name(band))}.tif"
            done = gdal.Translate(
                str(path), str(source), bandList=[index],
                creationOptions=["COMPRESS=DEFLATE", "TILED=YES"],
            )  # fmt: skip
            if done is None:
                raise QgsProcessingException(f"could not write {path}")
            out_band = done.GetRasterBand(1)
            out_band.SetDescription(f"cosine similarity to “{query_name(band)}”")
            out_band.SetColorInterpretation(gdal.GCI_Undefined)
            done = None  # closes the file
            name = query_name(band)
            product = f"similarity: {band}"
            load = self.styled_product(str(path), name, product, style_similarity)
            self.load_on_completion(
                context, str(path), name, load, group=group, title=SIMILARITY_TITLE,
                product=product,
            )  # fmt: skip
            written.append(str(path))
        return written
