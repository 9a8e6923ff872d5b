"""How geosound outputs look in QGIS: ramps with legends, named categories, outlined tiles.

Each ``style_*`` function styles a layer in place. Raster styles are also saved as a ``.qml``
beside the GeoTIFF (:func:`save_default_style`), so the file looks the same wherever it is
opened later — in another project, by ``processing.run`` in a script, or after a restart.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from qgis.core import (
    QgsBasicNumericFormat,
    QgsColorRampLegendNodeSettings,
    QgsColorRampShader,
    QgsFillSymbol,
    QgsGradientColorRamp,
    QgsGradientStop,
    QgsMapLayer,
    QgsPalettedRasterRenderer,
    QgsProcessingContext,
    QgsProcessingLayerPostProcessorInterface,
    QgsRasterBandStats,
    QgsRasterLayer,
    QgsRasterShader,
    QgsSingleBandPseudoColorRenderer,
    QgsSingleSymbolRenderer,
    QgsVectorLayer,
)
from qgis.PyQt.QtGui import QColor

VIRIDIS = ((0.0, "#440154"), (0.25, "#3b528b"), (0.5, "#21918c"), (0.75, "#5ec962"),
           (1.0, "#fde725"))  # fmt: skip
OTHER_CONCEPT_COLOUR = QColor(190, 190, 190)
FOOTPRINT_COLOUR = QColor(227, 26, 28)
PRODUCT_PROPERTY = "geosound/product"
"""Custom layer property marking geosound outputs (the Listen tool never takes them for imagery)."""


def viridis_ramp() -> QgsGradientColorRamp:
    """Viridis (perceptually uniform, colour-blind safe), built here rather than read from
    the style database, which must not be touched from Processing's worker threads."""
    stops = [QgsGradientStop(position, QColor(colour)) for position, colour in VIRIDIS[1:-1]]
    return QgsGradientColorRamp(QColor(VIRIDIS[0][1]), QColor(VIRIDIS[-1][1]), False, stops)


def style_similarity(layer: QgsRasterLayer, band: int = 1, classes: int = 5) -> None:
    """Pseudocolour ramp over one band (min–max of its values) with a readable legend.

    Similarities are cosines in a narrow range (often 0.05–0.35), so the ramp is stretched to
    the band's own minimum and maximum; a fixed −1…1 ramp would show one flat colour.
    """
    provider = layer.dataProvider()
    stats = provider.bandStatistics(band, QgsRasterBandStats.Min | QgsRasterBandStats.Max)
    low, high = float(stats.minimumValue), float(stats.maximumValue)
    if not high > low:
        high = low + 1e-6
    shader_function = QgsColorRampShader(low, high, viridis_ramp())
    shader_function.setColorRampType(QgsColorRampShader.Interpolated)
    shader_function.classifyColorRamp(classes, -1)
    items = shader_function.colorRampItemList()
    for item in items:
        item.label = f"{item.value:.3f}"
    shader_function.setColorRampItemList(items)
    legend = QgsColorRampLegendNodeSettings()  # a continuous ramp, labelled low … high
    number_format = QgsBasicNumericFormat()
    number_format.setNumberDecimalPlaces(2)
    number_format.setShowTrailingZeros(True)
    legend.setNumericFormat(number_format)
    shader_function.setLegendSettings(legend)
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(shader_function)
    renderer = QgsSingleBandPseudoColorRenderer(provider, band, shader)
    renderer.setClassificationMin(low)
    renderer.setClassificationMax(high)
    layer.setRenderer(renderer)
    layer.triggerRepaint()


def concept_legend(map_json: str | Path) -> dict[int, dict[str, Any]]:
    """The concept legend of a ``map.json`` sidecar: id → name, colour, tile count."""
    with open(map_json, encoding="utf-8") as handle:
        sidecar = json.load(handle)
    legend = sidecar.get("products", {}).get("concepts", {}).get("legend", {})
    return {int(key): value for key, value in legend.items()}


def style_concepts(layer: QgsRasterLayer, legend: Mapping[int, Mapping[str, Any]]) -> None:
    """Paletted renderer: one class per concept present, named; legend concepts first.

    geosound's colour table colours only the region's most frequent concepts and draws the rest
    grey; the renderer keeps those colours and adds the concept names, which a colour table
    cannot carry. Concepts outside the legend are labelled by id.
    """
    provider = layer.dataProvider()
    present = QgsPalettedRasterRenderer.classDataFromRaster(provider, 1)
    values = sorted({int(entry.value) for entry in present})
    ordered = [v for v in legend if v in values] + [v for v in values if v not in legend]
    classes = []
    for value in ordered:
        if value in legend:
            colour = QColor(*[int(c) for c in legend[value]["colour"][:3]])
            label = str(legend[value]["name"])
        else:
            colour, label = OTHER_CONCEPT_COLOUR, f"{value}: other concept"
        classes.append(QgsPalettedRasterRenderer.Class(value, colour, label))
    renderer = QgsPalettedRasterRenderer(provider, 1, classes)
    layer.setRenderer(renderer)
    layer.triggerRepaint()


def style_footprints(layer: QgsVectorLayer) -> None:
    """Tile footprints as outlines without fill, so the imagery underneath stays visible."""
    symbol = QgsFillSymbol.createSimple(
        {
            "color": "0,0,0,0",
            "style": "no",
            "outline_color": FOOTPRINT_COLOUR.name(),
            "outline_width": "0.4",
            "outline_style": "solid",
        }
    )
    layer.setRenderer(QgsSingleSymbolRenderer(symbol))
    layer.triggerRepaint()


def save_default_style(layer: QgsMapLayer) -> Path:
    """Write the layer's style as ``<file>.qml``, which QGIS loads with the file from now on."""
    source = layer.source().split("|")[0]
    qml = Path(source).with_suffix(".qml")
    layer.saveNamedStyle(str(qml))
    return qml


class StylePostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Styles and names an output layer when Processing adds it to the project.

    Processing loads outputs without their default style, in the main thread, after the
    algorithm finished; this hook is where the style must be applied. Instances are kept in a
    class-level list because Processing holds only a C++ pointer: a Python object collected
    early would leave it dangling.
    """

    _alive: ClassVar[list[StylePostProcessor]] = []

    def __init__(self, style: Callable[[QgsMapLayer], None] | None, name: str | None) -> None:
        super().__init__()
        self._style = style
        self._name = name

    def postProcessLayer(
        self, layer: QgsMapLayer, context: QgsProcessingContext, feedback: Any
    ) -> None:
        if self._name:
            layer.setName(self._name)
        layer.setCustomProperty(PRODUCT_PROPERTY, self._name or "output")
        if self._style is not None:
            self._style(layer)

    @classmethod
    def create(
        cls, style: Callable[[QgsMapLayer], None] | None, name: str | None = None
    ) -> StylePostProcessor:
        """A post-processor that stays alive for the rest of the session."""
        instance = cls(style, name)
        cls._alive.append(instance)
        del cls._alive[:-64]
        return instance


def load_qml(path: str | Path) -> Callable[[QgsMapLayer], None]:
    """A style function applying a saved ``.qml`` (for layers loaded without it)."""

    def apply(layer: QgsMapLayer) -> None:
        layer.loadNamedStyle(str(path))
        layer.triggerRepaint()

    return apply
