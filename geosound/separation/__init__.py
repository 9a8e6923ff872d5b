"""Separation: the sources in a recording of a place (AV-GAS, METHODS.md §5), at inference.

The model lives in :mod:`geosound.models.separator`, its loss beside it and its training in
:mod:`geosound.training.separator`; this package turns a recording into its sources — each a
vector in the shared space, named by its nearest classes, with its share of the loudness.
"""

from geosound.separation.sources import DownmixWarning, Separation, Source, SourceFinder

__all__ = ["DownmixWarning", "Separation", "Source", "SourceFinder"]
