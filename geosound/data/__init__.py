"""Datasets: the catalog of dataset cards and loaders for the shared dev data sets.

Re-exported here so that callers write ``from geosound.data import load_esc50`` and the
module layout can change without breaking them.
"""

from geosound.data.catalog import (
    CARD_KINDS,
    DatasetCard,
    card_is_available,
    catalog_dir,
    load_catalog,
    parse_card,
)
from geosound.data.devsets import (
    EUROSAT_CLASSES,
    LANDCOVER_SOUNDS,
    dev_root,
    load_ambient,
    load_esc50,
    load_eurosat_rgb,
    load_eurosat_tiles,
    load_georaster_scenes,
    load_soundscape_24h,
)

__all__ = [
    "CARD_KINDS",
    "EUROSAT_CLASSES",
    "LANDCOVER_SOUNDS",
    "DatasetCard",
    "card_is_available",
    "catalog_dir",
    "dev_root",
    "load_ambient",
    "load_catalog",
    "load_esc50",
    "load_eurosat_rgb",
    "load_eurosat_tiles",
    "load_georaster_scenes",
    "load_soundscape_24h",
    "parse_card",
]
