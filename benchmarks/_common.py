"""What every benchmark prints beside its numbers: the machine, its load, ratios.

Benchmarks run as scripts (``python benchmarks/bench_x.py``), so this module is imported by
its plain name from the benchmarks folder.
"""

from __future__ import annotations

import contextlib
import os
import platform
from typing import Any


def machine_info(**versions: str) -> dict[str, Any]:
    """CPU, cores, memory, platform and library versions, printed with the numbers.

    Args:
        **versions: Versions of the libraries the benchmark measures (``faiss="1.15"``).
    """
    import numpy as np
    import psutil

    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "ram_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        **versions,
    }
