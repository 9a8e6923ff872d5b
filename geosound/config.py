"""Settings read from the environment, each with a default that works from a source checkout.

``GEOSOUND_DEV_DATA``  the shared development data (default: ``../shared/data`` beside the checkout)
``GEOSOUND_CACHE``     where caches live (default: ``~/.cache/geosound``)
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent


def dev_data_dir() -> Path:
    """Where the shared development data sets live (may not exist on a user's machine)."""
    configured = os.environ.get("GEOSOUND_DEV_DATA")
    if configured:
        return Path(configured).expanduser().resolve()
    return (REPO_DIR.parent / "shared" / "data").resolve()


def cache_dir() -> Path:
    """The root of geosound's on-disk caches; everything below it is safe to delete."""
    configured = os.environ.get("GEOSOUND_CACHE")
    root = Path(configured) if configured else Path.home() / ".cache" / "geosound"
    return root.expanduser()


def assets_dir() -> Path:
    """Files shipped inside the package: the demo sample, label lists, checkpoints."""
    return PACKAGE_DIR / "assets"


def check_known_fields(
    config_class: type, data: Mapping[str, Any], what: str, error: type[Exception] = ValueError
) -> None:
    """Refuse keys that are not fields of the dataclass ``config_class``.

    Strict on purpose: a misspelt key in a YAML file or checkpoint would otherwise silently
    give the default setting.

    Raises:
        error: ``unknown <what>: <keys>``.
    """
    unknown = sorted(set(data) - {field.name for field in dataclasses.fields(config_class)})
    if unknown:
        raise error(f"unknown {what}: {', '.join(unknown)}")
