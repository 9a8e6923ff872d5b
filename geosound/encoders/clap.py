"""LAION-CLAP encoders: recordings (HTSAT) and text (RoBERTa) in CLAP's 512-d joint space.

Weights come only from a checkpoint file the user already has (for instance the official
``630k-audioset-best.pt``, or ``music_audioset_epoch_15_esc_90.14.pt`` for HTSAT-base):
nothing here downloads anything, unlike ``laion_clap.CLAP_Module.load_ckpt``, which fetches
weights, and ``laion_clap``'s model factory, which fetches ``roberta-base`` from the hub.

Why the ``laion_clap`` package is not imported
    ``import laion_clap`` cannot work here. ``clap_module/utils.py`` does
    ``from torchvision.ops.misc import FrozenBatchNorm2d`` and ``transform.py`` imports
    ``torchvision.transforms``, and torchvision cannot be installed (only CUDA builds exist).
    The package ``__init__`` also appends its own folder to ``sys.path`` and imports
    transformers and wget. The audio branch needs none of that: ``clap_module/htsat.py`` only
    needs torch, torchlibrosa, ``feature_fusion.py`` (torch only) and two small functions from
    ``utils.py``, ``interpolate`` and ``do_mixup``.

    So :func:`_htsat_module` runs the installed ``htsat.py`` and ``feature_fusion.py`` files,
    unmodified, as submodules of a private package, ``_geosound_laion_clap``. Its ``utils``
    submodule holds only those two functions, compiled from the installed ``utils.py`` source.
    Only their definitions are parsed out with :mod:`ast`, so the torchvision, h5py and tqdm
    imports at the top of that file never run. We chose this over a temporary
    ``torchvision`` stub in ``sys.modules``. While a stub is in place, another thread can
    import transformers, and transformers breaks when torchvision is present but broken. A
    stub also has to be removed in every case, even when loading fails. And running the whole
    of ``utils.py`` would pull in h5py for nothing. With this approach no fake module with a
    public name ever exists, so none can leak. ``laion_clap`` is pinned (``==1.1.7``), so the
    file layout this relies on is fixed, and a change breaks loudly with an
    :class:`EncoderError`. The architecture settings come from the package's own
    ``model_configs/HTSAT-*.json``.

Checkpoints
    Official checkpoints hold ``{"state_dict": ...}`` with keys prefixed by ``module.`` (they
    were saved from DistributedDataParallel): ``module.audio_branch.*``,
    ``module.audio_projection.*``, ``module.text_branch.*``, ``module.text_projection.*``
    and so on. Each encoder loads only its branch and projection, and a missing or unexpected
    key in those is an error, never a silent partial load. Files are read with
    ``torch.load(weights_only=True)``, which cannot run code. A file that also holds pickled
    Python objects (numpy scalars, argparse namespaces) is refused unless the caller passes
    ``trusted=True``. That retries with ``weights_only=False``, which runs whatever code the
    pickle names, so pass it only for files from a source you trust.

Fusion checkpoints (``*-fusion-best.pt``) are not supported. They need CLAP's multi-crop mel
input, and that input needs torchvision.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import math
import re
import sys
import threading
import types
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from geosound.encoders.base import Encoder, EncoderInput, Encoding, pad_tokens, register_encoder
from geosound.errors import EncoderError

SAMPLE_RATE = 48_000
"""CLAP's input rate (Hz). Every checkpoint was trained on 48 kHz audio."""

CLIP_SAMPLES = 480_000
"""CLAP's fixed input length: 10 s at 48 kHz."""

JOINT_DIM = 512
"""Size of CLAP's joint audio-text space (``joint_embed_shape`` in laion_clap)."""

TEXT_MAX_TOKENS = 77
"""CLAP truncates captions to 77 RoBERTa tokens, <s> and </s> included."""

_PRIVATE_PACKAGE = "_geosound_laion_clap"
_UTILS_FUNCTIONS = ("interpolate", "do_mixup")
_HTSAT_SIZES = {96: "tiny", 128: "base", 256: "large"}  # patch-embedding width -> HTSAT size
_DEFAULT_AUDIO_MODEL = "HTSAT-tiny"
# Buffers that old transformers versions saved in the state dict and newer ones recreate.
_OPTIONAL_TEXT_BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")

_import_lock = threading.Lock()
_htsat: types.ModuleType | None = None


# --------------------------------------------------------------------------- laion_clap files


def _clap_module_dir() -> Path:
    """The installed ``laion_clap/clap_module`` folder, found without importing the package.

    ``find_spec`` of a top-level name only locates the package. It does not run
    ``laion_clap/__init__.py``, which needs torchvision.
    """
    spec = importlib.util.find_spec("laion_clap")
    if spec is None or not spec.submodule_search_locations:
        raise EncoderError(
            "the CLAP encoders need the laion-clap package (pip install laion-clap==1.1.7)"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "clap_module"
    if not (folder / "htsat.py").is_file():
        raise EncoderError(f"laion-clap is installed without clap_module/htsat.py in {folder}")
    return folder


def _htsat_module() -> types.ModuleType:
    """Load laion_clap's ``htsat.py`` once, without torchvision (see the module docstring)."""
    global _htsat
    with _import_lock:
        if _htsat is None:
            _htsat = _load_htsat(_clap_module_dir())
        return _htsat


def _load_htsat(folder: Path) -> types.ModuleType:
    package = types.ModuleType(_PRIVATE_PACKAGE)
    package.__path__ = []  # a package, so that htsat.py's relative imports resolve
    utils = types.ModuleType(f"{_PRIVATE_PACKAGE}.utils")
    utils.__dict__.update(torch=torch, np=np)
    utils_path = folder / "utils.py"
    tree = ast.parse(utils_path.read_text(encoding="utf-8"), filename=str(utils_path))
    wanted = [
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name in _UTILS_FUNCTIONS
    ]
    if {node.name for node in wanted} != set(_UTILS_FUNCTIONS):
        raise EncoderError(
            f"{utils_path} no longer defines {', '.join(_UTILS_FUNCTIONS)}; "
            "geosound supports laion-clap==1.1.7"
        )
    utils_code = ast.Module(body=list[ast.stmt](wanted), type_ignores=[])
    exec(compile(utils_code, str(utils_path), "exec"), utils.__dict__)

    sys.modules[package.__name__] = package
    sys.modules[utils.__name__] = utils
    try:
        for name in ("feature_fusion", "htsat"):
            spec = importlib.util.spec_from_file_location(
                f"{_PRIVATE_PACKAGE}.{name}", folder / f"{name}.py"
            )
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
    except Exception as err:
        for key in [k for k in sys.modules if k.split(".")[0] == _PRIVATE_PACKAGE]:
            del sys.modules[key]
        raise EncoderError(f"cannot load laion-clap's HTSAT from {folder}: {err}") from err
    return sys.modules[f"{_PRIVATE_PACKAGE}.htsat"]


def _audio_config(name: str) -> tuple[types.SimpleNamespace, int]:
    """The ``audio_cfg`` and the audio embedding width of laion_clap's ``model_configs/NAME``."""
    configs = _clap_module_dir() / "model_configs"
    path = configs / f"{name}.json"
    if not name.startswith("HTSAT") or not path.is_file():
        known = ", ".join(sorted(p.stem for p in configs.glob("HTSAT*.json")))
        raise EncoderError(f"unsupported CLAP audio model {name!r}; supported: {known}")
    config = json.loads(path.read_text(encoding="utf-8"))
    # htsat.py reads the config by attribute (audio_cfg.mel_bins), as laion_clap's dataclass.
    return types.SimpleNamespace(**config["audio_cfg"]), int(config["embed_dim"])


def _projection(in_dim: int) -> nn.Sequential:
    """CLAP's ``audio_projection`` / ``text_projection``: Linear, ReLU, Linear into 512-d."""
    return nn.Sequential(nn.Linear(in_dim, JOINT_DIM), nn.ReLU(), nn.Linear(JOINT_DIM, JOINT_DIM))


# --------------------------------------------------------------------------- checkpoints


def _checkpoint_path(checkpoint: str | Path | None, encoder: str) -> Path:
    if checkpoint is None:
        raise EncoderError(
            f"{encoder} needs a local CLAP checkpoint file (checkpoint=..., for instance "
            "630k-audioset-best.pt from https://huggingface.co/lukewys/laion_clap); "
            "geosound never downloads one"
        )
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise EncoderError(f"{encoder}: CLAP checkpoint file not found", path)
    return path


def _fingerprint(path: Path) -> str:
    """A short tag for a checkpoint, so that caches keyed by encoder id tell files apart.

    Hashing a 2 GB checkpoint in full would take seconds on every start. The size plus the
    first and last MiB tell different checkpoints apart in practice.
    """
    digest = hashlib.sha256()
    size = path.stat().st_size
    digest.update(str(size).encode())
    with path.open("rb") as handle:
        digest.update(handle.read(1 << 20))
        handle.seek(max(0, size - (1 << 20)))
        digest.update(handle.read())
    return f"{path.stem}-{digest.hexdigest()[:10]}"


def _read_state_dict(path: Path, trusted: bool) -> dict[str, torch.Tensor]:
    """Read a CLAP checkpoint's tensors, with keys stripped of DDP's ``module.`` prefix.

    Raises:
        EncoderError: The file is corrupt, not a PyTorch file, holds pickled objects and is
            not ``trusted``, or holds no state dict.
    """
    # mmap keeps the text branch and optimiser state of a 2 GB file out of memory; it needs
    # the zip format that torch.save has written since PyTorch 1.6.
    mmap = zipfile.is_zipfile(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as err:
        if not trusted:
            raise EncoderError(_unreadable_reason(err), path) from err
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=False, mmap=mmap)
        except Exception as retry_err:
            raise EncoderError(_unreadable_reason(retry_err), path) from retry_err
    state = loaded.get("state_dict", loaded) if isinstance(loaded, Mapping) else None
    if not isinstance(state, Mapping):
        raise EncoderError(
            f"not a CLAP checkpoint: it holds a {type(loaded).__name__}, not a state dict", path
        )
    return {
        (key[len("module.") :] if key.startswith("module.") else key): value
        for key, value in state.items()
        if isinstance(key, str) and isinstance(value, torch.Tensor)
    }


def _unreadable_reason(err: Exception) -> str:
    text = str(err)
    unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if unsafe:
        return (
            f"the checkpoint also holds pickled Python objects ({unsafe.group(1)}), which a "
            "safe (weights-only) load refuses; pass trusted=True to load it anyway, but only "
            "if you trust where the file came from, as unpickling can run code"
        )
    detail = re.search(r"WeightsUnpickler error: \s*([^\n]+)", text)
    first_line = (detail.group(1) if detail else text.strip().split("\n")[0])[:200]
    return (
        "cannot read the checkpoint: it is corrupt, truncated or not a PyTorch file "
        f"({type(err).__name__}: {first_line})"
    )


def _load_part(
    module: nn.Module,
    state: Mapping[str, torch.Tensor],
    prefix: str,
    path: Path,
    optional: Sequence[str] = (),
) -> None:
    """Load ``prefix*`` keys into ``module``. Anything missing or unexpected is an error.

    Args:
        module: The network part to fill.
        state: The checkpoint's state dict.
        prefix: The part's key prefix in the checkpoint, e.g. ``"audio_branch."``.
        path: The checkpoint file, for error messages.
        optional: Keys the checkpoint may hold that the module does not need.
    """
    part = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    expected = set(module.state_dict())
    for key in optional:
        if key not in expected:
            part.pop(key, None)
    if not part:
        found = ", ".join(sorted({k.split(".")[0] for k in state})[:6]) or "nothing"
        raise EncoderError(f"not a CLAP checkpoint: no {prefix}* weights (found {found})", path)
    missing = sorted(expected - part.keys())
    unexpected = sorted(part.keys() - expected)
    if missing or unexpected:
        raise EncoderError(
            f"checkpoint does not match the {prefix[:-1]} architecture: "
            f"{len(missing)} missing weights {missing[:3]}, "
            f"{len(unexpected)} unexpected {unexpected[:3]}",
            path,
        )
    try:
        module.load_state_dict(part, strict=True)
    except RuntimeError as err:  # shape mismatches
        raise EncoderError(
            f"checkpoint does not match the {prefix[:-1]} architecture: {err}", path
        ) from err


def _detect_audio_model(state: Mapping[str, torch.Tensor], path: Path) -> str:
    """Name the ``model_configs`` entry of a checkpoint from the shapes of its weights."""
    if any(k.startswith("audio_branch.") and "fusion_model" in k for k in state):
        raise EncoderError(
            "fusion CLAP checkpoints are not supported (their input is a multi-crop mel "
            "stack); use a non-fusion one such as 630k-audioset-best.pt",
            path,
        )
    patch = state.get("audio_branch.patch_embed.proj.weight")
    stft = state.get("audio_branch.spectrogram_extractor.stft.conv_real.weight")
    if patch is None or stft is None:
        return _DEFAULT_AUDIO_MODEL  # let the strict load report what is missing
    size = _HTSAT_SIZES.get(int(patch.shape[0]))
    if size is None:
        raise EncoderError(
            f"unknown HTSAT width {patch.shape[0]}; pass audio_model= explicitly", path
        )
    window = int(stft.shape[-1])
    return f"HTSAT-{size}" + ("" if window == 1024 else f"-win-{window}")


# --------------------------------------------------------------------------- audio


class _ClapAudioNet(nn.Module):
    """CLAP's audio tower: HTSAT plus ``audio_projection``, with laion_clap's module names."""

    def __init__(self, audio_model: str) -> None:
        super().__init__()
        audio_cfg, embed_dim = _audio_config(audio_model)
        htsat = _htsat_module()
        with warnings.catch_warnings():  # htsat.py calls torch.meshgrid without indexing=
            warnings.filterwarnings("ignore", message=r"torch\.meshgrid", category=UserWarning)
            self.audio_branch = htsat.create_htsat_model(audio_cfg)
        self.audio_projection = _projection(embed_dim)
        # htsat.utils.interpolate repeats each of its frames this many times.
        self.frame_repeat = 8 * self.audio_branch.patch_stride[1]

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embed ``(B, 480000)`` waveforms.

        Returns:
            ``(B, 512)`` clip embeddings and ``(B, T, 512)`` frame embeddings.
        """
        out = self.audio_branch({"waveform": waveform}, device=waveform.device)
        frames = out["fine_grained_embedding"][:, :: self.frame_repeat]
        return self.audio_projection(out["embedding"]), self.audio_projection(frames)


def _waveform(item: Any) -> tuple[np.ndarray, int]:
    """Samples and rate of a Clip-like object (``.samples``, ``.sample_rate``) or a tuple."""
    if isinstance(item, tuple) and len(item) == 2:
        samples, rate = item
    elif hasattr(item, "samples") and hasattr(item, "sample_rate"):
        samples, rate = item.samples, item.sample_rate
    else:
        raise EncoderError(
            "clap-audio encodes Clip objects or (samples, sample_rate) tuples, "
            f"not {type(item).__name__}"
        )
    if isinstance(samples, torch.Tensor):
        samples = samples.detach().cpu().numpy()
    array = np.asarray(samples, dtype=np.float64)
    if array.ndim == 2:
        # soundfile gives (frames, channels) and librosa (channels, frames): the channel axis
        # is the short one either way.
        array = array.mean(axis=int(np.argmin(array.shape)))
    if array.ndim != 1 or array.size == 0:
        raise EncoderError(f"clap-audio needs mono or multichannel samples, got {array.shape}")
    if not np.isfinite(array).all():
        raise EncoderError("clap-audio got samples that are NaN or infinite")
    if isinstance(rate, bool) or not isinstance(rate, int | np.integer) or rate <= 0:
        raise EncoderError(f"clap-audio needs a positive integer sample rate, got {rate!r}")
    return array, int(rate)


def _clap_input(samples: np.ndarray, rate: int) -> tuple[np.ndarray, int]:
    """Turn one recording into CLAP's 10 s, 48 kHz input, the way laion_clap prepares audio.

    The steps: resample with soxr HQ (librosa's default, which laion_clap's file loader
    uses), round-trip through int16 as laion_clap does before every embedding, then repeat
    the clip as many whole times as fit and zero-pad the rest (its ``repeatpad``). Clips
    longer than 10 s keep their middle 10 s. laion_clap crops at random, but caches need
    the same input to give the same embedding.

    Returns:
        The ``(480000,)`` float32 input, and how many of its samples are the clip itself
        (the first copy, before any repeats or padding).
    """
    if rate != SAMPLE_RATE:
        import soxr

        samples = soxr.resample(samples, rate, SAMPLE_RATE, quality="HQ")
    quantised = (np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)
    audio = (quantised / 32767.0).astype(np.float32)
    length = audio.shape[0]
    if length == 0:
        raise EncoderError("clap-audio got a clip too short to resample to 48 kHz")
    if length > CLIP_SAMPLES:
        start = (length - CLIP_SAMPLES) // 2
        return audio[start : start + CLIP_SAMPLES], CLIP_SAMPLES
    filled = np.zeros(CLIP_SAMPLES, dtype=np.float32)
    repeated = np.tile(audio, CLIP_SAMPLES // length)
    filled[: repeated.shape[0]] = repeated
    return filled, length


@register_encoder("clap-audio")
class ClapAudioEncoder(Encoder):
    """CLAP's audio encoder (HTSAT), from a local non-fusion CLAP checkpoint.

    Items are Clip-like objects (anything with ``.samples`` and ``.sample_rate``) or
    ``(samples, sample_rate)`` tuples, at any rate and length, mono or multichannel. Each
    becomes one 10 s, 48 kHz CLAP input (see :func:`_clap_input`).

    The outputs, all float32 on the CPU:

    * ``pooled`` is CLAP's audio embedding, ``audio_projection(embedding)`` (not normalised;
      laion_clap L2-normalises it before comparing with text).
    * ``tokens`` are HTSAT's 32 time frames of 312.5 ms each. HTSAT gives them as
      ``fine_grained_embedding``, ``(B, 1024, width)``, in which each frame is repeated 32
      times, so one copy of each is kept. Each frame then goes through the same
      ``audio_projection``, so that tokens and ``pooled`` share the 512-d space that
      Sat2Sound's codebook pools over. CLAP only trained that projection on the clip
      average. Projected frames are therefore an approximation: the projection is
      nonlinear, so the average of the tokens is not ``pooled``.
    * ``mask`` is True for the frames that cover the recording itself. A 3 s clip fills 10
      of the 32 frames, and the frames over its repeats and the zero padding are masked out.
      Clips of 10 s or more use all 32 frames.

    Args:
        checkpoint: A local CLAP checkpoint (``.pt``). HTSAT-tiny, base and large are told
            apart from the shapes of its weights.
        batch_size: Clips per forward pass. HTSAT-tiny needs about 0.2 GB per clip on CPU.
        device: Where the network runs (default: the process's, see ``Encoder``).
        random_init: Build the network with random weights and no checkpoint, for tests and
            smoke checks. The encoder id then says ``random``, so that its outputs never mix
            with real embeddings in a cache.
        audio_model: A laion_clap ``model_configs`` name (``HTSAT-tiny``, ``HTSAT-base``, ...).
            By default it is detected from the checkpoint (``HTSAT-tiny`` with random_init).
        trusted: Allow unpickling a checkpoint that a weights-only load refuses. Only use it
            for files from a source you trust: unpickling can run code.
        seed: Seed for the random weights when random_init is set.

    Raises:
        EncoderError: There is neither a checkpoint nor ``random_init``, or there are both, or
            the checkpoint file does not exist.
    """

    modality = "audio"
    dim = JOINT_DIM
    window_seconds = CLIP_SAMPLES / SAMPLE_RATE
    padding = "repeated to fill the window, then padded with silence"  # see _clap_input

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        batch_size: int = 8,
        device: str | None = None,
        random_init: bool = False,
        *,
        audio_model: str | None = None,
        trusted: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, device=device)
        if random_init and checkpoint is not None:
            raise EncoderError("clap-audio: pass either a checkpoint or random_init=True, not both")
        self.checkpoint = None if random_init else _checkpoint_path(checkpoint, "clap-audio")
        self.random_init = random_init
        self.audio_model = audio_model
        self.trusted = trusted
        self.seed = seed
        if self.checkpoint is None:
            self._weights = f"random-{audio_model or _DEFAULT_AUDIO_MODEL}-seed{seed}"
        else:
            self._weights = _fingerprint(self.checkpoint)

    @property
    def id(self) -> str:
        """``clap-audio@<checkpoint stem>-<fingerprint>`` or ``clap-audio@random-...``."""
        return f"{self.name}@{self._weights}"

    def _load(self) -> _ClapAudioNet:
        if self.checkpoint is None:
            # A private RNG stream: the same seed gives the same network, and the caller's
            # global RNG is left untouched.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                net = _ClapAudioNet(self.audio_model or _DEFAULT_AUDIO_MODEL)
        else:
            state = _read_state_dict(self.checkpoint, self.trusted)
            if not any(k.startswith("audio_branch.") for k in state):
                found = ", ".join(sorted({k.split(".")[0] for k in state})[:6]) or "nothing"
                raise EncoderError(
                    f"not a CLAP checkpoint: no audio_branch.* weights (found {found})",
                    self.checkpoint,
                )
            net = _ClapAudioNet(self.audio_model or _detect_audio_model(state, self.checkpoint))
            _load_part(net.audio_branch, state, "audio_branch.", self.checkpoint)
            _load_part(net.audio_projection, state, "audio_projection.", self.checkpoint)
            del state
        return net.to(self.device).eval()

    def _encode_batch(self, items: EncoderInput) -> Encoding:
        inputs = [_clap_input(*_waveform(item)) for item in items]
        waveform = torch.from_numpy(np.stack([audio for audio, _ in inputs])).to(self.device)
        pooled, frames = self.model(waveform)
        frame_count = frames.shape[1]
        sequences = []
        for i, (_, length) in enumerate(inputs):
            real = min(frame_count, max(1, math.ceil(length * frame_count / CLIP_SAMPLES)))
            sequences.append(frames[i, :real].float().cpu())
        tokens, mask = pad_tokens(sequences)
        return Encoding(pooled.float().cpu(), tokens, mask)


# --------------------------------------------------------------------------- text


@register_encoder("clap-text")
class ClapTextEncoder(Encoder):
    """CLAP's text encoder (RoBERTa), from a local CLAP checkpoint and a local roberta-base.

    The CLAP checkpoint holds the RoBERTa weights (``text_branch.*``). The architecture
    config and the tokenizer are not in it. laion_clap fetches them from the hub as
    ``roberta-base``, so here they must be in a local folder, ``text_model_dir``: a saved
    copy of ``roberta-base`` (``config.json`` plus ``tokenizer.json``, or ``vocab.json``
    and ``merges.txt``; ``model.safetensors`` is not needed). Nothing is downloaded.

    Items are strings. ``pooled`` is CLAP's text embedding,
    ``text_projection(pooler_output)`` (not normalised). ``tokens`` are RoBERTa's
    last-layer token states through the same ``text_projection``, which CLAP only trained on
    the pooled output, so they are an approximation. ``mask`` is the attention mask. Texts
    are truncated to 77 tokens, as CLAP does, but padded only to the longest in the batch,
    not to 77: the attention mask makes the outputs the same.

    Args:
        checkpoint: A local CLAP checkpoint (``.pt``) with a RoBERTa text branch.
        text_model_dir: A local folder with roberta-base's config and tokenizer.
        batch_size: Texts per forward pass.
        device: Where the network runs (default: the process's, see ``Encoder``).
        trusted: As for :class:`ClapAudioEncoder`: allow unpickling a checkpoint that a
            weights-only load refuses.

    Raises:
        EncoderError: The checkpoint or ``text_model_dir`` is not given or does not exist.
    """

    modality = "text"
    dim = JOINT_DIM

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        text_model_dir: str | Path | None = None,
        batch_size: int = 32,
        device: str | None = None,
        *,
        trusted: bool = False,
    ) -> None:
        super().__init__(batch_size=batch_size, device=device)
        self.checkpoint = _checkpoint_path(checkpoint, "clap-text")
        if text_model_dir is None:
            raise EncoderError(
                "clap-text needs text_model_dir, a local copy of roberta-base's config and "
                "tokenizer (CLAP checkpoints do not include them, and geosound never "
                "downloads them)"
            )
        self.text_model_dir = Path(text_model_dir).expanduser()
        if not (self.text_model_dir / "config.json").is_file():
            raise EncoderError(
                "clap-text: text_model_dir has no config.json (expected a saved roberta-base)",
                self.text_model_dir,
            )
        self.trusted = trusted
        self._weights = _fingerprint(self.checkpoint)
        self._tokenizer: Any = None

    @property
    def id(self) -> str:
        """``clap-text@<checkpoint stem>-<fingerprint>``."""
        return f"{self.name}@{self._weights}"

    def _load(self) -> nn.Module:
        try:  # transformers is slow to import; only the text encoder needs it
            from transformers import AutoTokenizer, RobertaConfig, RobertaModel
        except ImportError as err:
            raise EncoderError(f"clap-text needs transformers: {err}") from err
        try:
            config = RobertaConfig.from_pretrained(self.text_model_dir, local_files_only=True)
            self._tokenizer = AutoTokenizer.from_pretrained(
                self.text_model_dir, local_files_only=True
            )
        except (OSError, ValueError) as err:
            raise EncoderError(
                f"cannot read roberta-base's config or tokenizer: {err}", self.text_model_dir
            ) from err
        state = _read_state_dict(self.checkpoint, self.trusted)
        net = nn.Module()
        net.text_branch = RobertaModel(config)  # random init; the weights come from the checkpoint
        net.text_projection = _projection(config.hidden_size)
        _load_part(net.text_branch, state, "text_branch.", self.checkpoint, _OPTIONAL_TEXT_BUFFERS)
        _load_part(net.text_projection, state, "text_projection.", self.checkpoint)
        del state
        return net.to(self.device).eval()

    def _encode_batch(self, items: EncoderInput) -> Encoding:
        if not all(isinstance(item, str) for item in items):
            raise EncoderError("clap-text encodes strings")
        net = self.model
        batch = self._tokenizer(
            list(items),
            padding=True,
            truncation=True,
            max_length=TEXT_MAX_TOKENS,
            return_tensors="pt",
        )
        out = net.text_branch(
            input_ids=batch["input_ids"].to(self.device),
            attention_mask=batch["attention_mask"].to(self.device),
        )
        pooled = net.text_projection(out.pooler_output).float().cpu()
        tokens = net.text_projection(out.last_hidden_state).float().cpu()
        mask = batch["attention_mask"].bool().cpu()
        return Encoding(pooled, tokens * mask.unsqueeze(-1), mask)
