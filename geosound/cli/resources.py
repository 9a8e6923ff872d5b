"""``--threads`` and ``--device``: one spelling for every long command (geosound.runtime).

A command takes ``threads: ThreadsOption = None, device: DeviceOption = None`` and calls
:func:`use_resources` after its cheap checks and before anything loads a model, so that a
``--device cuda`` on a machine without one is refused in a second, in one line.
"""

from __future__ import annotations

import os
from enum import StrEnum
from typing import Annotated

import typer


class DeviceChoice(StrEnum):
    """geosound.runtime.DEVICE_CHOICES, spelled out so that --help needs no torch."""

    cpu = "cpu"
    cuda = "cuda"
    auto = "auto"


ThreadsOption = Annotated[
    int | None,
    typer.Option(
        "--threads",
        min=1,
        help="Threads for torch, faiss and OpenMP (default: one per core, or OMP_NUM_THREADS); "
        "with --workers, per worker. OpenMP threads sleep between tasks rather than spin "
        "(OMP_WAIT_POLICY=PASSIVE unless set; OMP_WAIT_POLICY=ACTIVE brings spinning back).",
    ),
]

DeviceOption = Annotated[
    DeviceChoice | None,
    typer.Option(
        "--device",
        help="Where encoders, training and GPU faiss banks run: cpu, cuda or auto (cuda when "
        "torch sees a GPU). Default: GEOSOUND_DEVICE, else cpu. Results come back to the CPU.",
    ),
]


def use_resources(threads: int | None, device: DeviceChoice | None) -> None:
    """Apply ``--threads`` and ``--device`` to this process and the workers it starts.

    Without ``--device``, a ``GEOSOUND_DEVICE`` from the environment is checked here too, so
    that a bad one is refused before the model loads rather than when the first encoder does.

    Raises:
        InputError: No such device here (the message names ``--device`` or the variable).
    """
    from geosound import runtime

    if device is not None:
        runtime.use_device(device.value, "--device")
    elif os.environ.get(runtime.DEVICE_VARIABLE):
        runtime.default_device()
    if threads is not None:
        runtime.set_threads(threads, "--threads")
