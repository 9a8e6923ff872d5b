"""geosound QGIS plugin: soundscape maps, sound retrieval and synthesis from imagery.

The heavy lifting runs in the geosound Python environment as ``python -m geosound ...``; this
package never imports torch or geosound, so QGIS stays light and cannot be crashed by them.
"""

from __future__ import annotations

from typing import Any


def classFactory(iface: Any) -> Any:
    """QGIS calls this to create the plugin; imports stay lazy until then."""
    from .plugin import GeosoundPlugin

    return GeosoundPlugin(iface)
