"""The SounDiT generator shipped inside the package, and where a run's knowledge base lies.

``soundit_default.pt`` is the tiny generator ``geosound generate`` uses when no ``--model`` is
given, ``soundit_geokd.npz`` its GeoKD knowledge base; both are made by ``geosound
train-generator`` from the shared dev data (see ``geosound/assets/README.md``). A checkpoint of
one's own comes with the knowledge base ``train-generator`` wrote beside it.
"""

from __future__ import annotations

from pathlib import Path

from geosound.config import assets_dir
from geosound.errors import InputError

DEFAULT_GENERATOR = "soundit_default.pt"
DEFAULT_KNOWLEDGE = "soundit_geokd.npz"
RUN_CHECKPOINT = "soundit.pt"
"""What ``geosound train-generator`` names the generator in its run folder."""
RUN_KNOWLEDGE = "geokd.npz"
"""What ``geosound train-generator`` names the knowledge base beside its checkpoint."""


def default_generator_path() -> Path:
    """The shipped generator checkpoint.

    Raises:
        InputError: None is installed; the message says how to make one.
    """
    path = assets_dir() / DEFAULT_GENERATOR
    if not path.is_file():
        raise InputError(
            "no default generator is installed; train one with `geosound train-generator -o RUN` "
            "and give it with --model RUN/soundit.pt",
            path,
        )
    return path


def knowledge_beside(checkpoint: Path) -> Path | None:
    """The knowledge base that belongs to a generator checkpoint, if it is there.

    The shipped generator has the shipped one; a run's ``soundit.pt`` has the ``geokd.npz``
    that ``train-generator`` wrote into the same folder.
    """
    if checkpoint.resolve() == (assets_dir() / DEFAULT_GENERATOR).resolve():
        candidate = assets_dir() / DEFAULT_KNOWLEDGE
    else:
        candidate = checkpoint.parent / RUN_KNOWLEDGE
    return candidate if candidate.is_file() else None
