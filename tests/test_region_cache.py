"""The region cache never writes into a folder that is not its own, and recovers its own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from geosound.errors import InputError
from geosound.mapping.region import (
    CACHE_FORMAT,
    STORE_MARKER,
    RegionSpec,
    open_or_create_cache,
    read_spec,
)


@pytest.fixture
def spec(data_raster) -> RegionSpec:
    raster = data_raster("utm_rgb8.tif", "scene.tif")
    return RegionSpec(
        raster=str(raster), tile_size=64, stride=64, preset="rgb8", space_id="test:space",
        checkpoint=None,
    )  # fmt: skip


def user_files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes, by relative path."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_folder_of_user_files_is_refused_and_left_untouched(spec: RegionSpec, tmp_path: Path):
    folder = tmp_path / "thesis"
    (folder / "chapter").mkdir(parents=True)
    (folder / "thesis.tex").write_text("four years of work")
    (folder / "chapter" / "figure.png").write_bytes(bytes(range(256)))
    before = user_files(folder)

    with pytest.raises(InputError, match="not a geosound region cache") as error:
        open_or_create_cache(folder, spec, {"dim": 4})
    assert str(folder) in str(error.value)
    assert user_files(folder) == before


def test_a_file_is_refused(spec: RegionSpec, tmp_path: Path):
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    with pytest.raises(InputError, match="not a folder"):
        open_or_create_cache(target, spec, {"dim": 4})
    assert target.read_text() == "mine"


@pytest.mark.parametrize("exists", [False, True])
def test_a_new_or_empty_folder_becomes_a_marked_cache(
    spec: RegionSpec, tmp_path: Path, exists: bool
):
    folder = tmp_path / "cache.zarr"
    if exists:
        folder.mkdir()
    cache = open_or_create_cache(folder, spec, {"dim": 4})
    assert json.loads((folder / STORE_MARKER).read_text())["format"] == CACHE_FORMAT
    assert read_spec(folder) == spec
    ds = cache.dataset()
    assert ds["embedding"].shape[-1] == 4
    assert "concept_ids" not in ds  # no "tokens" given: a space without a codebook


def test_a_cache_killed_while_being_created_is_made_again(spec: RegionSpec, tmp_path: Path):
    folder = tmp_path / "cache.zarr"
    open_or_create_cache(folder, spec, {"dim": 4, "tokens": 4})
    (folder / ".zattrs").write_text("")  # what a kill during creation leaves behind

    cache = open_or_create_cache(folder, spec, {"dim": 4, "tokens": 4})
    assert read_spec(folder) == spec
    assert cache.concept_dataset()["token_concept_ids"].shape[2:] == (4, 4)
    assert len(cache.pending()) == len(cache.chunks())


def test_a_cache_from_before_markers_is_adopted(spec: RegionSpec, tmp_path: Path):
    folder = tmp_path / "cache.zarr"
    open_or_create_cache(folder, spec, {"dim": 4})
    (folder / STORE_MARKER).unlink()

    cache = open_or_create_cache(folder, spec, {"dim": 4})
    assert (folder / STORE_MARKER).is_file()
    assert cache.spec == spec


@pytest.mark.slow
def test_map_with_a_folder_of_user_files_as_cache_exits_2_and_touches_nothing(
    data_raster, tmp_path: Path, run_cli
):
    """The data-loss report: `--cache SOME_EXISTING_FOLDER` used to wipe the folder."""
    raster = data_raster("utm_rgb8.tif", "scene.tif")
    folder = tmp_path / "home"
    (folder / "sub").mkdir(parents=True)
    (folder / "thesis.tex").write_text("four years of work")
    (folder / "sub" / "data.csv").write_text("a,b\n1,2\n")
    before = user_files(folder)

    result = run_cli(
        "map", str(raster), "-o", str(tmp_path / "out"), "-t", "birds", "--cache", str(folder)
    )
    assert result.returncode == 2, result.stderr
    assert "not a geosound region cache" in result.stderr and str(folder) in result.stderr
    assert "Traceback" not in result.stderr
    assert user_files(folder) == before
    assert not (tmp_path / "out" / "similarity.tif").exists()
