"""Progress reporting for long commands: a tqdm bar for people, JSON lines for programs.

With ``--progress json`` every update is one line ``{"progress": 0.42, "message": "..."}`` on
stdout, and the command ends with ``{"ok": true, "outputs": [...]}`` or ``{"error": "..."}``,
which is what the QGIS plugin maps onto its feedback object.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator, Sequence
from enum import StrEnum
from typing import Annotated

import typer
from tqdm import tqdm

from geosound.progress import Progress


class ProgressMode(StrEnum):
    """How a long command reports progress."""

    bar = "bar"
    json = "json"
    none = "none"


ProgressOption = Annotated[
    ProgressMode, typer.Option("--progress", help="bar (people), json (programs) or none.")
]

JSON_MODE = {"active": False}


def emit_json(payload: dict[str, object]) -> None:
    """One JSON object per line, flushed at once so a reading process sees it live."""
    sys.stdout.write(json.dumps(payload, default=str) + "\n")
    sys.stdout.flush()


@contextlib.contextmanager
def progress_reporter(mode: ProgressMode, description: str) -> Iterator[Progress]:
    """Yield a ``callback(fraction, message)`` that reports in the chosen mode."""
    if mode is ProgressMode.json:
        JSON_MODE["active"] = True
        yield lambda fraction, message: emit_json(
            {"progress": round(float(fraction), 4), "message": message}
        )
        return
    if mode is ProgressMode.none:
        yield lambda fraction, message: None
        return
    # disable=None: no bar where stderr is not a terminal (pipes, logs), whose readers would
    # get its redraws as lines before the one error line.
    with tqdm(
        total=100, desc=description, unit="%", file=sys.stderr, leave=False, disable=None
    ) as bar:

        def update(fraction: float, message: str) -> None:
            bar.n = round(100 * fraction)
            bar.set_postfix_str(message, refresh=False)
            bar.refresh()

        yield update


def report_outputs(
    command: str, mode: ProgressMode, outputs: Sequence[object], note: str | None = None
) -> None:
    """End a command: the final JSON object for programs, or the list of files for people."""
    paths = [str(path) for path in outputs]
    if mode is ProgressMode.json:
        emit_json({"ok": True, "outputs": paths, **({"note": note} if note else {})})
        return
    typer.echo(f"geosound {command}: wrote")
    for path in paths:
        typer.echo(f"  {path}")
    if note:
        typer.echo(f"note: {note}.")
