"""Audio playback for the dock, when Qt Multimedia is there.

Qt Multimedia is an optional part of PyQt5 (a separate package on Debian and in some QGIS
builds), and even when it imports it may have no audio backend (GStreamer on Linux, typical of
headless CI). Everything else in the plugin works without it: the player then reports why it
cannot play, and the dock disables its play buttons with that reason as the tooltip.
"""

from __future__ import annotations

import os
from typing import Any

try:  # qgis.PyQt has no QtMultimedia shim in QGIS 3.22; QGIS 3 always runs on PyQt5
    from PyQt5.QtMultimedia import QMediaContent, QMediaPlayer
except ImportError:  # pragma: no cover - depends on the installation
    QMediaContent = None
    QMediaPlayer = None

from qgis.PyQt.QtCore import QUrl

NO_MULTIMEDIA = (
    "Playback needs Qt Multimedia (PyQt5.QtMultimedia), which this QGIS lacks; "
    "double-click a sound to open it in your default player"
)
NO_BACKEND = (
    "Qt Multimedia has no audio backend here (install GStreamer plugins); "
    "double-click a sound to open it in your default player"
)


class AudioPlayer:
    """Plays one file at a time; :attr:`available` and :attr:`reason` say whether it can."""

    def __init__(self) -> None:
        self._player: Any = None
        self.reason = ""
        self.current: str | None = None
        if os.environ.get("GEOSOUND_QGIS_NO_AUDIO"):
            self.reason = "playback switched off (GEOSOUND_QGIS_NO_AUDIO)"
        elif QMediaPlayer is None:
            self.reason = NO_MULTIMEDIA
        else:
            player = QMediaPlayer()
            if player.isAvailable():
                self._player = player
            else:
                self.reason = NO_BACKEND

    @property
    def available(self) -> bool:
        return self._player is not None

    def play(self, path: str) -> bool:
        """Start playing ``path`` (stopping whatever played); False when playback is off."""
        if self._player is None:
            return False
        self._player.stop()
        self.current = path
        self._player.setMedia(QMediaContent(QUrl.fromLocalFile(path)))
        self._player.play()
        return True

    def stop(self) -> None:
        if self._player is not None:
            self._player.stop()
