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
    QgsProject,
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
PRODUCT_METADATA = "GEOSOUND_PRODUCT"
"""GDAL metadata item (kept in the ``.aux.xml`` sidecar) marking a file as a geosound product."""
DEFAULT_OPACITY = 0.6
"""Opacity of geosound's raster layers: the imagery under them stays readable."""
SIMILARITY_TITLE = "cosine similarity to the query (higher = more alike)"
CONCEPT_TITLE = "strongest sound concept per tile"
OTHER_CONCEPTS = "other concepts"


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
    legend.setMinimumLabel(f"{low:.2f} less alike")
    legend.setMaximumLabel(f"{high:.2f} more alike")
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
    renderer.setOpacity(DEFAULT_OPACITY)
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
    renderer.setOpacity(DEFAULT_OPACITY)
    layer.setRenderer(renderer)
    layer.setCustomProperty(NAMED_CONCEPTS_PROPERTY, len([v for v in ordered if v in legend]))
    layer.triggerRepaint()


NAMED_CONCEPTS_PROPERTY = "geosound/named_concepts"
"""How many classes of a concept layer are named concepts; the rest share one "other" entry."""


def tidy_legend(layer: QgsMapLayer, node: Any, title: str | None) -> list[str]:
    """The layer's legend in the layer tree: a title saying what the values are, and for a
    concept layer its named concepts followed by one "other concepts" entry.

    Layer-tree legend settings (order, labels) live in the project, not in the ``.qml``;
    ``style_concepts`` leaves the count of named classes in a custom property for this.
    Returns the legend texts as shown.
    """
    from qgis.core import QgsMapLayerLegendUtils

    nodes = layer.legend().createLayerTreeModelLegendNodes(node) if layer.legend() else []
    order = list(range(len(nodes)))
    named = layer.customProperty(NAMED_CONCEPTS_PROPERTY)
    if named is not None and len(nodes) > 1:
        named = int(named)
        first_class = 1  # node 0 is the band title
        others = len(nodes) - first_class - named
        order = list(range(first_class + named + (1 if others > 0 else 0)))
        if others > 0:
            plural = "s" if others > 1 else ""
            QgsMapLayerLegendUtils.setLegendNodeUserLabel(
                node, first_class + named, f"{OTHER_CONCEPTS} ({others} kind{plural}, grey)"
            )
        QgsMapLayerLegendUtils.setLegendNodeOrder(node, order)
    if title and nodes:
        QgsMapLayerLegendUtils.setLegendNodeUserLabel(node, 0, title)
    _refresh_legend_in_panel(node)
    texts = []
    for index in order:
        label = QgsMapLayerLegendUtils.legendNodeUserLabel(node, index)
        texts.append(label or str(nodes[index].data(0) or ""))
    return texts


def _refresh_legend_in_panel(node: Any) -> None:
    """The Layers panel caches legend nodes: have it rebuild this layer's (desktop only)."""
    try:
        from qgis.utils import iface
    except ImportError:  # pragma: no cover - QGIS always has qgis.utils
        return
    view = getattr(iface, "layerTreeView", None) if iface is not None else None
    if view is not None and view() is not None:
        view().layerTreeModel().refreshLayerLegend(node)


def product_of(layer: QgsMapLayer) -> str | None:
    """What geosound product ``layer`` is, None when it is not one (imagery, say).

    A layer is recognised however it was styled or loaded: by the custom property the plugin
    sets (also saved in its ``.qml``), by the ``GEOSOUND_PRODUCT`` GDAL metadata item the
    plugin writes into the file's ``.aux.xml`` sidecar, or by the ``map.json`` sidecar
    ``geosound map`` writes beside its outputs naming the file.
    """
    marked = layer.customProperty(PRODUCT_PROPERTY)
    if marked:
        return str(marked)
    path = layer.source().split("|")[0]
    if not path or not Path(path).is_file():
        return None
    from osgeo import gdal

    gdal.PushErrorHandler("CPLQuietErrorHandler")
    try:
        dataset = gdal.Open(path)
        item = dataset.GetMetadataItem(PRODUCT_METADATA) if dataset is not None else None
    finally:
        gdal.PopErrorHandler()
    if item:
        return str(item)
    sidecar = Path(path).with_name("map.json")
    if sidecar.is_file():
        try:
            with open(sidecar, encoding="utf-8") as handle:
                text = handle.read()
            if json.loads(text).get("product") and f'"{Path(path).name}"' in text:
                return f"geosound map ({sidecar})"
        except (OSError, ValueError, AttributeError):
            return None
    return None


def mark_product(path: str | Path, product: str) -> None:
    """Write ``GEOSOUND_PRODUCT=product`` into the file's GDAL ``.aux.xml`` sidecar."""
    from osgeo import gdal

    dataset = gdal.Open(str(path))
    if dataset is not None:
        dataset.SetMetadataItem(PRODUCT_METADATA, product)
        dataset = None  # closing writes the sidecar


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
        self._group: str | None = None
        self._title: str | None = None
        self._product: str | None = None

    def postProcessLayer(
        self, layer: QgsMapLayer, context: QgsProcessingContext, feedback: Any
    ) -> None:
        if self._style is not None:
            self._style(layer)  # first: loading a .qml replaces the custom properties
        if self._name:
            layer.setName(self._name)
        layer.setCustomProperty(PRODUCT_PROPERTY, self._product or self._name or "output")
        project = context.project() or QgsProject.instance()
        node = project.layerTreeRoot().findLayer(layer.id())
        if node is None:
            return
        if self._group:
            node = move_into_group(project, node, self._group)
        tidy_legend(layer, node, self._title)

    @classmethod
    def create(
        cls,
        style: Callable[[QgsMapLayer], None] | None,
        name: str | None = None,
        *,
        group: str | None = None,
        title: str | None = None,
        product: str | None = None,
    ) -> StylePostProcessor:
        """A post-processor that stays alive for the rest of the session.

        Args:
            style: Applied to the layer first.
            name: The layer's name.
            group: Layer-tree group (created at the top if missing) the layer goes into.
            title: Legend title (what the values are).
            product: The value of the product property (default: the name).
        """
        instance = cls(style, name)
        instance._group, instance._title, instance._product = group, title, product
        cls._alive.append(instance)
        del cls._alive[:-64]
        return instance


def move_into_group(project: QgsProject, node: Any, group_name: str) -> Any:
    """Move a layer's tree node into the group ``group_name`` (made at the top if missing),
    after the layers already in it; returns the node in its new place."""
    root = project.layerTreeRoot()
    group = root.findGroup(group_name)
    if group is None:
        group = root.insertGroup(0, group_name)
    # Also when QGIS already put it in the group (its insertion point): runs keep their order.
    clone = node.clone()
    group.insertChildNode(len(group.children()), clone)
    parent = node.parent()
    if parent is not None:
        parent.removeChildNode(node)
    return clone


def load_qml(path: str | Path) -> Callable[[QgsMapLayer], None]:
    """A style function applying a saved ``.qml`` (for layers loaded without it)."""

    def apply(layer: QgsMapLayer) -> None:
        layer.loadNamedStyle(str(path))
        layer.triggerRepaint()

    return apply
