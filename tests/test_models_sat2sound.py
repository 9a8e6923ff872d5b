"""Sat2Sound model and losses: shapes, masking, sparsity, metadata, loss terms, a tiny overfit."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
import torch.nn.functional as F

from geosound.models import (
    METADATA_DIM,
    SAT2SOUND_PRESETS,
    LossConfig,
    ModalityOutput,
    Sat2Sound,
    Sat2SoundConfig,
    Sat2SoundLoss,
    active_concepts,
    build_sat2sound,
    clip_loss,
    concept_weights,
    metadata_features,
    sparsemax,
    top_concepts,
)

DIMS = {"image": 1280, "audio": 512, "audio_caption": 384, "image_caption": 384}
LENGTHS = {"image": 4, "audio": 3, "audio_caption": 7, "image_caption": 9}


def _batch(batch_size: int = 5, seed: int = 0, padded: bool = True) -> dict[str, torch.Tensor]:
    """Random tokens for every modality; with ``padded``, items have different lengths."""
    gen = torch.Generator().manual_seed(seed)
    batch: dict[str, torch.Tensor] = {}
    for name, dim in DIMS.items():
        length = LENGTHS[name]
        batch[f"{name}_tokens"] = torch.randn(batch_size, length, dim, generator=gen)
        mask = torch.ones(batch_size, length, dtype=torch.bool)
        if padded:
            for i in range(batch_size):
                mask[i, 1 + i % length :] = False
        batch[f"{name}_mask"] = mask
    return batch


@pytest.fixture
def tiny() -> Sat2Sound:
    torch.manual_seed(0)
    return build_sat2sound("tiny").eval()


# -- sparsemax ------------------------------------------------------------------------------


def _project_onto_simplex_bruteforce(z: torch.Tensor) -> torch.Tensor:
    """Euclidean projection onto the simplex by trying every support (small K only)."""
    best, best_distance = None, math.inf
    k = z.numel()
    for size in range(1, k + 1):
        for support in itertools.combinations(range(k), size):
            idx = torch.tensor(support)
            p = torch.zeros_like(z)
            p[idx] = z[idx] - (z[idx].sum() - 1) / size
            if (p < -1e-12).any():
                continue
            distance = float(((p - z) ** 2).sum())
            if distance < best_distance:
                best, best_distance = p, distance
    assert best is not None
    return best


def test_sparsemax_matches_bruteforce_projection() -> None:
    gen = torch.Generator().manual_seed(0)
    for scale in (0.05, 0.5, 1.0, 5.0):
        z = torch.randn(12, 6, generator=gen, dtype=torch.float64) * scale
        out = sparsemax(z, dim=-1)
        for row, expected in zip(out, map(_project_onto_simplex_bruteforce, z), strict=True):
            torch.testing.assert_close(row, expected)
    tied = torch.tensor([[1.0, 1.0, 0.0, -3.0]], dtype=torch.float64)
    torch.testing.assert_close(sparsemax(tied), torch.tensor([[0.5, 0.5, 0.0, 0.0]]).double())


def test_sparsemax_is_sparse_on_simplex_and_respects_dim() -> None:
    z = torch.randn(7, 50) * 3
    p = sparsemax(z)
    assert (p >= 0).all()
    torch.testing.assert_close(p.sum(-1), torch.ones(7))
    assert ((p == 0).sum(-1) > 0).all()
    torch.testing.assert_close(sparsemax(z.t(), dim=0), p.t())
    torch.testing.assert_close(sparsemax(z + 100.0), p)  # shift-invariant


def test_sparsemax_gradient() -> None:
    z = torch.randn(4, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert torch.autograd.gradcheck(lambda x: sparsemax(x, dim=-1), (z.requires_grad_(),))


# -- model ----------------------------------------------------------------------------------


def test_shapes_for_every_modality(tiny: Sat2Sound) -> None:
    batch = _batch()
    outputs = tiny(batch)
    assert set(outputs) == set(DIMS)
    for name, out in outputs.items():
        assert out.embedding.shape == (5, 128)
        assert out.weights is not None and out.weights.shape == (5, 256)
        assert out.token_scores is not None and out.token_scores.shape == (5, LENGTHS[name], 256)
        torch.testing.assert_close(out.embedding.norm(dim=-1), torch.ones(5))
        # padding positions carry -inf scores, real ones are finite
        mask = batch[f"{name}_mask"]
        assert torch.isfinite(out.token_scores[mask]).all()
        assert torch.isneginf(out.token_scores[~mask]).all()


def test_only_present_modalities_are_encoded(tiny: Sat2Sound) -> None:
    batch = _batch()
    outputs = tiny({"image_tokens": batch["image_tokens"], "audio_tokens": batch["audio_tokens"]})
    assert set(outputs) == {"image", "audio"}


@pytest.mark.parametrize("use_codebook", [True, False])
def test_padding_does_not_change_the_output(use_codebook: bool) -> None:
    torch.manual_seed(0)
    model = build_sat2sound("tiny", use_codebook=use_codebook, use_metadata=True).eval()
    torch.nn.init.normal_(model.metadata_fusion.out.weight, std=0.1)  # make metadata matter
    batch = _batch(padded=True)
    batch["metadata"] = metadata_features([10, 20, 30, 40, 50], [0, 1, 2, 3, 4], month=6)
    extended = dict(batch)
    for name in DIMS:
        tokens, mask = batch[f"{name}_tokens"], batch[f"{name}_mask"]
        garbage = 50 * torch.randn(tokens.shape[0], 3, tokens.shape[2])
        extended[f"{name}_tokens"] = torch.cat([tokens, garbage], dim=1)
        extended[f"{name}_mask"] = torch.cat([mask, torch.zeros(mask.shape[0], 3).bool()], 1)
    with torch.no_grad():
        plain, padded = model(batch), model(extended)
    for name in DIMS:
        torch.testing.assert_close(padded[name].embedding, plain[name].embedding)
        if use_codebook:
            torch.testing.assert_close(padded[name].weights, plain[name].weights)
            t = LENGTHS[name]
            torch.testing.assert_close(padded[name].token_scores[:, :t], plain[name].token_scores)


def test_pooled_vector_is_a_one_token_sequence(tiny: Sat2Sound) -> None:
    pooled = torch.randn(3, 512)
    with torch.no_grad():
        a, b = tiny.encode_audio(pooled), tiny.encode_audio(pooled.unsqueeze(1))
    torch.testing.assert_close(a.embedding, b.embedding)
    assert a.token_scores is not None and a.token_scores.shape == (3, 1, 256)


def test_bad_inputs_are_rejected(tiny: Sat2Sound) -> None:
    with pytest.raises(ValueError, match="image tokens"):
        tiny.encode_image(torch.randn(2, 4, 512))
    with pytest.raises(ValueError, match="at least one real"):
        tiny.encode_text(torch.randn(2, 3, 384), torch.tensor([[True, False, False], [False] * 3]))
    with pytest.raises(ValueError, match="use_metadata=False"):
        tiny.encode_image(torch.randn(2, 4, 1280), metadata=metadata_features([0, 0], [0, 0]))


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_weights_are_sparse_at_init(preset: str) -> None:
    """At init sparsemax keeps a non-trivial number of concepts: not 1, not all K.

    Numbers for the module docstring (mean active concepts, batch 64, seed 0).
    """
    torch.manual_seed(0)
    model = build_sat2sound(preset).eval()
    k = model.config.num_concepts
    gen = torch.Generator().manual_seed(0)
    inputs = {
        "image_2x2": (model.encode_image, (64, 4, 1280)),
        "image_4x4": (model.encode_image, (64, 16, 1280)),
        "audio": (model.encode_audio, (64, 4, 512)),
        "text": (model.encode_text, (64, 12, 384)),
    }
    for name, (encode, shape) in inputs.items():
        with torch.no_grad():
            out = encode(torch.randn(*shape, generator=gen))
        weights = concept_weights(out)
        active = active_concepts(out).float()
        assert (weights >= 0).all()
        torch.testing.assert_close(weights.sum(-1), torch.ones(64))
        assert active.min() > 2 and active.max() < k / 2, (preset, name, active.mean())
        torch.testing.assert_close(out.embedding.norm(dim=-1), torch.ones(64))
        # the embedding is the normalised concept mix
        mix = F.normalize(weights @ model.concepts, dim=-1)
        torch.testing.assert_close(out.embedding, mix)


def test_top_concepts(tiny: Sat2Sound) -> None:
    with torch.no_grad():
        out = tiny.encode_image(torch.randn(2, 4, 1280))
    ids, weights = top_concepts(out, k=5)
    assert ids.shape == weights.shape == (2, 5)
    assert (weights[:, :-1] >= weights[:, 1:]).all()
    torch.testing.assert_close(out.weights.gather(1, ids), weights)
    assert (weights[:, 0] > 0).all()


def test_no_codebook_variant() -> None:
    torch.manual_seed(0)
    model = build_sat2sound("tiny", use_codebook=False).eval()
    assert model.codebook is None
    tokens = torch.randn(3, 5, 512)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]]).bool()
    with torch.no_grad():
        out = model.encode_audio(tokens, mask)
        projected = model.heads["audio"](tokens)
    assert out.weights is None and out.token_scores is None
    expected = torch.stack([projected[i, mask[i]].mean(0) for i in range(3)])
    torch.testing.assert_close(out.embedding, F.normalize(expected, dim=-1))
    with pytest.raises(ValueError, match="use_codebook=False"):
        concept_weights(out)


# -- metadata -------------------------------------------------------------------------------


def test_metadata_features_layout() -> None:
    row = metadata_features(0.0, 90.0, month=1, hour=6)
    expected = torch.tensor([[0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0]])
    torch.testing.assert_close(row, expected, atol=1e-6, rtol=0)
    rows = metadata_features([10.0, -20.0], [5.0, 185.0], month=[7, float("nan")])
    assert rows.shape == (2, METADATA_DIM) and rows.dtype == torch.float32
    assert rows[0, 6] == 1 and rows[1, 6] == 0 and (rows[1, 4:6] == 0).all()
    assert (rows[:, 7:] == 0).all()  # no hour at all
    torch.testing.assert_close(rows[1, 2:4], metadata_features(0, -175)[0, 2:4])  # periodic
    with pytest.raises(ValueError, match="latitude"):
        metadata_features(91.0, 0.0)
    with pytest.raises(ValueError, match="expected 2"):
        metadata_features([1.0, 2.0], [1.0, 2.0, 3.0])


def test_metadata_dropped_in_training_never_in_eval() -> None:
    torch.manual_seed(0)
    model = build_sat2sound("tiny", use_metadata=True, metadata_drop=0.5)
    tokens = torch.randn(64, 4, 1280)
    meta = metadata_features(torch.rand(64) * 180 - 90, torch.rand(64) * 360, month=3, hour=12)
    with torch.no_grad():
        model.eval()
        fresh = model.encode_image(tokens, metadata=meta).embedding
        without = model.encode_image(tokens).embedding
        # zero-initialised fusion: a fresh model ignores metadata until trained
        torch.testing.assert_close(fresh, without)
        torch.nn.init.normal_(model.metadata_fusion.out.weight, std=0.1)
        without = model.encode_image(tokens).embedding
        with_meta = model.encode_image(tokens, metadata=meta).embedding
        changed = (with_meta - without).norm(dim=-1) > 1e-5
        assert changed.all()  # eval: every sample uses its metadata
        torch.testing.assert_close(model.encode_image(tokens, metadata=meta).embedding, with_meta)

        model.train()
        torch.manual_seed(1)
        trained = model.encode_image(tokens, metadata=meta).embedding
        dropped = (trained - without).norm(dim=-1) < 1e-5
        kept = (trained - with_meta).norm(dim=-1) < 1e-5
        assert (dropped | kept).all()  # each sample either fully with or fully without
        assert 0.2 < dropped.float().mean() < 0.8

        model.config.metadata_drop = 1.0
        torch.testing.assert_close(model.encode_image(tokens, metadata=meta).embedding, without)


def test_forward_passes_metadata_only_when_fused(tiny: Sat2Sound) -> None:
    batch = _batch()
    batch["metadata"] = metadata_features([0.0] * 5, [0.0] * 5)
    with torch.no_grad():
        with_meta, without = tiny(batch)["image"], tiny(_batch())["image"]
    torch.testing.assert_close(with_meta.embedding, without.embedding)


# -- logit scale, config --------------------------------------------------------------------


def test_logit_scale_init_and_clamp(tiny: Sat2Sound) -> None:
    with torch.no_grad():
        assert math.isclose(tiny.clamped_logit_scale().item(), 1 / 0.07, rel_tol=1e-5)
        tiny.logit_scale.fill_(10.0)
        assert math.isclose(tiny.clamped_logit_scale().item(), 100.0, rel_tol=1e-5)
        tiny.logit_scale.fill_(1.0)
        assert math.isclose(tiny.clamped_logit_scale().item(), math.e, rel_tol=1e-5)


def test_config_round_trip_and_presets() -> None:
    config = Sat2SoundConfig(embed_dim=64, num_concepts=96, use_metadata=True, dropout=0.1)
    restored = Sat2SoundConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config
    model = build_sat2sound(config.to_dict())
    again = build_sat2sound(model.config.to_dict())
    again.load_state_dict(model.state_dict())
    with pytest.raises(ValueError, match="unknown Sat2SoundConfig keys: embed_dims"):
        Sat2SoundConfig.from_dict({"embed_dims": 3})
    tiny = build_sat2sound("tiny", dropout=0.2).config
    assert (tiny.embed_dim, tiny.num_concepts, tiny.dropout) == (128, 256, 0.2)
    assert build_sat2sound(config, num_concepts=32).config.num_concepts == 32
    for preset in SAT2SOUND_PRESETS.values():  # T = K / 32 throughout
        assert preset["concept_temperature"] == preset["num_concepts"] / 32
    with pytest.raises(ValueError, match="unknown preset"):
        build_sat2sound("huge")
    assert LossConfig.from_dict(LossConfig(image_audio=False).to_dict()) == LossConfig(
        image_audio=False
    )


# -- losses ---------------------------------------------------------------------------------


def test_clip_loss_lower_for_aligned_pairs() -> None:
    gen = torch.Generator().manual_seed(0)
    a = F.normalize(torch.randn(16, 32, generator=gen), dim=-1)
    b = F.normalize(a + 0.3 * torch.randn(16, 32, generator=gen), dim=-1)
    aligned = clip_loss(a, b, 1 / 0.07)
    shuffled = clip_loss(a, b[torch.randperm(16, generator=gen)], 1 / 0.07)
    assert aligned < 0.5 * shuffled


def test_pseudo_positive_term() -> None:
    gen = torch.Generator().manual_seed(0)
    a = F.normalize(torch.randn(8, 32, generator=gen), dim=-1)
    # No candidate beats the true pair: the pseudo term equals the plain one, total = 1.1x.
    plain = clip_loss(a, a, 10.0, pseudo_positive_weight=0.0)
    torch.testing.assert_close(clip_loss(a, a, 10.0, pseudo_positive_weight=0.1), 1.1 * plain)
    # Query 0's own partner is a noisy view, while item 1's partner is a near copy of query
    # 0: a "same-sounding place" that beats the true pair. The pseudo term counts it as a
    # positive too (soft targets 1/2, 1/2), so the total falls below 1.1x the plain loss.
    b = a.clone()
    b[0] = F.normalize(a[0] + 0.5 * torch.randn(32, generator=gen), dim=-1)
    b[1] = F.normalize(a[0] + 0.05 * torch.randn(32, generator=gen), dim=-1)
    logits = a @ b.t()
    assert logits[0, 1] >= logits[0, 0]
    plain = clip_loss(a, b, 10.0, pseudo_positive_weight=0.0)
    with_pseudo = clip_loss(a, b, 10.0, pseudo_positive_weight=0.1)
    assert with_pseudo < 1.1 * plain - 1e-3


def _full_outputs(seed: int = 0) -> tuple[dict[str, ModalityOutput], torch.Tensor]:
    torch.manual_seed(seed)
    model = build_sat2sound("tiny").eval()
    with torch.no_grad():
        return model(_batch(seed=seed)), model.clamped_logit_scale()


def test_loss_terms_are_combined_as_documented() -> None:
    outputs, scale = _full_outputs()
    total, parts = Sat2SoundLoss()(outputs, scale)
    emb = {k: v.embedding for k, v in outputs.items()}
    pairwise = torch.stack(
        [
            clip_loss(emb["image"], emb["audio"], scale),
            clip_loss(emb["image"], emb["audio_caption"], scale),
            clip_loss(emb["audio"], emb["audio_caption"], scale),
        ]
    ).mean()
    combined = clip_loss(emb["image"], F.normalize(emb["audio"] + emb["audio_caption"]), scale)
    image_caption = clip_loss(emb["image"], emb["image_caption"], scale)
    torch.testing.assert_close(parts["pairwise"], pairwise)
    torch.testing.assert_close(total, pairwise + combined + image_caption)
    assert parts["total"] is total


@pytest.mark.parametrize(
    "term",
    [
        "image_audio",
        "image_audio_caption",
        "audio_audio_caption",
        "image_audio_plus_caption",
        "image_image_caption",
    ],
)
def test_each_loss_term_can_be_switched_off(term: str) -> None:
    outputs, scale = _full_outputs()
    total, parts = Sat2SoundLoss()(outputs, scale)
    off_total, off_parts = Sat2SoundLoss(LossConfig(**{term: False}))(outputs, scale)
    assert term in parts and term not in off_parts
    assert not torch.isclose(total, off_total)


def test_loss_skips_missing_modalities() -> None:
    outputs, scale = _full_outputs()
    pair = {"image": outputs["image"], "audio": outputs["audio"]}
    total, parts = Sat2SoundLoss()(pair, scale)
    assert set(parts) == {"image_audio", "pairwise", "total"}
    torch.testing.assert_close(
        total, clip_loss(outputs["image"].embedding, outputs["audio"].embedding, scale)
    )
    with pytest.raises(ValueError, match="no enabled loss term"):
        Sat2SoundLoss()({"image": outputs["image"]}, scale)


def test_loss_backpropagates_to_every_part() -> None:
    torch.manual_seed(0)
    model = build_sat2sound("tiny", use_metadata=True)
    batch = _batch()
    batch["metadata"] = metadata_features([1.0] * 5, [2.0] * 5, hour=[1, 2, 3, 4, 5])
    total, _ = Sat2SoundLoss()(model(batch), model.clamped_logit_scale())
    total.backward()
    for name in ("heads.image", "heads.audio", "heads.text", "codebook", "logit_scale"):
        grads = [p.grad for n, p in model.named_parameters() if n.startswith(name)]
        assert grads and all(g is not None for g in grads), name
        assert any(g.abs().sum() > 0 for g in grads), name


# -- tiny overfit ---------------------------------------------------------------------------


@pytest.fixture
def one_thread():
    """Run single-threaded: on a small shared CPU, thread contention costs more than it buys."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_tiny_model_overfits_sixteen_pairs() -> None:
    """Audio is a fixed random linear map of the image plus noise: the pairs must be learnable."""
    torch.manual_seed(0)
    n = 16
    images = torch.randn(n, 4, 1280)
    mixing = torch.randn(1280, 512) / math.sqrt(1280)
    audio = images @ mixing + 0.3 * torch.randn(n, 4, 512)
    batch = {"image_tokens": images, "audio_tokens": audio}
    model = build_sat2sound("tiny")
    loss_fn = Sat2SoundLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    losses = []
    for _ in range(150):
        loss, _ = loss_fn(model(batch), model.clamped_logit_scale())
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        outputs = model(batch)
        final = loss_fn(outputs, model.clamped_logit_scale())[0].item()
    similarity = outputs["image"].embedding @ outputs["audio"].embedding.t()
    recall_at_1 = (similarity.argmax(dim=1) == torch.arange(n)).float().mean().item()
    assert final < losses[0] / 20, (losses[0], final)
    assert recall_at_1 >= 0.8
