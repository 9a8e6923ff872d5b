"""``geosound generate``: pictures from sound, placed on the map, and every way it refuses input.

A real tiny generator is saved in a fixture (tiny SounDiT and autoencoder, random weights,
saved with ``save_generator``) over a tiny Sat2Sound checkpoint whose space it records, with a
small GeoKD beside it, and the command runs in a subprocess as a user runs it: the real aiSFX
encoder hears real WAVs.
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import soundfile as sf
import torch
from pyproj import CRS, Transformer
from rasterio.windows import Window
from shapely.geometry import Point

from geosound.errors import InputError
from geosound.generation.placement import local_metric_crs, place_picture, write_vrt
from tests.tiny_models import save_tiny_generator

SCENES = ("forest", "river")
MILAN = (9.19, 45.46)


def _wav(path: Path, seconds: float, amplitude: float = 0.3, seed: int = 0) -> Path:
    """A tone with a little noise at 16 kHz (zeros when ``amplitude`` is 0)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    samples = amplitude * (
        np.sin(2 * np.pi * (300 + 100 * seed) * t) + 0.1 * rng.normal(size=t.size)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, 16000)
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory, random_checkpoint) -> dict[str, Path | str]:
    """A trained-run folder (``soundit.pt`` + ``geokd.npz``), its Sat2Sound and recordings."""
    from geosound.generation.geokd import KnowledgeBase
    from geosound.models.autoencoder import AutoencoderConfig, LatentCodec, build_autoencoder
    from geosound.models.checkpoint import load_checkpoint
    from geosound.models.soundit import build_soundit
    from geosound.models.soundit_checkpoint import save_generator

    root = tmp_path_factory.mktemp("generate")
    sat2sound = random_checkpoint(root / "sat2sound.pt", 0)
    space = f"sat2sound:{load_checkpoint(sat2sound).model_id}"
    torch.manual_seed(0)
    model = build_soundit(
        "tiny", hidden_dim=32, depth=2, heads=4, sound_dim=128, scene_dim=8, latent_size=8,
        num_experts=2,
    )  # fmt: skip
    config = AutoencoderConfig(image_size=32, block_out_channels=[16, 16, 16], norm_num_groups=8)
    codec = LatentCodec(build_autoencoder(config).eval(), 1.0, config)
    folder = root / "run"
    folder.mkdir()
    scenes = {word: torch.randn(8) for word in SCENES}
    model_id = save_generator(
        folder / "soundit.pt", model, codec, space, {"audio": "aisfx@1", "text": "minilm-l6@1"},
        scenes,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    KnowledgeBase(
        ["near-forest", "far-river", "unlocated"],
        rng.normal(size=(3, 128)),
        ["forest", "river", "forest"],
        rng.normal(size=(3, 4, 8, 8)).astype(np.float32),
        np.array([9.2, 120.0, np.nan]),
        np.array([45.5, -30.0, np.nan]),
        space,
    ).save(folder / "geokd.npz")
    return {
        "model": folder / "soundit.pt",
        "model_id": model_id,
        "sat2sound": sat2sound,
        "clip": _wav(root / "clip.wav", 3.0),
        "short": _wav(root / "short.wav", 0.5, seed=1),
        "silent": _wav(root / "silent.wav", 1.0, amplitude=0.0),
    }


def _generate(run_cli, run, *args: str):
    return run_cli(
        "generate", "--model", str(run["model"]), "--sat2sound", str(run["sat2sound"]),
        "--steps", "2", *args,
    )  # fmt: skip


def _refused(result, *needles: str) -> str:
    """Exit 2, one line on stderr naming what is wrong, no traceback; returns the line."""
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("geosound: error:"), lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _everything(folder: Path) -> list[str]:
    """Every file and folder under ``folder``, hidden ones included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


# -- one recording -----------------------------------------------------------------------------


def test_geotiff_is_centred_at_the_place_in_its_utm_zone(run_cli, run, tmp_path: Path) -> None:
    out = tmp_path / "landscape.tif"
    lon, lat = MILAN
    result = _generate(
        run_cli, run, "--audio", str(run["clip"]), "--lon", str(lon), "--lat", str(lat),
        "--ground-m", "640", "--seed", "7", "-o", str(out), "--progress", "json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[-1] == {"ok": True, "outputs": [str(out), str(out.with_suffix(".json"))]}
    assert any("sampling step" in line.get("message", "") for line in lines[:-1])
    with rasterio.open(out) as picture:
        crs = CRS.from_user_input(picture.crs.to_wkt())
        assert crs.to_epsg() == 32632 and crs.axis_info[0].unit_name == "metre"
        assert picture.dtypes == ("uint8",) * 3
        assert picture.descriptions == ("red", "green", "blue")
        assert picture.width * picture.res[0] == pytest.approx(640.0)
        assert picture.height * picture.res[1] == pytest.approx(640.0)
        left, bottom, right, top = picture.bounds
        half_pixel = picture.res[0] / 2
    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    assert abs((left + right) / 2 - x) <= half_pixel and abs((bottom + top) / 2 - y) <= half_pixel
    back = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(
        (left + right) / 2, (bottom + top) / 2
    )
    assert back == pytest.approx(MILAN, abs=1e-6)
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["product"] == "generated landscape"
    assert side["model_id"] == run["model_id"] and side["audio"] == str(run["clip"])
    assert (side["seed"], side["steps"], side["rag"]) == (7, 2, True)
    assert side["guidance"] == {"sound": 3.0, "scene": 1.5}
    assert (side["lon"], side["lat"], side["ground_m"], side["crs"]) == (
        lon,
        lat,
        640.0,
        "EPSG:32632",
    )
    assert side["scene_source"] == "retrieved" and side["scene"] in SCENES
    ids = [n["id"] for n in side["neighbours"]]
    assert sorted(ids) == ["far-river", "near-forest", "unlocated"]
    assert side["scene"] == side["neighbours"][0]["scene"] == "forest"
    assert side["voters"] == 50 and side["scene_votes"] == {"forest": 2, "river": 1}
    assert side["layout"]["scene"] == side["scene"]
    by_id = {n["id"]: n for n in side["neighbours"]}
    assert by_id["near-forest"]["distance_km"] < 10 < by_id["far-river"]["distance_km"]
    assert by_id["unlocated"]["distance_km"] is None
    assert not side["padded"]


def test_png_from_a_short_clip_says_it_was_padded(run_cli, run, tmp_path: Path) -> None:
    out = tmp_path / "landscape.png"
    result = _generate(
        run_cli, run, "--audio", str(run["short"]), "--scene", "River", "--no-rag", "-o", str(out)
    )
    assert result.returncode == 0, result.stderr
    (note,) = result.stderr.strip().splitlines()
    assert note.startswith("geosound: note:") and "short.wav" in note and "padded" in note
    from geosound.encoders.audio_aisfx import AisfxAudioEncoder

    assert AisfxAudioEncoder.padding in note  # the encoder's own words for its padding
    from matplotlib.image import imread

    assert imread(out).shape[:2] == (32, 32)
    side = json.loads(out.with_suffix(".json").read_text())
    assert (side["scene"], side["scene_source"], side["rag"]) == ("River", "given", False)
    assert side["padded"] and side["audio_seconds"] == pytest.approx(0.5)
    assert side["crs"] is None and side["lon"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["landscape.json", "landscape.png"]


# -- a layer of recording points ---------------------------------------------------------------


def _layer(folder: Path, recordings: list[Path | str], crs: str = "EPSG:32632") -> Path:
    """Points near Milan in UTM 32N (metres), each with its recording's path relative to it."""
    xy = [(514000.0, 5034000.0), (516500.0, 5031000.0), (510000.0, 5036000.0)]
    layer = gpd.GeoDataFrame(
        {"recording": [str(r) for r in recordings]},
        geometry=[Point(*p) for p in xy[: len(recordings)]],
        crs="EPSG:32632",
    ).to_crs(crs)
    path = folder / "points.gpkg"
    layer.to_file(path)
    return path


def test_points_become_one_vrt_over_every_point(run_cli, run, tmp_path: Path) -> None:
    audio = tmp_path / "audio"
    names = []
    for i, source in enumerate([run["clip"], run["short"], run["clip"]]):
        (audio / f"r{i}.wav").parent.mkdir(exist_ok=True)
        (audio / f"r{i}.wav").write_bytes(Path(source).read_bytes())
        names.append(f"audio/r{i}.wav")
    layer = _layer(tmp_path, names, crs="EPSG:4326")
    out = tmp_path / "mosaic.vrt"
    result = _generate(
        run_cli, run, "--points", str(layer), "--audio-column", "recording", "-o", str(out),
        "--progress", "json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [m["message"] for m in lines if "hearing" in m.get("message", "")] == [
        f"feature {i + 1}: hearing r{i}.wav ({i + 1}/3)" for i in range(3)
    ]
    final = lines[-1]
    assert final["ok"] and final["outputs"][-2:] == [str(out), str(out.with_suffix(".json"))]
    assert "r1.wav" in final["note"] and "padded" in final["note"]
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["crs"] == "EPSG:32632" and len(side["points"]) == 3
    points = gpd.read_file(layer).to_crs("EPSG:32632")
    with rasterio.open(out) as mosaic:
        assert mosaic.count == 4 and mosaic.crs.to_epsg() == 32632
        assert mosaic.descriptions == ("red", "green", "blue", "alpha")
        pixel = mosaic.res[0]
        left, bottom, right, top = mosaic.bounds
        alpha = mosaic.read(4)
        for geometry, record in zip(points.geometry, side["points"], strict=True):
            assert left < geometry.x < right and bottom < geometry.y < top
            row, col = mosaic.index(geometry.x, geometry.y)
            assert alpha[row, col] == 255
            assert record["picture"].startswith(f"{out.stem}_pictures/")  # beside the sidecar
            with rasterio.open(out.parent / record["picture"]) as picture:
                pl, pb, pr, pt = picture.bounds
                assert abs((pl + pr) / 2 - geometry.x) <= pixel / 2
                assert abs((pb + pt) / 2 - geometry.y) <= pixel / 2
                corner = mosaic.window(pl, pb, pr, pt)
                window = Window(round(corner.col_off), round(corner.row_off), 32, 32)
                colours = mosaic.read([1, 2, 3], window=window)
                np.testing.assert_array_equal(colours, picture.read())
        assert (alpha == 255).sum() == 3 * 32 * 32  # the pictures do not overlap here
        assert set(np.unique(alpha)) == {0, 255}


def test_a_silent_point_leaves_nothing_behind(run_cli, run, tmp_path: Path) -> None:
    layer = _layer(tmp_path, [run["clip"], run["silent"]])
    before = _everything(tmp_path)
    result = _generate(run_cli, run, "--points", str(layer), "--audio-column", "recording")
    _refused(result, "feature 2", "silent.wav", "silent")
    assert _everything(tmp_path) == before


def test_a_failing_vrt_leaves_the_previous_layer_as_it_was(
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pictures folder, the VRT and the sidecar are replaced together or not at all."""
    from geosound.generation import landscape
    from geosound.generation.generator import GenerationOptions, LandscapeGenerator
    from geosound.generation.hearing import Listener
    from geosound.generation.outputs import PointRecording, pictures_folder

    generator = LandscapeGenerator.from_files(run["model"])
    listener = Listener(generator.loaded, run["sat2sound"])
    vrt = tmp_path / "mosaic.vrt"
    points = [PointRecording("feature 1", Path(run["clip"]), *MILAN)]
    request = landscape.Request("forest", 640.0, GenerationOptions(steps=2))
    landscape.generate_points(generator, listener, points, vrt, request)
    folder = pictures_folder(vrt)

    def contents() -> dict[str, bytes]:
        return {name: (tmp_path / name).read_bytes() for name in _everything(tmp_path)
                if (tmp_path / name).is_file()}  # fmt: skip

    before = contents()
    assert {"mosaic.vrt", "mosaic.json", str(folder.relative_to(tmp_path) / "0000.tif")} <= set(
        before
    )

    def broken(path, pictures):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(landscape, "write_vrt", broken)
    again = [PointRecording("feature 1", Path(run["clip"]), MILAN[0] + 0.01, MILAN[1])]
    with pytest.raises(OSError, match="No space left"):
        landscape.generate_points(generator, listener, again, vrt, request)
    assert contents() == before  # no new pictures beside the old VRT, no temporaries left


# -- bad input -----------------------------------------------------------------------------------

BAD_OPTIONS = {
    "steps 0": (["--audio", "{clip}", "-o", "{out}/x.png", "--steps", "0"], ["--steps"]),
    "lon outside": (["--audio", "{clip}", "-o", "{out}/x.tif", "--lon", "200", "--lat", "0"],
                    ["--lon", "180"]),
    "lat outside": (["--audio", "{clip}", "-o", "{out}/x.tif", "--lon", "0", "--lat", "-91"],
                    ["--lat", "-90"]),
    "tif without a place": (["--audio", "{clip}", "-o", "{out}/x.tif"],
                            ["x.tif", "needs a place", "--lon"]),
    "half a place": (["--audio", "{clip}", "-o", "{out}/x.tif", "--lon", "9"], ["--lat"]),
    "other suffix": (["--audio", "{clip}", "-o", "{out}/x.jpg"], ["x.jpg", ".png"]),
    "silence": (["--audio", "{silent}", "-o", "{out}/x.png"], ["silent.wav", "silent"]),
    "no recording": (["--audio", "{out}/missing.wav", "-o", "{out}/x.png"],
                     ["missing.wav", "not found"]),
    "zero ground": (["--audio", "{clip}", "-o", "{out}/x.png", "--ground-m", "0"], ["--ground-m"]),
    "strength 0": (["--audio", "{clip}", "-o", "{out}/x.png", "--strength", "0"], ["--strength"]),
    "no voters": (["--audio", "{clip}", "-o", "{out}/x.png", "--voters", "0"], ["--voters"]),
    "audio and points": (["--audio", "{clip}", "--points", "{clip}", "-o", "{out}/x.png"],
                         ["exactly one"]),
    "unknown scene": (["--audio", "{clip}", "-o", "{out}/x.png", "--scene", "desert"],
                      ["unknown scene 'desert'", "known scenes: forest, river"]),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_OPTIONS))
def test_bad_input_is_one_line_and_writes_nothing(run_cli, run, tmp_path: Path, case) -> None:
    args, needles = BAD_OPTIONS[case]
    out = tmp_path / "out"
    out.mkdir()
    names = {"clip": run["clip"], "silent": run["silent"], "out": out}
    result = _generate(run_cli, run, *(a.format(**names) for a in args))
    _refused(result, *needles)
    assert _everything(out) == []


def test_a_refusal_in_json_mode_ends_with_the_error(run_cli, run, tmp_path: Path) -> None:
    result = _generate(
        run_cli, run, "--audio", str(run["silent"]), "-o", str(tmp_path / "x.png"),
        "--progress", "json",
    )  # fmt: skip
    line = _refused(result, "silent.wav")
    assert json.loads(result.stdout.splitlines()[-1]) == {"error": line.split("error: ", 1)[1]}


def test_a_sat2sound_of_another_space_is_refused(run_cli, run, tmp_path: Path) -> None:
    result = run_cli(
        "generate", "--model", str(run["model"]), "--audio", str(run["clip"]),
        "-o", str(tmp_path / "x.png"), "--steps", "2",
    )  # fmt: skip
    _refused(result, "shipped Sat2Sound", "--sat2sound", str(run["model_id"]))
    assert _everything(tmp_path) == []


def test_layer_problems_name_the_point_or_the_column(run_cli, run, tmp_path: Path) -> None:
    layer = _layer(tmp_path, [run["clip"], "audio/gone.wav"])
    missing = _generate(run_cli, run, "--points", str(layer), "--audio-column", "recording")
    _refused(missing, "gone.wav", "recording of feature 2")
    column = _generate(run_cli, run, "--points", str(layer), "--audio-column", "wav")
    _refused(column, "points.gpkg", "no column 'wav'", "recording")
    foreign = tmp_path / "points_landscapes_pictures"
    foreign.mkdir()
    (foreign / "thesis.txt").write_text("a user's file\n")
    taken = _generate(run_cli, run, "--points", str(layer), "--audio-column", "recording")
    _refused(taken, "points_landscapes_pictures", "not one geosound wrote")
    assert (foreign / "thesis.txt").read_text() == "a user's file\n"
    assert not (tmp_path / "points_landscapes.vrt").exists()


def test_a_point_is_named_by_the_fid_qgis_shows(run_cli, run, tmp_path: Path) -> None:
    """A GeoPackage with a deleted feature: the third point is fid 3, not the second row."""
    import sqlite3

    layer = _layer(tmp_path, [run["clip"], run["clip"], "audio/gone.wav"])
    with sqlite3.connect(layer) as db:
        db.execute("DELETE FROM points WHERE fid = 2")
    assert gpd.read_file(layer, fid_as_index=True).index.tolist() == [1, 3]
    missing = _generate(run_cli, run, "--points", str(layer), "--audio-column", "recording")
    _refused(missing, "gone.wav", "recording of feature 3")


# -- the library underneath ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lon", "lat", "epsg"),
    [
        (9.19, 45.46, 32632),  # Milan, 32N
        (-70.6, -33.4, 32719),  # Santiago, 19S
        (5.3, 60.4, 32632),  # Bergen: zone 32V is widened over south-west Norway
        (15.6, 78.2, 32633),  # Longyearbyen: Svalbard's 33X
        (180.0, 0.0, 32660),
        (-180.0, 0.0, 32601),
        (0.0, 85.0, 32661),  # UPS North beyond 84° N
        (0.0, -85.0, 32761),  # UPS South beyond 80° S
    ],
)
def test_local_metric_crs(lon: float, lat: float, epsg: int) -> None:
    assert local_metric_crs(lon, lat).to_epsg() == epsg


def test_placement_in_the_south_and_snapped_to_a_grid() -> None:
    placement = place_picture(-70.6, -33.4, 640.0, 64, 32)
    assert placement.pixel_m == 10.0 and placement.crs.to_epsg() == 32719
    left, bottom, right, top = placement.bounds
    assert (right - left, top - bottom) == (640.0, 320.0)
    assert ((left + right) / 2, (bottom + top) / 2) == pytest.approx(placement.centre)
    snapped = place_picture(-70.6, -33.4, 640.0, 64, 32, crs=placement.crs, snap=True)
    assert snapped.transform.c % 10.0 == pytest.approx(0.0, abs=1e-6)
    assert abs(snapped.transform.c - placement.transform.c) <= 5.0
    with pytest.raises(InputError, match="latitude 91"):
        place_picture(0.0, 91.0, 640.0, 8, 8)
    with pytest.raises(InputError, match="positive"):
        place_picture(0.0, 0.0, -1.0, 8, 8)


def test_a_vrt_needs_one_grid(tmp_path: Path) -> None:
    milan = place_picture(*MILAN, 640.0, 8, 8, snap=True)
    santiago = place_picture(-70.6, -33.4, 640.0, 8, 8, snap=True)
    with pytest.raises(ValueError, match="one CRS"):
        write_vrt(tmp_path / "x.vrt", [(tmp_path / "a.tif", milan), (tmp_path / "b.tif", santiago)])
    assert not (tmp_path / "x.vrt").exists()


def test_no_default_generator_says_how_to_make_one(monkeypatch, tmp_path: Path) -> None:
    import geosound.generation.default as default

    monkeypatch.setattr(default, "assets_dir", lambda: tmp_path)
    with pytest.raises(
        InputError, match=r"no default generator is installed.*train-generator.*--model"
    ):
        default.default_generator_path()
    (tmp_path / default.DEFAULT_GENERATOR).write_bytes(b"")
    (tmp_path / default.DEFAULT_KNOWLEDGE).write_bytes(b"")
    assert default.default_generator_path() == tmp_path / default.DEFAULT_GENERATOR
    assert default.knowledge_beside(tmp_path / default.DEFAULT_GENERATOR) == (
        tmp_path / default.DEFAULT_KNOWLEDGE
    )
    assert default.knowledge_beside(tmp_path / "run" / "soundit.pt") is None


def test_cli_defaults_are_the_library_defaults() -> None:
    import inspect

    from geosound.cli.evaluate_generator import evaluate_generator_command
    from geosound.cli.generate import generate_command
    from geosound.generation.generator import GenerationOptions
    from geosound.generation.sampling import GuidanceScales

    defaults = {n: p.default for n, p in inspect.signature(generate_command).parameters.items()}
    options, scales = GenerationOptions(), GuidanceScales()
    assert (defaults["steps"], defaults["seed"], defaults["strength"], defaults["voters"]) == (
        options.steps, options.seed, options.strength, options.voters,
    )  # fmt: skip
    assert (defaults["sound_scale"], defaults["scene_scale"]) == (scales.sound, scales.scene)
    evaluated = inspect.signature(evaluate_generator_command).parameters
    assert (evaluated["strength"].default, evaluated["voters"].default) == (
        options.strength, options.voters,
    )  # fmt: skip


def test_the_output_marker_is_defined_once() -> None:
    """``map`` and ``generate`` recognise each other's folders because they share one name."""
    import ast

    import geosound

    package = Path(geosound.__file__).parent
    defined = [
        str(path.relative_to(package))
        for path in sorted(package.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Assign | ast.AnnAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name) and target.id == "OUTPUT_MARKER"
    ]
    assert defined == ["sidecar.py"]


# -- a Sound2Scene generator (hears through its own aligner) -----------------------------------


@pytest.fixture(scope="module")
def visual_model(tmp_path_factory) -> Path:
    """A tiny generator conditioned on 64-d image embeddings, carrying an aiSFX → 64 aligner."""
    from geosound.generation.geokd import KnowledgeBase

    folder = tmp_path_factory.mktemp("visual")
    space = "visual:effnet-lite0@1"
    save_tiny_generator(folder / "soundit.pt", space, 64, aligner_dim=64, seed=1)
    rng = np.random.default_rng(1)
    KnowledgeBase(["forest-tile", "river-tile"], rng.normal(size=(2, 64)), ["forest", "river"],
                  rng.normal(size=(2, 4, 8, 8)).astype(np.float32), np.array([9.2, 9.3]),
                  np.array([45.5, 45.4]), space).save(folder / "geokd.npz")  # fmt: skip
    return folder / "soundit.pt"


def test_a_sound2scene_generator_hears_through_its_aligner(
    run_cli, run, visual_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "landscape.png"
    result = run_cli("generate", "--model", str(visual_model), "--audio", str(run["clip"]),
                     "--via", "visual", "--steps", "2", "-o", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["via"] == "visual" and side["sound_space"] == "visual:effnet-lite0@1"
    assert {n["id"] for n in side["neighbours"]} == {"forest-tile", "river-tile"}
    # What hears for a SounDiT generator is not asked for here, and a wrong --via is refused.
    with_sat2sound = run_cli(
        "generate", "--model", str(visual_model), "--sat2sound", str(run["sat2sound"]),
        "--audio", str(run["clip"]), "-o", str(tmp_path / "a.png"),
    )  # fmt: skip
    _refused(with_sat2sound, "Sound2Scene", "drop --sat2sound")
    wrong_kind = _generate(
        run_cli, run, "--audio", str(run["clip"]), "--via", "visual", "-o", str(tmp_path / "b.png")
    )
    _refused(wrong_kind, "hears --via sound", "--condition visual", str(run["model"]))
    unknown = _generate(
        run_cli, run, "--audio", str(run["clip"]), "--via", "image", "-o", str(tmp_path / "c.png")
    )
    _refused(unknown, "--via", "sound or visual")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["landscape.json", "landscape.png"]
