"""Run one geosound command as a subprocess and follow its ``--progress json`` protocol.

The CLI prints one JSON object per line: ``{"progress": 0.42, "message": "..."}`` while it
works, then ``{"ok": true, "outputs": [...]}`` or ``{"error": "..."}`` (docs/ARCHITECTURE.md).
Errors found before the CLI starts reporting (bad arguments, a file that does not exist) only
reach stderr as ``geosound: error: ...`` with a non-zero exit code, so both are read.

Processing algorithms and the Listen map tool's background task both use :func:`run_geosound`
through callbacks, which keeps this module free of QGIS imports: it is tested with plain
Python, and nothing here can block QGIS's main thread by accident.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ProgressCallback = Callable[[float, str], None]
LogCallback = Callable[[str], None]
CancelCheck = Callable[[], bool]

_ERROR_PREFIX = "geosound: error: "


class GeosoundRunError(Exception):
    """The command failed; the message is geosound's own one-line explanation."""

    def __init__(self, message: str, returncode: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.returncode = returncode


class GeosoundCanceled(GeosoundRunError):
    """The caller asked to stop; the process (and its children) were killed."""


@dataclass
class RunResult:
    """What a successful command reported."""

    outputs: list[str]
    payload: dict[str, Any]
    stderr_tail: list[str] = field(default_factory=list)

    @property
    def note(self) -> str:
        """geosound's honesty note (which model, stand-in or not), empty when none."""
        return str(self.payload.get("note") or "")


def run_geosound(
    command: Sequence[str],
    *,
    on_progress: ProgressCallback | None = None,
    on_log: LogCallback | None = None,
    is_canceled: CancelCheck | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    poll_interval: float = 0.1,
    kill_grace: float = 3.0,
) -> RunResult:
    """Run ``command`` to completion, reporting progress, and return its final ``ok`` object.

    Args:
        command: The full command line (``[python, "-m", "geosound", ...]``), ending in
            ``--progress json`` for commands that support it.
        on_progress: Called with ``(fraction 0..1, message)`` for every progress line.
        on_log: Called with every other line (stderr, non-JSON stdout), for the log.
        is_canceled: Polled every ``poll_interval`` seconds, also while the command is silent
            (embedding a chunk can take a minute); True kills the process tree.
        env: Environment of the child (see ``environment.child_environment``).
        cwd: Working folder of the child.
        poll_interval: Seconds between cancellation checks.
        kill_grace: Seconds between SIGTERM and SIGKILL when cancelling.

    Raises:
        GeosoundCanceled: ``is_canceled`` returned True.
        GeosoundRunError: ``{"error": ...}``, a non-zero exit, or no final ``ok`` line.
    """
    lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
    try:
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            **_process_group_options(),
        )
    except OSError as error:
        raise GeosoundRunError(f"could not start {command[0]}: {error}") from None
    readers = [
        threading.Thread(target=_pump, args=(process.stdout, "out", lines), daemon=True),
        threading.Thread(target=_pump, args=(process.stderr, "err", lines), daemon=True),
    ]
    for reader in readers:
        reader.start()

    final: dict[str, Any] | None = None
    error_message: str | None = None
    stderr_tail: deque[str] = deque(maxlen=40)
    open_streams = 2
    canceled = False
    while open_streams:
        if not canceled and is_canceled is not None and is_canceled():
            canceled = True
            _kill_tree(process, kill_grace)
        try:
            stream, line = lines.get(timeout=poll_interval)
        except queue.Empty:
            continue
        if line is None:
            open_streams -= 1
            continue
        text = line.rstrip("\r\n")
        if stream == "err":
            if text.strip():
                stderr_tail.append(text)
                if on_log is not None:
                    on_log(text)
            continue
        message = _parse_json_line(text)
        if message is None:
            if text.strip() and on_log is not None:
                on_log(text)
        elif "progress" in message:
            if on_progress is not None:
                fraction = min(max(float(message.get("progress") or 0.0), 0.0), 1.0)
                on_progress(fraction, str(message.get("message") or ""))
        elif "error" in message:
            error_message = str(message["error"])
        elif message.get("ok"):
            final = message
        elif on_log is not None:
            on_log(text)
    returncode = process.wait()
    for reader in readers:
        reader.join(timeout=1.0)

    if canceled:
        raise GeosoundCanceled("canceled: the geosound process was stopped", returncode)
    if error_message is not None:
        raise GeosoundRunError(error_message, returncode)
    if returncode != 0:
        raise GeosoundRunError(_message_from_stderr(list(stderr_tail), returncode), returncode)
    if final is None:
        raise GeosoundRunError(
            "geosound finished without reporting its outputs (is --progress json supported "
            "by this geosound version?)",
            returncode,
        )
    outputs = [str(item) for item in final.get("outputs") or []]
    return RunResult(outputs=outputs, payload=final, stderr_tail=list(stderr_tail))


def _pump(stream: Any, name: str, lines: queue.Queue[tuple[str, str | None]]) -> None:
    """Move lines from a pipe to the queue; a reader thread per pipe avoids pipe dead-locks."""
    try:
        for line in iter(stream.readline, ""):
            lines.put((name, line))
    finally:
        stream.close()
        lines.put((name, None))


def _parse_json_line(text: str) -> dict[str, Any] | None:
    stripped = text.strip()
    if not (stripped.startswith("{") and stripped.endswith("}")):
        return None
    try:
        value = json.loads(stripped)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _message_from_stderr(tail: list[str], returncode: int) -> str:
    """geosound's one-line error when it printed one, else the end of whatever it printed."""
    for line in reversed(tail):
        if line.startswith(_ERROR_PREFIX):
            return line[len(_ERROR_PREFIX) :].strip()
    if tail:
        return f"exit code {returncode}: " + " | ".join(tail[-5:])
    return f"geosound exited with code {returncode} and printed nothing"


def _process_group_options() -> dict[str, Any]:
    """Start the child in its own process group, so cancelling also stops its Dask workers."""
    if sys.platform == "win32":
        flags = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
        flags |= getattr(subprocess, "CREATE_NO_WINDOW", 0)
        return {"creationflags": flags}
    return {"start_new_session": True}


def _kill_tree(process: subprocess.Popen[str], grace: float) -> None:
    """SIGTERM the child's process group, then SIGKILL whatever is left after ``grace``."""
    if process.poll() is not None:
        return
    if sys.platform == "win32":
        subprocess.run(
            ["taskkill", "/F", "/T", "/PID", str(process.pid)],
            capture_output=True,
            check=False,
            creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
        )
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
