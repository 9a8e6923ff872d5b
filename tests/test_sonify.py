"""Seeing Sound pairing: the retrieval rule, seeded draws, disjoint splits, recipes and renders."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import soundfile as sf

from geosound.audio import Clip, load_audio, measure_lufs
from geosound.data import LANDCOVER_SOUNDS
from geosound.data.concepts import (
    CLIP_CAPTIONS,
    CONCEPT_PHRASES,
    LIKELY_WEIGHT,
    SOUND_CONCEPTS,
    Concept,
    clip_captions,
    concept_set_chances,
    landcover_bound,
)
from geosound.data.manifest import validate_manifest
from geosound.data.recipe import MixRecipe
from geosound.data.sonify import (
    RetrievalSpace,
    render_manifest,
    retrieval_candidates,
    signed_sqrt,
    sonify_tiles,
)
from geosound.data.splits import split_by_tile_and_clip
from geosound.errors import AudioError, DataError, InputError

# --------------------------------------------------------------------------- fixtures

CLIP_CLASSES = ("sea_waves", "wind", "rain", "chirping_birds", "crow", "engine", "car_horn")
TILE_CLASSES = ("SeaLake", "Forest", "Highway")


def one_hot_space() -> RetrievalSpace:
    """A tiny exact retrieval space: a concept matches exactly the clips of its ESC-50 class.

    Concept phrases map back to their class through SOUND_CONCEPTS, clips through their
    label; classes absent from the pool score 0 against everything (the tie fallback).
    """
    classes = sorted(set(SOUND_CONCEPTS) | set(CLIP_CAPTIONS))
    phrase_class = {phrase: sound for sound, phrase in SOUND_CONCEPTS.items()}

    def one_hot(names: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(names), len(classes)))
        for i, name in enumerate(names):
            out[i, classes.index(name)] = 1.0
        return out

    return RetrievalSpace(
        "one-hot",
        lambda phrases: one_hot([phrase_class[p] for p in phrases]),
        lambda clips: one_hot(clips["label"].tolist()),
    )


def _noise(path: Path, seconds: float, seed: int, colour: float) -> Path:
    """Filtered noise: different classes get different spectra, all clearly audible."""
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(int(seconds * 16000))
    smoothed = np.convolve(white, np.ones(int(colour)) / colour, mode="same")
    sf.write(path, 0.3 * smoothed / np.max(np.abs(smoothed)), 16000)
    return path


@pytest.fixture
def clips(tmp_path: Path) -> pd.DataFrame:
    rows = []
    folder = tmp_path / "clips"
    folder.mkdir()
    for c, label in enumerate(CLIP_CLASSES):
        for take in range(4):
            path = _noise(folder / f"{label}-{take}.wav", 1.5, 100 * c + take, 1 + 3 * c)
            rows.append(
                {
                    "path": str(path),
                    "label": label,
                    "licence": "CC BY 3.0" if take % 2 else "CC0",
                    # takes 0 and 1 were cut from one recording: they must stay together
                    "freesound_id": f"{label}-src{0 if take < 2 else take}",
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture
def tiles() -> gpd.GeoDataFrame:
    rows, footprints = [], []
    for c, label in enumerate(TILE_CLASSES):
        for i in range(6):
            x, y = 500000 + 640 * i, 5200000 + 640 * c
            footprints.append(shapely.box(x, y, x + 640, y + 640))
            rows.append({"id": f"{label}_{i}", "label": label, "path": f"/tiles/{label}_{i}.tif"})
    return gpd.GeoDataFrame(pd.DataFrame(rows), geometry=footprints, crs="EPSG:32632")


def _sources(manifest: pd.DataFrame) -> list[list[dict]]:
    return [list(MixRecipe.from_json(audio).sources) for audio in manifest["audio"]]


def _sonify(tiles, clips, **kwargs):
    options = {"space": one_hot_space(), "seconds": 1.0, **kwargs}
    return sonify_tiles(tiles, clips, **options)


# --------------------------------------------------------------------------- retrieval rule


def test_signed_sqrt():
    np.testing.assert_allclose(signed_sqrt([0.81, -0.25, 0.0, 1.0]), [0.9, -0.5, 0.0, 1.0])


def test_dynamic_threshold_on_hand_made_scores():
    cosines = np.array([0.81, 0.64, 0.49, 0.09, -0.25, 0.0])  # t = .9 .8 .7 .3 -.5 0
    # k=3: lb = mean(.9, .8, .7) = .8, and only .9 is strictly above it
    assert retrieval_candidates(cosines, k=3).tolist() == [0]
    # k=4: lb = mean(.9, .8, .7, .3) = .675: a wider pool when the top-k has a weak tail
    assert retrieval_candidates(cosines, k=4).tolist() == [0, 1, 2]
    # k beyond the pool is capped: lb = mean of all = .3667
    assert retrieval_candidates(cosines, k=100).tolist() == [0, 1, 2]
    # The signed square root is what admits clip 2 at k=4: on raw cosines the threshold
    # would be mean(.81, .64, .49, .09) = .5075 and exclude it.
    raw = cosines[cosines > np.mean(np.sort(cosines)[-4:])]
    assert len(raw) == 2
    # exclusion of already-picked clips, unless nothing else is left
    assert retrieval_candidates(cosines, k=4, exclude=[0]).tolist() == [1, 2]
    assert retrieval_candidates(cosines, k=3, exclude=[0]).tolist() == [0]


def test_tied_top_scores_fall_back_to_the_ties():
    cosines = np.array([0.5, 0.1, 0.5, 0.5, 0.2])
    # top-3 are equal, so nothing is strictly above their mean: keep the tied best
    assert retrieval_candidates(cosines, k=3).tolist() == [0, 2, 3]
    assert retrieval_candidates(np.zeros(4), k=2).tolist() == [0, 1, 2, 3]
    with pytest.raises(InputError):
        retrieval_candidates(np.array([]), k=2)
    with pytest.raises(InputError):
        retrieval_candidates(cosines, k=0)


def test_concept_table_follows_the_cooccurrence_table():
    assert set(CONCEPT_PHRASES) == set(LANDCOVER_SOUNDS)
    for landcover, concepts in CONCEPT_PHRASES.items():
        likely = set(LANDCOVER_SOUNDS[landcover]["likely"])
        assert {c.sound for c in concepts} == likely | set(LANDCOVER_SOUNDS[landcover]["possible"])
        for concept in concepts:
            assert concept.phrase == SOUND_CONCEPTS[concept.sound]
            assert concept.weight == (LIKELY_WEIGHT if concept.sound in likely else 1.0)
            assert concept.phrase != CLIP_CAPTIONS[concept.sound]
    assert SOUND_CONCEPTS["chirping_birds"] == "birds chirping in trees"
    frame = pd.DataFrame({"label": ["rain", "hand_saw", "new_thing"], "caption": [None, "", "x"]})
    assert clip_captions(frame) == ["rain falling", "a hand saw sawing", "x"]


# --------------------------------------------------------------------------- splits


def test_splits_are_disjoint_stratified_and_keep_recordings_together(tiles, clips):
    tile_split, clip_split = split_by_tile_and_clip(tiles, clips, eval_fraction=0.3, seed=1)
    assert tile_split.index.equals(tiles.index) and clip_split.index.equals(clips.index)
    for frame, split in ((tiles, tile_split), (clips, clip_split)):
        for _, group in frame.groupby("label"):
            assert set(split[group.index]) == {"train", "eval"}  # every class on both sides
    for _, group in clips.groupby("freesound_id"):
        assert clip_split[group.index].nunique() == 1
    assert 0.2 <= (tile_split == "eval").mean() <= 0.4
    again = split_by_tile_and_clip(tiles, clips, eval_fraction=0.3, seed=1)
    assert again[0].equals(tile_split) and again[1].equals(clip_split)
    none = split_by_tile_and_clip(tiles, clips, eval_fraction=0.0)
    assert set(none[0]) == set(none[1]) == {"train"}
    with pytest.raises(InputError):
        split_by_tile_and_clip(tiles, clips, eval_fraction=1.0)


def test_eval_pairs_only_use_eval_clips(tiles, clips):
    manifest = _sonify(tiles, clips, variants=3, seed=4)
    validate_manifest(manifest)
    tile_split, clip_split = split_by_tile_and_clip(tiles, clips, 0.3, seed=4)
    split_of_clip = dict(zip(clips["path"], clip_split, strict=True))
    split_of_tile = dict(zip(tiles["id"], tile_split, strict=True))
    used: dict[str, set[str]] = {"train": set(), "eval": set()}
    for (_, row), sources in zip(manifest.iterrows(), _sources(manifest), strict=True):
        assert row["split"] == split_of_tile[row["tile_id"]]
        for source in sources:
            assert split_of_clip[source["path"]] == row["split"]
            used[row["split"]].add(source["path"])
    assert used["train"] and used["eval"] and not used["train"] & used["eval"]


# --------------------------------------------------------------------------- sonification


def test_manifest_rows_recipes_and_captions(tiles, clips):
    manifest = _sonify(tiles, clips, variants=2, seed=0, image_licence="MIT (EuroSAT)")
    assert len(manifest) == 2 * len(tiles) and manifest.crs.to_epsg() == 4326
    assert manifest["id"].tolist()[:2] == ["SeaLake_0-v0", "SeaLake_0-v1"]
    centre = tiles.to_crs(4326).geometry.iloc[0].centroid
    assert manifest["lon"].iloc[0] == pytest.approx(centre.x)
    assert manifest["image"].iloc[0] == "/tiles/SeaLake_0.tif"
    counts = Counter()
    for (_, row), sources in zip(manifest.iterrows(), _sources(manifest), strict=True):
        recipe = MixRecipe.from_json(row["audio"])
        assert recipe.sample_rate == 16000 and recipe.seconds == 1.0
        assert 1 <= len(sources) <= 3
        counts[len(sources)] += 1
        assert len({s["path"] for s in sources}) == len(sources)  # no clip twice in a mix
        phrases = row["image_caption"].split("; ")
        assert phrases == [s["concept"] for s in sources]
        allowed = {c.phrase for c in CONCEPT_PHRASES[row["label"]]}
        assert set(phrases) <= allowed
        assert row["audio_caption"] == "; ".join(CLIP_CAPTIONS[s["class"]] for s in sources)
        for source in sources:
            assert -26.0 <= source["target_lufs"] <= -20.0
            assert 0.0 <= source["offset"] <= 0.5  # 1.5-s clips in 1-s mixes
            assert source["licence"] in row["licence"]
        assert row["licence"].startswith("image: MIT (EuroSAT); audio: ")
    assert set(counts) == {1, 2, 3}  # the number of concepts is drawn per tile


def test_seeded_determinism_and_independence_from_other_tiles(tiles, clips):
    first = _sonify(tiles, clips, variants=2, seed=7)
    second = _sonify(tiles, clips, variants=2, seed=7)
    pd.testing.assert_frame_equal(first, second)
    other = _sonify(tiles, clips, variants=2, seed=8)
    assert (other["audio"] != first["audio"]).any()
    # A tile's draws depend on seed, id and variant only, not on the rest of the batch.
    everything = _sonify(tiles, clips, seed=3, eval_fraction=0.0)
    subset = _sonify(tiles.iloc[[4, 11, 2]], clips, seed=3, eval_fraction=0.0)
    expected = everything.set_index("id").loc[subset["id"], "audio"].tolist()
    assert subset["audio"].tolist() == expected


def test_retrieval_follows_the_concepts(tiles, clips):
    # With an exact space, a concept whose class is in the pool always gets that class.
    manifest = _sonify(tiles, clips, variants=3, eval_fraction=0.0)
    in_pool = set(CLIP_CLASSES)
    for sources in _sources(manifest):
        for source in sources:
            concept_class = next(s for s, p in SOUND_CONCEPTS.items() if p == source["concept"])
            if concept_class in in_pool:
                assert source["class"] == concept_class


def test_tiles_with_their_own_concepts(tiles, clips):
    own = tiles.assign(concepts=["waves breaking on the shore; rain falling on the ground"] * 18)
    manifest = _sonify(own, clips, eval_fraction=0.0, variants=2)
    classes = {s["class"] for sources in _sources(manifest) for s in sources}
    assert classes <= {"sea_waves", "rain"}


def test_bad_inputs_are_named(tiles, clips):
    with pytest.raises(DataError, match="Glacier"):
        _sonify(tiles.assign(label="Glacier"), clips)
    with pytest.raises(DataError, match="not unique"):
        _sonify(pd.concat([tiles, tiles]), clips)
    with pytest.raises(DataError, match="no clip"):
        _sonify(tiles, clips, splits=(pd.Series(["eval"] * 18), pd.Series(["train"] * 28)))
    with pytest.raises(InputError, match="variants"):
        _sonify(tiles, clips, variants=0)
    with pytest.raises(InputError, match="seed"):
        _sonify(tiles, clips, seed=-1)
    with pytest.raises(DataError, match="no tiles"):
        _sonify(tiles.iloc[:0], clips)


# --------------------------------------------------------------------------- rendering


def _recipe(paths: Sequence[Path], targets: Sequence[float], seconds: float = 1.0) -> dict:
    return {
        "kind": "mix",
        "version": 1,
        "sample_rate": 16000,
        "seconds": seconds,
        "sources": [
            {"path": str(p), "class": "x", "licence": "CC0", "target_lufs": t, "offset": 0.25}
            for p, t in zip(paths, targets, strict=True)
        ],
    }


def _render(recipe: dict) -> Clip:
    return MixRecipe.from_dict(recipe).render()


def test_render_is_deterministic_and_loudness_follows_targets(tmp_path: Path):
    low = _noise(tmp_path / "low.wav", 2.0, 1, 9)
    high = _noise(tmp_path / "high.wav", 2.0, 2, 1)
    recipe = _recipe([low, high], [-20.0, -32.0])
    first = MixRecipe.from_dict(recipe).render()
    second = MixRecipe.from_json(json.dumps(recipe)).render()
    assert first.sample_rate == 16000 and first.samples.shape == (16000,)
    np.testing.assert_array_equal(first.samples, second.samples)

    alone = [_render(_recipe([p], [t])) for p, t in ((low, -20.0), (high, -32.0))]
    levels = [measure_lufs(clip.samples, 16000) for clip in alone]
    assert levels == [pytest.approx(-20.0, abs=0.3), pytest.approx(-32.0, abs=0.3)]
    # the mix is the sum of its normalised sources (no peak guard needed at these levels)
    np.testing.assert_allclose(first.samples, alone[0].samples + alone[1].samples, atol=1e-4)
    swapped = _render(_recipe([low, high], [-32.0, -20.0]))
    weight_low = [np.dot(mixed.samples, alone[0].samples) for mixed in (first, swapped)]
    assert weight_low[0] > 3 * weight_low[1]  # 12 dB louder: ~4x the amplitude in the mix

    loud = _render(_recipe([low, high], [-3.0, -3.0]))
    assert np.max(np.abs(loud.samples)) <= 0.99 + 1e-6  # the clipping guard


def test_render_errors_name_the_source(tmp_path: Path):
    ok = _noise(tmp_path / "ok.wav", 1.0, 0, 1)
    with pytest.raises(AudioError, match=r"gone\.wav"):
        _render(_recipe([ok, tmp_path / "gone.wav"], [-20.0, -20.0]))
    silent = tmp_path / "tail_silent.wav"
    sf.write(silent, np.concatenate([0.3 * np.ones(100), np.zeros(32000)]), 16000)
    with pytest.raises(AudioError, match=r"tail_silent\.wav"):  # silent from the offset on
        _render(_recipe([ok, silent], [-20.0, -20.0]))
    with pytest.raises(InputError, match="malformed"):
        _render({"kind": "mix", "sources": []})
    with pytest.raises(InputError, match="path"):
        MixRecipe.from_json("/data/clip.wav").render()


def test_render_manifest_writes_wavs(tiles, clips, tmp_path: Path):
    manifest = _sonify(tiles.iloc[:3], clips, eval_fraction=0.0)
    written = render_manifest(manifest, tmp_path / "renders")
    assert [p.name for p in written] == [f"{i}.wav" for i in manifest["id"]]
    assert sorted(p.name for p in (tmp_path / "renders").iterdir()) == sorted(
        p.name for p in written
    )  # no temporary files left
    clip = load_audio(written[0], sample_rate=None)
    np.testing.assert_allclose(
        clip.samples,
        MixRecipe.from_json(manifest["audio"].iloc[0]).render().samples,
        atol=1 / 32767,
    )


# --------------------------------------------------------------------------- real dev data

WATERY = {"sea_waves", "wind", "rain", "thunderstorm", "water_drops", "pouring_water", "airplane"}
WOODLAND = {"chirping_birds", "wind", "crow", "chainsaw", "crackling_fire", "rain", "insects"}
WOODLAND |= {"frog", "crickets", "rooster", "hand_saw", "fireworks"}
ROAD = {"engine", "car_horn", "siren", "helicopter", "airplane", "wind", "train"}


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One feature cache for the dev-data tests, so MiniLM loads at most once."""
    return tmp_path_factory.mktemp("geosound-cache")


@pytest.mark.devdata
@pytest.mark.slow
def test_real_eurosat_tiles_get_plausible_real_clips(dev_data: Path, shared_cache: Path):
    from geosound.data import load_esc50, load_eurosat_tiles
    from geosound.data.sonify import caption_space

    tiles = load_eurosat_tiles(classes=["SeaLake", "Forest", "Highway"])
    clips = load_esc50()
    space = caption_space(cache_root=shared_cache / "features")
    manifest = sonify_tiles(tiles, clips, variants=2, seed=0, space=space)
    validate_manifest(manifest)
    assert len(manifest) == 2 * len(tiles)

    picked: dict[str, Counter] = {}
    for label, sources in zip(manifest["label"], _sources(manifest), strict=True):
        picked.setdefault(label, Counter()).update(s["class"] for s in sources)
    for label, plausible in (("SeaLake", WATERY), ("Forest", WOODLAND), ("Highway", ROAD)):
        share = sum(picked[label][c] for c in plausible) / sum(picked[label].values())
        assert share >= 0.8, (label, picked[label])
    assert picked["SeaLake"]["sea_waves"] > 0 and picked["Highway"]["engine"] > 0
    # the signed-sqrt + threshold + random pick spreads choices over many real clips
    paths = {s["path"] for sources in _sources(manifest) for s in sources}
    assert len(paths) >= 30

    clip = MixRecipe.from_json(manifest["audio"].iloc[0]).render()
    assert clip.samples.shape == (80000,) and np.isfinite(clip.samples).all()
    assert 0 < np.max(np.abs(clip.samples)) <= 0.99 + 1e-6


@pytest.mark.devdata
@pytest.mark.slow
def test_sonify_command(
    dev_data: Path, shared_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import typer
    from typer.testing import CliRunner

    from geosound.cli.sonify import sonify_command
    from geosound.data.manifest import read_manifest

    monkeypatch.setenv("GEOSOUND_CACHE", str(shared_cache))  # warm from the test above
    app = typer.Typer()
    app.command("sonify")(sonify_command)
    app.callback()(lambda: None)
    out = tmp_path / "pairs.parquet"
    args = ["sonify", "--out", str(out), "--class", "SeaLake", "--class", "River"]
    args += ["--variants", "2", "--render", str(tmp_path / "wav"), "--progress", "none"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "train" in result.output and "eval" in result.output and "clips used" in result.output
    manifest = read_manifest(out)
    assert set(manifest["label"]) == {"SeaLake", "River"} and set(manifest["split"]) == {
        "train",
        "eval",
    }
    assert len(list((tmp_path / "wav").glob("*.wav"))) == len(manifest)

    bad = CliRunner().invoke(app, ["sonify", "--out", str(tmp_path / "x.csv")])
    assert isinstance(bad.exception, InputError) and "x.csv" in str(bad.exception)
    missing = CliRunner().invoke(
        app, ["sonify", "--out", str(out), "--data-dir", str(tmp_path / "nowhere")]
    )
    assert isinstance(missing.exception, DataError) and "nowhere" in str(missing.exception)


# --------------------------------------------------------------------------- mix banks, dev sources


def test_a_mix_bank_shares_mixes_within_a_class_of_train_tiles(tiles, clips):
    tile_split = pd.Series(["train"] * 12 + ["eval"] * 6, index=tiles.index)
    clip_split = pd.Series(
        ["eval" if Path(p).stem.endswith("-3") else "train" for p in clips["path"]],
        index=clips.index,
    )
    banked = _sonify(tiles, clips, variants=4, mix_bank=2, splits=(tile_split, clip_split))
    train = banked[banked["split"] == "train"]
    for _, rows in train.groupby("label"):
        assert rows["audio"].nunique() <= 2  # the bank, not tiles × variants
    for _, rows in train.groupby("tile_id"):
        assert rows["audio"].nunique() == 2  # a tile's variants walk through the bank
    evaluation = banked[banked["split"] == "eval"]
    assert evaluation["audio"].nunique() > 2  # eval tiles draw their own mixes
    own = _sonify(tiles, clips, variants=4, splits=(tile_split, clip_split))
    assert own[own["split"] == "train"]["audio"].nunique() > banked["audio"].nunique() / 2
    with pytest.raises(InputError, match="mix_bank"):
        _sonify(tiles, clips, mix_bank=0)


def test_ambient_tags_become_esc50_classes_with_captions():
    from geosound.data.concepts import ambient_clips

    ambient = pd.DataFrame(
        {
            "path": ["/a/night.flac", "/a/bird1_00.ogg", "/a/wardrums.ogg", "/a/water.1.ogg"],
            "tags": [
                ("tileset=autumn", "sound=nightime"),
                ("path=sound/animals/bird1_00.ogg",),
                ("ambient=wardrums",),
                ("file=env_sounds_water.1.ogg",),
            ],
            "licence": ["CC0", "GPL-2+", "GPL-2+", "CC0"],
        }
    )
    pool = ambient_clips(ambient)
    assert pool["label"].tolist() == ["crickets", "chirping_birds", "pouring_water"]
    assert pool["caption"].str.len().min() > 5  # a caption, not a bare tag
    assert pool["freesound_id"].is_unique and pool["licence"].tolist() == ["CC0", "GPL-2+", "CC0"]


@pytest.mark.devdata
def test_dev_sources_split_each_on_its_own(dev_data: Path):
    from geosound.data import load_esc50, load_eurosat_tiles
    from geosound.data.splits import dev_split_tables

    tiles, clips = dev_split_tables(dev_data, eval_fraction=0.3, seed=0)
    assert set(tiles["source"]) == {"eurosat_ms", "eurosat_rgb"}
    assert set(clips["source"]) == {"esc50", "ambient"}
    assert len(tiles) == 181 + 3000 and tiles["id"].is_unique
    # the Sentinel-2 and ESC-50 splits are those of a run on them alone
    alone_tiles, alone_clips = split_by_tile_and_clip(
        load_eurosat_tiles(dev_data / "eurosat_ms_geotiff"),
        load_esc50(dev_data / "esc50_outdoor_16k"),
        0.3,
        0,
    )
    assert (
        tiles[tiles["source"] == "eurosat_ms"]["split"].to_numpy() == alone_tiles.to_numpy()
    ).all()
    assert (clips[clips["source"] == "esc50"]["split"].to_numpy() == alone_clips.to_numpy()).all()
    rgb = tiles[tiles["source"] == "eurosat_rgb"]
    assert not rgb["located"].any() and tiles[tiles["source"] == "eurosat_ms"]["located"].all()
    for frame in (rgb, clips[clips["source"] == "ambient"]):
        share = (frame["split"] == "eval").mean()
        assert 0.2 < share < 0.4
    with pytest.raises(InputError, match="imagery"):
        dev_split_tables(dev_data, imagery=("landsat",))


# --------------------------------------------------------------------------- what pairs carry


def test_concept_set_chances_are_the_draws_of_sonify() -> None:
    from collections import Counter

    from geosound.data.sonify import _draw_concepts

    options = CONCEPT_PHRASES["Forest"]
    chances = concept_set_chances(options)
    assert sum(chances.values()) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    draws = 20_000
    seen = Counter(
        frozenset(c.sound for c in _draw_concepts(rng, options, 3)) for _ in range(draws)
    )
    assert set(seen) <= set(chances)
    for sounds, chance in chances.items():
        # Within five binomial standard errors of the exact chance, for every set.
        assert (
            abs(seen[sounds] / draws - chance) < 5 * np.sqrt(chance * (1 - chance) / draws) + 1e-3
        )


def test_landcover_bound_between_chance_and_certainty() -> None:
    def concepts(*sounds: str) -> tuple[Concept, ...]:
        return tuple(Concept(sound, sound, 1.0) for sound in sounds)

    same = {"a": concepts("dog", "cat"), "b": concepts("dog", "cat")}
    apart = {"a": concepts("dog", "cat"), "b": concepts("cow", "sheep")}
    shared = {"a": concepts("dog"), "b": concepts("dog", "cow")}
    assert landcover_bound(["a", "b"], same) == pytest.approx(0.5)  # sounds tell nothing
    assert landcover_bound(["a", "b"], apart) == pytest.approx(1.0)
    # b draws {dog} half the time, which a also does: the oracle says a, right on 3 of 4.
    assert landcover_bound(["a", "b"], shared, max_concepts=1) == pytest.approx(0.75)
    assert 0.2 < landcover_bound(["Forest", "Industrial", "Pasture", "Residential", "River"]) < 1
