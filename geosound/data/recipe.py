"""The mix recipe: how a sonified pair's sound is made, stored instead of the sound itself.

Seeing Sound (METHODS §3) mixes the clips it retrieved for a tile: each picked clip is
loudness-normalised to a target drawn from a small LUFS range, the clips are summed in the
time domain and the sum is scaled down as a whole if it would clip
(:func:`geosound.audio.mix`). Clips longer than the mix start at an offset; shorter ones are
zero-padded at the end (16 kHz mono, 5 s by default).

A mix is stored as a *recipe* (:class:`MixRecipe`, JSON in the manifest's ``audio`` column:
the sources with path, class, licence, loudness target and offset, the sample rate and the
length), not as a rendered file: manifests stay small, the licence of every source travels
with the pair, and :meth:`MixRecipe.render` rebuilds the exact same samples whenever they
are needed. The JSON is canonical (sorted keys, no whitespace), so equal recipes are equal
text and can key a feature cache.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from geosound.errors import AudioError, InputError

if TYPE_CHECKING:
    from geosound.audio import Clip

# geosound.audio (pyloudnorm → scipy.signal) is imported inside render(), so that reading
# recipes stays quick for callers that only summarise manifests.

__all__ = ["MixRecipe", "MixSource", "is_recipe"]

MixSource = dict[str, str | float]
"""One source of a mix: ``path``, ``target_lufs``, ``offset`` (seconds cut from the clip's start)
and ``delay`` (seconds of silence before it enters the mix; optional, 0 when absent) are what
rendering reads; ``class``, ``caption``, ``concept`` and ``licence`` travel with it for
provenance."""


def is_recipe(audio: str) -> bool:
    """Whether an ``audio`` value is a JSON mix recipe rather than a file path."""
    return str(audio).lstrip().startswith("{")


@dataclass(frozen=True)
class MixRecipe:
    """A deterministic description of one mix: render it to get the same samples every time.

    Attributes:
        sample_rate: Rate of the rendered mix, in Hz.
        seconds: Length of the mix.
        sources: The mixed clips (:data:`MixSource`), in mixing order.
        kind: Always :attr:`KIND`; kept so a reader can tell a recipe from other JSON.
        version: The recipe format version (:attr:`VERSION` for recipes written now).
    """

    KIND: ClassVar[str] = "mix"
    VERSION: ClassVar[int] = 1

    sample_rate: int
    seconds: float
    sources: tuple[MixSource, ...]
    kind: str = "mix"
    version: int = 1

    @classmethod
    def from_json(cls, text: str) -> MixRecipe:
        """The recipe in a manifest's ``audio`` value.

        Raises:
            InputError: The value is a path, not valid JSON, not a JSON object, or not a
                well-formed recipe (see :meth:`from_dict`).
        """
        if not is_recipe(text):
            raise InputError(f"not a mix recipe but a path: {str(text)[:80]!r}")
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as error:
            raise InputError(f"the mix recipe is not valid JSON: {error}") from error
        if not isinstance(parsed, dict):
            raise InputError("a mix recipe must be a JSON object")
        return cls.from_dict(parsed)

    @classmethod
    def from_dict(cls, recipe: Mapping[str, Any]) -> MixRecipe:
        """A recipe from its parsed JSON object (``Any``: JSON values are untyped).

        The sources are kept as given; their fields are checked when rendering, where an
        error can name the source.

        Raises:
            InputError: The sample rate, length or sources are missing or malformed, or the
                kind is not ``"mix"``.
        """
        try:
            rate = int(recipe["sample_rate"])
            seconds = float(recipe["seconds"])
            sources = tuple(recipe["sources"])
            kind = str(recipe.get("kind", cls.KIND))
            version = int(recipe.get("version", cls.VERSION))
        except (KeyError, TypeError, ValueError) as error:
            raise InputError(f"malformed mix recipe: {error!r}") from error
        if kind != cls.KIND or not sources or rate <= 0:
            raise InputError("malformed mix recipe: needs kind 'mix', sources and a sample rate")
        if not (math.isfinite(seconds) and seconds > 0):
            raise InputError(f"malformed mix recipe: seconds must be > 0; got {seconds!r}")
        return cls(rate, seconds, sources, kind, version)

    def mixed_with(self, other: MixRecipe, gain_db: float = 0.0) -> MixRecipe:
        """One recipe of this mix's sources and ``other``'s, the latter ``gain_db`` louder.

        Two places' soundscapes heard at once, with one turned up or down: ``other``'s
        loudness targets move by ``gain_db`` (LUFS are dB), so every source keeps its share
        within its own mix. This recipe's rate and length are kept.

        Raises:
            InputError: ``gain_db`` is not finite.
        """
        if not math.isfinite(gain_db):
            raise InputError(f"gain must be a finite number of dB; got {gain_db!r}")
        shifted = [{**source, "target_lufs": float(source["target_lufs"]) + gain_db}
                   for source in other.sources]  # fmt: skip
        return MixRecipe(self.sample_rate, self.seconds, (*self.sources, *shifted))

    def to_dict(self) -> dict[str, Any]:
        """The recipe as a JSON object (what :meth:`to_json` writes and content keys hash)."""
        return {
            "kind": self.kind,
            "version": self.version,
            "sample_rate": self.sample_rate,
            "seconds": self.seconds,
            "sources": list(self.sources),
        }

    def to_json(self) -> str:
        """Compact, canonical JSON (sorted keys), so equal recipes give equal text."""
        return json.dumps(
            self.to_dict(), sort_keys=True, separators=(",", ":"), default=_json_default
        )

    def render(self) -> Clip:
        """Render the mix, deterministically.

        Each source is loaded (mono, at the recipe's rate), cut from its ``offset``, delayed
        by its ``delay`` and padded or trimmed to ``seconds``, normalised to its
        ``target_lufs`` and summed; a mix that would clip is scaled down as a whole
        (:func:`geosound.audio.mix`), so the sources keep their relative loudness. No
        randomness is involved: the same recipe gives the same samples.

        Returns:
            A mono :class:`~geosound.audio.Clip` of ``round(seconds * sample_rate)`` samples.

        Raises:
            InputError: A source lacks a path or a loudness target (named by its number).
            AudioError: A source is missing, unreadable, or silent over its span (named).
        """
        from geosound.audio import Clip, mix

        length = round(self.seconds * self.sample_rate)
        arrays, targets = [], []
        for i, source in enumerate(self.sources):
            samples, target = self._source_samples(i, source, length)
            arrays.append(samples)
            targets.append(target)
        try:
            mixed = mix(arrays, self.sample_rate, targets, length=length)
        except AudioError as error:
            index = _source_index(error.message)
            path = str(self.sources[index]["path"]) if index is not None else None
            raise AudioError(f"cannot mix: {error.message}", path) from error
        return Clip(mixed, self.sample_rate)

    def _source_samples(self, i: int, source: MixSource, length: int) -> tuple[np.ndarray, float]:
        """Source ``i``'s samples from its offset, fitted to ``length``, and its LUFS target."""
        from geosound.audio import load_audio, pad_or_trim

        try:
            path, target = str(source["path"]), float(source["target_lufs"])
            offset = float(source.get("offset", 0.0))
            delay = float(source.get("delay", 0.0))
        except (KeyError, TypeError, ValueError) as error:
            raise InputError(f"malformed mix recipe source {i}: {error!r}") from error
        if not delay >= 0:
            raise InputError(f"malformed mix recipe source {i}: delay must be >= 0, got {delay}")
        clip = load_audio(path, sample_rate=self.sample_rate, mono=True)
        start = max(0, round(offset * self.sample_rate))
        lead = np.zeros(min(length, round(delay * self.sample_rate)), dtype=np.float32)
        samples = np.concatenate([lead, clip.samples[start : start + length - len(lead)]])
        return pad_or_trim(samples, length), target


def _json_default(value: object) -> object:
    """JSON for numpy scalars in recipes."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _source_index(message: str) -> int | None:
    """The source number in :func:`~geosound.audio.mix`'s "mix source 3: ..." errors."""
    prefix = "mix source "
    if message.startswith(prefix):
        number = message[len(prefix) :].split(":", 1)[0]
        if number.isdigit():
            return int(number)
    return None
