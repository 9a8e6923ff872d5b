"""The region cache never writes into a folder that is not its own, and recovers its own."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio

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


# ------------------------------------------------------------------ honest caches, one writer

SPACE_SOURCE = '''
import numpy as np

class MeanColourSpace:
    """A tiny real embedding space: each tile's per-band mean and spread, as a unit vector."""

    space_id = "test:mean-colour"
    note = "test space"
    dim = 6

    def embed_rgb(self, images):
        images = np.asarray(images, dtype=np.float32)
        features = np.concatenate([images.mean(axis=(2, 3)), images.std(axis=(2, 3))], axis=1)
        features = features + 1e-3
        return features / np.linalg.norm(features, axis=1, keepdims=True)

    def embed_texts(self, texts):
        return np.ones((len(texts), self.dim), np.float32) / np.sqrt(self.dim)
'''
namespace: dict[str, object] = {}
exec(SPACE_SOURCE, namespace)
MeanColourSpace = namespace["MeanColourSpace"]


def embed(cache: Path, raster: Path, **kwargs: object):
    from geosound.mapping.region import embed_region

    return embed_region(cache, raster, space=MeanColourSpace(), tile_size=32, chunk_rows=2,
                        **kwargs)  # fmt: skip


def embeddings(cache) -> np.ndarray:
    values, valid = cache.embeddings()
    return np.where(valid[..., None], values.values, 0.0)


def test_a_replaced_raster_is_embedded_again(make_raster, tmp_path: Path):
    raster = make_raster("scene.tif", width=128, height=96, count=3, dtype="uint8")
    first = embeddings(embed(tmp_path / "cache.zarr", raster))
    with rasterio.open(raster, "r+") as dst:  # the same path, other pixels
        dst.write(255 - dst.read())
    messages: list[str] = []
    cache = embed(tmp_path / "cache.zarr", raster, progress=lambda f, m: messages.append(m))
    assert any("raster changed" in m for m in messages)
    again = embeddings(cache)
    fresh = embeddings(embed(tmp_path / "fresh.zarr", raster))
    np.testing.assert_array_equal(again, fresh)
    assert not np.allclose(again, first)


@pytest.mark.parametrize("damage", ["delete", "garbage"])
def test_a_damaged_chunk_is_recomputed_never_read_as_fill(make_raster, tmp_path: Path, damage: str):
    raster = make_raster("scene.tif", width=128, height=128, count=3, dtype="uint8")
    reference = embeddings(embed(tmp_path / "cache.zarr", raster))
    chunk_file = tmp_path / "cache.zarr" / "embedding" / "1.0.0"
    assert chunk_file.is_file()
    if damage == "delete":
        chunk_file.unlink()
    else:
        chunk_file.write_bytes(b"not a blosc chunk" * 10)
    from geosound.mapping.region import embedding_at, read_spec

    with pytest.raises(InputError, match="damaged"):
        with rasterio.open(raster) as src:  # a point in grid row 2 (chunk 1)
            x, y = src.xy(2 * 32 + 5, 5)
        embedding_at(tmp_path / "cache.zarr", x, y, crs=src.crs.to_string())

    messages: list[str] = []
    cache = embed(tmp_path / "cache.zarr", raster, progress=lambda f, m: messages.append(m))
    assert any("1 chunk(s) deleted or damaged" in m for m in messages)
    assert "1/2 chunks already embedded" in messages  # only the damaged chunk is redone
    np.testing.assert_array_equal(embeddings(cache), reference)
    assert read_spec(tmp_path / "cache.zarr") == cache.spec


def test_a_second_writer_is_refused_with_the_first_ones_pid(make_raster, tmp_path: Path):
    from geosound.locking import exclusive

    raster = make_raster("scene.tif", width=64, height=64, count=3, dtype="uint8")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "from geosound.locking import exclusive\n"
         "with exclusive(sys.argv[1], 'region cache'):\n"
         "    print('held', flush=True)\n"
         "    time.sleep(60)\n",
         str(tmp_path / "cache.zarr")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(InputError, match=f"in use by PID {holder.pid}"):
            embed(tmp_path / "cache.zarr", raster)
        with exclusive(tmp_path / "other.zarr", "region cache"):  # other folders are free
            pass
    finally:
        holder.kill()
        holder.wait()
    assert not (tmp_path / "cache.zarr").exists()  # the refused run wrote nothing
    embed(tmp_path / "cache.zarr", raster)  # the lock died with its holder


KILLED_RUN = (
    SPACE_SOURCE
    + """
import sys
from pathlib import Path
from geosound.mapping.region import embed_region
embed_region(Path(sys.argv[1]), sys.argv[2], space=MeanColourSpace(), tile_size=16,
             chunk_rows=1, batch_size=4)
"""
)


def _kill_when(job: subprocess.Popen[bytes], ready: Callable[[], bool]) -> bool:
    """SIGKILL ``job`` as soon as ``ready()``; False if the job ended first."""
    deadline = time.monotonic() + 120  # bounds a hang only
    while job.poll() is None and time.monotonic() < deadline:
        if ready():
            job.send_signal(signal.SIGKILL)
            job.wait()
            return True
        time.sleep(0.002)
    return False


@pytest.mark.slow
def test_a_kill_at_any_moment_leaves_nothing_or_a_valid_resumable_cache(
    make_raster, tmp_path: Path
):
    """SIGKILL a cache build while it is being created, after its first chunk and halfway:
    what is left is either no cache or one that a rerun accepts and finishes identically."""
    raster = make_raster("scene.tif", width=256, height=256, count=3, dtype="uint8")
    script = tmp_path / "build.py"
    script.write_text(KILLED_RUN)
    reference = tmp_path / "reference.zarr"
    subprocess.run([sys.executable, str(script), str(reference), str(raster)], check=True)
    from geosound.mapping.region import RegionCache

    expected = embeddings(RegionCache(reference, read_spec(reference)))
    chunks = len(RegionCache(reference, read_spec(reference)).chunks())

    def markers(target: Path) -> int:
        return len(list((target / "_geosound_done").glob("*.ok")))

    moments: dict[str, Callable[[Path], bool]] = {
        "while created": lambda t: any(t.parent.glob(f".{t.name}.*.tmp")),
        "after the first chunk": lambda t: markers(t) >= 1,
        "halfway": lambda t: markers(t) >= chunks // 2,
    }
    for name, moment in moments.items():
        target = tmp_path / f"{name.replace(' ', '_')}.zarr"
        for _ in range(5):  # creation takes milliseconds: a poll may miss it, so try again
            shutil.rmtree(target, ignore_errors=True)
            job = subprocess.Popen([sys.executable, str(script), str(target), str(raster)])
            if _kill_when(job, lambda m=moment, t=target: m(t)):
                break
        else:
            pytest.fail(f"five builds ended before they could be killed {name}")
        if name == "while created":
            assert not target.exists()  # the store appears whole or not at all
        else:
            assert 1 <= markers(target) < chunks and read_spec(target) is not None
        subprocess.run([sys.executable, str(script), str(target), str(raster)], check=True)
        assert not list(tmp_path.glob(f".{target.name}.*.tmp"))
        np.testing.assert_array_equal(embeddings(RegionCache(target, read_spec(target))), expected)


def test_map_products_go_only_into_folders_geosound_may_write(tmp_path: Path):
    from geosound.mapping.maps import OUTPUT_MARKER, claim_output_folder

    new = tmp_path / "new"
    claim_output_folder(new)
    assert (new / OUTPUT_MARKER).is_file()
    claim_output_folder(new)  # a folder it wrote before

    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "similarity.tif").write_bytes(b"their own file")
    with pytest.raises(InputError, match="folder of other files"):
        claim_output_folder(theirs)
    assert (theirs / "similarity.tif").read_bytes() == b"their own file"
    assert sorted(p.name for p in theirs.iterdir()) == ["similarity.tif"]

    earlier = tmp_path / "earlier"  # a map folder from before markers
    earlier.mkdir()
    (earlier / "map.json").write_text("{}")
    claim_output_folder(earlier)
    assert (earlier / OUTPUT_MARKER).is_file()


@pytest.mark.slow
def test_two_map_runs_on_one_folder_one_works_the_other_is_refused(data_raster, tmp_path: Path):
    """Two `geosound map` runs started 0.1 s apart used to both fail and wedge the cache."""
    raster = data_raster("utm_rgb8.tif", "scene.tif")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "geosound", "map", str(raster), "-o", str(out),
               "-t", "rain", "--tile", "64", "--progress", "none"]  # fmt: skip
    first = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    time.sleep(0.1)
    second = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    results = sorted((job.wait(timeout=600), job.communicate()[1]) for job in (first, second))
    (ok_code, _), (refused_code, refused_err) = results
    assert (ok_code, refused_code) == (0, 2), results
    assert "in use by PID" in refused_err and "Traceback" not in refused_err
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr  # the cache is valid, nothing wedged


@pytest.mark.slow
def test_a_kill_while_products_are_written_leaves_no_partial_file(data_raster, tmp_path: Path):
    """SIGKILL `geosound map` while a COG is being written: no partial product appears, and
    the rerun removes the dead run's temporary file and writes complete products."""
    from geosound.geo import is_valid_cog

    raster = data_raster("utm_rgb8.tif", "scene.tif")
    out = tmp_path / "out"
    queries = ["-t", "rain", "-t", "wind", "--concepts"]
    command = [sys.executable, "-m", "geosound", "map", str(raster), "-o", str(out), *queries,
               "--tile", "32", "--progress", "none"]  # fmt: skip

    def writing() -> bool:
        return any(p.name.endswith(".tmp") for p in out.glob(".*")) if out.is_dir() else False

    for _ in range(5):  # a COG is written in milliseconds: a poll may miss it, so try again
        shutil.rmtree(out, ignore_errors=True)
        job = subprocess.Popen(command, stderr=subprocess.DEVNULL)
        if _kill_when(job, writing):
            break
    else:
        pytest.fail("five runs ended before a product was being written")
    products = list(out.glob("*.tif"))
    assert all(is_valid_cog(p) for p in products), products  # whole files or none
    assert not (out / "map.json").exists()  # the sidecar comes last

    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert not [p for p in out.glob(".*") if p.name.endswith(".tmp")]
    for name in ("similarity.tif", "probability.tif", "concepts.tif"):
        assert is_valid_cog(out / name), name


def test_a_raster_without_one_mappable_tile_is_refused_before_anything_is_written(
    make_raster, tmp_path: Path
):
    empty = make_raster("empty.tif", width=96, height=96, count=3, dtype="uint8", nodata=0)
    with rasterio.open(empty, "r+") as dst:
        dst.write(np.zeros((3, 96, 96), np.uint8))
    with pytest.raises(InputError, match="nodata") as caught:
        embed(tmp_path / "cache.zarr", empty)
    assert "empty.tif" in str(caught.value)
    sliver = make_raster("sliver.tif", width=64, height=1, count=3, dtype="uint8")
    with pytest.raises(InputError, match=r"sliver\.tif"):
        embed(tmp_path / "cache.zarr", sliver)
    assert not (tmp_path / "cache.zarr").exists()


@pytest.mark.parametrize("stride", [None, 16])
def test_a_raster_the_tiles_do_not_fit_is_mapped_to_its_edges_from_whole_tiles(
    make_raster, tmp_path: Path, stride: int | None
):
    """100 × 72 pixels and 32-pixel tiles: the cache's grid ends at the raster's edges (less
    half the overlap with a 16-pixel stride) and its edge cells hold the embeddings of the
    tiles that end at the edges, read here straight from the raster."""
    from rasterio.windows import Window

    from geosound.geo import RasterSource, get_preset, read_rgb
    from geosound.mapping.region import cache_transform, embedding_at

    raster = make_raster("scene.tif", width=100, height=72, count=3, dtype="uint8")
    cache = embed(tmp_path / "cache.zarr", raster, stride=stride)
    values, valid = cache.embeddings()
    assert valid.all()  # no nodata row or column at the edges
    transform = cache_transform(cache.dataset())
    rows, cols = valid.shape
    margin = 0.0 if stride is None else (32 - 16) / 2 * 10.0
    with RasterSource(raster) as src:
        left, bottom, right, top = src.bounds
        windows = [Window(100 - 32, 72 - 32, 32, 32), Window(0, 0, 32, 32)]
        expected = MeanColourSpace().embed_rgb(read_rgb(src, windows, get_preset("rgb8")))
    layer = (transform.c, transform.f + rows * transform.e, transform.c + cols * transform.a,
             transform.f)  # fmt: skip
    expected_bounds = (left + margin, bottom + margin, right - margin, top - margin)
    assert layer == pytest.approx(expected_bounds, abs=1e-6)
    np.testing.assert_allclose(values.values[-1, -1], expected[0], rtol=1e-6)
    np.testing.assert_allclose(values.values[0, 0], expected[1], rtol=1e-6)
    # A place one metre inside the layer's bottom-right corner is the corner tile's.
    corner = embedding_at(tmp_path / "cache.zarr", layer[2] - 1, layer[1] + 1, "EPSG:32632")
    np.testing.assert_array_equal(corner, values.values[-1, -1])
    with pytest.raises(InputError, match="outside the cached region"):
        embedding_at(tmp_path / "cache.zarr", layer[2] + 1, layer[1] + 1, "EPSG:32632")


def test_a_cache_of_an_earlier_format_is_made_again(spec: RegionSpec, tmp_path: Path):
    """Format 1 laid other tiles on rasters the stride does not fit: never reused as is."""
    folder = tmp_path / "cache.zarr"
    open_or_create_cache(folder, spec, {"dim": 4})
    attrs = json.loads((folder / ".zattrs").read_text())
    (folder / ".zattrs").write_text(json.dumps({**attrs, "format": "geosound-region-cache-1"}))
    with pytest.raises(InputError, match=r"another geosound version \(geosound-region-cache-1"):
        read_spec(folder)

    cache = open_or_create_cache(folder, spec, {"dim": 4})
    assert read_spec(folder) == spec and cache.dataset().attrs["format"] == CACHE_FORMAT
