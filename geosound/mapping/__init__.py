"""Map products: per-tile embeddings of a region turned into georeferenced layers."""

from geosound.mapping.embed import embed_tiles
from geosound.mapping.layers import layer_transform, layers_dataset, tiles_to_layers
from geosound.mapping.similarity import text_similarity_map, write_similarity_layers

__all__ = [
    "embed_tiles",
    "layer_transform",
    "layers_dataset",
    "text_similarity_map",
    "tiles_to_layers",
    "write_similarity_layers",
]
