"""The geosound Processing provider: makes the algorithms appear in the Toolbox and modeler."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms import ALGORITHMS
from .algorithms.base import plugin_icon

PROVIDER_ID = "geosound"


class GeosoundProvider(QgsProcessingProvider):
    """Provider ``geosound``: algorithm ids are ``geosound:<name>``."""

    def id(self) -> str:
        return PROVIDER_ID

    def name(self) -> str:
        return "geosound"

    def longName(self) -> str:
        return "geosound — soundscape maps, retrieval and synthesis"

    def icon(self) -> QIcon:
        return plugin_icon()

    def loadAlgorithms(self) -> None:
        for algorithm in ALGORITHMS:
            self.addAlgorithm(algorithm())

    def supportedOutputRasterLayerExtensions(self) -> list[str]:
        # geosound writes (Cloud-Optimised) GeoTIFFs; outputs are copied, never converted.
        return ["tif"]
