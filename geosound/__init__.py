"""geosound: soundscape mapping from imagery, recordings and text.

Importing geosound makes the Hugging Face stack offline before anything can import it:
nothing here downloads at run time unless the user asks (``geosound data fetch``), and an
online ``transformers`` import can hang for minutes on a machine without network. It also caps
GDAL's block cache (see below).
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# GDAL's block cache defaults to 5 % of RAM and fills with blocks that tiling reads once and
# never again, so peak memory would follow the machine, not the work (benchmarks/README.md).
# The variable is in MB; a user's own setting wins.
os.environ.setdefault("GDAL_CACHEMAX", "256")

from geosound.errors import GeosoundError
from geosound.version import __version__

__all__ = ["GeosoundError", "__version__", "map_region"]


def __getattr__(name: str) -> object:
    # The mapping stack imports torch; keep `import geosound` light until it is asked for.
    if name == "map_region":
        from geosound.mapping.maps import map_region

        return map_region
    raise AttributeError(f"module 'geosound' has no attribute {name!r}")
