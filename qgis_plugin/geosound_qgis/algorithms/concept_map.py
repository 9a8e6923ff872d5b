"""Concept map: the strongest soundscape concept of each tile, as a named categorical raster."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputString,
    QgsProcessingParameterRasterDestination,
    QgsRasterLayer,
)

from ..runner import RunResult
from ..styling import CONCEPT_TITLE, style_concepts, style_similarity
from .base import MapAlgorithm, Parameters


class ConceptMapAlgorithm(MapAlgorithm):
    """``geosound map --concepts``: concept ids with a paletted, named legend."""

    ALG_NAME = "conceptmap"
    ALG_DISPLAY = "Concept map"
    ALG_GROUP = "Soundscape maps"
    ALG_GROUP_ID = "maps"
    ALG_TAGS = ("concepts", "categorical", "legend", "raster")
    ALG_TIP = "Concept map: the strongest sound concept of each tile, with a named legend"
    ALG_ICON = "icons/concept_map.svg"
    ALG_HELP = (
        "Which soundscape concept dominates each tile. A concept is an entry of the Sat2Sound "
        "model's learnt codebook, named after the caption it matches best.\n\n"
        "The output is a categorical raster whose legend names the region's most frequent "
        'concepts, each in its own colour; all other concepts share one grey "other '
        'concepts" entry. The sub-tile layer does the same on a finer grid (the cells of each '
        "tile's feature map; needs tile step = tile size). The optional weight raster says how "
        "strongly each tile expresses its concept."
    )

    OUTPUT = "OUTPUT"
    SUBTILE = "SUBTILE"
    WEIGHT = "WEIGHT"
    LEGEND = "LEGEND"

    def define_parameters(self) -> None:
        self.add_map_parameters()
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Concepts")))
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                self.SUBTILE,
                self.tr("Sub-tile concepts"),
                optional=True,
                createByDefault=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                self.WEIGHT,
                self.tr("Weight of the concept"),
                optional=True,
                createByDefault=False,
            )
        )
        self.addOutput(QgsProcessingOutputString(self.LEGEND, self.tr("Legend (JSON)")))

    def build_arguments(
        self,
        parameters: Parameters,
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
        work: Path,
    ) -> list[str]:
        return [*self.map_arguments(parameters, context, work), "--concepts"]

    def collect_outputs(
        self,
        parameters: Parameters,
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
        work: Path,
        result: RunResult,
    ) -> dict[str, Any]:
        sidecar = self.read_sidecar(work)
        product = sidecar["products"]["concepts"]
        raw = product["legend"]
        legend = {int(key): value for key, value in raw.items()}
        layer, _ = self.raster_file(parameters, self.INPUT, context)
        group = f"concept map of {layer.name()} ({datetime.now():%H:%M:%S})"

        def style(target: QgsRasterLayer) -> None:
            style_concepts(target, legend)

        destination = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        self.copy_product(work / "concepts.tif", destination)
        name = "sound concepts (strongest per tile)"
        load = self.styled_product(destination, name, "concepts", style)
        self.style_on_load(context, destination, name, load, group=group, title=CONCEPT_TITLE,
                           product="concepts")  # fmt: skip
        outputs: dict[str, Any] = {
            self.OUTPUT: destination,
            self.LEGEND: json.dumps(raw, ensure_ascii=False),
            self.SUBTILE: None,
        }

        subtile = self.parameterAsOutputLayer(parameters, self.SUBTILE, context)
        fine = work / str(product.get("subtile", ""))
        if subtile and fine.is_file() and fine.suffix == ".tif":
            strongest_subtile(fine, subtile, legend)
            fine_name = "sound concepts (strongest per sub-tile cell)"
            load = self.styled_product(subtile, fine_name, "sub-tile concepts", style)
            self.style_on_load(context, subtile, fine_name, load, group=group,
                               title="strongest sound concept per sub-tile cell",
                               product="sub-tile concepts")  # fmt: skip
            outputs[self.SUBTILE] = subtile
        elif subtile:
            feedback.pushInfo(f"no sub-tile concept layer: {product.get('subtile')}")

        weight = self.parameterAsOutputLayer(parameters, self.WEIGHT, context)
        if weight:
            self.copy_product(work / "concept_weight.tif", weight)
            load = self.styled_product(weight, "concept weight", "concept weight",
                                       style_similarity)  # fmt: skip
            self.style_on_load(context, weight, "weight of the strongest concept", load,
                               group=group, title="weight of the strongest concept (0–1)",
                               product="concept weight")  # fmt: skip
        outputs[self.WEIGHT] = weight or None
        outputs.update(self.region_cache_output())
        for key, entry in legend.items():
            feedback.pushInfo(f"concept {key}: {entry['name']} ({entry['tiles']} tiles)")
        return outputs


def strongest_subtile(scores: Path, out: str, legend: dict[int, dict[str, Any]]) -> None:
    """The sub-tile scores (one band per concept) as one categorical raster: per cell, the
    concept with the highest score, coded like the concept map (so styled with its legend).

    Bands are named ``sub-tile score of concept: <name>``; names map to ids through the
    legend, a name outside it to the first id no legend entry uses (an "other" concept).
    """
    import numpy as np  # QGIS's GDAL bindings need numpy for arrays
    from osgeo import gdal

    source = gdal.Open(str(scores))
    by_name = {str(entry["name"]): key for key, entry in legend.items()}
    spare = next(i for i in range(1, 65535) if i not in legend)
    ids, stack = [], []
    for index in range(1, source.RasterCount + 1):
        band = source.GetRasterBand(index)
        name = (band.GetDescription() or "").split(": ", 1)[-1]
        ids.append(by_name.get(name, spare))
        values = band.ReadAsArray().astype("float32")
        nodata = band.GetNoDataValue()
        if nodata is not None:
            values[values == nodata] = np.nan
        stack.append(values)
    scores_array = np.stack(stack)
    valid = np.isfinite(scores_array).any(axis=0)
    best = np.argmax(np.where(np.isfinite(scores_array), scores_array, -np.inf), axis=0)
    nodata_id = 65535
    coded = np.where(valid, np.asarray(ids, dtype="uint16")[best], nodata_id).astype("uint16")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    target = gdal.GetDriverByName("GTiff").Create(
        out, source.RasterXSize, source.RasterYSize, 1, gdal.GDT_UInt16,
        options=["COMPRESS=DEFLATE", "TILED=YES"],
    )  # fmt: skip
    target.SetGeoTransform(source.GetGeoTransform())
    target.SetProjection(source.GetProjection())
    band = target.GetRasterBand(1)
    band.SetNoDataValue(nodata_id)
    band.SetDescription("strongest concept per sub-tile cell")
    band.WriteArray(coded)
    target = None
