"""Training on cached features: config, sampling, fitting and resuming, checkpoints, baselines."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from geosound.data.features import PairFeatures
from geosound.encoders.base import Encoder, Encoding
from geosound.errors import InputError
from geosound.evaluation.sat2sound_eval import embed_pairs, linear_map_baseline
from geosound.geo.images import read_image_ref
from geosound.models import build_sat2sound
from geosound.models.checkpoint import load_checkpoint, save_checkpoint
from geosound.training.config import TrainConfig
from geosound.training.data_module import OneVariantPerPlace, place_of


def synthetic_features(places: int = 24, variants: int = 3, seed: int = 0) -> PairFeatures:
    """Pairs with class structure: each modality is a class prototype plus noise."""
    rng = np.random.default_rng(seed)
    classes = 4
    prototypes = {
        name: rng.normal(size=(classes, dim)).astype(np.float32)
        for name, dim in (("image", 32), ("audio", 16), ("text", 12))
    }
    rows = [(p, v) for p in range(places) for v in range(variants)]
    labels = np.array([p % classes for p, _ in rows])

    def tokens(name: str, count: int) -> np.ndarray:
        base = prototypes[name][labels][:, None, :]
        return (base + 0.5 * rng.normal(size=(len(rows), count, base.shape[-1]))).astype(np.float32)

    def mask(count: int) -> np.ndarray:
        return np.ones((len(rows), count), dtype=bool)

    return PairFeatures(
        ids=np.array([f"tile{p}-v{v}" for p, v in rows]),
        labels=np.array([f"class{c}" for c in labels]),
        splits=np.array(["eval" if p >= places * 3 // 4 else "train" for p, _ in rows]),
        lon=np.zeros(len(rows), dtype=np.float32),
        lat=np.zeros(len(rows), dtype=np.float32),
        image_tokens=tokens("image", 4),
        image_mask=mask(4),
        audio_tokens=tokens("audio", 3),
        audio_mask=mask(3),
        audio_caption_tokens=tokens("text", 5),
        audio_caption_mask=mask(5),
        image_caption_tokens=tokens("text", 6),
        image_caption_mask=mask(6),
        encoder_ids={"image": "fake-image@1", "audio": "fake-audio@1", "text": "fake-text@1"},
    )


def test_config_yaml_round_trip_and_unknown_keys(tmp_path: Path):
    config = TrainConfig(epochs=7, model={"num_concepts": 64}, betas=(0.8, 0.9))
    assert TrainConfig.from_yaml(config.to_yaml(tmp_path / "c.yaml")) == config
    (tmp_path / "bad.yaml").write_text("epochs: 3\nlearning_rat: 0.1\n")
    with pytest.raises(InputError, match=r"bad\.yaml: unknown training settings: learning_rat"):
        TrainConfig.from_yaml(tmp_path / "bad.yaml")


def test_one_variant_per_place_each_epoch():
    ids = np.array([f"t{p}-v{v}" for p in range(5) for v in range(3)] + ["lonely"])
    sampler = OneVariantPerPlace(ids, seed=0)
    seen: set[str] = set()
    for _ in range(20):
        epoch = [ids[i] for i in sampler]
        assert len(epoch) == len(sampler) == 6
        assert len({place_of(i) for i in epoch}) == 6
        seen.update(epoch)
    assert seen == set(ids)  # every variant shows up over the epochs


def test_features_save_load_and_corrupt_file(tmp_path: Path):
    features = synthetic_features(places=4, variants=1)
    loaded = PairFeatures.load(features.save(tmp_path / "f.npz"))
    assert np.array_equal(loaded.audio_tokens, features.audio_tokens)
    assert loaded.encoder_ids == features.encoder_ids
    assert len(loaded.split("eval")) == 1
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(InputError, match=r"bad\.npz"):
        PairFeatures.load(tmp_path / "bad.npz")


def test_linear_map_baseline_finds_a_linear_relation():
    features = synthetic_features()
    train, evaluation = features.split("train"), features.split("eval")
    mapped = linear_map_baseline(train, evaluation)
    assert mapped["image"].shape == mapped["audio"].shape == (len(evaluation), 16)
    similarity = mapped["image"] @ mapped["audio"].T
    same = evaluation.labels[similarity.argmax(1)] == evaluation.labels
    assert same.mean() > 0.5  # 4 classes: chance is 0.25


@pytest.mark.slow
def test_fit_learns_resumes_and_checkpoints(tmp_path: Path):
    from geosound.training.fit import fit_sat2sound

    features = synthetic_features()
    config = TrainConfig(
        preset="tiny", epochs=30, batch_size=8, learning_rate=3e-3, val_every=10, seed=1
    )
    model = fit_sat2sound(features, tmp_path / "run", config, progress_bar=False)
    last = tmp_path / "run" / "lightning" / "last.ckpt"
    assert last.exists()
    assert list((tmp_path / "run" / "logs").rglob("metrics.csv"))

    evaluation = features.split("eval")
    embeddings = embed_pairs(model, evaluation)
    nearest = (embeddings["image"] @ embeddings["audio"].T).argmax(1)
    assert (evaluation.labels[nearest] == evaluation.labels).mean() > 0.5

    steps_before = torch.load(last, weights_only=False)["global_step"]
    config.epochs = 33
    fit_sat2sound(features, tmp_path / "run", config, progress_bar=False)
    steps_after = torch.load(last, weights_only=False)["global_step"]
    assert steps_after - steps_before == 3 * (18 // 8)  # resumed: only 3 more epochs ran

    path = tmp_path / "model.pt"
    model_id = save_checkpoint(path, model, features.encoder_ids, {"note": "test"})
    loaded = load_checkpoint(path)
    assert loaded.model_id == model_id and loaded.info == {"note": "test"}
    assert loaded.encoders == features.encoder_ids
    again = embed_pairs(loaded.model, evaluation)
    assert np.allclose(again["image"], embeddings["image"], atol=1e-6)


def test_checkpoint_errors_name_the_file(tmp_path: Path):
    with pytest.raises(InputError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x80\x04garbage")
    with pytest.raises(InputError, match=r"corrupt\.pt: not a readable checkpoint"):
        load_checkpoint(corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(InputError, match="not a geosound Sat2Sound checkpoint"):
        load_checkpoint(foreign)


def test_failed_checkpoint_save_keeps_the_old_file(tmp_path: Path, monkeypatch):
    path = tmp_path / "model.pt"
    model = build_sat2sound("tiny", image_dim=8, audio_dim=8, text_dim=8)
    save_checkpoint(path, model, {"image": "a"})
    before = path.read_bytes()

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, {"image": "b"})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


# --------------------------------------------------------------------------- augmentation


def test_image_augmentations_keep_shape_range_and_are_seeded():
    from geosound.training.augment import augment_image

    image = np.random.default_rng(0).random((3, 64, 64)).astype(np.float32)
    names = ("dihedral", "gsd", "colour", "sensor")
    views = [augment_image(image, np.random.default_rng([0, v]), names) for v in range(6)]
    for view in views:
        assert view.shape == image.shape and view.dtype == np.float32
        assert view.min() >= 0.0 and view.max() <= 1.0
    again = augment_image(image, np.random.default_rng([0, 3]), names)
    assert np.array_equal(again, views[3])
    assert not np.allclose(views[1], views[2])
    # a dihedral view is an exact rotation/flip: same pixels, rearranged
    turned = augment_image(image, np.random.default_rng(5), ("dihedral",))
    assert np.allclose(np.sort(turned, axis=None), np.sort(image, axis=None))
    with pytest.raises(InputError, match="unknown image augmentation"):
        from geosound.training.augment import check_augmentations

        check_augmentations(["rot45"])


def test_sensor_views_change_colour_balance_keep_layout_and_add_grey():
    from geosound.training.augment import augment_image

    image = np.random.default_rng(1).random((3, 32, 32)).astype(np.float32) * 0.5 + 0.25
    views = [augment_image(image, np.random.default_rng([2, v]), ("sensor",)) for v in range(60)]
    band_means = np.array([view.mean(axis=(1, 2)) for view in views])
    assert band_means.std(axis=0).min() > 0.03  # every band's level moves from view to view
    grey = [
        view for view in views if np.allclose(view[0], view[1]) and np.allclose(view[1], view[2])
    ]
    assert 1 <= len(grey) <= 15  # about one view in ten, not none and not most
    # per-band affine + saturation keeps where things are: pixel order within a band of a
    # grey view follows the original luminance
    luminance = image.mean(axis=0).ravel()
    assert np.corrcoef(grey[0][0].ravel(), luminance)[0, 1] > 0.95


def test_gsd_resampling_removes_pixel_level_detail():
    from geosound.training.augment import _gsd

    checker = (np.indices((64, 64)).sum(0) % 2).astype(np.float32)
    image = np.stack([checker] * 3)
    for seed in range(8):
        out = _gsd(image, np.random.default_rng(seed))
        assert out.shape == image.shape
        assert out.std() < image.std()  # a pixel-level checkerboard does not survive resampling


def test_views_are_sampled_per_item_and_blocks_dropped():
    from geosound.training.augment import ImageViews
    from geosound.training.data_module import PairDataset

    features = synthetic_features(places=8, variants=1).split("train")
    tokens = np.stack(
        [np.full((3, 4, 32), fill, dtype=np.float16) for fill in range(len(features))]
    )
    tokens[:, 1:] += 100  # views 1 and 2 differ from view 0
    views = ImageViews(tokens, np.arange(len(features)))
    torch.manual_seed(0)
    dataset = PairDataset(features, views, audio_block_drop=0.99)
    seen = {float(dataset[2]["image_tokens"][0, 0]) for _ in range(40)}
    assert seen == {2.0, 102.0}
    masks = [dataset[0]["audio_mask"] for _ in range(20)]
    assert all(int(m.sum()) == 2 for m in masks)  # one of the three blocks hidden
    plain = PairDataset(features)
    assert int(plain[0]["audio_mask"].sum()) == 3
    with pytest.raises(ValueError, match="view indexes"):
        PairDataset(features, ImageViews(tokens, np.arange(3)))


def test_recorded_configs_from_before_the_sources_rebuild_the_old_pairs():
    old = {"epochs": 400, "seed": 0, "eval_fraction": 0.3}
    config = TrainConfig.from_recorded(old)
    assert config.imagery == ["eurosat_ms"] and config.sounds == ["esc50"]
    assert config.variants == 6 and config.mix_bank == 0 and config.image_views == 1
    assert TrainConfig.from_recorded(TrainConfig().to_dict()) == TrainConfig()
    with pytest.raises(InputError, match="audio_block_drop"):
        TrainConfig(audio_block_drop=1.0).validate()


class _QuadrantImageEncoder(Encoder):
    """Deterministic stand-in: four tokens, the mean colour of each image quadrant."""

    name: ClassVar[str] = "quadrant-test"
    modality: ClassVar[Any] = "image"
    dim: ClassVar[int] = 3

    def __init__(self) -> None:
        super().__init__(batch_size=4)
        self.calls = 0

    def _load(self) -> Any:
        return object()

    def _encode_batch(self, items: Sequence[Any]) -> Encoding:
        self.calls += len(items)
        batch = torch.as_tensor(np.stack([np.asarray(item) for item in items]))
        h, w = batch.shape[-2] // 2, batch.shape[-1] // 2
        cells = [
            batch[:, :, i * h : (i + 1) * h, j * w : (j + 1) * w] for i in (0, 1) for j in (0, 1)
        ]
        tokens = torch.stack([cell.mean(dim=(2, 3)) for cell in cells], dim=1)
        return Encoding(tokens.mean(1), tokens, torch.ones(tokens.shape[:2], dtype=torch.bool))


def test_image_views_are_encoded_once_and_view_zero_is_the_tile(tmp_path: Path):
    import rasterio
    from rasterio.transform import from_origin

    from geosound.training.augment import encode_image_views

    paths = []
    for i in range(3):
        pixels = np.random.default_rng(i).integers(0, 255, (3, 16, 16), dtype=np.uint8)
        path = tmp_path / f"tile{i}.tif"
        profile = {"driver": "GTiff", "width": 16, "height": 16, "count": 3, "dtype": "uint8"}
        with rasterio.open(
            path, "w", crs="EPSG:32632", transform=from_origin(0, 160, 10, 10), **profile
        ) as dst:
            dst.write(pixels)
        paths.append(str(path))
    refs = [paths[0], paths[1], paths[0], paths[2]]  # two pairs share tile 0
    encoder = _QuadrantImageEncoder()
    views = encode_image_views(
        refs, 3, ("dihedral", "gsd", "colour"), 0, encoder, tmp_path / "cache"
    )
    assert views.tokens.shape == (3, 3, 4, 3) and views.views == 3
    assert views.index.tolist() == [0, 1, 0, 2]
    assert encoder.calls == 9
    plain = encoder.encode([np.asarray(read_image_ref(paths[1]))]).tokens[0].numpy()
    np.testing.assert_allclose(views.tokens[1, 0].astype(np.float32), plain, atol=1e-3)
    assert not np.allclose(views.tokens[1, 1], views.tokens[1, 0], atol=1e-3)
    again = encode_image_views(
        refs, 3, ("dihedral", "gsd", "colour"), 0, encoder, tmp_path / "cache"
    )
    assert encoder.calls == 9 + 1  # all views from the cache (+1: the plain check above)
    np.testing.assert_array_equal(again.tokens, views.tokens)


def test_feature_bundles_with_pandas_strings_round_trip(tmp_path: Path):
    features = synthetic_features(places=4, variants=1)
    features.ids = features.ids.astype(object)  # what manifest["id"].to_numpy() gives
    loaded = PairFeatures.load(features.save(tmp_path / "f.npz"))
    assert loaded.ids.tolist() == features.ids.tolist()
    np.testing.assert_array_equal(loaded.image_tokens, features.image_tokens)


def test_a_metadata_model_learns_from_its_pairs_place_and_time(tmp_path: Path):
    """Images that say nothing, an hour that says the class: only a model that is trained and
    evaluated on each pair's time (``PairFeatures.hour`` → batches and ``embed_pairs``) can
    pair the images with the right sounds."""
    import dataclasses

    from geosound.training.data_module import PairDataModule
    from geosound.training.fit import fit_sat2sound

    features = synthetic_features()
    rng = np.random.default_rng(3)
    classes = np.array([int(label.removeprefix("class")) for label in features.labels])
    features = dataclasses.replace(
        features,
        image_tokens=rng.normal(size=features.image_tokens.shape).astype(np.float32),
        lat=np.full(len(features), 48.7, dtype=np.float32),
        lon=np.full(len(features), 11.7, dtype=np.float32),
        hour=(6.0 * classes + rng.uniform(0, 1, len(features))).astype(np.float32),
    )
    batch = next(iter(PairDataModule(features, 8, metadata=True).train_dataloader()))
    train = features.split("train")
    hours = train.hour[batch["index"].numpy()]
    angle = torch.atan2(batch["metadata"][:, 7], batch["metadata"][:, 8]) % (2 * np.pi)
    np.testing.assert_allclose(angle.numpy() * 24 / (2 * np.pi), hours, atol=1e-4)
    assert bool((batch["metadata"][:, 6] == 0).all() and (batch["metadata"][:, 9] == 1).all())

    config = TrainConfig(preset="tiny", epochs=30, batch_size=8, learning_rate=3e-3,
                         val_every=10, seed=1, model={"use_metadata": True})  # fmt: skip
    model = fit_sat2sound(features, tmp_path / "run", config, progress_bar=False)

    def class_accuracy(pairs: PairFeatures) -> float:
        embeddings = embed_pairs(model, pairs)
        nearest = (embeddings["image"] @ embeddings["audio"].T).argmax(1)
        return float((pairs.labels[nearest] == pairs.labels).mean())

    evaluation = features.split("eval")
    unknown = dataclasses.replace(evaluation, hour=np.full(len(evaluation), np.nan, np.float32))
    assert class_accuracy(evaluation) > 0.7  # chance 0.25
    assert class_accuracy(unknown) < 0.5  # the same model, the time flagged unknown
