"""Tests of geosound.audio on real files written with soundfile (no mocks of the decoder)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from geosound.audio import (
    Clip,
    fixed_windows,
    is_silent,
    load_audio,
    lufs_gain,
    measure_lufs,
    mix,
    normalize_lufs,
    pad_or_trim,
    random_lufs_targets,
    resample,
    to_mono,
    write_audio,
)
from geosound.config import dev_data_dir
from geosound.errors import AudioError, InputError


def tone(freq: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def noise(seconds: float, rate: int, amp: float = 0.1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (amp * rng.standard_normal(round(seconds * rate))).astype(np.float32)


def peak_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[np.argmax(spectrum)])


def band_level(samples: np.ndarray, rate: int, freq: float, width: float = 50.0) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    freqs = np.fft.rfftfreq(samples.size, 1 / rate)
    return float(spectrum[np.abs(freqs - freq) < width].max())


def expect_audio_error(path: Path, *needles: str, **kwargs: object) -> AudioError:
    with pytest.raises(AudioError) as info:
        load_audio(path, **kwargs)
    message = str(info.value)
    assert path.name in message, message
    for needle in needles:
        assert needle in message, message
    assert isinstance(info.value, InputError)
    return info.value


# --- loading ---------------------------------------------------------------------------


def test_load_resamples_44k_stereo_and_keeps_pitch(tmp_path: Path) -> None:
    rate = 44100
    left, right = tone(1000, 2.0, rate, 0.5), tone(1000, 2.0, rate, 0.3)
    path = tmp_path / "tone44k.wav"
    sf.write(path, np.stack([left, right], axis=1), rate, subtype="FLOAT")

    clip = load_audio(path)

    assert clip.sample_rate == 16000
    assert clip.samples.dtype == np.float32
    assert clip.samples.ndim == 1
    assert abs(clip.samples.size - 32000) <= 1
    assert clip.duration == pytest.approx(2.0, abs=1e-3)
    assert clip.source == str(path)
    assert peak_frequency(clip.samples, 16000) == pytest.approx(1000, abs=2)
    # Mono is the channel mean: amplitude (0.5 + 0.3) / 2, resampling keeps the level.
    assert np.max(np.abs(clip.samples[1000:-1000])) == pytest.approx(0.4, abs=0.01)


def test_load_keeps_channels_and_native_rate(tmp_path: Path) -> None:
    rate = 22050
    stereo = np.stack([tone(440, 0.5, rate), noise(0.5, rate)], axis=1)
    path = tmp_path / "stereo.flac"
    sf.write(path, stereo, rate)

    clip = load_audio(path, sample_rate=None, mono=False)
    assert clip.samples.shape == (2, stereo.shape[0])
    assert clip.sample_rate == rate
    assert clip.channels == 2
    np.testing.assert_allclose(clip.samples, stereo.T, atol=1e-4)  # PCM_16 rounding

    mono = load_audio(path, sample_rate=None)
    np.testing.assert_allclose(mono.samples, stereo.mean(axis=1), atol=1e-4)

    # A one-channel file keeps its channel axis when mono=False: a predictable layout.
    one = tmp_path / "one.wav"
    sf.write(one, tone(440, 0.5, rate), rate)
    assert load_audio(one, sample_rate=None, mono=False).samples.shape == (1, rate // 2)


def test_load_ogg(tmp_path: Path) -> None:
    path = tmp_path / "noise.ogg"
    sf.write(path, noise(1.0, 16000), 16000, format="OGG", subtype="VORBIS")
    clip = load_audio(path)
    assert clip.samples.shape == (16000,)


def test_allow_silent_and_min_duration_ok(tmp_path: Path) -> None:
    path = tmp_path / "quiet.wav"
    sf.write(path, np.zeros(16000, dtype=np.float32), 16000)
    clip = load_audio(path, allow_silent=True, min_duration=1.0)
    assert clip.duration == pytest.approx(1.0)
    assert is_silent(clip.samples)


# --- every error path names the file ---------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    expect_audio_error(tmp_path / "nowhere.wav", "not found")


def test_text_file_renamed_wav(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio, just text pretending to be a wav file\n" * 20)
    expect_audio_error(path, "not a readable audio file")


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "zero.wav"
    path.write_bytes(b"")
    expect_audio_error(path, "empty")


def test_empty_wav_with_header(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), 16000)
    assert path.stat().st_size > 0  # a valid header, no frames
    expect_audio_error(path, "no audio samples")


def test_truncated_flac(tmp_path: Path) -> None:
    path = tmp_path / "cut.flac"
    sf.write(path, noise(2.0, 16000, amp=0.3) + tone(1000, 2.0, 16000, 0.3), 16000)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    expect_audio_error(path, "truncated or corrupt")


@pytest.mark.parametrize(
    ("name", "subtype"), [("cut.wav", "PCM_16"), ("cut_float.wav", "FLOAT"), ("cut.ogg", "VORBIS")]
)
def test_truncated_wav_and_ogg(tmp_path: Path, name: str, subtype: str) -> None:
    # libsndfile shrinks its frame count to what these still hold, so they would otherwise
    # load "fine" as a shorter clip.
    path = tmp_path / name
    sf.write(path, np.stack([noise(2.0, 16000, 0.3)] * 2, axis=1), 16000, subtype=subtype)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    expect_audio_error(path, "truncated or corrupt")


def test_streamed_wav_with_unknown_data_size_loads(tmp_path: Path) -> None:
    # Streaming writers put 0xFFFFFFFF as the data size; that is not a truncation.
    path = tmp_path / "streamed.wav"
    sf.write(path, tone(440, 0.5, 16000), 16000)
    data = bytearray(path.read_bytes())
    at = data.index(b"data") + 4
    data[at : at + 4] = b"\xff\xff\xff\xff"
    path.write_bytes(bytes(data))
    assert load_audio(path).samples.shape == (8000,)


def test_silent_file(tmp_path: Path) -> None:
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros((16000, 2), dtype=np.float32), 16000)
    expect_audio_error(path, "is silent")


def test_channels_cancelling_out_is_silent(tmp_path: Path) -> None:
    path = tmp_path / "antiphase.wav"
    x = tone(440, 0.5, 16000)
    sf.write(path, np.stack([x, -x], axis=1), 16000, subtype="FLOAT")
    expect_audio_error(path, "silent after downmixing")


def test_too_short(tmp_path: Path) -> None:
    path = tmp_path / "short.wav"
    sf.write(path, tone(440, 0.5, 16000), 16000)
    expect_audio_error(path, "too short", "0.500 s", "1.000 s", min_duration=1.0)


def test_nan_samples(tmp_path: Path) -> None:
    path = tmp_path / "nan.wav"
    x = tone(440, 0.5, 16000)
    x[100] = np.nan
    sf.write(path, x, 16000, subtype="FLOAT")
    expect_audio_error(path, "NaN")


# --- writing ---------------------------------------------------------------------------


def test_write_round_trip_and_atomic(tmp_path: Path) -> None:
    x = tone(440, 0.5, 16000, 0.8)
    out = write_audio(tmp_path / "out" / "a.wav", Clip(x, 16000))
    assert out.exists()
    back, rate = sf.read(out, dtype="float32")
    assert rate == 16000 and sf.info(out).subtype == "PCM_16"
    np.testing.assert_allclose(back, x, atol=1e-4)
    assert [p.name for p in out.parent.iterdir()] == ["a.wav"]  # no temp file left

    stereo = np.stack([x, x * 2.0])  # beyond full scale: needs FLOAT
    with pytest.raises(InputError, match="beyond full scale"):
        write_audio(tmp_path / "b.wav", stereo, 16000)
    assert not (tmp_path / "b.wav").exists()
    write_audio(tmp_path / "b.wav", stereo, 16000, subtype="FLOAT")
    np.testing.assert_array_equal(sf.read(tmp_path / "b.wav", dtype="float32")[0].T, stereo)

    with pytest.raises(InputError, match="sample_rate"):
        write_audio(tmp_path / "c.wav", x)
    with pytest.raises(InputError, match=r"\.mp4"):
        write_audio(tmp_path / "c.mp4", x, 16000)


# --- signal helpers --------------------------------------------------------------------


def test_signal_helpers() -> None:
    stereo = np.stack([np.ones(10), np.zeros(10)]).astype(np.float32)
    np.testing.assert_allclose(to_mono(stereo), np.full(10, 0.5))

    x = tone(1000, 1.0, 44100)
    assert resample(x, 44100, 44100) is x
    y = resample(np.stack([x, x]), 44100, 16000)
    assert y.shape[0] == 2 and abs(y.shape[1] - 16000) <= 1 and y.dtype == np.float32
    assert peak_frequency(y[1], 16000) == pytest.approx(1000, abs=2)

    assert pad_or_trim(np.ones(3, np.float32), 5).tolist() == [1, 1, 1, 0, 0]
    assert pad_or_trim(np.ones((2, 7), np.float32), 4).shape == (2, 4)
    with pytest.raises(InputError):
        to_mono(np.zeros((1, 2, 3)))


def test_fixed_windows() -> None:
    rate = 16000
    x = noise(12.0, rate)
    windows = fixed_windows(x, rate, 5.0)
    assert windows.shape == (3, 80000)
    np.testing.assert_array_equal(windows[1], x[80000:160000])
    assert not windows[2, 32000:].any()  # the last 3 s are zero padding
    assert fixed_windows(x, rate, 5.0, pad_last=False).shape == (2, 80000)
    assert fixed_windows(x, rate, 5.0, hop_seconds=2.5).shape == (4, 80000)  # 0,2.5,5,7.5(+pad)
    assert fixed_windows(x[: 10 * rate], rate, 5.0).shape == (2, 80000)  # exact fit, no extra

    short = noise(2.0, rate)
    one = fixed_windows(short, rate, 5.0, pad_last=False)
    assert one.shape == (1, 80000)
    np.testing.assert_array_equal(one[0, :32000], short)
    assert not one[0, 32000:].any()


# --- loudness and mixing ---------------------------------------------------------------


def test_lufs_measure_and_normalise_round_trip() -> None:
    rate = 16000
    # BS.1770 calibration: a full-scale ~1 kHz sine in one channel reads about -3 LUFS.
    assert measure_lufs(tone(997, 2.0, rate, 1.0), rate) == pytest.approx(-3.0, abs=0.3)

    x = noise(3.0, rate, amp=0.05)
    for target in (-30.0, -23.0, -14.0):
        y = normalize_lufs(x, rate, target)
        assert y.dtype == np.float32 and y.shape == x.shape
        assert measure_lufs(y, rate) == pytest.approx(target, abs=0.5)

    # Shorter than one 400 ms block: still measured (tiled), and the round trip holds.
    blip = tone(1000, 0.1, rate, 0.2)
    assert np.isfinite(measure_lufs(blip, rate))
    assert measure_lufs(normalize_lufs(blip, rate, -20.0), rate) == pytest.approx(-20.0, abs=0.5)

    stereo = np.stack([x, x])
    assert measure_lufs(normalize_lufs(stereo, rate, -23.0), rate) == pytest.approx(-23, abs=0.5)


def test_silent_loudness() -> None:
    silence = np.zeros(16000, dtype=np.float32)
    assert measure_lufs(silence, 16000) == float("-inf")
    with pytest.raises(AudioError, match="silent"):
        normalize_lufs(silence, 16000, -23.0)
    with pytest.raises(AudioError, match="too quiet"):
        lufs_gain(np.full(16000, 1e-5, np.float32), 16000, -23.0)


def test_mix_guards_clipping_and_keeps_loudness_order() -> None:
    rate = 16000
    low, high = tone(300, 2.0, rate, 0.1), tone(2000, 3.0, rate, 0.1)
    only_low = pad_or_trim(normalize_lufs(low, rate, -4.0), 3 * rate)
    only_high = normalize_lufs(high, rate, -10.0)
    # Loud targets: the plain sum would clip, so the guard must scale the whole mix.
    assert np.max(np.abs(only_low + only_high)) > 0.99
    mixed = mix([low, high], rate, target_lufs=[-4.0, -10.0])
    assert mixed.shape == (3 * rate,) and mixed.dtype == np.float32
    assert np.max(np.abs(mixed)) == pytest.approx(0.99, abs=1e-6)

    # The guard is one gain for everything (never a hard clip): the mix is the unguarded
    # sum scaled down, so the louder target stays louder, by the same 6 LU.
    scale = 0.99 / np.max(np.abs(only_low + only_high))
    np.testing.assert_allclose(mixed, (only_low + only_high) * scale, atol=1e-6)
    head = slice(0, 2 * rate)  # where both sources play
    assert band_level(mixed[head], rate, 300) > band_level(mixed[head], rate, 2000)
    lufs_low = measure_lufs(only_low[head] * scale, rate)
    lufs_high = measure_lufs(only_high[head] * scale, rate)
    assert lufs_low - lufs_high == pytest.approx(6.0, abs=0.5)

    # No targets and no clipping: a plain sum, trimmed or padded to the requested length.
    quiet = mix([low, high], rate, length=rate)
    np.testing.assert_allclose(quiet, low[:rate] + high[:rate], atol=1e-6)
    assert mix([low], rate, length=4 * rate)[3 * rate :].max() == 0.0


def test_mix_errors_and_targets() -> None:
    rate = 16000
    x = noise(1.0, rate)
    with pytest.raises(AudioError, match="mix source 1"):
        mix([x, np.zeros_like(x)], rate, target_lufs=[-20.0, -20.0])
    with pytest.raises(InputError, match="targets"):
        mix([x, x], rate, target_lufs=[-20.0])
    with pytest.raises(InputError, match="channel layout"):
        mix([x, np.stack([x, x])], rate)
    with pytest.raises(InputError):
        mix([], rate)

    targets = random_lufs_targets(50, rng=np.random.default_rng(7))
    assert targets.shape == (50,) and targets.min() >= -30.0 and targets.max() < -20.0
    np.testing.assert_array_equal(targets, random_lufs_targets(50, rng=np.random.default_rng(7)))


# --- real dev data ---------------------------------------------------------------------


@pytest.mark.devdata
def test_real_esc50_clip() -> None:
    folder = dev_data_dir() / "esc50_outdoor_16k" / "audio"
    files = sorted(folder.glob("*.flac"))
    if not files:
        pytest.skip(f"dev data absent: no FLAC clips in {folder} (set GEOSOUND_DEV_DATA)")
    clip = load_audio(files[0])
    assert clip.sample_rate == 16000 and clip.samples.ndim == 1
    assert clip.duration == pytest.approx(5.0, abs=0.01)
    assert np.isfinite(measure_lufs(clip.samples, clip.sample_rate))
    windows = fixed_windows(clip.samples, clip.sample_rate, 5.0)
    assert windows.shape == (1, 80000)


# --- work ahead of its consumer (geosound.audio.pipeline) --------------------------------------


def test_prefetch_map_keeps_order_and_bounds_how_far_it_runs_ahead() -> None:
    import threading

    from geosound.audio.pipeline import prefetch_map

    started: list[int] = []
    threads: set[str] = set()
    lock = threading.Lock()

    def work(item: int) -> int:
        with lock:
            started.append(item)
            threads.add(threading.current_thread().name)
        return item * item

    results = prefetch_map(work, range(20), workers=2, ahead=3)
    assert next(results) == 0
    # One result consumed; at most 1 + ahead items were ever submitted.
    assert len(started) <= 1 + 3 + 1
    assert list(results) == [i * i for i in range(1, 20)]
    assert sorted(started) == list(range(20))
    assert all(name.startswith("geosound-prefetch") for name in threads)
    assert list(prefetch_map(work, [3, 4], workers=0)) == [9, 16]  # inline


def test_prefetch_map_raises_at_the_failing_items_place() -> None:
    from geosound.audio.pipeline import prefetch_map

    def work(item: int) -> int:
        if item == 3:
            raise AudioError("is corrupt", f"clip{item}.wav")
        return item

    seen: list[int] = []
    with pytest.raises(AudioError, match=r"clip3\.wav"):
        for value in prefetch_map(work, range(6), workers=2):
            seen.append(value)
    assert seen == [0, 1, 2]
    with pytest.raises(InputError, match="workers"):
        list(prefetch_map(work, [1], workers=-1))


def test_in_background_produces_in_order_and_passes_errors_on() -> None:
    import threading

    from geosound.audio.pipeline import in_background

    producers: set[str] = set()

    def windows(fail_at: int | None = None):
        for i in range(8):
            producers.add(threading.current_thread().name)
            if i == fail_at:
                raise AudioError("truncated or corrupt audio", "long.flac")
            yield np.full(4, i, dtype=np.float32)

    assert [int(w[0]) for w in in_background(windows())] == list(range(8))
    assert producers == {"geosound-background"}
    seen: list[int] = []
    with pytest.raises(AudioError, match=r"long\.flac"):
        for window in in_background(windows(fail_at=5)):
            seen.append(int(window[0]))
    assert seen == [0, 1, 2, 3, 4]
    early = in_background(windows(), ahead=1)
    assert int(next(early)[0]) == 0
    early.close()  # stops the producer; must not hang
    assert not any(t.name == "geosound-background" for t in threading.enumerate())
