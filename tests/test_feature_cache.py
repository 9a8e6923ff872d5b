"""The feature cache: encoders run once per (encoder id, content); entries are atomic and safe."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from geosound.audio import Clip
from geosound.data.feature_cache import FeatureCache, content_key, default_feature_root
from geosound.encoders.base import Encoder, Encoding, pad_tokens
from geosound.errors import InputError


class FakeTextEncoder(Encoder):
    """A deterministic stand-in: one token per character, pooled = mean of the tokens.

    Defined here and never registered, so the global encoder registry is left alone.
    """

    name: ClassVar[str] = "fake-test"
    modality: ClassVar[Any] = "text"
    dim: ClassVar[int] = 4

    def __init__(self, batch_size: int = 2, version: str = "1") -> None:
        super().__init__(batch_size=batch_size)
        self.version = version  # type: ignore[misc]
        self.encoded: list[Any] = []

    def _load(self) -> Any:
        return object()

    def _encode_batch(self, items: Sequence[Any]) -> Encoding:
        self.encoded.extend(items)
        sequences = []
        for item in items:
            text = str(item.samples.tolist()) if hasattr(item, "samples") else str(item)
            codes = torch.tensor([float(ord(ch)) for ch in text])
            sequences.append(torch.stack([codes, codes * 2, codes % 7, -codes], dim=1))
        tokens, mask = pad_tokens(sequences)
        pooled = torch.stack([seq.mean(dim=0) for seq in sequences])
        return Encoding(pooled=pooled, tokens=tokens, mask=mask)


class FakeAudioEncoder(FakeTextEncoder):
    name: ClassVar[str] = "fake-audio-test"
    modality: ClassVar[Any] = "audio"


def test_hits_and_misses(tmp_path: Path):
    encoder = FakeTextEncoder()
    cache = FeatureCache(tmp_path, encoder)
    first = cache.encode(["ab", "abc", "ab", "wxyz"])
    assert (cache.stats.hits, cache.stats.misses) == (0, 4)
    assert encoder.encoded == ["ab", "abc", "wxyz"]  # the duplicate was encoded once

    encoder.encoded.clear()
    again = FeatureCache(tmp_path, encoder)  # a new object: only the disk is shared
    second = again.encode(["wxyz", "ab", "new"])
    assert (again.stats.hits, again.stats.misses) == (2, 1)
    assert encoder.encoded == ["new"]
    np.testing.assert_array_equal(second[0].pooled, first[3].pooled)
    np.testing.assert_array_equal(second[1].tokens, first[0].tokens)


def test_tokens_are_trimmed_to_their_mask(tmp_path: Path):
    # "ab" and "abcde" share a batch, so the encoder pads "ab" to 5 tokens; the cache keeps 2.
    features = FeatureCache(tmp_path, FakeTextEncoder()).encode(["ab", "abcde"])
    assert features[0].tokens.shape == (2, 4) and features[1].tokens.shape == (5, 4)
    assert features[0].pooled.shape == (4,)
    np.testing.assert_allclose(features[0].tokens.mean(axis=0), features[0].pooled)


def test_layout_and_progress(tmp_path: Path):
    calls: list[float] = []
    cache = FeatureCache(tmp_path, FakeTextEncoder(batch_size=2))
    cache.encode(["a", "b", "c"], progress=lambda fraction, message: calls.append(fraction))
    key = content_key("a")
    assert cache.path_for(key) == tmp_path / "fake-test@1" / key[:2] / f"{key}.npz"
    assert cache.path_for(key).is_file()
    assert calls == [pytest.approx(2 / 3), 1.0]
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 3 and all(p.suffix == ".npz" for p in files)  # no temp files left


def test_keys_are_stable_and_content_based(tmp_path: Path):
    assert content_key("rain") == hashlib.sha256(b"text\0rain").hexdigest()
    one, two = tmp_path / "one.wav", tmp_path / "two.wav"
    one.write_bytes(b"RIFF same bytes")
    two.write_bytes(b"RIFF same bytes")
    assert content_key(one) == content_key(two)  # renaming does not change the key
    assert content_key(one) != content_key(str(one))  # a str is text, not a path
    two.write_bytes(b"RIFF other bytes")
    assert content_key(one) != content_key(two)

    array = np.arange(6, dtype=np.float32)
    assert content_key(array) == content_key(array.copy())
    assert content_key(array) != content_key(array.reshape(2, 3))
    assert content_key(array) != content_key(array.astype(np.float64))
    assert content_key(torch.from_numpy(array)) == content_key(array)

    recipe = {"sources": [{"path": "a.flac", "target_lufs": -23.0}], "seconds": 5.0}
    reordered = {"seconds": 5.0, "sources": [{"target_lufs": -23.0, "path": "a.flac"}]}
    assert content_key(recipe) == content_key(reordered)
    assert content_key(recipe) != content_key({**recipe, "seconds": 4.0})

    clip = Clip(np.ones(10, dtype=np.float32), 16000)
    assert content_key(clip) != content_key(Clip(np.ones(10, dtype=np.float32), 8000))

    with pytest.raises(InputError, match="not an existing file"):
        content_key(tmp_path / "missing.wav")
    with pytest.raises(InputError, match="cannot compute a content key"):
        content_key(3.5)


def test_encoder_id_separates_entries(tmp_path: Path):
    FeatureCache(tmp_path, FakeTextEncoder(version="1")).encode(["a"])
    newer = FeatureCache(tmp_path, FakeTextEncoder(version="2"))
    newer.encode(["a"])
    assert newer.stats.misses == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake-test@1", "fake-test@2"]


def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    cache = FeatureCache(tmp_path, FakeTextEncoder())

    def broken_savez(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        cache.encode(["a"])
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_damaged_entry_is_recomputed(tmp_path: Path):
    cache = FeatureCache(tmp_path, FakeTextEncoder())
    (good,) = cache.encode(["abc"])
    cache.path_for(content_key("abc")).write_bytes(b"not a zip")
    again = FeatureCache(tmp_path, cache.encoder)
    (fixed,) = again.encode(["abc"])
    assert again.stats.misses == 1
    np.testing.assert_array_equal(fixed.tokens, good.tokens)
    assert again.get(content_key("abc")) is not None  # rewritten


def test_audio_items_keyed_by_file_and_prepared_only_on_miss(tmp_path: Path):
    path = tmp_path / "clip.bin"
    path.write_bytes(b"\x01\x02")
    loads: list[Any] = []

    def load(item: Any) -> Clip:
        loads.append(item)
        return Clip(np.frombuffer(Path(item).read_bytes(), dtype=np.uint8).astype(np.float32), 8)

    cache = FeatureCache(tmp_path / "cache", FakeAudioEncoder())
    assert cache.key(str(path)) == content_key(path)
    cache.encode([str(path)], prepare=load)
    cache.encode([str(path)], prepare=load)
    assert loads == [str(path)] and cache.stats.hits == 1


def test_explicit_keys_and_pooled_matrix(tmp_path: Path):
    cache = FeatureCache(tmp_path, FakeTextEncoder())
    keys = [content_key({"recipe": 1}), content_key({"recipe": 2})]
    pooled = cache.encode_pooled(["xy", "xyz"], keys=keys)
    assert pooled.shape == (2, 4)
    assert cache.get(keys[0]) is not None and cache.get(content_key("xy")) is None
    with pytest.raises(InputError, match="keys"):
        cache.encode(["a", "b"], keys=keys[:1])
    assert cache.encode([]) == []


def test_default_root_follows_the_cache_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GEOSOUND_CACHE", str(tmp_path))
    assert default_feature_root() == tmp_path / "features"
    assert FeatureCache(None, FakeTextEncoder()).folder == tmp_path / "features" / "fake-test@1"
