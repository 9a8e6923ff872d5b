"""The dock that shows what a clicked spot probably sounds like, with play buttons."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from qgis.gui import QgsDockWidget
from qgis.PyQt.QtCore import QUrl
from qgis.PyQt.QtGui import QDesktopServices
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .media import AudioPlayer

HINT = "Choose the Listen tool and click the map over imagery to hear what the spot sounds like."


class SoundDock(QgsDockWidget):
    """Lists the top recordings of a spot (rank, score, label) and plays them and the mix."""

    COLUMNS = ("#", "score", "sound", "")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("geosound: listen", parent)
        self.setObjectName("geosoundListenDock")
        self.player = AudioPlayer()
        self.wav: str | None = None
        self.sources: list[dict[str, Any]] = []

        body = QWidget(self)
        layout = QVBoxLayout(body)
        self.status = QLabel(HINT, body)
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.progress = QProgressBar(body)
        self.progress.setRange(0, 100)
        self.progress.setVisible(False)
        layout.addWidget(self.progress)

        mix_row = QHBoxLayout()
        self.play_mix = QPushButton("▶ Play the mix", body)
        self.play_mix.clicked.connect(self._play_mix)
        self.stop_button = QPushButton("■ Stop", body)
        self.stop_button.clicked.connect(self.player.stop)
        mix_row.addWidget(self.play_mix)
        mix_row.addWidget(self.stop_button)
        layout.addLayout(mix_row)

        self.table = QTableWidget(0, len(self.COLUMNS), body)
        self.table.setHorizontalHeaderLabels(list(self.COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        header = self.table.horizontalHeader()
        for column in (0, 1, 3):
            header.setSectionResizeMode(column, QHeaderView.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.Stretch)
        self.table.cellDoubleClicked.connect(self._open_row)
        layout.addWidget(self.table)

        self.note = QLabel("", body)
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #555; font-style: italic;")
        layout.addWidget(self.note)
        self.setWidget(body)
        self._set_buttons(False)

    # -- states --------------------------------------------------------------------------------

    def show_running(self, where: str) -> None:
        self.status.setText(f"Listening at {where} …")
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.table.setRowCount(0)
        self.note.setText("")
        self.wav, self.sources = None, []
        self._set_buttons(False)

    def set_progress(self, percent: float) -> None:
        self.progress.setValue(int(percent))

    def show_error(self, message: str) -> None:
        self.progress.setVisible(False)
        self.status.setText(f"<b>Could not listen here:</b> {message}")
        self._set_buttons(False)

    def show_sounds(
        self, where: str, wav: str, sources: Sequence[dict[str, Any]], note: str = ""
    ) -> None:
        """The mix and its recordings, best first."""
        self.progress.setVisible(False)
        self.wav, self.sources = wav, list(sources)
        self.status.setText(f"{where}: {len(self.sources)} nearest recordings, mixed into {wav}")
        self.table.setRowCount(len(self.sources))
        for row, source in enumerate(self.sources):
            path = str(source.get("path", ""))
            label = source.get("label") or os.path.basename(path)
            score = source.get("score")
            shown = f"{score:.3f}" if isinstance(score, (int, float)) else ""
            items = [str(source.get("rank", row + 1)), shown, str(label)]
            for column, text in enumerate(items):
                item = QTableWidgetItem(text)
                item.setToolTip(f"{path}\nlicence: {source.get('licence') or 'unknown'}")
                self.table.setItem(row, column, item)
            button = QPushButton("▶", self.table)
            button.setObjectName(f"play_{row}")
            button.clicked.connect(lambda _checked=False, p=path: self.player.play(p))
            self.table.setCellWidget(row, 3, button)
        self.note.setText(note)
        self._set_buttons(True)

    # -- helpers -------------------------------------------------------------------------------

    def play_buttons(self) -> list[QPushButton]:
        """The mix button and one button per listed recording (for tests and shortcuts)."""
        rows = [self.table.cellWidget(row, 3) for row in range(self.table.rowCount())]
        return [self.play_mix, *[b for b in rows if isinstance(b, QPushButton)]]

    def _set_buttons(self, have_sounds: bool) -> None:
        enabled = have_sounds and self.player.available
        tooltip = "" if self.player.available else self.player.reason
        for button in [*self.play_buttons(), self.stop_button]:
            button.setEnabled(enabled)
            button.setToolTip(tooltip or ("Play" if button is not self.stop_button else "Stop"))

    def _play_mix(self) -> None:
        if self.wav:
            self.player.play(self.wav)

    def _open_row(self, row: int, column: int) -> None:
        """Open a recording in the system's player: works even without Qt Multimedia."""
        if 0 <= row < len(self.sources):
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.sources[row].get("path", ""))))

    def closeEvent(self, event: Any) -> None:
        self.player.stop()
        super().closeEvent(event)
