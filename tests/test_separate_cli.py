"""``geosound train-separator``, ``evaluate-separator`` and ``separate``, run as a user would.

A separator is trained once per module on a small real dev set (four ESC-50 classes, three
clips each, copied with their index rows into tmp) and used by the other tests.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from geosound.config import dev_data_dir
from tests.tiny_models import save_tiny_generator

ESC50 = "esc50_outdoor_16k"


def _small_dev_set(root: Path) -> Path:
    """Four ESC-50 classes with at least two Freesound recordings each, three clips a class."""
    source = dev_data_dir() / ESC50
    index = pd.read_csv(source / "index.csv")
    groups = index.groupby("class")["freesound_id"].nunique()
    classes = sorted(groups[groups >= 2].index)[:4]
    rows = index[index["class"].isin(classes)].groupby("class").head(3)
    (root / ESC50 / "audio").mkdir(parents=True)
    for name in rows["filename"]:
        target = root / ESC50 / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / name, target)
    rows.to_csv(root / ESC50 / "index.csv", index=False)
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, run_cli) -> dict[str, Path]:
    if not (dev_data_dir() / ESC50).is_dir():
        pytest.skip(f"dev data not found at {dev_data_dir()} (set GEOSOUND_DEV_DATA)")
    root = tmp_path_factory.mktemp("separator")
    data = _small_dev_set(root / "data")
    env = {"GEOSOUND_CACHE": str(root / "cache")}
    args = ("train-separator", "-o", str(root / "run"), "--data-dir", str(data),
            "--mixtures", "24", "--epochs", "2", "--eval-mixtures", "4", "--sweep", "2",
            "--threads", "1", "--progress", "none")  # fmt: skip
    done = run_cli(*args, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return {"root": root, "data": data, "run": root / "run", "env": env, "stdout": done.stdout}  # type: ignore[dict-item]


def test_training_writes_the_separator_and_its_figures(trained, run_cli) -> None:
    run = trained["run"]
    metrics = json.loads((run / "metrics.json").read_text())
    evaluation = metrics["metrics"]["evaluation"]
    assert set(evaluation["sets"]) == {
        "1 source", "2 sources", "3 sources", "2 sources at 0 dB", "2 sources at -6 dB",
        "2 sources at -12 dB", "2 sources at -18 dB",
    }  # fmt: skip
    assert evaluation["classes"] == 4
    for row in evaluation["sets"].values():
        for method in ("separator", "mix", "oracle"):
            assert 0.0 <= row["recall"][method]["prototypes"] <= 1.0
    assert "| 2 sources |" in trained["stdout"]
    # A rerun resumes: nothing is encoded again or trained further, the same model comes out.
    again = run_cli(*("train-separator", "-o", str(run), "--data-dir", str(trained["data"]),
                      "--mixtures", "24", "--epochs", "2", "--eval-mixtures", "4", "--sweep",
                      "2", "--threads", "1", "--progress", "none"), env=trained["env"])  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert json.loads((run / "metrics.json").read_text())["model_id"] == metrics["model_id"]


def _clip(trained) -> Path:
    return next((trained["data"] / ESC50 / "audio").glob("*.flac"))


def test_separate_lists_sources_with_shares(trained, run_cli) -> None:
    model = str(trained["run"] / "separator.pt")
    done = run_cli("separate", str(_clip(trained)), "--model", model, "--json", env=trained["env"])
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert 1 <= len(result["sources"]) <= 3
    assert sum(s["share"] for s in result["sources"]) == pytest.approx(1.0, abs=1e-3)
    assert result["channels"] == 1 and result["notes"] == []
    one = run_cli("separate", str(_clip(trained)), "--model", model, "--max-sources", "1",
                  env=trained["env"])  # fmt: skip
    assert one.returncode == 0, one.stderr
    assert ": 1 source " in one.stdout and "share 100%" in one.stdout


def test_a_stereo_recording_is_downmixed_and_says_so(trained, run_cli, tmp_path: Path) -> None:
    samples, rate = sf.read(_clip(trained), dtype="float32")
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, np.stack([samples, 0.5 * samples], axis=1), rate)
    model = str(trained["run"] / "separator.pt")
    done = run_cli("separate", str(stereo), "--model", model, env=trained["env"])
    assert done.returncode == 0, done.stderr
    assert "note: " in done.stdout and "2 channels, downmixed to mono" in done.stdout


@pytest.mark.parametrize(
    ("make", "extra", "message"),
    [
        (lambda d: sf.write(d / "silent.wav", np.zeros(16000), 16000) or d / "silent.wav", (),
         "silent"),
        (lambda d: d / "missing.wav", (), "missing.wav"),
        (lambda d: sf.write(d / "ok.wav", np.random.default_rng(0).normal(0, 0.1, 16000), 16000)
         or d / "ok.wav", ("--max-sources", "0"), "--max-sources"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(
    trained, run_cli, tmp_path: Path, make: Callable[[Path], Path], extra, message: str
) -> None:
    path = make(tmp_path)
    model = str(trained["run"] / "separator.pt")
    done = run_cli("separate", str(path), "--model", model, *extra, env=trained["env"])
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_a_separator_beside_another_sat2sound_is_refused(
    trained, run_cli, tmp_path: Path, random_checkpoint
) -> None:
    other = random_checkpoint(tmp_path / "other.pt", 3)
    done = run_cli("separate", str(_clip(trained)), "--model", str(trained["run"] / "separator.pt"),
                   "--sat2sound", str(other), env=trained["env"])  # fmt: skip
    assert done.returncode == 2
    assert "was trained beside" in done.stderr and "Traceback" not in done.stderr


def test_evaluate_separator_writes_its_table(trained, run_cli, tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    done = run_cli("evaluate-separator", "--model", str(trained["run"] / "separator.pt"),
                   "--data-dir", str(trained["data"]), "--mixtures", "4", "--sweep", "2",
                   "--json", str(out), "--progress", "none", env=trained["env"])  # fmt: skip
    assert done.returncode == 0, done.stderr
    figures = json.loads(out.read_text())
    assert figures["eval_clips"] >= 4 and figures["sets"]["3 sources"]["mixes"] == 4
    assert "R@k* separator" in done.stdout


def test_points_layer_gets_source_columns(trained, run_cli, tmp_path: Path) -> None:
    import geopandas as gpd
    from shapely.geometry import Point

    clips = sorted((trained["data"] / ESC50 / "audio").glob("*.flac"))[:2]
    for clip in clips:
        shutil.copy(clip, tmp_path / clip.name)
    layer = gpd.GeoDataFrame(
        {"site": ["a", "b"], "audio": [clip.name for clip in clips]},  # relative to the layer
        geometry=[Point(9.19, 45.46), Point(9.2, 45.47)],
        crs="EPSG:4326",
    )
    layer.insert(0, "fid", [3, 7])  # FIDs with gaps, as deleted features leave them
    layer.to_file(tmp_path / "sites.gpkg", driver="GPKG", engine="pyogrio")
    model = str(trained["run"] / "separator.pt")
    out = tmp_path / "sources.gpkg"
    done = run_cli("separate", "--points", str(tmp_path / "sites.gpkg"), "--audio-column",
                   "audio", "-o", str(out), "--model", model, "--max-sources", "2",
                   env=trained["env"])  # fmt: skip
    assert done.returncode == 0, done.stderr
    written = gpd.read_file(out, engine="pyogrio", fid_as_index=True)
    assert list(written["site"]) == ["a", "b"]
    assert list(written.index) == [3, 7]  # the input's features, by their ids
    assert {"n_sources", "source1", "score1", "share1", "source2", "share2"} <= set(written)
    assert "source3" not in written
    assert written["n_sources"].between(1, 2).all()
    assert written["source1"].notna().all()
    missing_out = run_cli("separate", "--points", str(tmp_path / "sites.gpkg"), "--audio-column",
                          "audio", "--model", model, env=trained["env"])  # fmt: skip
    assert missing_out.returncode == 2 and "--points needs --audio-column and --out" in (
        missing_out.stderr
    )


def test_map_separate_gives_one_layer_per_source(trained, run_cli, tmp_path: Path, data_raster):
    import rasterio

    scene = data_raster("utm_rgb8.tif", "scene.tif")  # 256 × 192 px of UTM, 10 m
    model = str(trained["run"] / "separator.pt")
    clip = _clip(trained)
    listed = run_cli("separate", str(clip), "--model", model, "--json", env=trained["env"])
    sources = json.loads(listed.stdout)["sources"]
    out = tmp_path / "map"
    done = run_cli("map", str(scene), "-o", str(out), "--audio", str(clip), "--separate",
                   "--separator", model, "--tile", "64", "--progress", "none",
                   env=trained["env"])  # fmt: skip
    assert done.returncode == 0, done.stderr
    with rasterio.open(out / "similarity.tif") as layers:
        names = list(layers.descriptions)
    assert len(names) == len(sources)
    for i, (name, source) in enumerate(zip(names, sources, strict=True), 1):
        assert name.startswith(f"similarity: audio: {clip.name} / source {i}: {source['label']} (")
    refused = run_cli("map", str(scene), "-o", str(tmp_path / "m2"), "-t", "rain",
                      "--separate", env=trained["env"])  # fmt: skip
    assert refused.returncode == 2 and "--separate separates --audio" in refused.stderr


def test_separate_uses_the_shipped_separator_by_default(trained, run_cli) -> None:
    done = run_cli("separate", str(_clip(trained)), "--json", env=trained["env"])
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["separator"].startswith("separator-") and result["sources"]
    assert result["sources"][0]["share"] >= max(s["share"] for s in result["sources"])


def _generator(folder: Path, aligner_dim: int | None, space: str) -> Path:
    """A tiny random generator: Sound2Scene (aligner to ``aligner_dim``) or SounDiT (256-d)."""
    save_tiny_generator(folder / "soundit.pt", space, aligner_dim or 256, aligner_dim)
    return folder / "soundit.pt"


def test_separate_images_draws_each_source_and_all_of_them(
    trained, run_cli, tmp_path: Path
) -> None:
    from geosound.models.default import load_default_model

    shipped_space = f"sat2sound:{load_default_model().model_id}"
    mixed = tmp_path / "two.wav"
    clips = sorted((trained["data"] / ESC50 / "audio").glob("*.flac"))
    a, rate = sf.read(clips[0], dtype="float32")
    b, _ = sf.read(clips[-1], dtype="float32")
    sf.write(mixed, a[: len(b)] + b[: len(a)], rate)
    for kind, generator in [
        ("visual", _generator(tmp_path / "visual", 64, "visual:efficientnet-lite0@1")),
        ("sound", _generator(tmp_path / "sound", None, shipped_space)),
    ]:
        out = tmp_path / f"{kind}_pictures"
        done = run_cli("separate", str(mixed), "--images", str(out), "--generator",
                       str(generator), "--steps", "2", "--json", env=trained["env"])  # fmt: skip
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout.strip().splitlines()[-1])
        count = len(result["sources"])
        names = [f"source{i + 1}" for i in range(count)] + ["combined"]
        assert result["outputs"] == [str(out / f"{n}{s}") for n in names for s in (".png", ".json")]
        combined = json.loads((out / "combined.json").read_text())
        assert combined["via"] == kind and combined["seed"] == 0
        weights = combined["weights"]
        assert sum(w["weight"] for w in weights) == pytest.approx(1.0, abs=1e-3)
        assert [w["source"] for w in weights] == [s["label"] for s in result["sources"]]
        first = json.loads((out / "source1.json").read_text())
        assert first["weights"] is None
        assert first["source"].startswith(result["sources"][0]["label"])
    # A SounDiT generator of another space cannot hear the separator's sources.
    other = _generator(tmp_path / "other", None, "sat2sound:other")
    refused = run_cli("separate", str(mixed), "--images", str(tmp_path / "x"), "--generator",
                      str(other), "--steps", "2", env=trained["env"])  # fmt: skip
    assert refused.returncode == 2 and "sat2sound:other" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and not (tmp_path / "x").exists()
    # Without --generator the shipped one draws (in the shipped Sat2Sound's space, as the
    # shipped separator is).
    shipped = run_cli("separate", str(mixed), "--images", str(tmp_path / "z"), "--steps", "2")
    assert shipped.returncode == 0, shipped.stderr
    from geosound.generation.default import default_generator_path
    from geosound.models.soundit_checkpoint import load_generator

    drawn_by = json.loads((tmp_path / "z" / "combined.json").read_text())["model_id"]
    assert drawn_by == load_generator(default_generator_path()).model_id
    with_points = run_cli("separate", "--points", str(mixed), "--audio-column", "a", "-o",
                          str(tmp_path / "p.gpkg"), "--images", str(tmp_path / "y"))  # fmt: skip
    assert with_points.returncode == 2 and "--images" in with_points.stderr


def test_evaluate_separator_scores_class_representation_with_a_generator(
    trained, run_cli, tmp_path: Path
) -> None:
    from geosound.evaluation.generated import LandcoverClassifier

    generator = _generator(tmp_path / "visual", 64, "visual:efficientnet-lite0@1")
    rng = np.random.default_rng(0)
    classes = ("Forest", "Industrial", "Pasture", "Residential", "River")
    LandcoverClassifier(classes, "efficientnet-lite0@1", np.zeros(1280), np.ones(1280),
                        rng.normal(size=(5, 1280)), np.zeros(5), "test").save(
        generator.parent / "landcover_classifier.npz")  # fmt: skip
    out = tmp_path / "figures.json"
    done = run_cli("evaluate-separator", "--model", str(trained["run"] / "separator.pt"),
                   "--data-dir", str(trained["data"]), "--mixtures", "3", "--sweep", "2",
                   "--generator", str(generator), "--crs-mixtures", "3", "--steps", "2",
                   "--json", str(out), "--progress", "none", env=trained["env"])  # fmt: skip
    assert done.returncode == 0, done.stderr
    crs = json.loads(out.read_text())["class_representation"]
    assert crs["via"] == "visual" and crs["classifier"]["classes"] == list(classes)
    for name in ("2 sources", "3 sources"):
        row = crs[name]
        assert row["mixes"] + row["left_out"] == 3
        for value in row["crs"].values():
            assert (np.isnan(value) and row["mixes"] < 2) or 0.0 <= value <= 1.0
    assert "Class Representation Score (proxy)" in done.stdout
    lonely = run_cli("evaluate-separator", "--classifier", str(out), env=trained["env"])
    assert lonely.returncode == 2 and "--generator" in lonely.stderr


@pytest.mark.parametrize(
    "args",
    [("separate", "REC", "--steps", "5"), ("separate", "REC", "--seed", "1"),
     ("evaluate-separator", "--steps", "5"), ("evaluate-separator", "--crs-mixtures", "5")],
)  # fmt: skip
def test_picture_options_without_pictures_are_refused_not_ignored(
    trained, run_cli, args: tuple[str, ...]
) -> None:
    done = run_cli(*[str(_clip(trained)) if a == "REC" else a for a in args], env=trained["env"])
    option = args[-2]
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{option} goes with" in done.stderr and len(done.stderr.strip().splitlines()) == 1
