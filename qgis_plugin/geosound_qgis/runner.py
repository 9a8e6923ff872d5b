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
    process = _start(command, env, cwd)
    lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
    readers = [
        threading.Thread(target=_pump, args=(process.stdout, "out", lines), daemon=True),
        threading.Thread(target=_pump, args=(process.stderr, "err", lines), daemon=True),
    ]
    for reader in readers:
        reader.start()

    transcript = _Transcript(on_progress, on_log)
    canceled = _follow(process, lines, transcript, is_canceled, poll_interval, kill_grace)
    returncode = process.wait()
    for reader in readers:
        reader.join(timeout=1.0)
    return _outcome(transcript, canceled, returncode)


def _start(
    command: Sequence[str], env: Mapping[str, str] | None, cwd: str | None
) -> subprocess.Popen[str]:
    """Start the child with both pipes line-buffered, in its own process group.

    An ``OSError`` (no such interpreter, not executable) becomes a :class:`GeosoundRunError`
    so callers handle one exception type for every way a run can fail.
    """
    try:
        return subprocess.Popen(
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


class _Transcript:
    """What the child said so far, routed to the callbacks line by line.

    Kept apart from the reading loop so that the protocol (which line means what) is in one
    place and the loop only deals with queues, cancellation and closed pipes.
    """

    def __init__(self, on_progress: ProgressCallback | None, on_log: LogCallback | None) -> None:
        self.on_progress = on_progress
        self.on_log = on_log
        self.final: dict[str, Any] | None = None
        self.error_message: str | None = None
        self.stderr_tail: deque[str] = deque(maxlen=40)

    def add(self, stream: str, line: str) -> None:
        """Handle one line (newline included) read from ``stream`` ("out" or "err")."""
        text = line.rstrip("\r\n")
        if stream == "err":
            self._stderr(text)
        else:
            self._stdout(text)

    def _log(self, text: str) -> None:
        if self.on_log is not None:
            self.on_log(text)

    def _stderr(self, text: str) -> None:
        """Blank lines are dropped; the rest is logged and kept for the error message."""
        if text.strip():
            self.stderr_tail.append(text)
            self._log(text)

    def _stdout(self, text: str) -> None:
        """A protocol line updates progress, the error or the final result; others are logged."""
        message = _parse_json_line(text)
        if message is None:
            if text.strip():
                self._log(text)
        elif "progress" in message:
            if self.on_progress is not None:
                fraction = min(max(float(message.get("progress") or 0.0), 0.0), 1.0)
                self.on_progress(fraction, str(message.get("message") or ""))
        elif "error" in message:
            self.error_message = str(message["error"])
        elif message.get("ok"):
            self.final = message
        else:
            self._log(text)


def _follow(
    process: subprocess.Popen[str],
    lines: queue.Queue[tuple[str, str | None]],
    transcript: _Transcript,
    is_canceled: CancelCheck | None,
    poll_interval: float,
    kill_grace: float,
) -> bool:
    """Read both pipes until they close, polling for cancellation; True if it was canceled.

    The queue is read with a timeout so ``is_canceled`` is asked even while the child is
    silent; after a cancel the loop still drains the pipes, so the readers finish.
    """
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
        transcript.add(stream, line)
    return canceled


def _outcome(transcript: _Transcript, canceled: bool, returncode: int) -> RunResult:
    """The run's result, or the most specific reason it failed (cancel, error line, exit code)."""
    if canceled:
        raise GeosoundCanceled("canceled: the geosound process was stopped", returncode)
    if transcript.error_message is not None:
        raise GeosoundRunError(transcript.error_message, returncode)
    stderr_tail = list(transcript.stderr_tail)
    if returncode != 0:
        raise GeosoundRunError(_message_from_stderr(stderr_tail, returncode), returncode)
    final = transcript.final
    if final is None:
        raise GeosoundRunError(
            "geosound finished without reporting its outputs (is --progress json supported "
            "by this geosound version?)",
            returncode,
        )
    outputs = [str(item) for item in final.get("outputs") or []]
    return RunResult(outputs=outputs, payload=final, stderr_tail=stderr_tail)


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
