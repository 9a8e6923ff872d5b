"""Where and on how many threads the work runs: the thread count, the device, OpenMP's waiting.

Everything here is process-wide and also goes into the environment, because the work does not
all happen in this process: Dask workers (``geosound map --workers``) and other subprocesses
start from a copy of it.

* **Threads** (:func:`set_threads`, ``--threads``): torch's intra- and inter-op pools, faiss's
  OpenMP pool when faiss is loaded, and ``OMP_NUM_THREADS``/``MKL_NUM_THREADS``/
  ``OPENBLAS_NUM_THREADS`` for processes started later. Dask's nannies set those three to 1 in
  each worker unless the environment already holds them, so a worker gets ``--threads`` when
  it is given (torch caps a count read from the environment at the cores) and one thread
  (Dask's default) when it is not.
* **OpenMP's wait policy** (:func:`set_process_defaults`): by default OpenMP threads spin for a
  while after each parallel region, waiting for the next. On a machine with other work the
  spinning threads take the cores that work needs and everyone slows down: the map benchmark
  measured 66.9 tiles/s with the default against 381.9 with ``OMP_WAIT_POLICY=PASSIVE`` under
  load (benchmarks/results/). The CLI therefore sets ``PASSIVE`` unless the variable is already
  set; a user who has the machine to themselves and wants the spinning back runs
  ``OMP_WAIT_POLICY=ACTIVE geosound ...``. OpenMP reads the variable once, when its runtime
  loads (with torch), so it is set before anything imports torch.
* **Device** (:func:`use_device`, ``--device``): ``cpu`` (the default), ``cuda``/``cuda:N`` or
  ``auto`` (a GPU when torch sees one). It is kept in ``GEOSOUND_DEVICE``, which the encoders
  read when they are built (:func:`default_device`), as do the audio banks (a GPU faiss index
  when faiss has GPUs, :func:`requested_cuda_index`). Models and batches move to the device;
  what comes back (an ``Encoding``, bank hits) is on the CPU as before.

Only :mod:`geosound.errors` is imported from geosound, and torch only when a function needs it,
so that the CLI can call :func:`set_process_defaults` before torch loads.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from typing import TYPE_CHECKING, Any

from geosound.errors import InputError

if TYPE_CHECKING:
    import torch

__all__ = [
    "DEVICE_CHOICES",
    "DEVICE_VARIABLE",
    "THREAD_VARIABLES",
    "WAIT_POLICY_VARIABLE",
    "cpu_name",
    "default_device",
    "describe_device",
    "lightning_accelerator",
    "requested_cuda_index",
    "resolve_device",
    "set_process_defaults",
    "set_threads",
    "use_device",
]

WAIT_POLICY_VARIABLE = "OMP_WAIT_POLICY"
DEFAULT_WAIT_POLICY = "PASSIVE"
DEVICE_VARIABLE = "GEOSOUND_DEVICE"
#: What subprocesses' thread pools (OpenMP, MKL, OpenBLAS) size themselves from when they start.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
DEVICE_CHOICES = ("cpu", "cuda", "auto")
#: cuBLAS's deterministic mode, which Lightning's ``deterministic=True`` needs on a GPU; it must
#: be in the environment before cuBLAS starts, so it is set when a CUDA device is chosen.
CUBLAS_WORKSPACE = ("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def set_process_defaults() -> None:
    """Set what the CLI wants of OpenMP before torch loads: no spin-waiting, unless the user says.

    Called first thing by the ``geosound`` entry point. A value the user set (``ACTIVE``)
    is kept.
    """
    os.environ.setdefault(WAIT_POLICY_VARIABLE, DEFAULT_WAIT_POLICY)


# --------------------------------------------------------------------------- threads


def set_threads(threads: int, source: str = "threads") -> int:
    """Use ``threads`` threads here (torch, faiss) and in the processes started from here.

    The environment is set first, so that a torch or faiss loaded by this call or later sizes
    its pool from it; pools already running are resized. torch allows its inter-op pool to be
    sized only before its first parallel work; later calls leave that pool as it is.

    Args:
        threads: At least 1.
        source: What the value came from (``--threads``), for the error message.

    Returns:
        ``threads``.

    Raises:
        InputError: ``threads`` is below 1.
    """
    if threads < 1:
        raise InputError(f"{source}: needs at least 1 thread, got {threads}")
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(threads)
    import torch

    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # "cannot set ... after parallel work has started"
        torch.set_num_interop_threads(threads)
    faiss = sys.modules.get("faiss")
    if faiss is not None:  # its OpenMP pool is its own (a bundled libgomp)
        faiss.omp_set_num_threads(threads)
    return threads


# --------------------------------------------------------------------------- devices


def resolve_device(name: str = "auto", source: str = "device") -> torch.device:
    """The torch device ``name`` means here, or an error saying why there is none.

    Args:
        name: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (``cuda`` when torch sees a GPU,
            else ``cpu``).
        source: Where the name came from (``--device``, ``GEOSOUND_DEVICE``), for messages.

    Raises:
        InputError: An unknown name, or a CUDA device that is not there: torch built without
            CUDA, no GPU visible, or fewer GPUs than ``cuda:N`` needs.
    """
    import torch

    text = str(name).strip().lower()
    if text == "cpu":
        return torch.device("cpu")
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    problem = _cuda_problem(_cuda_number(text, source))
    if problem:
        raise InputError(f"{source} {text}: no CUDA device: {problem}")
    return torch.device(text)


def _cuda_number(text: str, source: str) -> int:
    """N of ``cuda:N`` (0 for ``cuda``); any other name is an error."""
    kind, colon, number = text.partition(":")
    if kind != "cuda" or (colon and not number.isdigit()):
        raise InputError(f"{source}: unknown device {text!r}; choose cpu, cuda, cuda:N or auto")
    return int(number) if colon else 0


def _cuda_problem(index: int) -> str | None:
    """Why CUDA device ``index`` cannot be used (None: it can)."""
    import torch

    if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
        return f"torch was built without CUDA (torch {torch.__version__})"
    count = torch.cuda.device_count()
    if count == 0:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        where = f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else ""
        return f"no GPU visible{where}"
    if index >= count:
        return f"cuda:{index} asked for, but {count} GPU(s) visible (cuda:0..cuda:{count - 1})"
    return None


def use_device(name: str, source: str = "device") -> torch.device:
    """Make ``name`` the device of this process's encoders and banks, and its subprocesses'.

    Returns:
        The resolved device (``auto`` resolved, so workers all agree).

    Raises:
        InputError: As :func:`resolve_device`.
    """
    device = resolve_device(name, source)
    os.environ[DEVICE_VARIABLE] = str(device)
    if device.type == "cuda":
        os.environ.setdefault(*CUBLAS_WORKSPACE)
    return device


def default_device() -> torch.device:
    """The device encoders are built on when none is given: ``GEOSOUND_DEVICE``, else the CPU.

    Raises:
        InputError: ``GEOSOUND_DEVICE`` names no usable device (the message names the variable).
    """
    return resolve_device(_configured_device(), DEVICE_VARIABLE)


def _configured_device() -> str:
    return os.environ.get(DEVICE_VARIABLE, "").strip().lower() or "cpu"


def requested_cuda_index() -> int | None:
    """The GPU number asked for through ``GEOSOUND_DEVICE``; None when the CPU is asked for.

    Reads the variable without loading torch for ``cpu`` or ``cuda[:N]``, so that faiss-only
    processes (bank shards on Dask workers) stay light; only ``auto`` asks torch.
    """
    text = _configured_device()
    if text == "cpu":
        return None
    if text == "auto":
        device = resolve_device("auto", DEVICE_VARIABLE)
        return None if device.type == "cpu" else _index_of(device)
    return _cuda_number(text, DEVICE_VARIABLE)


def _index_of(device: torch.device) -> int:
    import torch

    return device.index if device.index is not None else int(torch.cuda.current_device())


def lightning_accelerator(device: torch.device | None = None) -> dict[str, Any]:
    """``Trainer`` keyword arguments that train on ``device`` (default: :func:`default_device`).

    Returns:
        ``{"accelerator": "cpu", "devices": 1}`` or ``{"accelerator": "cuda", "devices": [N]}``.
    """
    device = device if device is not None else default_device()
    if device.type == "cuda":
        return {"accelerator": "cuda", "devices": [_index_of(device)]}
    return {"accelerator": "cpu", "devices": 1}


# --------------------------------------------------------------------------- descriptions


def cpu_name() -> str:
    """The processor's model name (from ``/proc/cpuinfo`` where there is one)."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def describe_device(device: torch.device | str | None = None) -> str:
    """One line saying what ran the numbers, for benchmark headers.

    A CPU line gives the processor, the usable cores, the threads and OpenMP's wait policy; a
    CUDA line the GPU's name, memory, compute capability and the CUDA version. torch is only
    loaded for a GPU: a faiss-only benchmark stays without it (a second OpenMP runtime in the
    process would change what it measures).

    Args:
        device: The device to describe (default: the configured one, ``GEOSOUND_DEVICE``).
    """
    name = str(device) if device is not None else _configured_device()
    if name != "cpu":
        resolved = resolve_device(name, DEVICE_VARIABLE)
        if resolved.type == "cuda":
            return _describe_cuda(resolved)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    loaded = sys.modules.get("torch")
    if loaded is not None:
        threads = f"torch {loaded.__version__} on {loaded.get_num_threads()} threads"
    else:
        threads = f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
    policy = os.environ.get(WAIT_POLICY_VARIABLE, "unset (spin-wait)")
    return f"cpu: {cpu_name()}, {cores} usable cores, {threads}, {WAIT_POLICY_VARIABLE}={policy}"


def _describe_cuda(device: torch.device) -> str:
    import torch

    index = _index_of(device)
    props = torch.cuda.get_device_properties(index)
    return (
        f"cuda:{index}: {props.name}, {props.total_memory / 2**30:.1f} GiB, compute "
        f"{props.major}.{props.minor}, CUDA {torch.version.cuda}, torch {torch.__version__}"
    )
