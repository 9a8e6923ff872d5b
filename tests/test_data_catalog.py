"""The dataset catalog: the real cards parse and say what they must; bad cards fail loudly."""

from __future__ import annotations

from pathlib import Path

import pytest

from geosound.config import REPO_DIR, dev_data_dir
from geosound.data import CARD_KINDS, DatasetCard, card_is_available, load_catalog
from geosound.errors import DataError, InputError

EXPECTED_IDS = {
    "esc50",
    "eurosat",
    "eurosat_ms_geotiff",
    "eurosat_rgb_jpg_5class",
    "geosound",
    "soundingearth",
    "georaster_scenes",
    "ambient_debian_16k",
    "maad_soundscape_24h_16k",
    "demo_naip",
}

GOOD_CARD = """---
id: {id}
name: "A test set"
kind: audio
licence: "CC0"
citation: "Nobody. A test set: nothing. 2024"
size: "3 clips"
georeferenced: false
url: null
local: {local}
how_to_get: "It is made by the test."
---

# A test set
Body text.
"""


def write_card(directory: Path, card_id: str, text: str | None = None, local: str = "null") -> Path:
    path = directory / f"{card_id}.md"
    path.write_text(GOOD_CARD.format(id=card_id, local=local) if text is None else text)
    return path


@pytest.fixture(scope="module")
def catalog() -> dict[str, DatasetCard]:
    return {card.id: card for card in load_catalog(REPO_DIR / "data_catalog")}


def test_real_catalog_has_every_card(catalog: dict[str, DatasetCard]) -> None:
    assert set(catalog) == EXPECTED_IDS
    for card in catalog.values():
        assert card.kind in CARD_KINDS
        assert card.path.stem == card.id
        assert card.body.lstrip().startswith("#"), card.id
        for text in (card.name, card.licence, card.citation, card.size, card.how_to_get):
            assert text and "\n" not in text, card.id


def test_real_catalog_facts(catalog: dict[str, DatasetCard]) -> None:
    esc50 = catalog["esc50"]
    assert esc50.local == "esc50_outdoor_16k"
    assert "CC BY-NC 3.0" in esc50.licence
    assert "168" in esc50.body and "32 outdoor classes" in esc50.body
    assert catalog["eurosat"].licence == "MIT"
    assert catalog["eurosat_ms_geotiff"].georeferenced is True
    assert catalog["eurosat_rgb_jpg_5class"].georeferenced is False
    assert "181" in catalog["eurosat_ms_geotiff"].size
    for upstream in ("eurosat", "geosound", "soundingearth"):
        assert catalog[upstream].local is None
        assert card_is_available(catalog[upstream]) is False
    assert catalog["geosound"].kind == catalog["soundingearth"].kind == "paired"


def test_catalog_readme_links_every_card(catalog: dict[str, DatasetCard]) -> None:
    readme = (REPO_DIR / "data_catalog" / "README.md").read_text()
    for card_id in catalog:
        assert f"({card_id}.md)" in readme, card_id


@pytest.mark.devdata
def test_local_cards_are_available_with_dev_data(catalog: dict[str, DatasetCard]) -> None:
    if not dev_data_dir().is_dir():
        pytest.skip(f"dev data not found at {dev_data_dir()} (set GEOSOUND_DEV_DATA)")
    for card in catalog.values():
        if card.local is not None:
            assert card_is_available(card), f"{card.id}: {dev_data_dir() / card.local}"


def test_default_directory_follows_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_card(tmp_path, "tiny")
    monkeypatch.setenv("GEOSOUND_CATALOG", str(tmp_path))
    cards = load_catalog()
    assert [card.id for card in cards] == ["tiny"]
    card = cards[0]
    assert card.url is None and card.local is None and card.georeferenced is False
    assert card.citation == "Nobody. A test set: nothing. 2024"
    assert card.body.startswith("# A test set")
    assert card.path == tmp_path / "tiny.md"


def test_card_is_available_checks_the_folder(tmp_path: Path) -> None:
    write_card(tmp_path, "tiny", local="tiny_folder")
    (card,) = load_catalog(tmp_path)
    data_dir = tmp_path / "data"
    assert card_is_available(card, data_dir) is False
    (data_dir / "tiny_folder").mkdir(parents=True)
    assert card_is_available(card, data_dir) is True


def test_readme_is_not_a_card(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# Index, no front matter\n")
    write_card(tmp_path, "tiny")
    assert [card.id for card in load_catalog(tmp_path)] == ["tiny"]


BAD_CARDS = {
    "no front matter": ("# Just a heading\n", "must start with YAML front matter"),
    "unclosed front matter": ("---\nid: bad\nname: x\n", "must start with YAML front matter"),
    "invalid yaml": ("---\nid: bad\nname: [unclosed\n---\nbody\n", "invalid YAML"),
    "not a mapping": ("---\n- a\n- b\n---\nbody\n", "must be a mapping"),
    "missing key": (
        GOOD_CARD.format(id="bad", local="null").replace('licence: "CC0"\n', ""),
        "lacks key(s): licence",
    ),
    "typo key": (
        GOOD_CARD.format(id="bad", local="null").replace("licence:", "license:"),
        "lacks key(s): licence",
    ),
    "unknown key": (
        GOOD_CARD.format(id="bad", local="null").replace("---\n\n#", "extra: 1\n---\n\n#"),
        "unknown key(s): extra",
    ),
    "bad kind": (
        GOOD_CARD.format(id="bad", local="null").replace("kind: audio", "kind: video"),
        "kind 'video'",
    ),
    "bool as string": (
        GOOD_CARD.format(id="bad", local="null").replace(
            "georeferenced: false", 'georeferenced: "no"'
        ),
        "'georeferenced' must be true or false",
    ),
    "id not file name": (GOOD_CARD.format(id="other", local="null"), "must equal the file name"),
    "local is a path": (GOOD_CARD.format(id="bad", local="../elsewhere"), "one folder name"),
    "empty name": (
        GOOD_CARD.format(id="bad", local="null").replace('name: "A test set"', 'name: ""'),
        "'name' must be a non-empty string",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CARDS))
def test_bad_card_raises_naming_the_file(tmp_path: Path, case: str) -> None:
    text, expected = BAD_CARDS[case]
    write_card(tmp_path, "good")
    bad = write_card(tmp_path, "bad", text=text)
    with pytest.raises(DataError) as info:
        load_catalog(tmp_path)
    assert info.value.path == str(bad)
    assert str(info.value).startswith(f"{bad}: ")
    assert expected in str(info.value)
    assert isinstance(info.value, InputError)


def test_missing_catalog_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="catalog folder not found"):
        load_catalog(tmp_path / "nowhere")
