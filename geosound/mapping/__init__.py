"""Map products: per-tile embeddings of a region turned into georeferenced layers."""

from geosound.mapping.embed import embed_tiles
from geosound.mapping.layers import layer_transform, layers_dataset, tiles_to_layers
from geosound.mapping.maps import MapResult, map_region
from geosound.mapping.region import RegionCache, embed_region, embedding_at
from geosound.mapping.similarity import text_similarity_map, write_similarity_layers

__all__ = [
    "MapResult",
    "RegionCache",
    "embed_region",
    "embed_tiles",
    "embedding_at",
    "layer_transform",
    "layers_dataset",
    "map_region",
    "text_similarity_map",
    "tiles_to_layers",
    "write_similarity_layers",
]
