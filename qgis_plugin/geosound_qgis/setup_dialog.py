"""Set up geosound: create the managed environment from inside QGIS, with progress.

The dialog builds an :class:`~.installer.InstallPlan` from what the user chose (a wheel file,
or a package from an index they can reach), runs the :class:`~.installer.Installer` in a
:class:`QgsTask` (QGIS stays responsive while pip works), shows its progress and log, and on
success stores the new environment's python in the setting ``geosound/python``. "Copy
diagnostics" puts a plain-text report (QGIS, platform, every command, its output) on the
clipboard, whether the installation worked or not.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable

from qgis.core import QgsApplication, QgsSettings, QgsTask
from qgis.gui import QgsFileWidget
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import (
    QApplication,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from .environment import SETTINGS_KEY
from .installer import Installer, InstallError, InstallPlan
from .profile import managed_folder, qgis_version

WHEEL_KEY = "geosound/setup_wheel"
INDEX_KEY = "geosound/setup_index"


class InstallTask(QgsTask):
    """Runs an Installer in the background; ``on_done`` runs in the GUI thread."""

    def __init__(self, installer: Installer, on_done: Callable[[InstallTask], None]) -> None:
        super().__init__("geosound: setting up the environment", QgsTask.CanCancel)
        self.installer = installer
        self.on_done = on_done
        self.message = ""
        installer.on_progress = self._progress
        installer.is_canceled = self.isCanceled

    def _progress(self, fraction: float, message: str) -> None:
        self.message = message
        self.setProgress(100.0 * fraction)

    def run(self) -> bool:
        try:
            self.installer.run()
        except InstallError:
            return False
        return True

    def finished(self, result: bool) -> None:
        self.on_done(self)


class SetupDialog(QDialog):
    """Plugins ▸ geosound ▸ Set up geosound…"""

    finished_install = pyqtSignal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Set up geosound")
        self.setMinimumWidth(680)
        self.task: InstallTask | None = None
        self.installer: Installer | None = None
        settings = QgsSettings()
        layout = QVBoxLayout(self)
        self.target = managed_folder()
        intro = QLabel(
            "geosound runs in its own Python environment, never inside QGIS. This creates one "
            f"in <code>{self.target}</code> and installs geosound into it.", self
        )  # fmt: skip
        intro.setWordWrap(True)
        layout.addWidget(intro)

        source = QGroupBox("Install geosound from", self)
        form = QFormLayout(source)
        form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        self.from_wheel = QRadioButton("a wheel file (geosound-….whl)", source)
        self.wheel = QgsFileWidget(source)
        self.wheel.setFilter("Python wheels (*.whl)")
        self.wheel.setFilePath(settings.value(WHEEL_KEY, "", type=str))
        form.addRow(self.from_wheel, self.wheel)
        self.from_index = QRadioButton("a package index", source)
        self.requirement = QLineEdit("geosound", source)
        form.addRow(self.from_index, self.requirement)
        self.index_url = QLineEdit(settings.value(INDEX_KEY, "", type=str), source)
        self.index_url.setPlaceholderText("index URL (empty: pip's default, e.g. PyPI)")
        form.addRow("", self.index_url)
        (self.from_wheel if self.wheel.filePath() else self.from_index).setChecked(True)
        layout.addWidget(source)

        advanced = QGroupBox("Advanced", self)
        advanced_form = QFormLayout(advanced)
        advanced_form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        self.base_python = QgsFileWidget(advanced)
        self.base_python.lineEdit().setPlaceholderText("empty: python3.11 on the PATH")
        advanced_form.addRow("Python to build it with", self.base_python)
        self.system_site = QCheckBox("let it see that Python's packages", advanced)
        advanced_form.addRow("", self.system_site)
        self.shared = QLineEdit(advanced)
        self.shared.setPlaceholderText("site-packages of an environment to share (offline)")
        advanced_form.addRow("Shared packages", self.shared)
        self.pip_options = QLineEdit(advanced)
        self.pip_options.setPlaceholderText("e.g. --no-deps --no-index --find-links DIR")
        advanced_form.addRow("More pip options", self.pip_options)
        layout.addWidget(advanced)

        self.progress = QProgressBar(self)
        self.progress.setRange(0, 100)
        layout.addWidget(self.progress)
        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.log = QPlainTextEdit(self)
        self.log.setReadOnly(True)
        self.log.setMinimumHeight(140)
        layout.addWidget(self.log)

        buttons = QDialogButtonBox(QDialogButtonBox.Close, self)
        self.install_button = QPushButton("Install", self)
        self.install_button.setDefault(True)
        self.copy_button = QPushButton("Copy diagnostics", self)
        self.copy_button.setEnabled(False)
        buttons.addButton(self.install_button, QDialogButtonBox.ActionRole)
        buttons.addButton(self.copy_button, QDialogButtonBox.ActionRole)
        buttons.rejected.connect(self.reject)
        self.install_button.clicked.connect(self.install)
        self.copy_button.clicked.connect(self.copy_diagnostics)
        layout.addWidget(buttons)

    def plan(self) -> InstallPlan:
        """The plan for what the dialog shows."""
        wheel = self.from_wheel.isChecked()
        return InstallPlan(
            target=self.target,
            source=self.wheel.filePath().strip() if wheel else self.requirement.text().strip(),
            base_python=self.base_python.filePath().strip(),
            index_url="" if wheel else self.index_url.text().strip(),
            system_site_packages=self.system_site.isChecked(),
            shared_site_packages=[p for p in self.shared.text().split(";") if p.strip()],
            pip_options=shlex.split(self.pip_options.text()),
        )

    def install(self) -> InstallTask | None:
        """Start the installation in the background; returns the task."""
        if self.task is not None:
            return None
        settings = QgsSettings()
        settings.setValue(WHEEL_KEY, self.wheel.filePath().strip())
        settings.setValue(INDEX_KEY, self.index_url.text().strip())
        self.installer = Installer(self.plan())
        self.task = InstallTask(self.installer, self._done)
        self.task.progressChanged.connect(self._progress)
        self.install_button.setEnabled(False)
        self.copy_button.setEnabled(False)
        self.log.clear()
        self.status.setText("Installing…")
        QgsApplication.taskManager().addTask(self.task)
        return self.task

    def _progress(self, percent: float) -> None:
        self.progress.setValue(int(percent))
        if self.task is not None and self.task.message:
            self.log.appendPlainText(self.task.message)

    def _done(self, task: InstallTask) -> None:
        installer = task.installer
        ok = installer.python is not None
        if ok:
            QgsSettings().setValue(SETTINGS_KEY, str(installer.python))
            self.progress.setValue(100)
            self.status.setText(
                f"<b>Done:</b> geosound {installer.version} at {installer.python}. The plugin "
                "uses it from now on (Settings… shows it)."
            )
        else:
            self.status.setText(
                f"<b>Not installed:</b> {installer.error or 'canceled'} — "
                "“Copy diagnostics” copies a report to paste into an issue."
            )
        self.log.appendPlainText("")
        self.log.appendPlainText(installer.diagnostics([qgis_version()]))
        self.install_button.setEnabled(True)
        self.copy_button.setEnabled(True)
        self.task = None
        self.finished_install.emit(ok)

    def diagnostics(self) -> str:
        if self.installer is None:
            return ""
        return self.installer.diagnostics([qgis_version()])

    def copy_diagnostics(self) -> str:
        text = self.diagnostics()
        QApplication.clipboard().setText(text)
        return text

    def reject(self) -> None:
        if self.task is not None:
            self.task.cancel()
        super().reject()
