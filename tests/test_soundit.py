"""SounDiT, its autoencoder and its checkpoints: tiny configs, random weights, real files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from geosound.errors import InputError
from geosound.models import build_sat2sound
from geosound.models.autoencoder import (
    AutoencoderConfig,
    LatentCodec,
    build_autoencoder,
    load_pretrained_autoencoder,
    measure_scaling_factor,
    reconstruction_metrics,
)
from geosound.models.soundit import (
    SceneCondition,
    SoundCondition,
    SounDiTBlock,
    SounDiTConfig,
    build_soundit,
    count_flops,
    guided_epsilon,
    sound_condition,
    soundit_config,
)
from geosound.models.soundit_checkpoint import load_generator, save_generator

SOUND_DIM, SCENE_DIM = 32, 24


def tiny(**overrides: object):
    torch.manual_seed(0)
    return build_soundit(
        "tiny",
        hidden_dim=32,
        depth=2,
        heads=4,
        sound_dim=SOUND_DIM,
        scene_dim=SCENE_DIM,
        latent_size=8,
        **overrides,
    )


def sound(batch: int = 2, tokens: int = 3) -> SoundCondition:
    mask = torch.ones(batch, tokens, dtype=torch.bool)
    mask[0, -1] = False  # padding must be ignored, not crash
    return SoundCondition(
        torch.randn(batch, tokens, SOUND_DIM), mask, torch.randn(batch, SOUND_DIM)
    )


def scene(batch: int = 2) -> SceneCondition:
    return SceneCondition.from_pooled(torch.randn(batch, SCENE_DIM))


def perturb(model: torch.nn.Module) -> None:
    """Random weights everywhere, also in the zero-initialised gates and final layer."""
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)


@pytest.mark.parametrize("use_moe", [True, False])
def test_shapes_of_both_sound_stages(use_moe: bool) -> None:
    model = tiny(use_moe=use_moe)
    perturb(model)
    out = model(torch.randn(2, 4, 8, 8), torch.tensor([3, 700]), sound(), scene())
    assert out.shape == (2, 4, 8, 8)
    assert torch.isfinite(out).all()
    assert type(model.blocks[0].sound_attention).__name__ == (
        "PrototypeExperts" if use_moe else "PlainSoundAttention"
    )


def test_a_fresh_block_is_the_identity_and_a_fresh_model_predicts_zero() -> None:
    model = tiny()
    block = model.blocks[0]
    x = torch.randn(2, model.config.num_patches, model.config.hidden_dim)
    condition = torch.randn(2, model.config.hidden_dim)
    scene_parts = model._scene(scene(), None, 2, x.device)
    sound_parts = model._sound(sound(), None, 2, x.device)
    timesteps = torch.tensor([10, 900])
    assert torch.equal(block(x, condition, scene_parts, sound_parts, timesteps), x)
    assert torch.equal(
        model(torch.randn(2, 4, 8, 8), timesteps, sound(), scene()), torch.zeros(2, 4, 8, 8)
    )
    # The identity comes from the zero gates alone: open them and the block acts.
    with torch.no_grad():
        block.modulation[1].bias.fill_(0.5)
    assert not torch.allclose(block(x, condition, scene_parts, sound_parts, timesteps), x)


@pytest.mark.parametrize("global_conditioning", [True, False])
def test_the_pooled_sound_reaches_the_modulation_only_with_global_conditioning(
    global_conditioning: bool,
) -> None:
    """The same sound tokens with another pooled embedding: with global conditioning the
    prediction changes (the embedding drives adaLN); without it only the router reads the
    embedding, so a plain cross-attention model is blind to it."""
    model = tiny(use_moe=False, global_conditioning=global_conditioning)
    perturb(model)
    first = sound()
    other = SoundCondition(first.tokens, first.mask, torch.randn(2, SOUND_DIM))
    latents, t = torch.randn(2, 4, 8, 8), torch.tensor([3, 700])
    with torch.no_grad():
        changed = not torch.allclose(model(latents, t, first), model(latents, t, other))
    assert changed is global_conditioning
    assert not SounDiTConfig().global_conditioning  # the paper's design, and older checkpoints


def test_block_count_and_presets() -> None:
    assert isinstance(tiny().blocks[0], SounDiTBlock)
    for preset, depth in (("tiny", 4), ("S", 12), ("B", 12)):
        assert soundit_config(preset).depth == depth
    with pytest.raises(ValueError, match="unknown SounDiT preset"):
        soundit_config("XL")
    with pytest.raises(ValueError, match="unknown SounDiTConfig keys"):
        soundit_config("tiny", hiden_dim=3)


def test_router_routes_broadly_when_noisy_and_sharply_when_clean() -> None:
    model = tiny()
    perturb(model)
    router = model.blocks[0].sound_attention.router
    tokens = torch.randn(4, 16, 32)
    sound_vector = torch.randn(4, 32)

    @torch.no_grad()
    def entropy(t: int) -> torch.Tensor:
        weights = router(tokens, sound_vector, torch.full((4,), t))
        assert torch.allclose(weights.sum(-1), torch.ones(4))
        return -(weights * weights.log()).sum(-1)

    temperatures = router.temperature(torch.tensor([0, 500, 999]))
    assert temperatures[0] == pytest.approx(model.config.router_temperature_min)
    assert bool((temperatures.diff() > 0).all())
    assert bool((entropy(990) > entropy(10)).all())
    assert float(entropy(990).mean()) > 0.5 * math.log(model.config.num_experts)


def test_cfg_combination() -> None:
    full, scene_only, uncond = (torch.randn(3, 4) for _ in range(3))
    assert torch.allclose(guided_epsilon(full, scene_only, uncond, 1.0, 1.0), full)
    assert torch.allclose(guided_epsilon(full, scene_only, uncond, 0.0, 0.0), uncond)
    assert torch.allclose(guided_epsilon(full, scene_only, uncond, 0.0, 1.0), scene_only)
    expected = uncond + 2.5 * (scene_only - uncond) + 4.0 * (full - scene_only)
    assert torch.allclose(guided_epsilon(full, scene_only, uncond, 4.0, 2.5), expected)


def test_a_dropped_condition_is_the_null_condition() -> None:
    model = tiny()
    perturb(model)
    latents, t = torch.randn(2, 4, 8, 8), torch.tensor([100, 100])
    keep = torch.tensor([True, False])
    heard, seen = sound(), scene()
    dropped = model(latents, t, heard, seen, keep_sound=keep, keep_scene=keep)
    null = model(latents, t, None, None)
    given = model(latents, t, heard, seen)
    assert torch.allclose(dropped[1], null[1], atol=1e-6)
    assert torch.allclose(dropped[0], given[0], atol=1e-6)
    assert not torch.allclose(given[1], null[1])


def test_sound_condition_from_sat2sound_has_audio_and_concept_tokens() -> None:
    torch.manual_seed(0)
    sat2sound = build_sat2sound("tiny").eval()
    condition = sound_condition(sat2sound, torch.randn(3, 4, 512), concept_tokens=8)
    assert condition.tokens.shape == (3, 12, sat2sound.config.embed_dim)
    assert condition.mask[:, :4].all()
    assert torch.allclose(condition.embedding.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert condition.mask[:, 4:].any()  # at least the strongest concept is active
    no_codebook = build_sat2sound("tiny", use_codebook=False).eval()
    assert sound_condition(no_codebook, torch.randn(3, 4, 512)).tokens.shape[1] == 4


def test_flops_are_counted_and_grow_with_experts() -> None:
    assert count_flops(tiny(num_experts=4)) > count_flops(tiny(num_experts=2)) > 0


def small_codec() -> LatentCodec:
    torch.manual_seed(0)
    config = AutoencoderConfig(image_size=32, block_out_channels=[16, 16, 16], norm_num_groups=8)
    return LatentCodec(build_autoencoder(config).eval(), 0.5, config)


def test_autoencoder_latent_shapes_and_ranges() -> None:
    codec = LatentCodec(build_autoencoder(AutoencoderConfig()).eval(), 1.0, AutoencoderConfig())
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        latents = codec.encode(images)
        assert latents.shape == (2, 4, 16, 16)
        decoded = codec.decode(latents)
    assert decoded.shape == images.shape
    assert float(decoded.min()) >= 0.0 and float(decoded.max()) <= 1.0


def test_scaling_factor_and_reconstruction_metrics() -> None:
    codec = small_codec()
    images = torch.rand(6, 3, 32, 32)
    scale = measure_scaling_factor(codec, [images[:3], images[3:]])
    with torch.no_grad():
        mean, _ = codec.posterior(images)
    assert scale == pytest.approx(1.0 / float(mean.double().std(unbiased=False)), rel=1e-3)
    metrics = reconstruction_metrics(codec, images, batch_size=4)
    assert set(metrics) == {"psnr_db", "ssim"}
    assert 0 < metrics["psnr_db"] < 40 and -1 <= metrics["ssim"] < 0.99  # untrained: poor


def test_pretrained_autoencoder_loads_from_a_local_folder(tmp_path) -> None:
    codec = small_codec()
    codec.vae.register_to_config(scaling_factor=0.25)
    codec.vae.save_pretrained(tmp_path / "vae")
    loaded = load_pretrained_autoencoder(tmp_path / "vae")
    assert loaded.scaling_factor == 0.25
    assert loaded.source == str(tmp_path / "vae")
    images = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded.posterior(images)[0], codec.posterior(images)[0], atol=1e-5)
    with pytest.raises(InputError, match=r"no config\.json"):
        load_pretrained_autoencoder(tmp_path / "missing")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL"}))
    with pytest.raises(InputError, match="cannot load an AutoencoderKL"):
        load_pretrained_autoencoder(tmp_path / "broken")
    with pytest.raises(ValueError, match="not stored in geosound checkpoints"):
        loaded.state()


def test_generator_checkpoint_round_trip_with_weights_only(tmp_path) -> None:
    model = tiny()
    perturb(model)
    codec = LatentCodec(
        build_autoencoder(AutoencoderConfig(image_size=32)).eval(),
        0.7,
        AutoencoderConfig(image_size=32),
    )
    scenes = {"forest": torch.randn(SCENE_DIM), "river": torch.randn(SCENE_DIM)}
    path = tmp_path / "soundit.pt"
    model_id = save_generator(
        path,
        model,
        codec,
        "sat2sound:abc",
        {"audio": "aisfx@1", "text": "minilm-l6@1"},
        scenes,
        {"note": "test"},
    )
    payload = torch.load(path, weights_only=True)  # plain tensors and builtins only
    assert payload["model_id"] == model_id
    loaded = load_generator(path)
    assert loaded.model_id == model_id and loaded.sound_space == "sat2sound:abc"
    assert loaded.codec.scaling_factor == pytest.approx(0.7)
    assert torch.equal(loaded.scenes["river"], scenes["river"])
    latents, t, heard, seen = torch.randn(2, 4, 8, 8), torch.tensor([5, 500]), sound(), scene()
    with torch.no_grad():
        assert torch.equal(
            loaded.model(latents, t, heard, seen), model.eval()(latents, t, heard, seen)
        )
    payload["state_dict"]["final.linear.bias"] += 1.0
    torch.save(payload, tmp_path / "edited.pt")
    with pytest.raises(InputError, match="changed after it was saved"):
        load_generator(tmp_path / "edited.pt")
    (tmp_path / "junk.pt").write_bytes(np.random.default_rng(0).bytes(300))
    with pytest.raises(InputError):
        load_generator(tmp_path / "junk.pt")
