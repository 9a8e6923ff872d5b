"""Models: Sat2Sound (imagery, sound and text in one concept-codebook space) and its losses.

Torch only; the models consume token sequences from the frozen encoders in
:mod:`geosound.encoders` (see ``docs/ARCHITECTURE.md``).
"""

from geosound.models.losses import PAIRWISE_TERMS, LossConfig, Sat2SoundLoss, clip_loss
from geosound.models.sat2sound import (
    METADATA_DIM,
    MODALITY_KEYS,
    SAT2SOUND_PRESETS,
    ConceptCodebook,
    MetadataFusion,
    ModalityOutput,
    ProjectionHead,
    Sat2Sound,
    Sat2SoundConfig,
    active_concepts,
    build_sat2sound,
    concept_weights,
    metadata_features,
    sat2sound_config,
    sparsemax,
    top_concepts,
)

__all__ = [
    "METADATA_DIM",
    "MODALITY_KEYS",
    "PAIRWISE_TERMS",
    "SAT2SOUND_PRESETS",
    "ConceptCodebook",
    "LossConfig",
    "MetadataFusion",
    "ModalityOutput",
    "ProjectionHead",
    "Sat2Sound",
    "Sat2SoundConfig",
    "Sat2SoundLoss",
    "active_concepts",
    "build_sat2sound",
    "clip_loss",
    "concept_weights",
    "metadata_features",
    "sat2sound_config",
    "sparsemax",
    "top_concepts",
]
