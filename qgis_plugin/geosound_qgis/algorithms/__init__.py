"""The geosound Processing algorithms; a new algorithm is one class added to ALGORITHMS."""

from __future__ import annotations

from .base import GeosoundAlgorithm, MapAlgorithm
from .build_index import BuildIndexAlgorithm
from .concept_map import ConceptMapAlgorithm
from .landscape import LandscapeAlgorithm
from .retrieve import RetrievePointsAlgorithm, RetrieveTilesAlgorithm
from .soundscape_map import SoundscapeMapAlgorithm
from .sources import SourcesAlgorithm
from .synthesize import SynthesizePointAlgorithm

ALGORITHMS: tuple[type[GeosoundAlgorithm], ...] = (
    SoundscapeMapAlgorithm,
    ConceptMapAlgorithm,
    RetrieveTilesAlgorithm,
    RetrievePointsAlgorithm,
    SynthesizePointAlgorithm,
    LandscapeAlgorithm,
    SourcesAlgorithm,
    BuildIndexAlgorithm,
)

__all__ = ["ALGORITHMS", "GeosoundAlgorithm", "MapAlgorithm"]
