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
from geosound.data.feature_cache import CachedFeatures, FeatureCache, content_key
from geosound.data.pairs import (
    manifest_from_pairs_table,
    parse_image_ref,
    parse_recipe,
    read_manifest,
    validate_manifest,
    write_manifest,
)
from geosound.data.sonify import (
    CONCEPT_PHRASES,
    render_recipe,
    sonify_tiles,
    split_by_tile_and_clip,
)

__all__ = [
    "CARD_KINDS",
    "CONCEPT_PHRASES",
    "EUROSAT_CLASSES",
    "LANDCOVER_SOUNDS",
    "CachedFeatures",
    "DatasetCard",
    "FeatureCache",
    "card_is_available",
    "catalog_dir",
    "content_key",
    "dev_root",
    "load_ambient",
    "load_catalog",
    "load_esc50",
    "load_eurosat_rgb",
    "load_eurosat_tiles",
    "load_georaster_scenes",
    "load_soundscape_24h",
    "manifest_from_pairs_table",
    "parse_card",
    "parse_image_ref",
    "parse_recipe",
    "read_manifest",
    "render_recipe",
    "sonify_tiles",
    "split_by_tile_and_clip",
    "validate_manifest",
    "write_manifest",
]
