"""What every benchmark prints beside its numbers: the machine, its device, its load, ratios.

Benchmarks run as scripts (``python benchmarks/bench_x.py``), so this module is imported by
its plain name from the benchmarks folder.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def machine_info(**versions: str) -> dict[str, Any]:
    """CPU, cores, memory, platform, the device and library versions, printed with the numbers.

    ``device`` is :func:`geosound.runtime.describe_device`: the GPU when the run was asked for
    one (``GEOSOUND_DEVICE=cuda``), else the CPU with its threads and OpenMP wait policy, which
    change CPU numbers as much as the processor does.

    Args:
        **versions: Versions of the libraries the benchmark measures (``faiss="1.15"``).
    """
    import numpy as np
    import psutil

    from geosound.runtime import cpu_name, describe_device

    return {
        "cpu": cpu_name(),
        "device": describe_device(),
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "ram_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        **versions,
    }


def load_average() -> str:
    """The 1, 5 and 15-minute load averages, as text: other work on the machine slows numbers."""
    with contextlib.suppress(OSError, AttributeError):
        return ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return "unknown"


def ratio(a: float, b: float) -> float:
    """a / b, infinite when b is zero."""
    return a / b if b > 0 else float("inf")


@contextlib.contextmanager
def workdir(path: Path | None, keep: bool, prefix: str) -> Iterator[Path]:
    """The benchmark's work folder: ``path`` (kept), or a temporary one removed afterwards
    unless ``keep``."""
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    temp_dir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield temp_dir
    finally:
        if keep:
            print(f"kept {temp_dir}")
        else:
            shutil.rmtree(temp_dir, ignore_errors=True)
