"""The built-in offline encoders: registry, shapes, batching, and real inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from geosound.encoders import DEFAULT_ENCODERS, available_encoders, get_encoder, pad_tokens
from geosound.errors import EncoderError


def test_registry_lists_defaults_and_clap():
    names = set(available_encoders())
    assert set(DEFAULT_ENCODERS.values()) <= names
    assert {"clap-audio", "clap-text"} <= names


def test_unknown_encoder_lists_known_ones():
    with pytest.raises(EncoderError, match=r"known encoders: .*aisfx"):
        get_encoder("wav2vec-huge")


def test_pad_tokens_masks_padding():
    tokens, mask = pad_tokens([torch.ones(2, 3), torch.ones(4, 3)])
    assert tokens.shape == (2, 4, 3)
    assert mask.tolist() == [[True, True, False, False], [True] * 4]
    assert tokens[0, 2:].abs().sum() == 0


def test_weights_load_lazily():
    encoder = get_encoder("efficientnet-lite0")
    assert encoder._model is None


@pytest.mark.slow
def test_image_encoder_pooled_tokens_and_batching():
    encoder = get_encoder("efficientnet-lite0", batch_size=3)
    images = np.random.default_rng(0).random((5, 3, 64, 64), dtype=np.float32)
    out = encoder.encode(images)
    assert out.pooled.shape == (5, 1280)
    assert out.tokens.shape == (5, 4, 1280) and out.mask.all()  # 2x2 feature map at 64 px
    assert torch.allclose(out.pooled, out.tokens.mean(dim=1))
    alone = encoder.encode(images[4:5])
    assert torch.allclose(alone.pooled, out.pooled[4:5], atol=1e-5)  # batch split is exact
    assert encoder.imagenet_logits(out.pooled).shape == (5, 1000)


@pytest.mark.slow
def test_image_encoder_input_size_gives_finer_tokens():
    encoder = get_encoder("efficientnet-lite0", input_size=128)
    out = encoder.encode(np.zeros((1, 3, 64, 64), dtype=np.float32))
    assert out.tokens.shape == (1, 16, 1280)
    assert encoder.id == "efficientnet-lite0-128px@1"


def test_image_encoder_rejects_wrong_channels():
    encoder = get_encoder("efficientnet-lite0")
    with pytest.raises(EncoderError, match=r"\(3, H, W\)"):
        encoder.encode(np.zeros((1, 4, 8, 8), dtype=np.float32))


@pytest.mark.slow
def test_text_encoder_matches_sentence_transformers_and_masks_tokens():
    encoder = get_encoder("minilm-l6")
    out = encoder.encode(["birds", "heavy traffic on a wet road at night"])
    assert out.pooled.shape == (2, 384)
    assert torch.allclose(out.pooled.norm(dim=1), torch.ones(2), atol=1e-5)
    assert out.mask.sum(dim=1).tolist()[0] < out.mask.sum(dim=1).tolist()[1]
    similar = encoder.encode(["birds singing", "cars and trucks"]).pooled
    assert (out.pooled @ similar.T).argmax(dim=1).tolist() == [0, 1]


def test_text_encoder_rejects_empty_query():
    with pytest.raises(EncoderError, match="empty"):
        get_encoder("minilm-l6").encode(["  "])


@pytest.mark.slow
def test_audio_encoder_blocks_become_tokens():
    encoder = get_encoder("aisfx")
    rng = np.random.default_rng(0)
    five_seconds = (rng.standard_normal(16000 * 5).astype(np.float32) * 0.1, 16000)
    one_second = (rng.standard_normal(44100).astype(np.float32) * 0.1, 44100)
    out = encoder.encode([five_seconds, one_second])
    assert out.pooled.shape == (2, 512)
    # 5 s at 44.1 kHz = 216 mel frames → 3 whole 100-frame blocks at 50 % hop; 1 s → 1 padded.
    assert out.mask.sum(dim=1).tolist() == [3, 1]
    assert torch.allclose(out.pooled[0], out.tokens[0, :3].mean(dim=0))


@pytest.mark.slow
@pytest.mark.devdata
def test_audio_embeddings_separate_real_classes(dev_data: Path):
    """Real ESC-50 dev clips: a clip is closer to another of its class than to other classes."""
    from geosound.data import load_esc50

    clips = load_esc50(dev_data / "esc50_outdoor_16k", classes=["rain", "rooster", "church_bells"])
    clips = clips.groupby("label").head(2).sort_values("label")
    out = get_encoder("aisfx").encode(list(clips["path"]))
    vectors = torch.nn.functional.normalize(out.pooled, dim=1)
    similarity = vectors @ vectors.T
    similarity.fill_diagonal_(-1)
    nearest = similarity.argmax(dim=1).numpy()
    labels = clips["label"].to_numpy()
    assert (labels[nearest] == labels).mean() >= 2 / 3
