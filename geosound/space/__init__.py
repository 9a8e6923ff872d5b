"""Embedding spaces: where images, recordings and text meet, whatever made the space.

:class:`EmbeddingSpace` is the protocol maps, evaluations and the generator depend on;
:class:`SharedSpace` is the trained Sat2Sound space (frozen encoders + trained heads);
:func:`default_space` picks the shipped model, or the labelled training-free stand-in.
"""

from geosound.space.default import default_space
from geosound.space.protocol import ConceptSpace, EmbeddingSpace

__all__ = ["ConceptSpace", "EmbeddingSpace", "default_space"]
