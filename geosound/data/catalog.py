"""Dataset cards: what each dataset is, its licence, and whether it is on this machine.

The catalog lives in ``data_catalog/*.md`` at the repository root, one Markdown card per
dataset, each opening with YAML front matter between ``---`` lines. Keeping the facts in
plain Markdown lets people read and review them like documentation, while this module turns
them into typed :class:`DatasetCard` objects so that code (the CLI's ``data`` commands, the
pair manifest's ``licence`` column) can rely on them. A malformed card fails loudly with a
:class:`~geosound.errors.DataError` naming the file: a silently skipped card would hide a
licence.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, cast

import yaml

from geosound.config import REPO_DIR, dev_data_dir
from geosound.errors import DataError

__all__ = [
    "CARD_KINDS",
    "DatasetCard",
    "card_is_available",
    "catalog_dir",
    "load_catalog",
    "parse_card",
]

CardKind = Literal["audio", "imagery", "paired"]
CARD_KINDS: tuple[str, ...] = ("audio", "imagery", "paired")

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_FRONT_MATTER = re.compile(
    r"\A---[ \t]*\r?\n(.*?)^---[ \t]*$\r?\n?(.*)\Z", re.DOTALL | re.MULTILINE
)


@dataclass(frozen=True)
class DatasetCard:
    """One dataset's card: the front-matter fields, the Markdown body and where it came from.

    Attributes:
        id: Slug naming the dataset; equal to the card's file name without ``.md``.
        name: Human-readable name.
        kind: ``"audio"``, ``"imagery"`` or ``"paired"`` (imagery and audio of one place).
        licence: Licence as far as known (``"unknown ..."`` when it is not).
        citation: One line to cite.
        size: Human-readable size (counts, bytes).
        georeferenced: Whether items carry a location or a CRS.
        url: Homepage, informational only (geosound never downloads from it), or None.
        local: Folder name inside the dev data directory, or None when not local.
        how_to_get: One line on obtaining the data.
        body: The Markdown after the front matter.
        path: The card file it was read from.
    """

    id: str
    name: str
    kind: CardKind
    licence: str
    citation: str
    size: str
    georeferenced: bool
    url: str | None
    local: str | None
    how_to_get: str
    body: str
    path: Path


_FRONT_MATTER_KEYS: tuple[str, ...] = tuple(
    f.name for f in fields(DatasetCard) if f.name not in {"body", "path"}
)
_REQUIRED_STRINGS = ("id", "name", "kind", "licence", "citation", "size", "how_to_get")
_OPTIONAL_STRINGS = ("url", "local")


def catalog_dir() -> Path:
    """Where the cards live: ``$GEOSOUND_CATALOG`` if set, else ``<repo>/data_catalog``.

    The override exists so that an installed geosound (no source checkout beside it) or a
    test can point at another set of cards.
    """
    configured = os.environ.get("GEOSOUND_CATALOG")
    if configured:
        return Path(configured).expanduser().resolve()
    return REPO_DIR / "data_catalog"


def load_catalog(directory: Path | None = None) -> list[DatasetCard]:
    """Read every card in a catalog folder, sorted by file name.

    ``README.md`` (the folder's index) is skipped; every other ``*.md`` file must be a card.

    Args:
        directory: The folder of cards; defaults to :func:`catalog_dir`.

    Returns:
        The cards, sorted by file name. Ids are unique because each must equal its file
        name.

    Raises:
        DataError: The folder is missing, or a card's front matter is missing or invalid.
            The error names the offending file.
    """
    directory = catalog_dir() if directory is None else Path(directory)
    if not directory.is_dir():
        raise DataError(
            "dataset catalog folder not found (set GEOSOUND_CATALOG to the data_catalog folder)",
            directory,
        )
    return [
        parse_card(card_path)
        for card_path in sorted(directory.glob("*.md"))
        if card_path.name.lower() != "readme.md"
    ]


def parse_card(path: Path) -> DatasetCard:
    """Parse one card file: YAML front matter between ``---`` lines, then a Markdown body.

    Validation is strict on purpose: unknown keys are rejected (a typo such as ``license``
    would otherwise drop the licence silently), and types are checked because YAML turns
    unquoted ``yes``/dates/numbers into non-strings.

    Args:
        path: The ``.md`` card file.

    Returns:
        The parsed card.

    Raises:
        DataError: The file cannot be read, or its front matter is missing or invalid.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read dataset card: {exc}", path) from exc
    match = _FRONT_MATTER.match(text.lstrip("\ufeff"))
    if match is None:
        raise DataError("dataset card must start with YAML front matter between '---' lines", path)
    raw_yaml, body = match.groups()
    try:
        meta = yaml.safe_load(raw_yaml)
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise DataError(f"invalid YAML front matter: {detail}", path) from exc
    if not isinstance(meta, dict):
        raise DataError("front matter must be a mapping of key: value lines", path)
    return _card_from_mapping(meta, body.strip("\n") + "\n" if body.strip() else "", path)


def _card_from_mapping(meta: dict[Any, Any], body: str, path: Path) -> DatasetCard:
    """Check the front-matter mapping field by field and build the card."""
    _check_keys(meta, path)
    for key in _REQUIRED_STRINGS:
        value = meta[key]
        if not isinstance(value, str) or not value.strip():
            raise DataError(f"front matter {key!r} must be a non-empty string, got {value!r}", path)
    for key in _OPTIONAL_STRINGS:
        value = meta[key]
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise DataError(f"front matter {key!r} must be a string or null, got {value!r}", path)
    if not isinstance(meta["georeferenced"], bool):
        raise DataError(
            f"front matter 'georeferenced' must be true or false, got {meta['georeferenced']!r}",
            path,
        )
    card_id = meta["id"]
    if not _SLUG.match(card_id):
        raise DataError(f"id {card_id!r} is not a slug (lower case, digits, '_' or '-')", path)
    if card_id != path.stem:
        raise DataError(f"id {card_id!r} must equal the file name {path.stem!r}", path)
    if meta["kind"] not in CARD_KINDS:
        raise DataError(f"kind {meta['kind']!r} is not one of {', '.join(CARD_KINDS)}", path)
    local = meta["local"]
    if local is not None:
        local_path = Path(local)
        if local_path.is_absolute() or len(local_path.parts) != 1 or local in {".", ".."}:
            raise DataError(
                f"local {local!r} must be one folder name inside the dev data directory", path
            )
    return DatasetCard(
        id=card_id,
        name=meta["name"].strip(),
        kind=cast(CardKind, meta["kind"]),
        licence=meta["licence"].strip(),
        citation=meta["citation"].strip(),
        size=meta["size"].strip(),
        georeferenced=meta["georeferenced"],
        url=None if meta["url"] is None else meta["url"].strip(),
        local=local,
        how_to_get=meta["how_to_get"].strip(),
        body=body,
        path=path,
    )


def _check_keys(meta: dict[Any, Any], path: Path) -> None:
    """Exactly the front-matter keys a card has: none missing, none unknown (typos)."""
    keys = {str(k) for k in meta}
    missing = [k for k in _FRONT_MATTER_KEYS if k not in keys]
    if missing:
        raise DataError(f"front matter lacks key(s): {', '.join(missing)}", path)
    unknown = sorted(keys - set(_FRONT_MATTER_KEYS))
    if unknown:
        raise DataError(
            f"front matter has unknown key(s): {', '.join(unknown)} "
            f"(expected: {', '.join(_FRONT_MATTER_KEYS)})",
            path,
        )


def card_is_available(card: DatasetCard, data_dir: Path | None = None) -> bool:
    """Whether a card's local copy exists, so callers can skip or explain instead of failing.

    Args:
        card: The dataset card.
        data_dir: The dev data directory; defaults to :func:`geosound.config.dev_data_dir`.

    Returns:
        True when the card names a local folder and that folder exists; False for cards
        with no local copy (``local: null``) or when the folder is absent.
    """
    if card.local is None:
        return False
    root = dev_data_dir() if data_dir is None else Path(data_dir)
    return (root / card.local).is_dir()
