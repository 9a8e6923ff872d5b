"""The one progress type every long-running function takes.

A callback gets the fraction done in [0, 1] and a short message. The CLI turns it into a tqdm
bar or JSON lines, the QGIS plugin into its feedback object, notebooks into whatever they like.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[float, str], None]


def stage(progress: Progress | None, start: float, end: float) -> Progress | None:
    """A callback that reports a sub-task's progress as the range ``[start, end]`` of the whole."""
    if progress is None:
        return None
    outer = progress

    def report(fraction: float, message: str) -> None:
        outer(start + (end - start) * fraction, message)

    return report
