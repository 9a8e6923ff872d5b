"""Audio playback for the dock: Qt Multimedia when it can play, else an external player.

Qt Multimedia is an optional part of PyQt5 (on Debian: ``python3-pyqt5.qtmultimedia`` and, for
its GStreamer backend, ``libqt5multimedia5-plugins``), and even when it imports it may have no
audio backend. The fallback, in order:

1. Qt Multimedia (``QMediaPlayer``), when it imports and reports a backend;
2. an external command: the setting ``geosound/player`` or ``GEOSOUND_QGIS_PLAYER`` (a command
   line, the file is appended: ``mpv --no-video``), else the first of ``ffplay``, ``mpv``,
   ``paplay``, ``aplay``, ``afplay`` on the PATH, or ``winsound`` on Windows (WAV);
3. none: the buttons are disabled with the reason as tooltip, and double-clicking a row opens
   the file in the desktop's default player (when the desktop has one).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from typing import Any

try:  # qgis.PyQt has no QtMultimedia shim in QGIS 3.22; QGIS 3 always runs on PyQt5
    from PyQt5.QtMultimedia import QMediaContent, QMediaPlayer
except ImportError:  # pragma: no cover - depends on the installation
    QMediaContent = None
    QMediaPlayer = None

from qgis.PyQt.QtCore import QUrl

PLAYER_SETTINGS_KEY = "geosound/player"
PLAYER_ENV_VAR = "GEOSOUND_QGIS_PLAYER"
EXTERNAL_PLAYERS = (
    ("ffplay", ["-nodisp", "-autoexit", "-loglevel", "quiet"]),
    ("mpv", ["--no-video", "--really-quiet"]),
    ("paplay", []),
    ("aplay", ["-q"]),  # WAV only: the mix is a WAV
    ("afplay", []),
)
NO_PLAYER = (
    "No way to play sound here: Qt Multimedia is missing or has no backend (Debian: "
    "python3-pyqt5.qtmultimedia libqt5multimedia5-plugins), and no player command (ffplay, mpv, "
    "paplay, aplay) is on the PATH; double-click a sound to open it in your default player"
)


class AudioPlayer:
    """Plays one file at a time; :attr:`available`, :attr:`backend` and :attr:`reason` say how.

    Args:
        command: An external player command line (the setting); empty: detect.
        use_qt: Try Qt Multimedia first.
    """

    def __init__(self, command: str = "", use_qt: bool = True) -> None:
        self._player: Any = None
        self._external: list[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.backend = ""
        self.reason = ""
        self.current: str | None = None
        if os.environ.get("GEOSOUND_QGIS_NO_AUDIO"):
            self.reason = "playback switched off (GEOSOUND_QGIS_NO_AUDIO)"
            return
        command = command or os.environ.get(PLAYER_ENV_VAR, "")
        qt_reason = self._try_qt() if use_qt and not command else "not tried"
        if self._player is not None:
            self.backend = "Qt Multimedia"
            return
        self._external = shlex.split(command) if command else _detect_external()
        if self._external:
            self.backend = f"external player ({os.path.basename(self._external[0])})"
        elif sys.platform == "win32":
            self.backend = "winsound"
        else:
            self.reason = f"{NO_PLAYER} (Qt Multimedia: {qt_reason})"

    def _try_qt(self) -> str:
        if QMediaPlayer is None:
            return "not installed"
        player = QMediaPlayer()
        if not player.isAvailable():
            return "no backend"
        self._player = player
        return ""

    @property
    def available(self) -> bool:
        return bool(self.backend)

    def description(self) -> str:
        """One line for the dock: how sounds play here."""
        if self.available:
            return f"Playback: {self.backend}. Double-click a row to play it too."
        return self.reason

    def play(self, path: str) -> bool:
        """Start playing ``path`` (stopping whatever played); False when playback is off."""
        if not self.available:
            return False
        self.stop()
        self.current = path
        if self._player is not None:
            self._player.setMedia(QMediaContent(QUrl.fromLocalFile(path)))
            self._player.play()
        elif self._external:
            self._process = subprocess.Popen(
                [*self._external, path], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        else:  # Windows, no player command: the standard library plays WAVs
            import winsound

            winsound.PlaySound(path, winsound.SND_FILENAME | winsound.SND_ASYNC)
        return True

    def media_url(self) -> str:
        """The file Qt Multimedia holds (empty for the other backends)."""
        if self._player is None:
            return ""
        return self._player.media().canonicalUrl().toLocalFile()

    def stop(self) -> None:
        if self._player is not None:
            self._player.stop()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
        self._process = None


def _detect_external() -> list[str] | None:
    for name, options in EXTERNAL_PLAYERS:
        found = shutil.which(name)
        if found:
            return [found, *options]
    return None
