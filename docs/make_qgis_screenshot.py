"""Rebuild ``docs/qgis_screenshot.png``: a real scene in QGIS with a geosound soundscape layer.

The picture is made the way a user would make it — the plugin's Processing algorithm
``geosound:soundscapemap`` runs on a real aerial scene, its output is styled by the plugin —
and then laid out as a QGIS print layout (the scene alone, the scene under the soundscape layer,
its legend, a scale bar and the model's note) exported to PNG. A layout export renders the same
offscreen as on a desktop, so the script needs no display:

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 docs/make_qgis_screenshot.py

(``xvfb-run /usr/bin/python3 docs/make_qgis_screenshot.py`` works too). It runs in QGIS's own
Python; the geosound environment is found as the plugin finds it (``GEOSOUND_PYTHON``, or the
``.venv`` of this checkout), the scene in the dev data (``GEOSOUND_DEV_DATA``, default
``../shared/data``). Takes about 30 s, most of it geosound embedding the scene's tiles.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "qgis_plugin"))
sys.path.append("/usr/share/qgis/python/plugins")

from osgeo import gdal  # noqa: E402
from qgis.core import (  # noqa: E402 (after the sys.path set-up above)
    QgsApplication,
    QgsLayout,
    QgsLayoutExporter,
    QgsLayoutItemLabel,
    QgsLayoutItemLegend,
    QgsLayoutItemMap,
    QgsLayoutItemPage,
    QgsLayoutItemScaleBar,
    QgsLayoutMeasurement,
    QgsLayoutPoint,
    QgsLayoutSize,
    QgsLegendStyle,
    QgsMapLayerLegendUtils,
    QgsPrintLayout,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsUnitTypes,
)
from qgis.PyQt.QtGui import QColor, QFont  # noqa: E402

SCENE = "georaster_scenes/opengeos_naip_m_4709963_se_14_1_20200831.tif"
QUERIES = (
    "water waves lapping on a lake shore",
    "birds chirping in trees",
    "cars driving on a road",
)
PAGE_WIDTH_MM = 297.0


def dev_data() -> Path:
    """The dev data folder, found as geosound finds it (geosound.config.dev_data_dir)."""
    configured = os.environ.get("GEOSOUND_DEV_DATA")
    return Path(configured).expanduser() if configured else REPO.parent / "shared" / "data"


def run_soundscape_map(scene: Path, queries: list[str], tile: int, out: Path) -> dict:
    """The plugin's algorithm, exactly as the Processing Toolbox runs it."""
    import processing
    from geosound_qgis.provider import GeosoundProvider
    from processing.core.Processing import Processing

    Processing.initialize()
    provider = GeosoundProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    return processing.run(
        "geosound:soundscapemap",
        {"INPUT": str(scene), "QUERIES": "\n".join(queries), "TILE": tile,
         "OUTPUT": str(out / "similarity.tif"), "QUERY_FOLDER": str(out / "queries")},
    )  # fmt: skip


def add_label(layout: QgsLayout, text: str, x: float, y: float, w: float, h: float,
              size: float, bold: bool = False, colour: str = "#222222") -> None:  # fmt: skip
    """A text box at (x, y) mm of w × h mm."""
    label = QgsLayoutItemLabel(layout)
    label.setText(text)
    font = QFont("DejaVu Sans", 1)
    font.setPointSizeF(size)
    font.setBold(bold)
    label.setFont(font)
    label.setFontColor(QColor(colour))
    layout.addLayoutItem(label)
    label.attemptMove(QgsLayoutPoint(x, y, QgsUnitTypes.LayoutMillimeters))
    label.attemptResize(QgsLayoutSize(w, h, QgsUnitTypes.LayoutMillimeters))


def add_map(layout: QgsLayout, layers: list, extent: QgsRectangle, x: float, y: float,
            w: float, h: float) -> QgsLayoutItemMap:  # fmt: skip
    """A framed map of ``layers`` with its own fixed layer set (the two maps differ)."""
    item = QgsLayoutItemMap(layout)
    item.attemptMove(QgsLayoutPoint(x, y, QgsUnitTypes.LayoutMillimeters))
    item.attemptResize(QgsLayoutSize(w, h, QgsUnitTypes.LayoutMillimeters))
    item.setLayers(layers)
    item.setKeepLayerSet(True)
    item.setExtent(extent)
    item.setFrameEnabled(True)
    item.setFrameStrokeWidth(QgsLayoutMeasurement(0.3, QgsUnitTypes.LayoutMillimeters))
    layout.addLayoutItem(item)
    return item


def build_layout(project: QgsProject, scene: QgsRasterLayer, sound: QgsRasterLayer,
                 query: str, note: str, tile_size: float) -> QgsPrintLayout:  # fmt: skip
    """Two maps (scene; scene under the soundscape layer), legend, scale bar, note."""
    extent = scene.extent()
    map_w, top = 104.0, 24.0
    map_h = map_w * extent.height() / extent.width()
    layout = QgsPrintLayout(project)
    layout.initializeDefaults()
    page: QgsLayoutItemPage = layout.pageCollection().page(0)
    page.setPageSize(QgsLayoutSize(PAGE_WIDTH_MM, top + map_h + 22, QgsUnitTypes.LayoutMillimeters))

    add_label(layout, f"geosound in QGIS — soundscape map of {scene.name()}",
              8, 5, 280, 9, 13, bold=True)  # fmt: skip
    units = QgsUnitTypes.toAbbreviatedString(scene.crs().mapUnits())
    pixel = f"{scene.rasterUnitsPerPixelX():.3g} {units} pixels"
    add_label(layout, f"the scene ({scene.crs().authid()}, {pixel})", 8, 16, map_w, 7, 9)
    add_label(layout, f"soundscape layer: “{query}”", 120, 16, map_w + 60, 7, 9)
    left = add_map(layout, [scene], extent, 8, top, map_w, map_h)
    right = add_map(layout, [sound, scene], extent, 120, top, map_w, map_h)

    legend = QgsLayoutItemLegend(layout)
    legend.setTitle("geosound:soundscapemap")
    legend.setLinkedMap(right)
    legend.setAutoUpdateModel(False)
    root = legend.model().rootGroup()  # the legend's own tree: a new one would be freed early
    root.removeAllChildren()
    node = root.addLayer(sound)
    node.setName("cosine similarity")
    QgsMapLayerLegendUtils.setLegendNodeUserLabel(node, 0, f"per tile ({tile_size:.3g} {units})")
    legend.model().refreshLayerLegend(node)
    legend.setStyleFont(QgsLegendStyle.Title, QFont("DejaVu Sans", 9, QFont.Bold))
    legend.setStyleFont(QgsLegendStyle.Subgroup, QFont("DejaVu Sans", 9))
    legend.setStyleFont(QgsLegendStyle.SymbolLabel, QFont("DejaVu Sans", 8))
    legend.setSymbolHeight(30)
    legend.setSymbolWidth(6)
    layout.addLayoutItem(legend)
    legend.attemptMove(QgsLayoutPoint(229, top, QgsUnitTypes.LayoutMillimeters))

    scalebar = QgsLayoutItemScaleBar(layout)
    scalebar.setStyle("Single Box")
    scalebar.setLinkedMap(left)
    scalebar.setUnits(QgsUnitTypes.DistanceKilometers)
    scalebar.setMapUnitsPerScaleBarUnit(1000.0)
    scalebar.setUnitLabel("km")
    scalebar.setNumberOfSegmentsLeft(0)
    scalebar.setNumberOfSegments(2)
    scalebar.setUnitsPerSegment(1.0)
    scalebar.setHeight(2.0)
    layout.addLayoutItem(scalebar)
    scalebar.attemptMove(QgsLayoutPoint(8, top + map_h + 2, QgsUnitTypes.LayoutMillimeters))
    scalebar.applyDefaultSize(QgsUnitTypes.DistanceKilometers)
    scalebar.setUnitsPerSegment(1.0)
    scalebar.update()

    add_label(layout, f"{note}. Higher = the tile's imagery lies closer to the description in "
              "geosound's shared image–sound–text space: a sketch from a small dev-set model, "
              "not a measurement.", 120, top + map_h + 3, 170, 14, 7,
              colour="#555555")  # fmt: skip
    return layout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scene", type=Path, default=None, help="raster (default: NAIP scene)")
    parser.add_argument("--query", action="append", help="sound query (repeatable)")
    parser.add_argument("--show", type=int, default=1, help="which query to show (1-based)")
    parser.add_argument("--tile", type=int, default=64)
    parser.add_argument("--dpi", type=int, default=150)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "qgis_screenshot.png")
    args = parser.parse_args()
    scene_path = args.scene or dev_data() / SCENE
    if not scene_path.is_file():
        parser.error(f"scene not found: {scene_path} (set GEOSOUND_DEV_DATA or --scene)")
    queries = args.query or list(QUERIES)

    app = QgsApplication([], True)  # fonts and layout rendering need a GUI application
    app.initQgis()
    with tempfile.TemporaryDirectory(prefix="geosound_screenshot_") as tmp:
        result = run_soundscape_map(scene_path, queries, args.tile, Path(tmp))
        project = QgsProject.instance()
        scene = QgsRasterLayer(str(scene_path), scene_path.stem)
        shown = result["QUERY_RASTERS"][args.show - 1]
        sound = QgsRasterLayer(shown, f"similarity: {queries[args.show - 1]}")
        if not (scene.isValid() and sound.isValid()):
            raise SystemExit("could not load the scene or the soundscape layer")
        sound.setOpacity(0.7)  # the styled ramp (from the plugin's .qml), over the imagery
        project.setCrs(scene.crs())  # maps in the scene's own CRS (metres: the scale bar)
        project.addMapLayers([scene, sound])
        tile_size = args.tile * scene.rasterUnitsPerPixelX()  # map units per output pixel
        layout = build_layout(
            project, scene, sound, queries[args.show - 1], result["NOTE"], tile_size
        )
        settings = QgsLayoutExporter.ImageExportSettings()
        settings.dpi = args.dpi
        args.out.parent.mkdir(parents=True, exist_ok=True)
        # The exporter also tries to georeference the PNG in place, which GDAL's PNG driver
        # refuses with a harmless "ERROR 6"; keep it out of the output.
        gdal.PushErrorHandler("CPLQuietErrorHandler")
        try:
            status = QgsLayoutExporter(layout).exportToImage(str(args.out), settings)
        finally:
            gdal.PopErrorHandler()
        project.removeAllMapLayers()
    app.exitQgis()
    if status != QgsLayoutExporter.Success:
        raise SystemExit(f"layout export failed (status {status})")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
