"""SounDiT's evaluation: the metrics on features with known answers, the land-cover classifier
on real dev tiles, the seeded plan, and ``geosound evaluate-generator`` end to end on a tiny
checkpoint and data bundle written here."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from geosound.errors import DataError, InputError
from geosound.evaluation.generated import (
    LandcoverClassifier,
    diversity,
    fit_landcover_classifier,
    frechet_distance,
    js_divergence,
    landcover_classifier,
    pss_element,
    pss_scene,
)

CLASSES = ("Forest", "Industrial", "Pasture", "Residential", "River")
SOUND_DIM, SCENE_DIM = 16, 8


# --------------------------------------------------------------------------- metrics


def test_frechet_distance_of_identical_and_shifted_gaussians() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    shift = np.array([1.0, -2.0, 0.5, 0.0, 3.0, 1.0])
    # Same covariance, means apart by shift: the trace term vanishes, FD = ‖Δμ‖².
    assert frechet_distance(a, a + shift) == pytest.approx(float(shift @ shift), rel=1e-8)
    # Two samples of one Gaussian are close next to a shifted one.
    b = rng.normal(size=(3000, 6)) @ np.eye(6)
    c = rng.normal(size=(3000, 6))
    assert frechet_distance(b, c) < 0.05 * frechet_distance(b, c + shift)


@pytest.mark.parametrize(("n1", "n2", "dim"), [(40, 90, 12), (7, 9, 20), (50, 5, 8)])
def test_frechet_trace_equals_scipy_sqrtm(n1: int, n2: int, dim: int) -> None:
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(n1 + n2)
    x = rng.gamma(2.0, size=(n1, dim))
    y = rng.normal(size=(n2, dim)) * np.linspace(0.5, 2.0, dim) + 0.3
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    diff = x.mean(0) - y.mean(0)
    reference = diff @ diff + np.trace(s1 + s2) - 2 * np.trace(np.asarray(sqrtm(s1 @ s2)).real)
    assert frechet_distance(x, y) == pytest.approx(float(reference), rel=1e-6, abs=1e-6)
    assert frechet_distance(y, x) == pytest.approx(frechet_distance(x, y), rel=1e-9)


def one_hot(labels: list[str]) -> np.ndarray:
    return np.eye(len(CLASSES))[[CLASSES.index(label) for label in labels]]


def test_pss_scene_perfect_and_shuffled() -> None:
    rng = np.random.default_rng(1)
    labels = [CLASSES[i % 5] for i in range(2000)]
    assert pss_scene(one_hot(labels), labels, CLASSES) == 1.0
    shuffled = list(rng.permutation(labels))
    assert pss_scene(one_hot(shuffled), labels, CLASSES) == pytest.approx(0.2, abs=0.03)
    with pytest.raises(InputError, match="not among"):
        pss_scene(one_hot(labels[:2]), ["Forest", "Beach"], CLASSES)


def test_pss_element_profiles() -> None:
    rng = np.random.default_rng(2)
    labels = [CLASSES[i % 5] for i in range(1000)]
    real = one_hot(labels) * 0.8 + 0.04  # confident, not certain: rows still sum to 1
    assert pss_element(real, labels, real, labels, CLASSES) == pytest.approx(1.0)
    # Pictures that all look like one class share little with four of the five real profiles.
    forest = np.tile(one_hot(["Forest"]), (1000, 1))
    assert pss_element(forest, labels, real, labels, CLASSES) < 0.5
    # Shuffled pairings: every class's generated profile tends to the marginal of all classes,
    # so the score is what the marginal shares with each class profile (0.68 here), not 1.
    shuffled = pss_element(real[rng.permutation(1000)], labels, real, labels, CLASSES)
    marginal = 1.0 - js_divergence(real.mean(axis=0), real[0])
    assert shuffled == pytest.approx(marginal, abs=0.02) and shuffled < 0.75
    # Disjoint profiles: 1 − JS = 0.
    assert pss_element(one_hot(["Forest"]), ["Forest"], one_hot(["River"]), ["Forest"],
                       CLASSES) == pytest.approx(0.0)  # fmt: skip
    with pytest.raises(InputError, match="no real reference"):
        pss_element(real, labels, real[:1], labels[:1], CLASSES)


def test_js_divergence_bounds() -> None:
    p, q = np.array([0.5, 0.5, 0.0]), np.array([0.0, 0.5, 0.5])
    assert js_divergence(p, p) == 0.0
    assert js_divergence(p, q) == pytest.approx(js_divergence(q, p))
    assert js_divergence(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1.0)
    assert 0.0 < js_divergence(p, q) < 1.0


def test_diversity_of_known_groups() -> None:
    features = np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0], [1.0, 1.0], [9.0, 9.0]])
    # Sound a: one pair 5 apart; sound b: two equal pictures; sound c alone says nothing.
    assert diversity(features, ["a", "a", "b", "b", "c"]) == pytest.approx(2.5)
    with pytest.raises(InputError, match="two pictures"):
        diversity(features[:2], ["a", "b"])


# --------------------------------------------------------------------------- the classifier


def separable(n: int, classes: tuple[str, ...], seed: int) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    labels = [classes[i % len(classes)] for i in range(n)]
    centres = rng.normal(scale=4.0, size=(len(classes), 10))
    rows = [centres[classes.index(label)] + rng.normal(size=10) for label in labels]
    return np.array(rows), labels


@pytest.mark.parametrize("classes", [CLASSES, ("Forest", "River")])
def test_classifier_probabilities_match_scikit_learn(classes: tuple[str, ...]) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x, y = separable(200, classes, seed=3)
    ours = fit_landcover_classifier(x, y, classes, "enc@1")
    scaler = StandardScaler().fit(x)
    theirs = LogisticRegression(max_iter=2000, random_state=0).fit(
        scaler.transform(x), [classes.index(v) for v in y]
    )
    test, _ = separable(50, classes, seed=4)
    expected = theirs.predict_proba(scaler.transform(test))
    np.testing.assert_allclose(ours.probabilities(test), expected, atol=1e-6)
    assert ours.probabilities(test).shape == (50, len(classes))
    assert list(ours.predict(test)) == [classes[i] for i in expected.argmax(1)]


def test_classifier_is_cached_and_retrained_when_the_tiles_change(tmp_path: Path) -> None:
    x, y = separable(150, CLASSES, seed=5)
    test, truth = separable(60, CLASSES, seed=6)
    cache = tmp_path / "classifier.npz"
    first, reused = landcover_classifier(x, y, test, truth, CLASSES, "enc@1", cache)
    assert not reused and cache.is_file()
    assert first.eval_tiles == 60 and first.train_tiles == 150
    assert first.eval_accuracy == pytest.approx(float(np.mean(first.predict(test) == truth)))
    again, reused = landcover_classifier(x, y, test, truth, CLASSES, "enc@1", cache)
    assert reused and again.fingerprint == first.fingerprint
    np.testing.assert_array_equal(again.probabilities(test), first.probabilities(test))
    # The cache keeps the weights, not the figure: another eval set is measured afresh. (The
    # test tiles come from other class centres, so the first figure is near 0; seven of the
    # training tiles are named right nearly always.)
    expected = float(np.mean(first.predict(x[:7]) == np.array(y[:7])))
    assert expected > first.eval_accuracy + 0.5
    other, reused = landcover_classifier(x, y, x[:7], y[:7], CLASSES, "enc@1", cache)
    assert reused and other.eval_tiles == 7 and other.eval_accuracy == pytest.approx(expected)
    changed, reused = landcover_classifier(x[1:], y[1:], test, truth, CLASSES, "enc@1", cache)
    assert not reused and changed.fingerprint != first.fingerprint
    assert LandcoverClassifier.load(cache).fingerprint == changed.fingerprint
    cache.write_bytes(b"not a classifier")  # damaged: retrained, never trusted
    assert not landcover_classifier(x, y, test, truth, CLASSES, "enc@1", cache)[1]
    with pytest.raises(InputError, match="every class"):
        fit_landcover_classifier(x[:10], ["Forest"] * 10, CLASSES, "enc@1")


@pytest.mark.parametrize("head", ["{}", '{"classes": ["Forest"]}', "[1, 2]"])
def test_classifier_file_with_the_tag_but_a_foreign_head(tmp_path: Path, head: str) -> None:
    from geosound.evaluation.generated import CLASSIFIER_FORMAT

    x, y = separable(60, CLASSES, seed=7)
    cache = tmp_path / "classifier.npz"
    fitted = fit_landcover_classifier(x, y, CLASSES, "enc@1")
    with open(cache, "wb") as handle:  # right tag and arrays, a head without the keys
        np.savez(handle, format=np.array(CLASSIFIER_FORMAT), head=np.array(head),
                 mean=fitted.mean, scale=fitted.scale, coef=fitted.coef,
                 intercept=fitted.intercept)  # fmt: skip
    with pytest.raises(DataError, match="not a land-cover classifier") as caught:
        LandcoverClassifier.load(cache)
    assert str(cache) in str(caught.value)
    # The cache treats it as damaged: retrained and replaced.
    classifier, reused = landcover_classifier(x, y, x, y, CLASSES, "enc@1", cache)
    assert not reused and LandcoverClassifier.load(cache).fingerprint == classifier.fingerprint


def test_classifier_on_real_dev_tiles(dev_data: Path) -> None:
    from geosound.data.devsets import load_eurosat_rgb
    from geosound.encoders import DEFAULT_ENCODERS, get_encoder
    from geosound.geo.images import read_image_ref

    classes = ("Forest", "Industrial", "River")
    frame = load_eurosat_rgb(classes=classes)
    picked = frame.groupby("label").head(16).reset_index(drop=True)
    images = np.stack([read_image_ref(str(path)) for path in picked["path"]])
    encoder = get_encoder(DEFAULT_ENCODERS["image"])
    features = encoder.encode(list(images)).pooled.numpy()
    assert features.shape == (48, 1280)
    labels = picked["label"].astype(str).to_numpy()
    train = picked.groupby("label").cumcount().to_numpy() < 10
    classifier, _ = landcover_classifier(
        features[train], labels[train], features[~train], labels[~train], classes, encoder.id
    )
    # 18 held-out tiles of three classes (chance 1/3): frozen ImageNet features separate
    # forest, industry and rivers well; 0.7 leaves room for the noise of 18 items.
    assert classifier.eval_tiles == 18 and classifier.eval_accuracy >= 0.7


# --------------------------------------------------------------------------- tiny run


def tiny_bundle(per_class: int = 8, eval_per_class: int = 3):
    """A data bundle of 5 classes whose tiles differ by colour and whose sounds by direction."""
    from geosound.training.generator import GeneratorData

    rng = np.random.default_rng(0)
    colours = rng.uniform(0.1, 0.9, size=(len(CLASSES), 3))
    directions = rng.normal(size=(len(CLASSES), SOUND_DIM))
    images, splits, labels, ids = [], [], [], []
    for c, name in enumerate(CLASSES):
        for i in range(per_class):
            pixels = colours[c][:, None, None] + rng.normal(scale=0.05, size=(3, 32, 32))
            images.append(np.clip(pixels * 255, 0, 255).astype(np.uint8))
            splits.append("eval" if i < eval_per_class else "train")
            labels.append(name)
            ids.append(f"{name}_{i}")
    n = len(ids)
    embedding = directions[[CLASSES.index(label) for label in labels]]
    embedding = embedding + rng.normal(scale=0.1, size=embedding.shape)
    scene_index = np.array([CLASSES.index(label) for label in labels])
    return GeneratorData(
        images=np.stack(images),
        image_splits=np.array(splits),
        pair_ids=np.array(ids),
        pair_image=np.arange(n),
        pair_splits=np.array(splits),
        labels=np.array(labels),
        scene_index=scene_index,
        lon=np.full(n, np.nan),
        lat=np.full(n, np.nan),
        sound_tokens=rng.normal(size=(n, 3, SOUND_DIM)).astype(np.float32),
        sound_mask=np.ones((n, 3), bool),
        sound_embedding=embedding.astype(np.float32),
        scene_words=np.array([name.lower() for name in CLASSES]),
        scene_embeddings=rng.normal(size=(len(CLASSES), SCENE_DIM)).astype(np.float32),
        meta={"sound_space": "sat2sound:test", "encoders": {"audio": "aisfx@1"}},
    )


def write_tiny_run(
    folder: Path,
    use_moe: bool = True,
    seed: int = 0,
    train_config: dict[str, Any] | None = None,
    knowledge_split: tuple[str, ...] = ("train",),
    visual: bool = False,
) -> Path:
    """soundit.pt, geokd.npz (pairs of ``knowledge_split``) and generator_data.npz of a random
    tiny SounDiT; ``train_config`` (default: train-generator's defaults) goes in its info.

    ``visual``: a Sound2Scene generator instead, conditioned on image embeddings and carrying
    an audio aligner; the bundle gets audio tokens and image embeddings, its knowledge base
    the image embeddings of the pairs' tiles."""
    from geosound.generation.geokd import KnowledgeBase
    from geosound.models.autoencoder import AutoencoderConfig, LatentCodec, build_autoencoder
    from geosound.models.soundit import build_soundit
    from geosound.models.soundit_checkpoint import save_generator
    from geosound.training.generator import GeneratorTrainConfig

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    sizes = {"hidden_dim": 32, "depth": 2, "heads": 4, "latent_size": 8, "num_experts": 2}
    model = build_soundit(
        "tiny", sound_dim=SOUND_DIM, scene_dim=SCENE_DIM, use_moe=use_moe, **sizes
    )
    with torch.no_grad():  # adaLN-Zero starts silent; give the conditions some say
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    ae_config = AutoencoderConfig(image_size=32, block_out_channels=[16, 16, 16], norm_num_groups=8)
    codec = LatentCodec(build_autoencoder(ae_config).eval(), 1.0, ae_config)
    data = tiny_bundle()
    aligner, space, embeddings = None, "sat2sound:test", data.sound_embedding
    if visual:
        from geosound.models.aligner import AlignerConfig, AudioAligner

        aligner = AudioAligner(AlignerConfig(audio_dim=12, visual_dim=SOUND_DIM, hidden_dim=16))
        rng = np.random.default_rng(seed)
        data.audio_tokens = rng.normal(size=(len(data.pair_ids), 2, 12)).astype(np.float32)
        data.audio_mask = np.ones((len(data.pair_ids), 2), bool)
        data.image_embedding = data.sound_embedding[np.argsort(data.pair_image)]
        space = "visual:test"
        data.meta = {**data.meta, "visual_space": space}
        embeddings = data.image_embedding[data.pair_image]
    data.save(folder / "generator_data.npz")
    scenes = {str(w): torch.from_numpy(e) for w, e in zip(data.scene_words, data.scene_embeddings,
                                                           strict=True)}  # fmt: skip
    recorded = GeneratorTrainConfig().to_dict() if train_config is None else train_config
    info = {"train_config": recorded} if recorded else {}
    save_generator(folder / "soundit.pt", model.eval(), codec, space, data.meta["encoders"],
                   scenes, info, aligner=aligner)  # fmt: skip
    train = np.flatnonzero(np.isin(data.pair_splits, knowledge_split))
    with torch.no_grad():
        latents = codec.encode(data.images_float(data.pair_image[train])).numpy()
    KnowledgeBase(
        data.pair_ids[train],
        embeddings[train],
        data.scene_words[data.scene_index[train]],
        latents,
        data.lon[train],
        data.lat[train],
        space,
    ).save(folder / "geokd.npz")
    return folder


def test_the_paired_scene_row_gives_each_picture_its_pairs_scene_word() -> None:
    from geosound.generation.evaluation import EvaluationSettings, _conditioned, plan_evaluation
    from geosound.generation.generator import GenerationOptions

    data = tiny_bundle()
    plan = plan_evaluation(data, EvaluationSettings(per_class=2, per_sound=2, seed=4))
    given: list[str | None] = []

    class Recorder:
        def generate(self, sound, scene=None, options=None):  # what _conditioned calls
            given.append(scene)
            return type("Picture", (), {"pixels": np.zeros((3, 4, 4), np.float32)})()

    def draw_all(paired_scene: bool) -> list[str | None]:
        given.clear()
        draw = _conditioned(Recorder(), data, plan, GenerationOptions(), condition=data.sound,
                            paired_scene=paired_scene)  # fmt: skip
        for slot in range(len(plan.slot_sound)):
            draw(slot)
        return list(given)

    assert draw_all(False) == [None] * len(plan.slot_sound)
    assert draw_all(True) == [label.lower() for label in plan.slot_labels]


def test_plan_is_seeded_held_out_and_keeps_reference_and_bound_apart() -> None:
    from geosound.generation.evaluation import EvaluationSettings, plan_evaluation

    data = tiny_bundle()
    settings = EvaluationSettings(per_class=2, per_sound=3, seed=4)
    plan = plan_evaluation(data, settings)
    again = plan_evaluation(data, settings)
    np.testing.assert_array_equal(plan.sound_rows, again.sound_rows)
    np.testing.assert_array_equal(plan.slot_seed, again.slot_seed)
    assert plan.classes == CLASSES and len(plan.sound_rows) == 10 and len(plan.slot_sound) == 30
    assert set(data.pair_splits[plan.sound_rows]) == {"eval"}
    assert (data.labels[plan.shuffled_rows] != data.labels[plan.sound_rows]).all()
    assert set(data.pair_splits[plan.shuffled_rows]) == {"eval"}
    assert set(data.image_splits[plan.bound_tiles]) == {"eval"}
    assert not set(plan.bound_tiles) & set(plan.reference_tiles)
    np.testing.assert_array_equal(plan.tile_labels[plan.bound_tiles], plan.slot_labels)
    assert set(data.image_splits[plan.train_tiles]) == {"train"}
    assert len(set(plan.slot_seed.tolist())) == 30
    other = plan_evaluation(data, EvaluationSettings(per_class=2, per_sound=3, seed=5))
    assert not np.array_equal(other.slot_seed, plan.slot_seed)
    with pytest.raises(InputError, match="per_sound"):
        plan_evaluation(data, EvaluationSettings(per_sound=0))


def test_classifier_eval_set_is_every_eval_tile_whatever_the_slots() -> None:
    from geosound.generation.evaluation import EvaluationSettings, plan_evaluation

    # Six eval tiles a class: a reference half of three and a bound half of three, of which
    # one sound with one picture uses a single tile.
    data = tiny_bundle(eval_per_class=6)
    every = np.flatnonzero(data.image_splits == "eval")
    for per_class, per_sound in [(1, 1), (3, 1), (2, 4)]:
        settings = EvaluationSettings(per_class=per_class, per_sound=per_sound)
        plan = plan_evaluation(data, settings)
        np.testing.assert_array_equal(plan.eval_tiles, every)
        assert set(plan.reference_tiles) | set(plan.bound_tiles) <= set(plan.eval_tiles)


def test_evaluate_generator_cli_end_to_end(tmp_path: Path, run_cli) -> None:
    run = write_tiny_run(tmp_path / "run")
    ablation = write_tiny_run(tmp_path / "plain", use_moe=False, seed=1)
    env = {"GEOSOUND_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "report" / "figures.json"
    args = ["evaluate-generator", "--data", str(run), "--per-class", "2", "--per-sound", "2",
            "--steps", "2", "--steps", "25", "--seed", "1"]  # fmt: skip
    result = run_cli(*args, "--ablation-model", str(ablation / "soundit.pt"), "--json", str(out),
                     "--progress", "none", env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "PSS-scene (proxy)" in text and "PSS-element (proxy)" in text and "FD-EffNet" in text
    assert "dev figures" in text and "not FID" in text
    assert "FID" not in text.replace("not FID", "")
    report = json.loads(out.read_text())
    assert report["product"] == "SounDiT evaluation"
    assert report["counts"] == {"sounds": 10, "pictures_per_sound": 2, "reference_tiles": 10}
    assert report["classifier"]["train_tiles"] == 25 and report["classifier"]["eval_tiles"] == 15
    assert not report["classifier"]["reused"]
    main = {row["name"]: row for row in report["main"]}
    bound = main["real tiles of the paired class (bound)"]
    # Real tiles of the paired class, coloured by class: the classifier names them.
    assert bound["pss_scene"] == 1.0 and bound["images"] == 20
    assert [row["name"] for row in report["main"]][:3] == [
        "real tiles of the paired class (bound)",
        "the same tiles through the autoencoder (the latent space's bound)",
        "SounDiT, conditioned on the sound",
    ]
    assert "given the paired tile's scene word (a perfect scene vote)" in main
    for row in report["main"]:
        assert row["images"] == 20 and row["sounds"] == 10
        assert 0.0 <= row["pss_scene"] <= 1.0 and 0.0 <= row["pss_element"] <= 1.0
        assert row["fd_effnet"] >= 0.0
    ablations = {row["name"]: row for row in report["ablations"]}
    assert set(ablations) >= {"RAG off (from noise)", "scene off (no retrieved scene)",
                              "nearest entry alone (no vote on scene and layout)",
                              "2 DDIM steps", "25 DDIM steps", "TA-PMoE (this model)"}  # fmt: skip
    plain = [name for name in ablations if name.startswith("plain cross-attention (soundit-")]
    assert len(plain) == 1 and ablations[plain[0]]["images"] == 20
    assert ablations["25 DDIM steps"]["pss_scene"] == main["SounDiT, conditioned on the sound"][
        "pss_scene"]  # fmt: skip
    assert len(report["targets"]) == 5
    # Seeded: the same command gives the same figures; the classifier now comes from its file.
    again = run_cli(*args, "--progress", "json", env=env)
    assert again.returncode == 0, again.stderr
    final = json.loads(again.stdout.strip().splitlines()[-1])
    assert final["ok"] is True and "(cached)" in final["table"]
    assert "plain cross-attention | — | — | — | — | — | — | not trained |" in final["table"]
    repeat = [line for line in final["table"].splitlines() if line.startswith("| SounDiT")]
    first = [line for line in text.splitlines() if line.startswith("| SounDiT")]
    assert [r.rsplit("|", 3)[0] for r in repeat] == [r.rsplit("|", 3)[0] for r in first]


def test_a_sound2scene_generator_is_evaluated_on_the_same_held_out_sounds(
    tmp_path: Path, run_cli
) -> None:
    sound = write_tiny_run(tmp_path / "sound")
    visual = write_tiny_run(tmp_path / "visual", visual=True)
    env = {"GEOSOUND_CACHE": str(tmp_path / "cache")}
    args = ["evaluate-generator", "--per-class", "1", "--per-sound", "1", "--steps", "2",
            "--progress", "none"]  # fmt: skip
    reports = {}
    for name, run in [("sound", sound), ("visual", visual)]:
        out = tmp_path / f"{name}.json"
        result = run_cli(*args, "--data", str(run), "--json", str(out), env=env)
        assert result.returncode == 0, result.stderr
        reports[name] = json.loads(out.read_text())
    assert "Sound2Scene (hears through its aligner)" in result.stdout
    assert reports["visual"]["via"] == "visual" and reports["sound"]["via"] == "sound"
    assert reports["visual"]["model_id"] != reports["sound"]["model_id"]
    rows = {name: [row["name"] for row in report["main"]] for name, report in reports.items()}
    perfect = "given the paired tile's own image embedding (a perfect aligner)"
    assert perfect in rows["visual"] and perfect not in rows["sound"]
    assert len(rows["visual"]) == len(rows["sound"]) + 1
    # One split, one plan: the same held-out sounds, so the two tables can sit side by side.
    assert reports["visual"]["counts"] == reports["sound"]["counts"]
    bound = [{k: v for k, v in r["main"][0].items() if k != "seconds"} for r in reports.values()]
    assert bound[0] == bound[1]  # the same real tiles
    # A Sound2Scene model is held to the image space of the bundle it is scored on.
    crossed = run_cli(*args, "--data", str(sound), "--model", str(visual / "soundit.pt"),
                      "--knowledge", str(visual / "geokd.npz"), env=env)  # fmt: skip
    assert crossed.returncode == 2 and "hears visual:test" in crossed.stderr
    assert len(crossed.stderr.strip().splitlines()) == 1
    # An ablation model differs only in its cross-attention, not in how it hears.
    mixed = run_cli(*args, "--data", str(sound), "--ablation-model", str(visual / "soundit.pt"),
                    env=env)  # fmt: skip
    assert mixed.returncode == 2 and "hears --via visual" in mixed.stderr


def test_score_variants_scores_each_sampler_beside_its_shuffled_control(tmp_path: Path) -> None:
    from geosound.generation.evaluation import EvaluationSettings, score_variants
    from geosound.generation.generator import GenerationOptions, LandscapeGenerator
    from geosound.training.generator import GeneratorData

    run = write_tiny_run(tmp_path / "run")
    generator = LandscapeGenerator.from_files(run / "soundit.pt", run / "geokd.npz")
    data = GeneratorData.load(run / "generator_data.npz")
    base = GenerationOptions(steps=4)
    variants = {
        "default": base,
        "default again": dataclasses.replace(base),
        "from noise": dataclasses.replace(base, strength=1.0),
    }
    settings = EvaluationSettings(per_class=1, per_sound=2)
    rows = score_variants(generator, data, variants, settings, cache_root=tmp_path / "cache")
    names = [(conditioned.name, shuffled.name) for conditioned, shuffled in rows]
    assert names == [(name, f"{name}, shuffled sounds") for name in variants]
    scores = [(c.scores, s.scores) for c, s in rows]
    assert all(a is not None and b is not None and a.images == 10 for a, b in scores)
    assert scores[0] == scores[1]  # seeded: the same sampler gives the same pictures
    first, noise = scores[0][0], scores[2][0]
    assert first is not None and noise is not None and first.fd_effnet != noise.fd_effnet


def test_evaluate_generator_refuses_bad_input(tmp_path: Path, run_cli) -> None:
    run = write_tiny_run(tmp_path / "run")
    result = run_cli("evaluate-generator", "--data", str(run), "--per-class", "0")
    assert result.returncode == 2 and "--per-class" in result.stderr
    missing = run_cli("evaluate-generator", "--data", str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert len(missing.stderr.strip().splitlines()) == 1 and "--model" in missing.stderr
    (tmp_path / "bad.npz").write_bytes(b"no")
    given = ["--model", str(run / "soundit.pt"), "--knowledge", str(run / "geokd.npz")]
    bad = run_cli("evaluate-generator", "--data", str(tmp_path / "bad.npz"), *given)
    assert bad.returncode == 2 and "bad.npz" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "landcover_classifier.npz").exists()


def test_ablation_model_without_or_with_other_split_settings_is_refused(
    tmp_path: Path, run_cli
) -> None:
    from geosound.training.generator import GeneratorTrainConfig

    run = write_tiny_run(tmp_path / "run")
    unrecorded = write_tiny_run(tmp_path / "unrecorded", use_moe=False, train_config={})
    partial = write_tiny_run(tmp_path / "partial", use_moe=False,
                             train_config={"seed": 0, "eval_fraction": 0.3})  # fmt: skip
    other = {**GeneratorTrainConfig().to_dict(), "seed": 7}
    reseeded = write_tiny_run(tmp_path / "reseeded", use_moe=False, train_config=other)
    env = {"GEOSOUND_CACHE": str(tmp_path / "cache")}
    base = ["evaluate-generator", "--data", str(run), "--per-class", "1", "--per-sound", "1",
            "--steps", "2", "--progress", "none"]  # fmt: skip
    for folder, expected in [(unrecorded, "records no seed"), (partial, "records no imagery"),
                             (reseeded, "(seed differ)")]:  # fmt: skip
        ablation = folder / "soundit.pt"
        result = run_cli(*base, "--ablation-model", str(ablation), env=env)
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert expected in result.stderr and str(ablation) in result.stderr
        assert not (run / "landcover_classifier.npz").exists()
    # The main checkpoint is held to the same rule, and named by its own file.
    swapped = run_cli("evaluate-generator", "--data", str(run), "--model",
                      str(unrecorded / "soundit.pt"), "--ablation-model", str(run / "soundit.pt"),
                      "--progress", "none", env=env)  # fmt: skip
    assert swapped.returncode == 2 and f"--model {unrecorded / 'soundit.pt'}" in swapped.stderr


GRID_SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "make_generator_grid.py"


def run_grid(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(GRID_SCRIPT), *args], capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def test_generator_grid_draws_the_planned_held_out_sounds(tmp_path: Path) -> None:
    import matplotlib.image

    run = write_tiny_run(tmp_path / "run")
    out = tmp_path / "grid" / "grid.png"
    done = run_grid("--run", str(run), "--per-class", "2", "--steps", "2", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in done.stdout
    picture = matplotlib.image.imread(out)
    assert picture.ndim == 3 and picture.shape[0] > 0
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary left


def test_generator_grid_refuses_sounds_its_knowledge_base_holds(tmp_path: Path) -> None:
    # The knowledge base holds the eval pairs too: their pictures would be retrieved, not
    # imagined, so the grid is refused before anything is drawn.
    run = write_tiny_run(tmp_path / "run", knowledge_split=("train", "eval"))
    out = tmp_path / "grid.png"
    done = run_grid("--run", str(run), "--per-class", "1", "--steps", "2", "-o", str(out))
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "not held out" in done.stderr
    assert str(run / "soundit.pt") in done.stderr
    assert not out.exists()
    missing = run_grid("--run", str(tmp_path / "nowhere"), "-o", str(out))
    assert missing.returncode == 2 and "generator_data.npz" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1 and not out.exists()
