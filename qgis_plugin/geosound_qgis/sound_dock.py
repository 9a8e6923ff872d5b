"""The dock that shows what a clicked spot probably sounds like, with play buttons."""

from __future__ import annotations

import os
from collections.abc import Sequence
from html import escape
from typing import Any

from qgis.core import QgsSettings
from qgis.gui import QgsDockWidget
from qgis.PyQt.QtCore import Qt, QUrl
from qgis.PyQt.QtGui import QDesktopServices, QPixmap
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

from .media import PLAYER_SETTINGS_KEY, AudioPlayer

HINT = "Choose the Listen tool and click the map over imagery to hear what the spot sounds like."
PICTURE_TIP = (
    "Generate a picture of a place that sounds like the selected recording (else the mix), "
    "with SounDiT: plausible, not imagery of this spot"
)
PICTURE_SIZE = 256
SOURCES_TIP = (
    "List the sources heard in the selected recording (else the mix) with the AV-GAS "
    "separator: nearest sound class and share of the loudness of each"
)


class SoundDock(QgsDockWidget):
    """Lists the top recordings of a spot (rank, score, label) and plays them and the mix."""

    COLUMNS = ("#", "score", "sound", "")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("geosound: listen", parent)
        self.setObjectName("geosoundListenDock")
        self.player = AudioPlayer(QgsSettings().value(PLAYER_SETTINGS_KEY, "", type=str))
        self.wav: str | None = None
        self.sources: list[dict[str, Any]] = []

        body = QWidget(self)
        layout = QVBoxLayout(body)
        self.status = QLabel(HINT, body)
        self.status.setWordWrap(True)
        self.status.setOpenExternalLinks(True)
        self.status.setTextInteractionFlags(Qt.TextBrowserInteraction)
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

        self.table.setMinimumHeight(140)
        self.playback = QLabel(self.player.description(), body)
        self.playback.setWordWrap(True)
        self.playback.setStyleSheet("color: #555;")
        layout.addWidget(self.playback)
        self.note = QLabel("", body)
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #555; font-style: italic;")
        layout.addWidget(self.note)
        self._add_sources_widgets(body, layout)
        self._add_picture_widgets(body, layout)
        self.setWidget(body)
        self._set_buttons(False)

    # -- states --------------------------------------------------------------------------------

    def show_running(self, where: str, layer: str | None = None) -> None:
        over = f" over <b>{escape(layer)}</b>" if layer else ""
        self.status.setText(f"Listening at {escape(where)}{over} …")
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.clear()

    def clear(self) -> None:
        """No sounds listed: the table, the note and the mix are emptied."""
        self.player.stop()
        self.table.setRowCount(0)
        self.note.setText("")
        self.wav, self.sources = None, []
        self._set_buttons(False)
        self.clear_picture()
        self.sources_list.setText("")

    def fit_to(self, window: QWidget | None) -> None:
        """A useful first size: a third of the window's width, tall enough for several rows."""
        if window is None or self.isFloating():
            return
        width = max(360, min(520, window.width() // 3))
        main = window if hasattr(window, "resizeDocks") else None
        if main is not None:
            main.resizeDocks([self], [width], Qt.Horizontal)
            main.resizeDocks([self], [max(320, window.height() // 2)], Qt.Vertical)

    def set_progress(self, percent: float) -> None:
        self.progress.setValue(int(percent))

    def show_error(self, message: str) -> None:
        """The reason, and nothing of an earlier spot left that could be taken for this one."""
        self.progress.setVisible(False)
        self.status.setText(f"<b>Could not listen here:</b> {escape(message)}")
        self.clear()

    def show_sounds(
        self, where: str, wav: str, sources: Sequence[dict[str, Any]], note: str = "",
        layer: str | None = None,
    ) -> None:  # fmt: skip
        """The mix and its recordings, best first."""
        self.progress.setVisible(False)
        self.wav, self.sources = wav, list(sources)
        over = f" over <b>{escape(layer)}</b>" if layer else ""
        self.status.setText(
            f"{escape(where)}{over}: the {len(self.sources)} nearest recordings, mixed into "
            f'<a href="{QUrl.fromLocalFile(wav).toString()}">{escape(os.path.basename(wav))}</a>'
        )
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

    # -- the sources of a recording ------------------------------------------------------------

    def _add_sources_widgets(self, body: QWidget, layout: QVBoxLayout) -> None:
        """The "Sources in this recording" button and the list it fills (empty at first)."""
        self.sources_button = QPushButton("Sources in this recording", body)
        self.sources_button.setObjectName("sources_in_recording")
        self.sources_button.setToolTip(SOURCES_TIP)
        self.sources_button.setEnabled(False)
        layout.addWidget(self.sources_button)
        self.sources_list = QLabel("", body)
        self.sources_list.setWordWrap(True)
        self.sources_list.setTextFormat(Qt.RichText)
        layout.addWidget(self.sources_list)

    def show_sources_running(self, recording: str) -> None:
        self.sources_button.setEnabled(False)
        name = escape(os.path.basename(recording))
        self.sources_list.setText(f"Separating the sources of {name} …")

    def show_recording_sources(self, recording: str, found: Sequence[dict[str, Any]]) -> None:
        """One line per source, loudest first: class, score, share of the loudness."""
        self.sources_button.setEnabled(self.wav is not None)
        lines = [
            f"{i}. <b>{escape(str(source.get('label', '?')))}</b> — "
            f"{100 * float(source.get('share', 0.0)):.0f} % of the loudness "
            f"(score {float((source.get('classes') or [{}])[0].get('score', 0.0)):.2f})"
            for i, source in enumerate(found, 1)
        ]
        count = len(lines)
        head = f"{escape(os.path.basename(recording))}: {count} source{'s' if count != 1 else ''}"
        self.sources_list.setText("<br>".join([head, *lines]))

    def show_sources_error(self, message: str) -> None:
        self.sources_button.setEnabled(self.wav is not None)
        self.sources_list.setText(f"<b>No sources:</b> {escape(message)}")

    # -- the generated picture of the place ----------------------------------------------------

    def _add_picture_widgets(self, body: QWidget, layout: QVBoxLayout) -> None:
        """The "Picture of this place" button, then the picture and its caption (hidden)."""
        self.picture_button = QPushButton("Picture of this place", body)
        self.picture_button.setObjectName("picture_of_place")
        self.picture_button.setToolTip(PICTURE_TIP)
        self.picture_button.setEnabled(False)
        layout.addWidget(self.picture_button)
        self.picture = QLabel(body)
        self.picture.setAlignment(Qt.AlignCenter)
        self.picture.setVisible(False)
        layout.addWidget(self.picture)
        self.picture_caption = QLabel("", body)
        self.picture_caption.setWordWrap(True)
        self.picture_caption.setOpenExternalLinks(True)
        self.picture_caption.setTextInteractionFlags(Qt.TextBrowserInteraction)
        self.picture_caption.setStyleSheet("color: #555;")
        layout.addWidget(self.picture_caption)
        self.picture_file: str | None = None

    def picture_recording(self) -> str | None:
        """What the picture (or the sources list) is of: the selected recording, else the mix."""
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if rows and 0 <= rows[0].row() < len(self.sources):
            return str(self.sources[rows[0].row()].get("path") or "") or self.wav
        return self.wav

    def show_picture_running(self, recording: str) -> None:
        self.clear_picture()
        self.picture_button.setEnabled(False)
        self.progress.setValue(0)
        self.progress.setVisible(True)
        name = escape(os.path.basename(recording))
        self.picture_caption.setText(f"Generating a picture of a place that sounds like {name} …")

    def show_picture(self, image: str, georeferenced: str, recording: str, note: str = "") -> bool:
        """The generated picture, scaled up without smoothing (its pixels stay visible);
        False when the image cannot be read."""
        pixmap = QPixmap(image)
        self.progress.setVisible(False)
        self.picture_button.setEnabled(self.wav is not None)
        if pixmap.isNull():
            self.show_picture_error(f"cannot read the generated picture {image}")
            return False
        self.picture.setPixmap(
            pixmap.scaled(PICTURE_SIZE, PICTURE_SIZE, Qt.KeepAspectRatio, Qt.FastTransformation)
        )
        self.picture.setVisible(True)
        self.picture_file = georeferenced
        link = QUrl.fromLocalFile(georeferenced).toString()
        self.picture_caption.setText(
            f"Generated from {escape(os.path.basename(recording))} (a plausible place, not "
            f'imagery of this spot): <a href="{link}">{escape(os.path.basename(georeferenced))}'
            f"</a>{' — ' + escape(note) if note else ''}"
        )
        return True

    def show_picture_error(self, message: str) -> None:
        self.clear_picture()
        self.progress.setVisible(False)
        self.picture_button.setEnabled(self.wav is not None)
        self.picture_caption.setText(f"<b>No picture:</b> {escape(message)}")

    def clear_picture(self) -> None:
        self.picture.clear()
        self.picture.setVisible(False)
        self.picture_caption.setText("")
        self.picture_file = None

    # -- helpers -------------------------------------------------------------------------------

    def play_buttons(self) -> list[QPushButton]:
        """The mix button and one button per listed recording (for tests and shortcuts)."""
        rows = [self.table.cellWidget(row, 3) for row in range(self.table.rowCount())]
        return [self.play_mix, *[b for b in rows if isinstance(b, QPushButton)]]

    def _set_buttons(self, have_sounds: bool) -> None:
        enabled = have_sounds and self.player.available
        self.picture_button.setEnabled(have_sounds)
        self.sources_button.setEnabled(have_sounds)
        tooltip = "" if self.player.available else self.player.reason
        for button in [*self.play_buttons(), self.stop_button]:
            button.setEnabled(enabled)
            default = "Stop playing" if button is self.stop_button else "Play this recording"
            if button is self.play_mix:
                default = "Play the mix of the recordings"
            button.setToolTip(tooltip or default)

    def _play_mix(self) -> None:
        if self.wav:
            self.player.play(self.wav)

    def _open_row(self, row: int, column: int) -> None:
        """Double-click: play the recording (any backend), else open it in the system's player."""
        if 0 <= row < len(self.sources):
            path = str(self.sources[row].get("path", ""))
            if not self.player.play(path):
                QDesktopServices.openUrl(QUrl.fromLocalFile(path))

    def closeEvent(self, event: Any) -> None:
        self.player.stop()
        super().closeEvent(event)
