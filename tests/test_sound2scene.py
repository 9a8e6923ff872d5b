"""The Sound2Scene path: the audio aligner, its loss and training, the visual condition, and a
generator checkpoint that carries its aligner (METHODS.md §5)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from geosound.errors import InputError
from geosound.models.aligner import AlignerConfig, AudioAligner, distance_info_nce
from geosound.models.soundit import vector_condition
from geosound.training.aligner import alignment_metrics, fit_aligner


def test_distance_info_nce_is_the_symmetric_cross_entropy_of_negative_distances() -> None:
    rng = torch.Generator().manual_seed(0)
    audio = F.normalize(torch.randn(5, 4, generator=rng), dim=-1)
    visual = F.normalize(torch.randn(5, 4, generator=rng), dim=-1)
    logits = -3.0 * torch.cdist(audio, visual)
    target = torch.arange(5)
    expected = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    assert distance_info_nce(audio, visual, 3.0) == pytest.approx(float(expected), rel=1e-5)
    # Paired rows that coincide score far better than the same rows paired at random.
    assert distance_info_nce(visual, visual, 10.0) < distance_info_nce(audio, visual, 10.0)
    # Inputs are normalised inside: scaling a row changes nothing.
    assert distance_info_nce(audio * 7, visual, 3.0) == pytest.approx(float(expected), rel=1e-5)
    # Identical pairs have zero distance and a finite gradient there.
    same = visual.clone().requires_grad_(True)
    distance_info_nce(same, visual, 10.0).backward()
    assert same.grad is not None and torch.isfinite(same.grad).all()


def test_aligner_gives_unit_vectors_and_ignores_masked_tokens() -> None:
    torch.manual_seed(0)
    aligner = AudioAligner(AlignerConfig(audio_dim=8, visual_dim=6, hidden_dim=16)).eval()
    tokens = torch.randn(2, 4, 8)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    out = aligner(tokens, mask)
    assert out.shape == (2, 6)
    assert torch.allclose(out.norm(dim=-1), torch.ones(2), atol=1e-5)
    padded = tokens.clone()
    padded[0, 2:] = torch.randn(2, 8) * 10  # what the mask hides cannot move the vector
    assert torch.allclose(aligner(padded, mask)[0], out[0], atol=1e-6)
    assert not torch.allclose(aligner(padded)[0], out[0], atol=1e-3)
    with pytest.raises(ValueError, match="should be"):
        aligner(torch.randn(2, 4, 7))
    with pytest.raises(ValueError, match="AlignerConfig keys: width"):
        AlignerConfig.from_dict({"audio_dim": 8, "width": 3})
    assert AlignerConfig.from_dict(aligner.config.to_dict()) == aligner.config


def synthetic_pairs(n: int, seed: int = 0):
    """Tokens whose mean maps linearly onto the targets: an aligner can learn each pair."""
    rng = np.random.default_rng(seed)
    tokens = torch.from_numpy(rng.normal(size=(n, 5, 12)).astype(np.float32))
    mask = torch.ones(n, 5, dtype=torch.bool)
    projection = torch.from_numpy(rng.normal(size=(12, 10)).astype(np.float32))
    targets = F.normalize(tokens.mean(1) @ projection, dim=-1)
    return tokens, mask, targets


def test_fit_aligner_puts_held_out_recordings_on_their_own_tiles() -> None:
    tokens, mask, targets = synthetic_pairs(300)
    train, held_out = np.arange(240), np.arange(240, 300)
    small = AlignerConfig(audio_dim=12, visual_dim=10, hidden_dim=64)
    untrained = alignment_metrics(AudioAligner(small).eval(), tokens, mask, targets, held_out)
    seen: list[float] = []
    fit = fit_aligner(tokens, mask, targets, train, held_out, epochs=40, learning_rate=3e-3,
                      seed=0, batch_size=64, config=small,
                      progress=lambda f, m: seen.append(f))  # fmt: skip
    metrics = fit.metrics
    assert metrics["pairs"] == 60 and metrics["recall_at_10_chance"] == round(10 / 60, 4)
    # Held-out pairs (never trained on) land near their own tile, far above chance and above
    # the untrained aligner; the own tile is much closer than the others.
    assert metrics["recall_at_10"] >= 0.8 > untrained["recall_at_10"] + 0.3
    assert metrics["cosine"] > metrics["cosine_other"] + 0.3
    assert metrics["loss"] < untrained["loss"]
    assert seen[-1] == 1.0 and len(seen) == 40 and not fit.aligner.training
    # Seeded: the same call gives the same weights.
    again = fit_aligner(tokens, mask, targets, train, held_out, epochs=40, learning_rate=3e-3,
                        seed=0, batch_size=64, config=small)  # fmt: skip
    assert again.metrics == metrics


def test_vector_condition_is_one_unit_token() -> None:
    condition = vector_condition(torch.tensor([[3.0, 4.0], [0.0, 2.0]]))
    assert condition.tokens.shape == (2, 1, 2) and condition.mask.all()
    torch.testing.assert_close(condition.embedding, torch.tensor([[0.6, 0.8], [0.0, 1.0]]))
    torch.testing.assert_close(condition.tokens[:, 0], condition.embedding)


def tiny_generator(sound_dim: int = 10):
    from geosound.models.autoencoder import AutoencoderConfig, LatentCodec, build_autoencoder
    from geosound.models.soundit import build_soundit

    torch.manual_seed(0)
    model = build_soundit("tiny", hidden_dim=32, depth=1, heads=4, sound_dim=sound_dim,
                          scene_dim=8, latent_size=8, num_experts=2)  # fmt: skip
    config = AutoencoderConfig(image_size=32, block_out_channels=[16, 16, 16], norm_num_groups=8)
    return model, LatentCodec(build_autoencoder(config).eval(), 1.0, config)


def test_a_generator_checkpoint_carries_its_aligner(tmp_path: Path) -> None:
    from geosound.generation.hearing import Listener, aligned_condition
    from geosound.models.soundit_checkpoint import load_generator, save_generator

    model, codec = tiny_generator()
    aligner = AudioAligner(AlignerConfig(audio_dim=12, visual_dim=10, hidden_dim=16)).eval()
    encoders = {"audio": "aisfx@1", "image": "effnet@1", "text": "minilm-l6@1"}
    visual_id = save_generator(tmp_path / "visual.pt", model, codec, "visual:effnet@1", encoders,
                               {}, aligner=aligner)  # fmt: skip
    sound_id = save_generator(tmp_path / "sound.pt", model, codec, "sat2sound:x", encoders, {})
    assert visual_id != sound_id  # the aligner is part of the model's identity
    loaded = load_generator(tmp_path / "visual.pt")
    assert loaded.via == "visual" and load_generator(tmp_path / "sound.pt").via == "sound"
    assert loaded.aligner is not None and not loaded.aligner.training
    tokens, mask, _ = synthetic_pairs(3)
    torch.testing.assert_close(
        aligned_condition(loaded.aligner, tokens, mask).embedding, aligner(tokens, mask)
    )
    with torch.no_grad():
        aligner.mlp[-1].bias.add_(0.1)
    changed = save_generator(tmp_path / "changed.pt", model, codec, "visual:effnet@1", encoders,
                             {}, aligner=aligner)  # fmt: skip
    assert changed != visual_id
    # It hears through its aligner: a Sat2Sound model given beside it is refused at once.
    with pytest.raises(InputError, match="drop --sat2sound"):
        Listener(loaded, tmp_path / "sound.pt")


def test_generator_data_bundle_round_trips_the_sound2scene_arrays(tmp_path: Path) -> None:
    from geosound.errors import DataError
    from tests.test_evaluate_generator import tiny_bundle

    data = tiny_bundle()
    assert data.image_embedding is None
    with pytest.raises(DataError, match="no audio-encoder tokens"):
        data.audio(np.arange(2))
    with pytest.raises(DataError, match="no image embeddings"):
        data.visual(np.arange(2))
    back = type(data).load(data.save(tmp_path / "plain.npz"))
    assert back.audio_tokens is None and back.image_embedding is None
    rng = np.random.default_rng(0)
    n = len(data.pair_ids)
    data.audio_tokens = rng.normal(size=(n, 4, 12)).astype(np.float32)
    data.audio_mask = np.ones((n, 4), bool)
    data.image_embedding = rng.normal(size=(len(data.images), 10)).astype(np.float32)
    back = type(data).load(data.save(tmp_path / "visual.npz"))
    assert back.audio_tokens is not None and back.audio_tokens.dtype == np.float32
    np.testing.assert_allclose(back.audio_tokens, data.audio_tokens, atol=1e-2)  # float16
    np.testing.assert_array_equal(back.image_embedding, data.image_embedding)
    tokens, mask = back.audio(np.array([3, 1]))
    assert tokens.shape == (2, 4, 12) and mask.dtype == torch.bool
    expected = F.normalize(torch.from_numpy(data.image_embedding[[2]]), dim=-1)
    torch.testing.assert_close(back.visual(np.array([2])).embedding, expected)


def test_train_config_knows_its_conditions() -> None:
    from geosound.training.generator import GeneratorTrainConfig

    assert GeneratorTrainConfig(condition="visual").validate().condition == "visual"
    with pytest.raises(InputError, match="condition must be one of sound, visual"):
        GeneratorTrainConfig(condition="image").validate()
    with pytest.raises(InputError, match="aligner_epochs"):
        GeneratorTrainConfig(aligner_epochs=0).validate()


def test_class_figures_of_the_alignment() -> None:
    from geosound.training.aligner import class_figures

    # Two classes of tiles around opposite directions: recordings that land on their own
    # class's side score 1, recordings sent to the other side 0, a third of them sent wrong 2/3.
    rng = np.random.default_rng(0)
    labels = np.array(["Forest"] * 9 + ["River"] * 9)
    side = torch.from_numpy(np.where(labels == "Forest", 1.0, -1.0)).float()[:, None]
    visual = F.normalize(side * torch.ones(1, 6) + torch.from_numpy(
        rng.normal(scale=0.3, size=(18, 6))).float(), dim=-1)  # fmt: skip
    right = class_figures(visual, visual, labels)
    assert right == {"class_top1": 1.0, "class_top1_chance": 0.5, "class_top1_tiles": 1.0}
    assert class_figures(-visual, visual, labels)["class_top1"] == 0.0
    flipped = visual.clone()
    flipped[::3] *= -1
    assert class_figures(flipped, visual, labels)["class_top1"] == pytest.approx(0.6667)


def test_a_picture_counts_when_every_source_has_a_plausible_cover_in_its_top_k() -> None:
    from geosound.generation.class_representation import covers_of, represented

    classes = ["Forest", "Industrial", "Pasture", "Residential", "River"]
    assert covers_of("cow", classes) == {"Pasture"}
    assert covers_of("chirping_birds", classes) == {"Forest", "Pasture", "River"}
    assert covers_of("sea_waves", classes) == set()  # SeaLake is not among these classes
    probabilities = np.array([
        [0.50, 0.05, 0.30, 0.10, 0.05],  # Forest, then Pasture
        [0.50, 0.05, 0.30, 0.10, 0.05],
        [0.10, 0.60, 0.05, 0.20, 0.05],  # Industrial, then Residential
    ])  # fmt: skip
    covers = [
        [covers_of("crow", classes), covers_of("cow", classes)],  # Forest/River + Pasture: shown
        [covers_of("crow", classes), covers_of("siren", classes)],  # no Industrial in the top 2
        [covers_of("siren", classes)],  # one source: top 1 is Industrial
    ]
    assert represented(probabilities, covers, classes).tolist() == [True, False, True]


def test_train_generator_visual_end_to_end_on_a_tiny_bundle(tmp_path: Path, run_cli) -> None:
    import soundfile as sf

    from geosound.generation.geokd import KnowledgeBase
    from geosound.models.soundit_checkpoint import load_generator
    from tests.test_evaluate_generator import tiny_bundle

    # train-generator reads a run's data bundle back when it is there: write a tiny one with
    # 512-d audio tokens (aiSFX's width, so generate can hear a real recording through it).
    data = tiny_bundle()
    rng = np.random.default_rng(0)
    n = len(data.pair_ids)
    data.audio_tokens = rng.normal(size=(n, 2, 512)).astype(np.float32)
    data.audio_mask = np.ones((n, 2), bool)
    data.image_embedding = data.sound_embedding[np.argsort(data.pair_image)]
    data.meta = {**data.meta, "visual_space": "visual:test"}
    run = tmp_path / "run"
    run.mkdir()
    data.save(run / "generator_data.npz")
    args = ["train-generator", "-o", str(run), "--condition", "visual", "--epochs", "2",
            "--autoencoder-epochs", "1", "--batch-size", "8", "--progress", "none"]  # fmt: skip
    done = run_cli(*args)
    assert done.returncode == 0, done.stderr
    assert "audio aligner on 15 dev eval pairs" in done.stdout
    loaded = load_generator(run / "soundit.pt")
    assert loaded.via == "visual" and loaded.sound_space == "visual:test"
    assert loaded.info["train_config"]["condition"] == "visual"
    assert "aligner_eval" in loaded.info["metrics"]
    knowledge = KnowledgeBase.load(run / "geokd.npz")
    train = np.flatnonzero(data.pair_splits == "train")
    assert knowledge.space_id == "visual:test"
    np.testing.assert_array_equal(knowledge.ids, data.pair_ids[train])
    # Searched by the tiles' own image embeddings (unit), not by the pairs' sounds.
    expected = F.normalize(torch.from_numpy(data.image_embedding[data.pair_image[train]]), dim=-1)
    np.testing.assert_allclose(knowledge.embeddings, expected.numpy(), atol=1e-5)
    wav = tmp_path / "clip.wav"
    sf.write(wav, 0.3 * rng.normal(size=32000).astype(np.float32), 16000)
    drawn = run_cli("generate", "--model", str(run / "soundit.pt"), "--audio", str(wav),
                    "--via", "visual", "--steps", "2", "-o", str(tmp_path / "x.png"))  # fmt: skip
    assert drawn.returncode == 0, drawn.stderr
    assert (tmp_path / "x.png").is_file()
    # The folder's DiT is a Sound2Scene one, of another width: it is not resumed as SounDiT.
    other = run_cli(*[a if a != "visual" else "sound" for a in args])
    assert other.returncode == 2 and "built with condition visual" in other.stderr
    assert len(other.stderr.strip().splitlines()) == 1


def test_a_visual_run_indexes_tiles_not_pair_rows(tmp_path: Path) -> None:
    from geosound.training.generator import GeneratorTrainConfig, run_generator_training
    from tests.test_evaluate_generator import tiny_bundle

    # Two pairs per tile, listed in a shuffled order, so that pair rows and tile rows differ.
    data = tiny_bundle()
    rng = np.random.default_rng(3)
    tiles = len(data.images)
    order = rng.permutation(np.repeat(np.arange(tiles), 2))
    n = len(order)
    data.pair_image = order
    data.pair_ids = np.array([f"pair{i}" for i in range(n)])
    data.pair_splits = data.image_splits[order]
    data.labels = np.array([f"class{i % 5}" for i in range(tiles)])[order]
    data.scene_index = np.arange(tiles)[order] % 5
    data.lon, data.lat = np.full(n, np.nan), np.full(n, np.nan)
    data.sound_tokens = rng.normal(size=(n, 3, 16)).astype(np.float32)
    data.sound_mask = np.ones((n, 3), bool)
    data.sound_embedding = rng.normal(size=(n, 16)).astype(np.float32)
    data.audio_tokens = rng.normal(size=(n, 2, 12)).astype(np.float32)
    data.audio_mask = np.ones((n, 2), bool)
    data.image_embedding = rng.normal(size=(tiles, 16)).astype(np.float32)
    data.meta = {**data.meta, "visual_space": "visual:test"}
    (tmp_path / "run").mkdir()
    data.save(tmp_path / "run" / "generator_data.npz")
    small = {"hidden_dim": 32, "depth": 1, "heads": 4, "num_experts": 2}
    config = GeneratorTrainConfig(condition="visual", epochs=1, autoencoder_epochs=1, batch_size=8,
                                  aligner_epochs=1, model=small)  # fmt: skip
    outcome = run_generator_training(tmp_path / "run", config)
    rows = outcome.knowledge_rows("train")
    train_tiles = np.flatnonzero(data.image_splits == "train")
    # One entry per train tile, each with that tile's own embedding, scene and layout.
    by_id = dict(zip(data.pair_ids, data.pair_image, strict=True))
    tiles_of = np.array([by_id[i] for i in rows["ids"]])
    assert sorted(tiles_of.tolist()) == train_tiles.tolist()
    expected = F.normalize(torch.from_numpy(data.image_embedding[tiles_of]), dim=-1).numpy()
    np.testing.assert_allclose(rows["embeddings"], expected, atol=1e-6)
    np.testing.assert_array_equal(rows["scenes"], data.scene_words[tiles_of % 5])
    np.testing.assert_array_equal(rows["latents"], outcome.latents[tiles_of].numpy())


def test_train_generator_refuses_unknown_imagery_in_one_line(tmp_path: Path, run_cli) -> None:
    done = run_cli("train-generator", "-o", str(tmp_path / "run"), "--imagery", "naip")
    assert done.returncode == 2
    assert "--imagery" in done.stderr and "unknown dev imagery naip" in done.stderr
    assert "eurosat_ms or eurosat_rgb" in done.stderr
    assert not (tmp_path / "run").exists()


def test_a_run_folder_made_from_other_imagery_is_not_resumed(tmp_path: Path) -> None:
    from geosound.errors import InputError
    from geosound.training.generator import GeneratorTrainConfig, prepare_generator_data
    from tests.test_evaluate_generator import tiny_bundle

    made_with = GeneratorTrainConfig(imagery=["eurosat_ms"])
    data = tiny_bundle()
    data.meta = {**data.meta, "data_settings": made_with.data_settings()}
    data.save(tmp_path / "generator_data.npz")
    resumed = prepare_generator_data(tmp_path, GeneratorTrainConfig(imagery=["eurosat_ms"]))
    assert resumed.pair_ids.tolist() == data.pair_ids.tolist()
    both = GeneratorTrainConfig(imagery=["eurosat_rgb", "eurosat_ms"])
    with pytest.raises(InputError, match=r"made with imagery \['eurosat_ms'\] \(now \['eur"):
        prepare_generator_data(tmp_path, both)
    with pytest.raises(InputError, match="imagery must be some of eurosat_ms, eurosat_rgb"):
        GeneratorTrainConfig(imagery=["naip"]).validate()
    # The same sources named in another order, or twice, make the same pairs: resumed.
    data.meta = {**data.meta, "data_settings": both.data_settings()}
    data.save(tmp_path / "generator_data.npz")
    again = GeneratorTrainConfig(imagery=["eurosat_ms", "eurosat_rgb", "eurosat_ms"])
    assert prepare_generator_data(tmp_path, again).pair_ids.tolist() == data.pair_ids.tolist()


def test_train_generator_options_reach_the_model(tmp_path: Path, run_cli) -> None:
    from geosound.models.soundit_checkpoint import load_generator
    from tests.test_evaluate_generator import tiny_bundle

    run = tmp_path / "run"
    run.mkdir()
    tiny_bundle().save(run / "generator_data.npz")
    done = run_cli("train-generator", "-o", str(run), "--global-conditioning",
                   "--plain-cross-attention", "--epochs", "1", "--autoencoder-epochs", "1",
                   "--batch-size", "8", "--progress", "none")  # fmt: skip
    assert done.returncode == 0, done.stderr
    config = load_generator(run / "soundit.pt").model.config
    assert config.global_conditioning and not config.use_moe
    # The folder's checkpoints are of that network: not resumed as another one.
    other = run_cli("train-generator", "-o", str(run), "--epochs", "1", "--progress", "none")
    assert other.returncode == 2 and "networks were built with" in other.stderr
    assert len(other.stderr.strip().splitlines()) == 1


def test_train_separator_refuses_unknown_positives_in_one_line(tmp_path: Path, run_cli) -> None:
    done = run_cli("train-separator", "-o", str(tmp_path / "run"), "--positives", "pair")
    assert done.returncode == 2
    assert "positives must be 'class' or 'clip'; got 'pair'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_run_folders_from_before_the_networks_record_are_read_as_they_recorded(tmp_path: Path):
    from geosound.training.generator import GeneratorTrainConfig, _claim_networks

    visual = tmp_path / "visual"
    (visual / "runs" / "soundit" / "lightning").mkdir(parents=True)
    (visual / "runs" / "soundit" / "lightning" / "last.ckpt").write_bytes(b"weights")
    (visual / "runs" / "soundit" / "condition.txt").write_text("visual\n")
    (visual / "runs" / "architecture.json").write_text(json.dumps(
        {"autoencoder_preset": "tiny", "preset": "tiny", "model": {}}))  # fmt: skip
    with pytest.raises(InputError, match="built with condition visual; give another -o"):
        _claim_networks(visual, GeneratorTrainConfig(condition="sound"))
    with pytest.raises(InputError, match="built with preset tiny; give another -o for preset S"):
        _claim_networks(visual, GeneratorTrainConfig(condition="visual", preset="S"))
    _claim_networks(visual, GeneratorTrainConfig(condition="visual", preset="tiny",
                                                 autoencoder_preset="tiny"))  # fmt: skip
    assert json.loads((visual / "runs" / "networks.json").read_text())["condition"] == "visual"
    # Before either record, a folder with a SounDiT checkpoint held one conditioned on sound.
    sound = tmp_path / "sound"
    (sound / "runs" / "soundit" / "lightning").mkdir(parents=True)
    (sound / "runs" / "soundit" / "lightning" / "last.ckpt").write_bytes(b"weights")
    with pytest.raises(InputError, match="built with condition sound"):
        _claim_networks(sound, GeneratorTrainConfig(condition="visual"))
