"""A frozen torch network run on ONNX Runtime or OpenVINO instead of torch.

Why: on a CPU, a small convolutional network spends much of its time between kernels —
dispatch, memory layout changes, thread wake-ups — which an inference runtime removes by
planning the whole graph once (fused kernels, preallocated buffers, its own thread pool).
Both runtimes here read one ONNX file that :func:`exported_model` builds locally from the
network's weights with ``torch.onnx.export`` (nothing downloads), keeps under
``<cache>/encoders/`` keyed by the encoder id and the input size, and writes atomically, so
concurrent processes (Dask workers) never read half a file. A build is checked against torch
on a random batch before it is kept.

ONNX Runtime is ``onnxruntime`` (a dependency); OpenVINO is the optional ``openvino`` package.
Both use as many threads as torch does (``torch.get_num_threads()``), so ``--threads`` and
the Dask workers' one thread apply to every backend alike.
"""

from __future__ import annotations

import contextlib
import io
import threading
import warnings
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from geosound.atomic import atomic_path
from geosound.config import cache_dir
from geosound.encoders.base import EncoderBackend
from geosound.errors import EncoderError

#: Bumped when the exported graph changes for the same weights (a new folding, a new opset).
EXPORT_FORMAT = 1
OPSET = 17
#: How far an export may stray from torch on its check batch before it is refused.
EXPORT_TOLERANCE = 1e-4


class FeatureRunner(Protocol):
    """Runs the network on a prepared ``(B, 3, H, W)`` float32 batch; returns its output."""

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """The network's output for ``batch``, a float32 CPU tensor."""
        ...


def export_dir() -> Path:
    """Where exported networks live (under geosound's cache: safe to delete)."""
    return cache_dir() / "encoders"


def exported_model(module: nn.Module, key: str, example: torch.Tensor) -> Path:
    """The ONNX file of ``module`` for inputs shaped like ``example`` (any batch size).

    Built on first use and kept at ``export_dir() / f"{key}.{H}x{W}.v{EXPORT_FORMAT}.onnx"``;
    the spatial size is part of the name because "same" padding is traced at one size.

    Raises:
        EncoderError: The export failed or disagrees with torch beyond ``EXPORT_TOLERANCE``.
    """
    height, width = example.shape[-2:]
    path = export_dir() / f"{key}.{height}x{width}.v{EXPORT_FORMAT}.onnx"
    if path.exists():
        return path
    with atomic_path(path) as tmp:
        _export(module, example, tmp)
        _check_export(module, example, tmp, key)
    return path


def _export(module: nn.Module, example: torch.Tensor, destination: Path) -> None:
    # The TorchScript exporter (dynamo=False) needs no onnxscript and traces this plain
    # convolutional network exactly; its deprecation warnings are not the user's concern.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                module.eval(),
                (example,),
                str(destination),
                input_names=["images"],
                output_names=["features"],
                dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}},
                opset_version=OPSET,
                dynamo=False,
            )
        except Exception as error:  # an exporter failure of any kind is one error to the user
            raise EncoderError(f"exporting the network to ONNX failed: {error}") from error


def _check_export(module: nn.Module, example: torch.Tensor, path: Path, key: str) -> None:
    check = torch.rand((2, *example.shape[1:]), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = module(check).numpy()
    got = OnnxRunner(path)(check).numpy()
    worst = float(np.abs(got - expected).max())
    if not worst <= EXPORT_TOLERANCE:
        raise EncoderError(
            f"the ONNX export of {key} differs from torch by {worst:.2g} (> {EXPORT_TOLERANCE})"
        )


class OnnxRunner:
    """An ONNX Runtime session on the CPU, with torch's thread count.

    Spinning is off: ONNX Runtime's pool otherwise busy-waits between operators, which on a
    machine shared with other work takes cores from it and from itself (the collapse seen
    with OpenMP's spinning, ``benchmarks/results/map_2026-11-23.txt``).
    """

    def __init__(self, path: Path, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as error:
            raise EncoderError(
                "the onnx encoder backend needs onnxruntime; run `make install`"
            ) from error
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """The session's output for ``batch``."""
        array = np.ascontiguousarray(batch.numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {self.input_name: array})[0])


class OpenVinoRunner:
    """An OpenVINO model compiled for the CPU in float32, with torch's thread count.

    Compiled once per batch size seen (a static shape lets OpenVINO plan every buffer; a map
    sees the full batch size and at most one smaller last batch per chunk).
    """

    def __init__(self, path: Path, threads: int | None = None) -> None:
        try:
            import openvino
        except ImportError as error:
            raise EncoderError(
                "the openvino encoder backend needs the openvino package: "
                "pip install 'geosound[openvino]'"
            ) from error
        self.core = openvino.Core()
        self.model = self.core.read_model(str(path))
        self.config: dict[str, Any] = {
            "INFERENCE_NUM_THREADS": threads or torch.get_num_threads(),
            "INFERENCE_PRECISION_HINT": "f32",
            "PERFORMANCE_HINT": "LATENCY",
        }
        self._compiled: dict[tuple[int, ...], Any] = {}
        self._lock = threading.Lock()

    def _request(self, shape: tuple[int, ...]) -> Any:
        if shape not in self._compiled:
            model = self.model.clone()
            model.reshape({0: list(shape)})
            compiled = self.core.compile_model(model, "CPU", self.config)
            self._compiled[shape] = compiled.create_infer_request()
        return self._compiled[shape]

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """The compiled model's output for ``batch`` (compiled for its shape on first sight)."""
        array = np.ascontiguousarray(batch.numpy(), dtype=np.float32)
        with self._lock:  # an infer request runs one inference at a time
            request = self._request(tuple(array.shape))
            output = request.infer({0: array})[0]
        return torch.from_numpy(np.array(output, copy=True))


class TorchRunner:
    """The module in torch, channels-last (the layout oneDNN's CPU convolutions run fastest in)."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module.eval().to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """The module's output for ``batch`` (made channels-last first)."""
        with torch.inference_mode():
            return self.module(batch.contiguous(memory_format=torch.channels_last))


def make_runner(
    backend: EncoderBackend, module: nn.Module, key: str, example: torch.Tensor
) -> FeatureRunner:
    """A runner of ``module`` on ``backend`` for inputs shaped like ``example``."""
    if backend == "torch":
        return TorchRunner(module)
    path = exported_model(module, key, example)
    if backend == "onnx":
        return OnnxRunner(path)
    return OpenVinoRunner(path)
