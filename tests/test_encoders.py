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


def test_audio_encoders_declare_the_window_a_token_needs():
    """``window_seconds`` is one token's audio: a clip that long is the first one not padded.

    aiSFX: one whole 100-frame block (a sample less is zero-padded); CLAP: its whole 10 s
    input (a sample less is repeated). Readers (generation.hearing) take the window and the
    padding's description from here, never from a backend's constants.
    """
    from geosound.encoders import audio_aisfx as aisfx
    from geosound.encoders import clap

    registered = available_encoders()
    aisfx_class, clap_class = registered["aisfx"], registered["clap-audio"]
    assert aisfx_class.window_seconds is not None and clap_class.window_seconds is not None
    wave = np.random.default_rng(0).uniform(-0.5, 0.5, 44100 * 3).astype(np.float32)
    exact = round(aisfx_class.window_seconds * aisfx.SAMPLE_RATE)
    for length, frames in ((exact, aisfx.BLOCK_FRAMES), (exact - 1, aisfx.BLOCK_FRAMES - 1)):
        assert aisfx.log_mel_frames(torch.from_numpy(wave[None, :length])).shape[1] == frames
    exact = round(clap_class.window_seconds * clap.SAMPLE_RATE)
    loud = np.full(exact, 0.25, np.float32)
    assert clap._clap_input(loud, clap.SAMPLE_RATE)[1] == clap.CLIP_SAMPLES
    assert clap._clap_input(loud[:-1], clap.SAMPLE_RATE)[1] == clap.CLIP_SAMPLES - 1
    assert "silence" in aisfx_class.padding and "repeated" in clap_class.padding
    for name in (DEFAULT_ENCODERS["image"], DEFAULT_ENCODERS["text"]):
        assert registered[name].window_seconds is None  # no window: nothing is padded


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


def _librosa_log_mel(wave: np.ndarray) -> np.ndarray:
    """aiSFX's own front end (its librosa call), the reference for ours on torch."""
    import librosa

    from geosound.encoders import audio_aisfx as aisfx

    mel = librosa.feature.melspectrogram(
        y=wave, sr=44100, n_fft=2048, hop_length=1024, win_length=2048, center=True,
        n_mels=96, fmin=0.0, fmax=22050.0, htk=True, norm=1.0, power=2.0,
    )  # fmt: skip
    return (np.log10(mel * 10000.0 + 1.0).T - aisfx.SPEC_MIN) / (aisfx.SPEC_MAX - aisfx.SPEC_MIN)


def _reference_pooled(network: torch.nn.Module, path: Path) -> np.ndarray:
    """One clip the per-clip way: load, soxr to 44.1 kHz, peak, librosa mel, numpy blocks."""
    from geosound.audio import load_audio, resample

    clip = load_audio(path, sample_rate=None)
    wave = resample(clip.samples, clip.sample_rate, 44100)
    spec = _librosa_log_mel(wave / np.max(np.abs(wave)))
    n_blocks = max(1, (spec.shape[0] - 100) // 50 + 1)
    padded = np.zeros((max(spec.shape[0], (n_blocks - 1) * 50 + 100), 96), np.float32)
    padded[: spec.shape[0]] = spec
    blocks = np.stack([padded[s : s + 100] for s in range(0, 50 * n_blocks, 50)])
    with torch.inference_mode():
        return network(torch.from_numpy(blocks)).mean(dim=0).numpy()


def test_torch_mel_front_end_matches_librosa():
    """The batched torch STFT + mel equals aiSFX's librosa front end to 1e-4 (scaled log-mel)."""
    from geosound.encoders import audio_aisfx as aisfx

    rng = np.random.default_rng(1)
    t = np.arange(44100 * 3) / 44100
    waves = [
        (0.5 * np.sin(2 * np.pi * (300 + 200 * t) * t) + 0.05 * rng.standard_normal(t.size)),
        0.3 * rng.standard_normal(t.size),
    ]
    waves = [(w / np.max(np.abs(w))).astype(np.float32) for w in waves]
    ours = aisfx.log_mel_frames(torch.from_numpy(np.stack(waves))).numpy()
    for wave, frames in zip(waves, ours, strict=True):
        reference = _librosa_log_mel(wave)
        assert frames.shape == reference.shape == (1 + wave.size // 1024, 96)
        np.testing.assert_allclose(frames, reference, rtol=0, atol=1e-4)
    short = aisfx.log_mel_blocks(waves[0][:30000], 44100)  # < 100 frames: one padded block
    assert short.shape == (1, 100, 96) and not short[0, 40:].any()


@pytest.mark.slow
@pytest.mark.devdata
def test_fast_path_equals_the_per_clip_path_on_real_clips(dev_data: Path, tmp_path: Path):
    """Worker-thread decoding, batched torch mel, channels-last network in batches of blocks:
    the same vectors as one clip at a time through librosa and the network as shipped."""
    import soundfile as sf

    clips = sorted((dev_data / "esc50_outdoor_16k" / "audio").glob("*.flac"))[:10]
    odd = tmp_path / "odd_length.wav"  # another length (3.5 s): a second STFT group, 2 blocks
    sf.write(odd, sf.read(clips[0])[0][: 16000 * 7 // 2], 16000)
    paths = [*clips[:5], odd, *clips[5:]]
    encoder = get_encoder("aisfx", batch_size=4, network_batch=5)
    out = encoder.encode(paths)
    assert out.mask.sum(dim=1).tolist() == [3] * 5 + [2] + [3] * 5
    shipped = encoder._load().to(memory_format=torch.contiguous_format)
    reference = np.stack([_reference_pooled(shipped, path) for path in paths])
    np.testing.assert_allclose(out.pooled.numpy(), reference, rtol=0, atol=1e-4)
    inline = get_encoder("aisfx", workers=0).encode(paths[:3]).pooled.numpy()
    np.testing.assert_allclose(inline, reference[:3], rtol=0, atol=1e-4)


@pytest.mark.slow
def test_a_long_recording_is_streamed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The network starts before the recording is decoded, and numpy never holds the file."""
    import tracemalloc

    import soundfile as sf

    import geosound.audio
    from geosound.encoders.audio_aisfx import log_mel_blocks

    rng = np.random.default_rng(2)
    t = np.arange(16000 * 60) / 16000
    path = tmp_path / "minute.wav"
    sf.write(
        path,
        0.3 * np.sin(2 * np.pi * (200 + 3 * t) * t) + 0.05 * rng.standard_normal(t.size),
        16000,
    )
    events: list[str] = []
    decode = geosound.audio.audio_blocks

    def logged_blocks(*args: object, **kwargs: object):
        for block in decode(*args, **kwargs):  # type: ignore[arg-type]
            events.append("decoded")
            yield block

    monkeypatch.setattr(geosound.audio, "audio_blocks", logged_blocks)
    encoder = get_encoder("aisfx", network_batch=2)
    embed = encoder.embed_blocks

    def logged_network(blocks: torch.Tensor) -> torch.Tensor:
        events.append("network")
        return embed(blocks)

    monkeypatch.setattr(encoder, "embed_blocks", logged_network)
    encoder.model  # noqa: B018 - weights loaded outside the traced window
    log_mel_blocks(rng.standard_normal(44100).astype(np.float32), 44100)  # librosa imported
    tracemalloc.start()
    try:
        vector = encoder.pooled_long(path, min_seconds=10.0, window_seconds=2.0)
        _, numpy_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert vector is not None and vector.shape == (512,) and np.isfinite(vector).all()
    windows = events.count("decoded") // 2  # read twice: the peak pass, then the encoding pass
    assert windows == 30
    second_pass = events[windows:]
    first_network = second_pass.index("network")
    last_decode = len(second_pass) - 1 - second_pass[::-1].index("decoded")
    # A background thread decodes a few windows ahead of the network, never the whole file:
    # the network starts early, and most of its batches run while decoding goes on.
    assert second_pass[:first_network].count("decoded") <= 8
    assert second_pass[:last_decode].count("network") >= second_pass.count("network") / 2
    # numpy holds a few windows (the queue, the mel buffer, soxr's chunk), not the recording.
    window, whole_file = 2 * 44100 * 4, 60 * 44100 * 4  # float32 at 44.1 kHz
    assert numpy_peak < 12 * window < whole_file / 2, (numpy_peak, window)
