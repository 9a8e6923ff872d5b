"""Concept map: the strongest soundscape concept of each tile, as a named categorical raster."""

from __future__ import annotations

import json
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
from ..styling import load_qml, save_default_style, style_concepts, style_similarity
from .base import MapAlgorithm, Parameters


class ConceptMapAlgorithm(MapAlgorithm):
    """``geosound map --concepts``: concept ids with a paletted, named legend."""

    ALG_NAME = "conceptmap"
    ALG_DISPLAY = "Concept map"
    ALG_GROUP = "Soundscape maps"
    ALG_GROUP_ID = "maps"
    ALG_TAGS = ("concepts", "categorical", "legend", "raster")
    ALG_HELP = (
        "Which soundscape concept (an entry of the Sat2Sound model's learnt codebook, named "
        "after the caption it matches best) dominates each tile. The output is a categorical "
        "raster styled with one named colour per concept: the region's most frequent concepts "
        "in colour, the others grey. The optional weight raster says how strongly each tile "
        "expresses its concept."
    )

    OUTPUT = "OUTPUT"
    WEIGHT = "WEIGHT"
    LEGEND = "LEGEND"

    def define_parameters(self) -> None:
        self.add_map_parameters()
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Concepts")))
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                self.WEIGHT,
                self.tr("Weight of the strongest concept"),
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
        raw = sidecar["products"]["concepts"]["legend"]
        legend = {int(key): value for key, value in raw.items()}

        destination = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        self.copy_product(work / "concepts.tif", destination)
        layer = QgsRasterLayer(destination, "concepts", "gdal")
        style_concepts(layer, legend)
        qml = save_default_style(layer)
        self.style_on_load(context, destination, "soundscape concepts", load_qml(qml))
        outputs: dict[str, Any] = {
            self.OUTPUT: destination,
            self.LEGEND: json.dumps(raw, ensure_ascii=False),
        }

        weight = self.parameterAsOutputLayer(parameters, self.WEIGHT, context)
        if weight:
            self.copy_product(work / "concept_weight.tif", weight)
            weight_layer = QgsRasterLayer(weight, "concept weight", "gdal")
            style_similarity(weight_layer)
            weight_qml = save_default_style(weight_layer)
            self.style_on_load(context, weight, "concept weight", load_qml(weight_qml))
        outputs[self.WEIGHT] = weight or None
        outputs.update(self.region_cache_output())
        for key, entry in legend.items():
            feedback.pushInfo(f"concept {key}: {entry['name']} ({entry['tiles']} tiles)")
        return outputs
