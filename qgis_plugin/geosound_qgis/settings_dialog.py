"""Plugin settings: which geosound environment to run, which audio bank to listen with."""

from __future__ import annotations

from qgis.core import QgsSettings
from qgis.gui import QgsFileWidget
from qgis.PyQt.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from .environment import BANK_SETTINGS_KEY, SETTINGS_KEY, EnvironmentNotFound
from .listen import K_SETTINGS_KEY, SECONDS_SETTINGS_KEY
from .profile import looked_at, qgis_environment


class SettingsDialog(QDialog):
    """Edits the QgsSettings keys the algorithms and the Listen tool read."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("geosound settings")
        settings = QgsSettings()
        self.setMinimumWidth(720)
        layout = QVBoxLayout(self)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)

        self.python = QgsFileWidget(self)
        self.python.setStorageMode(QgsFileWidget.GetFile)
        self.python.setFilePath(settings.value(SETTINGS_KEY, "", type=str))
        self.python.lineEdit().setPlaceholderText("empty: detect it (see Check the environment)")
        form.addRow("Python of the geosound environment", self.python)

        self.bank = QgsFileWidget(self)
        self.bank.setStorageMode(QgsFileWidget.GetDirectory)
        self.bank.setFilePath(settings.value(BANK_SETTINGS_KEY, "", type=str))
        form.addRow("Audio bank (Listen tool, default of algorithms)", self.bank)

        self.k = QSpinBox(self)
        self.k.setRange(1, 20)
        self.k.setValue(settings.value(K_SETTINGS_KEY, 3, type=int))
        form.addRow("Recordings to mix when listening", self.k)

        self.seconds = QDoubleSpinBox(self)
        self.seconds.setRange(1.0, 600.0)
        self.seconds.setValue(settings.value(SECONDS_SETTINGS_KEY, 10.0, type=float))
        form.addRow("Length of the mix (s)", self.seconds)
        layout.addLayout(form)

        self.check_button = QPushButton("Check the environment", self)
        self.check_button.clicked.connect(self.check)
        layout.addWidget(self.check_button)
        self.result = QLabel("", self)
        self.result.setWordWrap(True)
        layout.addWidget(self.result)

        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def check(self) -> str:
        """Find the environment as the algorithms will, and say what was found."""
        try:
            environment = qgis_environment(self.python.filePath())
        except EnvironmentNotFound as error:
            tried = ", ".join(looked_at(self.python.filePath()))
            text = f"{error}" + (f" (looked at: {tried})" if tried else "")
        else:
            text = (f"geosound {environment.version} at {environment.python} "
                    f"(from {environment.source})")  # fmt: skip
        self.result.setText(text)
        return text

    def accept(self) -> None:
        settings = QgsSettings()
        settings.setValue(SETTINGS_KEY, self.python.filePath().strip())
        settings.setValue(BANK_SETTINGS_KEY, self.bank.filePath().strip())
        settings.setValue(K_SETTINGS_KEY, self.k.value())
        settings.setValue(SECONDS_SETTINGS_KEY, self.seconds.value())
        super().accept()
