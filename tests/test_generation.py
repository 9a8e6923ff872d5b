"""GeoKD retrieval, guided DDIM sampling and a tiny SounDiT training run that resumes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geosound.errors import DataError, InputError
from geosound.generation.geokd import KnowledgeBase, Neighbour, consensus, haversine_km
from geosound.generation.sampling import GuidanceScales, ddim_scheduler, sample_latents
from geosound.models.soundit import SceneCondition, SoundCondition, build_soundit
from geosound.training.generator import (
    GeneratorTrainConfig,
    SounDiTModule,
    fit_autoencoder,
    fit_soundit,
    scene_word,
)

SOUND_DIM, SCENE_DIM = 16, 8


def tiny_model():
    torch.manual_seed(0)
    return build_soundit(
        "tiny",
        hidden_dim=32,
        depth=2,
        heads=4,
        sound_dim=SOUND_DIM,
        scene_dim=SCENE_DIM,
        latent_size=8,
        num_experts=2,
    )


def knowledge_base() -> KnowledgeBase:
    tie = np.array([1.0, 0.0, 0.0])
    embeddings = np.stack([tie, tie, [0.0, 1.0, 0.0], [0.6, 0.8, 0.0]])
    return KnowledgeBase(
        ids=["far", "near", "other", "unlocated"],
        embeddings=embeddings,
        scenes=["forest", "river", "industrial", "pasture"],
        latents=np.arange(4 * 2 * 2 * 2, dtype=np.float32).reshape(4, 2, 2, 2),
        lon=np.array([100.0, 2.4, 2.35, np.nan]),
        lat=np.array([10.0, 48.9, 48.85, np.nan]),
        space_id="sat2sound:test",
    )


def test_haversine_paris_london() -> None:
    distance = haversine_km(2.3522, 48.8566, np.array([-0.1276]), np.array([51.5072]))
    assert distance[0] == pytest.approx(343.5, abs=1.0)


def test_geokd_sound_only_and_a_closer_neighbour_winning_a_tie() -> None:
    kb = knowledge_base()
    query = np.array([1.0, 0.0, 0.0])
    sound_only = kb.retrieve(query, k=2)
    assert [n.id for n in sound_only] == ["far", "near"]  # tied sounds: index order
    assert sound_only[0].distance_km is None
    located = kb.retrieve(query, lon=2.35, lat=48.86, k=2)
    assert located[0].id == "near" and located[1].id == "far"
    assert located[0].distance_km == pytest.approx(
        float(haversine_km(2.35, 48.86, np.array([2.4]), np.array([48.9]))[0])
    )
    # Proximity re-weights, it does not override: a near place that sounds different loses
    # to a far one that sounds the same unless the weight says location matters most.
    assert kb.retrieve(query, lon=2.35, lat=48.85, k=1)[0].id == "near"
    assert kb.retrieve(np.array([0.0, 1.0, 0.0]), lon=100.0, lat=10.0, k=1)[0].id == "other"
    assert (
        kb.retrieve(np.array([0.0, 1.0, 0.0]), lon=2.35, lat=48.85, k=1, geo_weight=0.0)[0].id
        == "other"
    )
    unlocated = [n for n in kb.retrieve(query, lon=0.0, lat=0.0, k=4) if n.id == "unlocated"]
    assert unlocated[0].distance_km is None
    with pytest.raises(InputError, match="space"):
        kb.retrieve(query, space_id="sat2sound:other")
    only_other = kb.retrieve(query, k=3, scene=str(kb.scenes[2]))
    assert [n.id for n in only_other] == ["other"]  # every entry of that scene, and no more
    assert kb.retrieve(query, scene="desert") == []
    assert [n.id for n in kb.retrieve(query, k=3, scene=" Industrial")] == ["other"]
    with pytest.raises(InputError, match="both lon and lat"):
        kb.retrieve(query, lon=1.0)


def test_geokd_round_trip(tmp_path) -> None:
    kb = knowledge_base()
    loaded = KnowledgeBase.load(kb.save(tmp_path / "geokd.npz"))
    assert loaded.space_id == kb.space_id and list(loaded.ids) == list(kb.ids)
    assert np.allclose(loaded.latents, kb.latents)
    assert np.isnan(loaded.lon[3])
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(DataError):
        KnowledgeBase.load(tmp_path / "bad.npz")


def test_consensus_takes_the_neighbourhoods_scene_and_its_best_ranked_layout() -> None:
    def entry(rank: int, scene: str) -> Neighbour:
        return Neighbour(rank, f"e{rank}", scene, 1.0 - rank / 10, None, 1.0 - rank / 10)

    ranked = [entry(0, "river"), entry(1, "forest"), entry(2, "pasture"), entry(3, "forest")]
    agreed = consensus(ranked)
    assert (agreed.scene, agreed.layout.id) == ("forest", "e1")
    assert agreed.votes == {"forest": 2, "river": 1, "pasture": 1}  # ties: by best rank
    assert consensus(ranked[:1]).layout.id == "e0"
    tie = consensus([entry(0, "river"), entry(1, "forest")])
    assert tie.scene == "river"  # the better-ranked entry breaks a tie
    with pytest.raises(ValueError):
        consensus([])


def conditions(batch: int) -> tuple[SoundCondition, SceneCondition]:
    torch.manual_seed(3)
    sound = SoundCondition(
        torch.randn(batch, 3, SOUND_DIM),
        torch.ones(batch, 3, dtype=torch.bool),
        torch.randn(batch, SOUND_DIM),
    )
    return sound, SceneCondition.from_pooled(torch.randn(batch, SCENE_DIM))


def randomised(model):
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    return model.eval()


def test_ddim_sampling_runs_seeded_with_and_without_rag() -> None:
    model = randomised(tiny_model())
    sound, scene = conditions(2)
    steps_done: list[int] = []

    def run(**kwargs):
        return sample_latents(
            model,
            ddim_scheduler(),
            2,
            sound,
            scene,
            steps=4,
            generator=torch.Generator().manual_seed(7),
            **kwargs,
        )

    first = run(progress=lambda done, total: steps_done.append(total))
    assert first.shape == (2, 4, 8, 8) and torch.isfinite(first).all()
    assert torch.equal(first, run())  # seeded
    assert steps_done == [4] * 4
    layout = torch.randn(2, 4, 8, 8)
    rag_steps: list[int] = []
    rag = run(init_latents=layout, strength=0.5, progress=lambda d, t: rag_steps.append(t))
    assert rag_steps == [2, 2]  # half the schedule from the noised layout
    far = run(init_latents=layout, strength=1.0)
    # Starting late in the schedule keeps more of the layout than starting from noise.
    assert float((rag - layout).pow(2).mean()) < float((far - layout).pow(2).mean())
    no_scene = sample_latents(model, ddim_scheduler(), 2, sound, None, steps=2)
    unconditional = sample_latents(model, ddim_scheduler(), 2, None, None, steps=2)
    assert no_scene.shape == unconditional.shape
    with pytest.raises(ValueError, match="steps"):
        sample_latents(model, ddim_scheduler(), 1, steps=0)
    with pytest.raises(ValueError, match="strength"):
        run(init_latents=layout, strength=0.0)
    assert GuidanceScales().sound > 1


def test_ema_follows_the_model_by_its_warmed_up_decay() -> None:
    model = tiny_model()
    module = SounDiTModule(model, *synthetic_tensors(4), GeneratorTrainConfig(ema_decay=0.9))
    module.ema.update_parameters(model)  # the first update copies
    for updates in (1, 2, 200):  # decay (1+n)/(10+n) = 0.18, 0.25, then capped at 0.9
        module.ema.n_averaged.fill_(updates)
        before = module.ema.module.final.linear.bias.detach().clone()
        with torch.no_grad():
            model.final.linear.bias.add_(1.0)
        module.ema.update_parameters(model)
        after = module.ema.module.final.linear.bias.detach()
        rate = min(0.9, (1 + updates) / (10 + updates))
        assert torch.allclose(after, rate * before + (1 - rate) * model.final.linear.bias.detach())


def test_the_ema_forgets_its_zero_start_in_a_short_run() -> None:
    from geosound.training.generator import ema_decay_at

    # weight left on the initial (ε = 0) model after the shipped recipe's ~1,400 updates
    kept = float(np.prod([ema_decay_at(0.999, n) for n in range(1, 1400)]))
    assert kept < 1e-3 < 0.999**1400


def synthetic_tensors(pairs: int):
    generator = torch.Generator().manual_seed(0)
    tiles = max(1, pairs // 2)
    mean = torch.randn(tiles, 4, 8, 8, generator=generator)
    std = torch.full((tiles, 4, 8, 8), 0.05)
    pair_image = torch.arange(pairs) % tiles
    sound = SoundCondition(
        torch.randn(pairs, 3, SOUND_DIM, generator=generator),
        torch.ones(pairs, 3, dtype=torch.bool),
        torch.randn(pairs, SOUND_DIM, generator=generator),
    )
    scenes = torch.randn(2, SCENE_DIM, generator=generator)
    return mean, std, pair_image, sound, scenes, torch.arange(pairs) % 2


def test_tiny_training_lowers_the_loss_and_resumes(tmp_path) -> None:
    config = GeneratorTrainConfig(epochs=6, batch_size=8, learning_rate=2e-3, seed=0)
    module = SounDiTModule(tiny_model(), *synthetic_tensors(32), config)
    pairs = torch.arange(32)

    def held_loss() -> float:
        with torch.no_grad():
            return float(module.diffusion_loss(pairs, torch.Generator().manual_seed(5), keep=False))

    start = held_loss()
    assert start == pytest.approx(1.0, abs=0.15)  # a fresh model predicts ε = 0
    run_dir = tmp_path / "soundit"
    ema = fit_soundit(module, pairs, run_dir)
    trained = held_loss()
    assert trained < 0.8 * start
    last = run_dir / "lightning" / "last.ckpt"
    first_step = torch.load(last, weights_only=False)["global_step"]  # Lightning's own file
    assert first_step == 6 * 4
    # Resume: a new module and more epochs continue from last.ckpt, not from scratch.
    config.epochs = 8
    resumed = SounDiTModule(tiny_model(), *synthetic_tensors(32), config)
    fit_soundit(resumed, pairs, run_dir)
    assert torch.load(last, weights_only=False)["global_step"] == 8 * 4
    assert not torch.equal(resumed.model.final.linear.bias, tiny_model().final.linear.bias)
    assert isinstance(ema.config.hidden_dim, int)


def test_a_killed_fit_resumes_from_its_last_finished_epoch(tmp_path) -> None:
    from lightning.pytorch.callbacks import Callback

    from geosound.training.fit import fit_resuming, resumable_trainer
    from geosound.training.generator import _loader

    class Killed(Exception):
        pass

    class KillAtEpoch(Callback):
        def __init__(self, epoch: int | None) -> None:
            self.epoch, self.batches = epoch, 0

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            if trainer.current_epoch == self.epoch:
                raise Killed

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.batches += 1

    config = GeneratorTrainConfig(epochs=4, batch_size=8, seed=0)
    pairs, run_dir = torch.arange(32), tmp_path / "soundit"
    last = run_dir / "lightning" / "last.ckpt"

    def fit(until: int | None) -> int:
        trainer = resumable_trainer(run_dir, config.epochs, None, limit_val_batches=0)
        watcher = KillAtEpoch(until)
        trainer.callbacks.append(watcher)
        module = SounDiTModule(tiny_model(), *synthetic_tensors(32), config)
        fit_resuming(trainer, module, run_dir, train_dataloaders=_loader(pairs, 8, 0))
        return watcher.batches

    with pytest.raises(Killed):
        fit(until=2)  # killed as its third epoch starts
    assert torch.load(last, weights_only=False)["global_step"] == 2 * 4  # two epochs kept
    assert not list(last.parent.glob("*.tmp*"))
    assert fit(until=None) == 2 * 4  # the rerun runs only the two epochs left
    assert torch.load(last, weights_only=False)["global_step"] == 4 * 4


def test_autoencoder_fit_runs_and_measures_its_scale(tmp_path) -> None:
    images = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    config = GeneratorTrainConfig(autoencoder_epochs=1, batch_size=4)
    codec = fit_autoencoder(images, tmp_path / "ae", config)
    assert codec.scaling_factor > 0 and codec.downsampling == 4
    assert (tmp_path / "ae" / "lightning" / "last.ckpt").is_file()
    with torch.no_grad():
        assert codec.encode(images).shape == (8, 4, 4, 4)


def test_scene_words_and_config_checks() -> None:
    assert scene_word("AnnualCrop") == "annual crop"
    assert scene_word("Forest") == "forest"
    with pytest.raises(InputError, match="epochs"):
        GeneratorTrainConfig(epochs=0).validate()
    with pytest.raises(InputError, match="unknown"):
        GeneratorTrainConfig.from_dict({"epoch": 3})


def test_landscape_generator_uses_the_retrieved_scene_and_layout() -> None:
    from geosound.generation.generator import GenerationOptions, LandscapeGenerator
    from geosound.models.autoencoder import AutoencoderConfig, LatentCodec, build_autoencoder
    from geosound.models.soundit_checkpoint import LoadedGenerator

    model = randomised(tiny_model())
    ae_config = AutoencoderConfig(image_size=32, block_out_channels=[16, 16, 16], norm_num_groups=8)
    codec = LatentCodec(build_autoencoder(ae_config).eval(), 1.0, ae_config)
    scenes = {"forest": torch.randn(SCENE_DIM), "river": torch.randn(SCENE_DIM)}
    loaded = LoadedGenerator(model, codec, "soundit-x", "sat2sound:t", {}, scenes, {})
    sound, _ = conditions(1)
    direction = sound.embedding[0].numpy()
    kb = KnowledgeBase(
        ["a", "b"],
        np.stack([direction, -direction]),
        ["river", "forest"],
        np.zeros((2, 4, 8, 8), np.float32),
        np.array([np.nan, np.nan]),
        np.array([np.nan, np.nan]),
        "sat2sound:t",
    )
    generator = LandscapeGenerator(loaded, kb)
    image = generator.generate(sound, options=GenerationOptions(steps=2))
    assert image.pixels.shape == (3, 32, 32)
    assert (image.scene, image.scene_source) == ("river", "retrieved")
    assert image.neighbours[0].id == "a"
    given = generator.generate(sound, "Forest", options=GenerationOptions(steps=2))
    assert given.scene_source == "given"
    plain = LandscapeGenerator(loaded).generate(sound, options=GenerationOptions(steps=2))
    assert plain.scene_source == "none" and plain.neighbours == []
    with pytest.raises(InputError, match="known scenes: forest, river"):
        generator.generate(sound, "desert")
    with pytest.raises(InputError, match="voters"):
        generator.generate(sound, options=GenerationOptions(steps=2, voters=0))

    # The nearest entry is a river, but most of the neighbourhood is forest: the vote draws
    # forest from the best-ranked forest entry's layout; one voter takes the nearest alone.
    orthogonal = np.linalg.svd(direction[None])[2][1]
    near = [direction, 0.9 * direction + 0.3 * orthogonal, 0.8 * direction + 0.5 * orthogonal]
    crowd = KnowledgeBase(
        ["river", "forest 1", "forest 2"],
        np.stack(near),
        ["river", "forest", "forest"],
        np.zeros((3, 4, 8, 8), np.float32),
        np.full(3, np.nan),
        np.full(3, np.nan),
        "sat2sound:t",
    )
    voted = LandscapeGenerator(loaded, crowd).generate(sound, options=GenerationOptions(steps=2))
    assert voted.scene == "forest" and voted.layout is not None and voted.layout.id == "forest 1"
    assert voted.retrieved is not None and voted.retrieved.votes == {"forest": 2, "river": 1}
    assert voted.neighbours[0].id == "river"
    alone = LandscapeGenerator(loaded, crowd).generate(
        sound, options=GenerationOptions(steps=2, voters=1)
    )
    assert alone.scene == "river" and alone.layout is not None and alone.layout.id == "river"
    unstarted = LandscapeGenerator(loaded, crowd).generate(
        sound, options=GenerationOptions(steps=2, use_rag=False)
    )
    assert unstarted.layout is None and unstarted.scene == "forest"
    # A scene the caller names starts from its own best-ranked entry, not the voted scene's.
    chosen = LandscapeGenerator(loaded, crowd).generate(
        sound, " River", options=GenerationOptions(steps=2)
    )
    assert chosen.scene_source == "given" and chosen.layout is not None
    assert chosen.layout.id == "river" and chosen.retrieved is not None
    assert chosen.retrieved.scene == "forest"  # the vote is still recorded as it fell
    agreeing = LandscapeGenerator(loaded, crowd).generate(
        sound, "forest", options=GenerationOptions(steps=2)
    )
    assert agreeing.layout is not None and agreeing.layout.id == "forest 1"
    other = KnowledgeBase(
        ["a"], direction[None], ["river"], np.zeros((1, 4, 8, 8)), [0.0], [0.0], "x"
    )
    with pytest.raises(InputError, match="knowledge base is in x"):
        LandscapeGenerator(loaded, other)


def test_generator_data_bundle_reads_back_the_strings_pandas_hands_out(tmp_path) -> None:
    from geosound.training.generator import GeneratorData

    pairs, tokens = 3, 2
    strings = np.array(["train", "eval", "train"], dtype=object)  # what pandas' to_numpy gives
    data = GeneratorData(
        images=np.zeros((2, 3, 8, 8), np.uint8),
        image_splits=np.array(["train", "eval"], dtype=object),
        pair_ids=np.array(["a", "b", "c"], dtype=object),
        pair_image=np.array([0, 1, 0]),
        pair_splits=strings,
        labels=np.array(["Forest", "River", "Forest"], dtype=object),
        scene_index=np.array([0, 1, 0]),
        lon=np.array([1.0, np.nan, 2.0]),
        lat=np.array([3.0, np.nan, 4.0]),
        sound_tokens=np.ones((pairs, tokens, 4), np.float32),
        sound_mask=np.ones((pairs, tokens), bool),
        sound_embedding=np.ones((pairs, 4), np.float32),
        scene_words=np.array(["forest", "river"]),
        scene_embeddings=np.ones((2, 5), np.float32),
        meta={"sound_space": "sat2sound:x"},
    )
    loaded = GeneratorData.load(data.save(tmp_path / "generator_data.npz"))
    assert loaded.pair_splits.tolist() == ["train", "eval", "train"]
    assert loaded.labels.tolist() == ["Forest", "River", "Forest"]
    assert loaded.meta == {"sound_space": "sat2sound:x"}
    np.testing.assert_array_equal(loaded.lon, data.lon)


def test_train_generator_cli_defaults_are_the_training_defaults() -> None:
    import inspect

    from geosound.cli.generate import train_generator_command

    defaults = {
        n: p.default for n, p in inspect.signature(train_generator_command).parameters.items()
    }
    config = GeneratorTrainConfig()
    for name in ("preset", "epochs", "autoencoder_epochs", "batch_size", "seed"):
        assert defaults[name] == getattr(config, name), name
