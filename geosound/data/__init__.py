"""Datasets and pairs: dataset cards, dev-set loaders, the pair manifest and how pairs are made.

The modules, by concern:

* :mod:`~geosound.data.catalog` — dataset cards; :mod:`~geosound.data.devsets` — loaders
  for the shared dev data sets; :mod:`~geosound.data.feature_cache` — encoder outputs on disk.
* :mod:`~geosound.data.manifest` — the pair manifest's schema and GeoParquet IO.
* :mod:`~geosound.data.pairs_table` — a user's table of real geotagged recordings → manifest.
* :mod:`~geosound.data.sonify` — Seeing Sound: tiles paired with real clips through text,
  using :mod:`~geosound.data.concepts` (the words), :mod:`~geosound.data.splits` (disjoint
  train/eval) and :mod:`~geosound.data.recipe` (the stored mix).

The most used names are re-exported here so that callers write
``from geosound.data import load_esc50`` and the module layout can change without breaking
them.
"""

from geosound.data.catalog import (
    CARD_KINDS,
    DatasetCard,
    card_is_available,
    catalog_dir,
    load_catalog,
    parse_card,
)
from geosound.data.concepts import CONCEPT_PHRASES
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
from geosound.data.manifest import read_manifest, validate_manifest, write_manifest
from geosound.data.pairs_table import manifest_from_pairs_table
from geosound.data.recipe import MixRecipe, is_recipe
from geosound.data.sonify import sonify_tiles
from geosound.data.splits import split_by_tile_and_clip

__all__ = [
    "CARD_KINDS",
    "CONCEPT_PHRASES",
    "EUROSAT_CLASSES",
    "LANDCOVER_SOUNDS",
    "CachedFeatures",
    "DatasetCard",
    "FeatureCache",
    "MixRecipe",
    "card_is_available",
    "catalog_dir",
    "content_key",
    "dev_root",
    "is_recipe",
    "load_ambient",
    "load_catalog",
    "load_esc50",
    "load_eurosat_rgb",
    "load_eurosat_tiles",
    "load_georaster_scenes",
    "load_soundscape_24h",
    "manifest_from_pairs_table",
    "parse_card",
    "read_manifest",
    "sonify_tiles",
    "split_by_tile_and_clip",
    "validate_manifest",
    "write_manifest",
]
