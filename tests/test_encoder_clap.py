"""The laion-clap backend, offline: randomly initialised networks and fake CLAP checkpoints.

Real checkpoints are large and never downloaded. The tests that use one skip unless
GEOSOUND_CLAP_CHECKPOINT (and GEOSOUND_ROBERTA_DIR for text) name local files.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from geosound.encoders.base import Encoding
from geosound.encoders.clap import (
    ClapAudioEncoder,
    ClapTextEncoder,
    _detect_audio_model,
)
from geosound.errors import EncoderError

RATE = 16_000


def _sine(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)


def _noise(seconds: float) -> np.ndarray:
    return np.random.default_rng(7).normal(0.0, 0.1, int(seconds * RATE)).astype(np.float32)


# A 3 s clip (repeat-padded to 10 s) and a 12 s clip (cropped to its middle 10 s).
CLIPS = [(_sine(3.0), RATE), (_noise(12.0), RATE)]


@pytest.fixture(scope="module")
def random_encoder() -> ClapAudioEncoder:
    encoder = ClapAudioEncoder(random_init=True, seed=0)
    _ = encoder.model
    return encoder


@pytest.fixture(scope="module")
def encoded(random_encoder: ClapAudioEncoder) -> Encoding:
    return random_encoder.encode(CLIPS)


@pytest.fixture(scope="module")
def fake_checkpoint(random_encoder: ClapAudioEncoder, tmp_path_factory) -> Path:
    """The random network saved as an official (DDP) CLAP checkpoint is laid out."""
    net = random_encoder.model
    state = {f"module.audio_branch.{k}": v for k, v in net.audio_branch.state_dict().items()}
    state |= {
        f"module.audio_projection.{k}": v for k, v in net.audio_projection.state_dict().items()
    }
    state["module.logit_scale_a"] = torch.tensor(2.0)
    state["module.text_projection.0.weight"] = torch.zeros(512, 768)
    path = tmp_path_factory.mktemp("clap") / "fake-clap.pt"
    torch.save({"epoch": 3, "name": "fake", "state_dict": state}, path)
    return path


@pytest.mark.slow
def test_audio_shapes_and_mask(random_encoder: ClapAudioEncoder, encoded: Encoding) -> None:
    assert encoded.pooled.shape == (2, 512)
    assert encoded.tokens.shape == (2, 32, 512)
    assert encoded.mask.dtype == torch.bool
    # 3 s of 10 s covers ceil(32 * 0.3) = 10 frames of 312.5 ms; the 12 s clip covers all.
    assert encoded.mask.sum(dim=1).tolist() == [10, 32]
    assert torch.count_nonzero(encoded.tokens[0, 10:]) == 0
    assert torch.isfinite(encoded.pooled).all() and torch.isfinite(encoded.tokens).all()
    assert not torch.allclose(encoded.pooled[0], encoded.pooled[1])
    assert "random" in random_encoder.id and random_encoder.id.startswith("clap-audio@")


@pytest.mark.slow
def test_no_torchvision_stub_leaks(random_encoder: ClapAudioEncoder) -> None:
    assert random_encoder.model is not None
    assert "torchvision" not in sys.modules
    assert "laion_clap" not in sys.modules


@pytest.mark.slow
def test_audio_is_deterministic(encoded: Encoding) -> None:
    clip_like = SimpleNamespace(samples=CLIPS[0][0], sample_rate=RATE)
    again = ClapAudioEncoder(random_init=True, seed=0).encode([clip_like, CLIPS[1]])
    assert torch.equal(again.pooled, encoded.pooled)
    assert torch.equal(again.tokens, encoded.tokens)
    assert torch.equal(again.mask, encoded.mask)
    other = ClapAudioEncoder(random_init=True, seed=1).encode(CLIPS[:1])
    assert not torch.allclose(other.pooled[0], encoded.pooled[0])


@pytest.mark.slow
def test_audio_batches_match(random_encoder: ClapAudioEncoder, encoded: Encoding) -> None:
    random_encoder.batch_size = 1
    try:
        one_by_one = random_encoder.encode(CLIPS)
    finally:
        random_encoder.batch_size = 8
    torch.testing.assert_close(one_by_one.pooled, encoded.pooled, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(one_by_one.tokens, encoded.tokens, atol=1e-4, rtol=1e-4)
    assert torch.equal(one_by_one.mask, encoded.mask)


@pytest.mark.slow
def test_checkpoint_round_trip(fake_checkpoint: Path, encoded: Encoding) -> None:
    encoder = ClapAudioEncoder(checkpoint=fake_checkpoint)
    assert encoder.id.startswith("clap-audio@fake-clap-")
    loaded = encoder.encode(CLIPS)
    assert torch.equal(loaded.pooled, encoded.pooled)
    assert torch.equal(loaded.tokens, encoded.tokens)
    assert "torchvision" not in sys.modules


@pytest.mark.slow
def test_checkpoint_missing_weight_is_an_error(fake_checkpoint: Path, tmp_path: Path) -> None:
    checkpoint = torch.load(fake_checkpoint, weights_only=True)
    del checkpoint["state_dict"]["module.audio_projection.2.bias"]
    path = tmp_path / "partial.pt"
    torch.save(checkpoint, path)
    with pytest.raises(EncoderError, match="missing") as caught:
        ClapAudioEncoder(checkpoint=path).encode(CLIPS[:1])
    assert str(path) in str(caught.value)


def test_no_checkpoint_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(EncoderError, match="checkpoint"):
        ClapAudioEncoder()
    with pytest.raises(EncoderError, match="checkpoint"):
        ClapAudioEncoder(checkpoint=tmp_path / "absent.pt")
    with pytest.raises(EncoderError, match="not both"):
        ClapAudioEncoder(checkpoint=tmp_path / "absent.pt", random_init=True)


def test_corrupt_checkpoint_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.pt"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    encoder = ClapAudioEncoder(checkpoint=path)
    with pytest.raises(EncoderError, match="corrupt") as caught:
        encoder.encode(CLIPS[:1])
    assert str(path) in str(caught.value)


def test_truncated_checkpoint_names_the_file(tmp_path: Path) -> None:
    whole = tmp_path / "whole.pt"
    torch.save({"state_dict": {"module.audio_branch.x": torch.zeros(1000)}}, whole)
    path = tmp_path / "truncated.pt"
    path.write_bytes(whole.read_bytes()[:500])
    with pytest.raises(EncoderError, match="corrupt") as caught:
        ClapAudioEncoder(checkpoint=path).encode(CLIPS[:1])
    assert str(path) in str(caught.value)


def test_other_checkpoint_is_not_clap(tmp_path: Path) -> None:
    path = tmp_path / "resnet.pt"
    torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(EncoderError, match="not a CLAP checkpoint") as caught:
        ClapAudioEncoder(checkpoint=path).encode(CLIPS[:1])
    assert str(path) in str(caught.value)


def test_pickled_objects_need_trusted(tmp_path: Path) -> None:
    path = tmp_path / "with-args.pt"
    torch.save({"args": argparse.Namespace(lr=1e-4), "state_dict": {"x": torch.zeros(1)}}, path)
    with pytest.raises(EncoderError, match="trusted=True"):
        ClapAudioEncoder(checkpoint=path).encode(CLIPS[:1])
    # Trusted, the file is read; it then fails for what it is, not for how it is stored.
    with pytest.raises(EncoderError, match="no audio_branch"):
        ClapAudioEncoder(checkpoint=path, trusted=True).encode(CLIPS[:1])


def test_fusion_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "630k-fusion-best.pt"
    state = {"module.audio_branch.patch_embed.fusion_model.local_att.0.weight": torch.zeros(1)}
    torch.save({"state_dict": state}, path)
    with pytest.raises(EncoderError, match="fusion"):
        ClapAudioEncoder(checkpoint=path).encode(CLIPS[:1])


def test_audio_model_is_detected_from_shapes() -> None:
    def state(width: int, window: int) -> dict[str, torch.Tensor]:
        return {
            "audio_branch.patch_embed.proj.weight": torch.zeros(width, 1, 4, 4),
            "audio_branch.spectrogram_extractor.stft.conv_real.weight": torch.zeros(1, 1, window),
        }

    path = Path("x.pt")
    assert _detect_audio_model(state(96, 1024), path) == "HTSAT-tiny"
    assert _detect_audio_model(state(128, 1024), path) == "HTSAT-base"
    assert _detect_audio_model(state(96, 1536), path) == "HTSAT-tiny-win-1536"


def test_bad_audio_items_are_errors() -> None:
    encoder = ClapAudioEncoder(random_init=True)
    with pytest.raises(EncoderError, match="Clip"):
        encoder.encode(["birdsong.wav"])
    with pytest.raises(EncoderError, match="NaN"):
        encoder.encode([(np.full(RATE, np.nan), RATE)])
    with pytest.raises(EncoderError, match="sample rate"):
        encoder.encode([(_sine(1.0), 0)])
    assert encoder._model is None  # input is checked before any weights load


def test_text_needs_local_files(tmp_path: Path) -> None:
    with pytest.raises(EncoderError, match="checkpoint"):
        ClapTextEncoder(text_model_dir=tmp_path)
    checkpoint = tmp_path / "clap.pt"
    torch.save({"state_dict": {}}, checkpoint)
    with pytest.raises(EncoderError, match="text_model_dir"):
        ClapTextEncoder(checkpoint=checkpoint)
    with pytest.raises(EncoderError, match=r"config\.json"):
        ClapTextEncoder(checkpoint=checkpoint, text_model_dir=tmp_path)


@pytest.mark.slow
def test_text_round_trip_with_a_tiny_roberta(tmp_path: Path) -> None:
    """The text path end to end, with a tiny RoBERTa standing in for roberta-base."""
    transformers = pytest.importorskip("transformers")
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4}
    vocab |= {ch: 5 + i for i, ch in enumerate("abcdefghijklmnopqrstuvwxyzĠ")}
    model_dir = tmp_path / "tiny-roberta"
    transformers.RobertaTokenizer(vocab=vocab, merges=[]).save_pretrained(model_dir)
    config = transformers.RobertaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=90,
    )
    config.save_pretrained(model_dir)
    torch.manual_seed(0)
    branch = transformers.RobertaModel(config).eval()
    projection = torch.nn.Sequential(
        torch.nn.Linear(32, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512)
    )
    state = {f"module.text_branch.{k}": v for k, v in branch.state_dict().items()}
    state |= {f"module.text_projection.{k}": v for k, v in projection.state_dict().items()}
    # Old transformers saved this buffer; CLAP's own loader deletes it, and so do we.
    state["module.text_branch.embeddings.position_ids"] = torch.arange(90)[None]
    checkpoint = tmp_path / "clap.pt"
    torch.save({"state_dict": state}, checkpoint)

    encoder = ClapTextEncoder(checkpoint=checkpoint, text_model_dir=model_dir)
    texts = ["birds singing at dawn", "rain"]
    encoding = encoder.encode(texts)
    assert encoding.pooled.shape == (2, 512)
    assert encoding.tokens.shape[0] == 2 and encoding.tokens.shape[2] == 512
    assert encoding.mask.sum(dim=1).tolist() == [len("birds singing at dawn") + 2, 6]
    with torch.inference_mode():
        ids = encoder._tokenizer(texts, padding=True, return_tensors="pt")
        expected = projection(branch(**ids).pooler_output)
    torch.testing.assert_close(encoding.pooled, expected)
    assert "torchvision" not in sys.modules


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value and Path(value).exists() else None


@pytest.mark.slow
@pytest.mark.skipif(
    _env_path("GEOSOUND_CLAP_CHECKPOINT") is None,
    reason="needs a real CLAP checkpoint (set GEOSOUND_CLAP_CHECKPOINT); nothing is downloaded",
)
def test_real_audio_checkpoint() -> None:
    encoder = ClapAudioEncoder(checkpoint=_env_path("GEOSOUND_CLAP_CHECKPOINT"))
    encoding = encoder.encode(CLIPS)
    assert encoding.pooled.shape == (2, 512)


@pytest.mark.slow
@pytest.mark.skipif(
    _env_path("GEOSOUND_CLAP_CHECKPOINT") is None or _env_path("GEOSOUND_ROBERTA_DIR") is None,
    reason="needs a real CLAP checkpoint and a local roberta-base (set "
    "GEOSOUND_CLAP_CHECKPOINT and GEOSOUND_ROBERTA_DIR); nothing is downloaded",
)
def test_real_text_checkpoint() -> None:
    encoder = ClapTextEncoder(
        checkpoint=_env_path("GEOSOUND_CLAP_CHECKPOINT"),
        text_model_dir=_env_path("GEOSOUND_ROBERTA_DIR"),
    )
    encoding = encoder.encode(["birds singing", "traffic on a wet road"])
    assert encoding.pooled.shape == (2, 512)
