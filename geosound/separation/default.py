"""The separator shipped inside the package.

``separator_default.pt`` is the tiny AV-GAS separator ``geosound separate`` uses when no
``--model`` is given, made by ``geosound train-separator`` from the shared dev data (see
``geosound/assets/README.md``); it belongs to the shipped Sat2Sound model's space.
"""

from __future__ import annotations

from pathlib import Path

from geosound.config import assets_dir
from geosound.errors import InputError

DEFAULT_SEPARATOR = "separator_default.pt"


def default_separator_path() -> Path:
    """The shipped separator checkpoint.

    Raises:
        InputError: None is installed; the message says how to make one.
    """
    path = assets_dir() / DEFAULT_SEPARATOR
    if not path.is_file():
        raise InputError(
            "no default separator is installed; train one with `geosound train-separator -o RUN` "
            "and give it with --model RUN/separator.pt",
            path,
        )
    return path
