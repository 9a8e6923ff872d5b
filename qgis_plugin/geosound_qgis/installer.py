"""Create the managed geosound environment: a venv under the QGIS profile, geosound pip-installed.

"Set up geosound" (``setup_dialog.py``) runs :class:`Installer` in a background task. The steps
are plain subprocesses — find a Python that geosound supports, ``python -m venv``, ``pip
install`` a wheel file or a package from an index the user can reach, check that the new
environment imports geosound — each reported as progress and kept in a transcript, which
:meth:`Installer.diagnostics` turns into a report the user can copy into an issue.

Like ``environment.py`` it imports nothing from QGIS, so it is tested with plain Python too.
"""

from __future__ import annotations

import os
import platform
import queue
import shlex
import shutil
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .environment import EnvironmentNotFound, _venv_python, check_python, child_environment

REQUIRED_PYTHON = (3, 11)
"""geosound's ``requires-python`` (pyproject.toml: >=3.11,<3.12): its wheels are built for it."""
BASE_PYTHON_NAMES = ("python3.11", "python3", "python")
AUDIO_ENCODER = "aisfx==0.1.2"
"""geosound's offline audio encoder, installed ``--no-deps`` after geosound as ``make install``
does: its own pins (numpy==1.23, librosa==0.9.2) clash with geosound's while its code runs on
them, so it cannot be a dependency of the wheel, and without it no bank can be built."""
EXTRA_PATHS_FILE = "geosound_shared_packages.pth"

ProgressCallback = Callable[[float, str], None]


class InstallError(Exception):
    """A step failed; the message says which and why (the transcript has the details)."""


class InstallCanceled(InstallError):
    """The user stopped the installation."""


@dataclass
class InstallPlan:
    """What to install where.

    Attributes:
        target: The environment folder (the managed one: ``<profile>/geosound/venv``).
        source: A wheel file, or a requirement pip understands (``geosound``, a URL).
        base_python: The Python to create the venv with (empty: the first supported one of
            ``python3.11``, ``python3``, ``python`` on the PATH, then QGIS's own).
        index_url: A package index to install from (``--index-url``), empty for pip's default.
        system_site_packages: Let the venv see the base Python's packages.
        shared_site_packages: site-packages folders of another environment whose packages
            (torch and the rest) the venv may use instead of downloading them (a ``.pth``).
        pip_options: More pip options (``--no-deps``, ``--no-index``, ``--find-links DIR``).
    """

    target: Path
    source: str
    base_python: str = ""
    index_url: str = ""
    system_site_packages: bool = False
    shared_site_packages: Sequence[str] = ()
    pip_options: Sequence[str] = ()


@dataclass
class Step:
    """One command of the transcript."""

    name: str
    command: list[str]
    returncode: int | None = None
    output: deque[str] = field(default_factory=lambda: deque(maxlen=200))


class Installer:
    """Runs an :class:`InstallPlan`; ``python`` is the new environment's python afterwards."""

    def __init__(
        self,
        plan: InstallPlan,
        on_progress: ProgressCallback | None = None,
        is_canceled: Callable[[], bool] | None = None,
    ) -> None:
        self.plan = plan
        self.on_progress = on_progress
        self.is_canceled = is_canceled or (lambda: False)
        self.steps: list[Step] = []
        self.base_python: str | None = None
        self.python: Path | None = None
        self.version: str | None = None
        self.error: str | None = None
        self.notes: list[str] = []

    # -- the steps ---------------------------------------------------------------------------

    def run(self) -> Path:
        """Create (or update) the environment; returns its python. Raises InstallError."""
        try:
            self._report(0.02, "looking for a Python to build the environment with")
            base = self.find_base_python()
            self._report(0.08, f"creating the environment in {self.plan.target}")
            python = self.create_venv(base)
            if self.plan.shared_site_packages:
                self.share_packages(python)
            self._report(0.2, f"installing {self.plan.source}")
            self.pip_install(python)
            self.ensure_audio_encoder(python)
            self._report(0.95, "checking that the environment imports geosound")
            try:
                self.version = check_python(python, timeout=300)
            except EnvironmentNotFound as error:
                raise InstallError(f"the new environment does not work: {error}") from None
            self.python = python
            self._report(1.0, f"geosound {self.version} installed in {self.plan.target}")
            return python
        except InstallError as error:
            self.error = str(error)
            raise

    def find_base_python(self) -> str:
        """The first Python of geosound's version among the choice, the PATH and QGIS's own."""
        wanted = ".".join(str(v) for v in REQUIRED_PYTHON)
        names = [self.plan.base_python] if self.plan.base_python else [
            *(shutil.which(name) for name in BASE_PYTHON_NAMES), sys.executable,
            getattr(sys, "_base_executable", None),
        ]  # fmt: skip
        seen: list[str] = []
        for name in names:
            if not name or name in seen or not os.path.isfile(name):
                continue
            seen.append(name)
            version = self._python_version(name)
            self.notes.append(f"candidate Python {name}: {version or 'not a Python'}")
            if version == wanted:
                self.base_python = name
                return name
        looked = ", ".join(seen) or "none found"
        raise InstallError(
            f"no Python {wanted} to build the environment with (looked at: {looked}); install "
            f"Python {wanted} or choose its executable under 'Python to build it with'"
        )

    def create_venv(self, base: str) -> Path:
        """``base -m venv TARGET`` unless TARGET already is an environment (then it is updated)."""
        target = self.plan.target
        existing = _venv_python(target) if target.is_dir() else None
        if existing is not None:
            self.notes.append(f"{target} exists: updating it")
            return existing
        target.parent.mkdir(parents=True, exist_ok=True)
        command = [base, "-m", "venv", str(target)]
        if self.plan.system_site_packages:
            command.insert(3, "--system-site-packages")
        self._run("create the environment", command, 0.08, 0.18)
        python = _venv_python(target)
        if python is None:
            raise InstallError(f"python -m venv wrote no python into {target}")
        return python

    def share_packages(self, python: Path) -> None:
        """A ``.pth`` in the venv naming the shared site-packages folders (they come last)."""
        folders = [str(Path(f).expanduser()) for f in self.plan.shared_site_packages if f]
        missing = [f for f in folders if not os.path.isdir(f)]
        if missing:
            raise InstallError(f"shared site-packages folder not found: {', '.join(missing)}")
        done = self._run(
            "find site-packages",
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            0.18, 0.2,
        )  # fmt: skip
        purelib = Path(done.output[-1].strip())
        (purelib / EXTRA_PATHS_FILE).write_text("\n".join(folders) + "\n", encoding="utf-8")
        self.notes.append(f"shared packages of {', '.join(folders)} ({purelib / EXTRA_PATHS_FILE})")

    def pip_install(self, python: Path) -> None:
        source = self.plan.source.strip()
        if not source:
            raise InstallError("choose a geosound wheel file or a package to install")
        if source.lower().endswith(".whl") and not os.path.isfile(source):
            raise InstallError(f"wheel file not found: {source}")
        command = [str(python), "-m", "pip", "install", "--disable-pip-version-check",
                   "--no-input", "--progress-bar", "off"]  # fmt: skip
        if self.plan.index_url:
            command += ["--index-url", self.plan.index_url]
        command += [*self.plan.pip_options, source]
        self._run("pip install", command, 0.2, 0.85, pip=True)

    def ensure_audio_encoder(self, python: Path) -> None:
        """Install :data:`AUDIO_ENCODER` with ``--no-deps`` unless the environment has it
        (shared packages usually do), from where geosound came (the same index and options)."""
        probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('aisfx') is None)"
        found = subprocess.run(
            [str(python), "-c", probe], capture_output=True, timeout=120,
            env=child_environment(), **_no_window(),
        )  # fmt: skip
        if found.returncode == 0:
            self.notes.append(f"{AUDIO_ENCODER.split('==')[0]} already in the environment")
            return
        command = [str(python), "-m", "pip", "install", "--disable-pip-version-check",
                   "--no-input", "--progress-bar", "off", "--no-deps"]  # fmt: skip
        if self.plan.index_url:
            command += ["--index-url", self.plan.index_url]
        command += [o for o in self.plan.pip_options if o != "--no-deps"] + [AUDIO_ENCODER]
        try:
            self._run("pip install the audio encoder", command, 0.85, 0.92, pip=True)
        except InstallCanceled:
            raise
        except InstallError as error:
            raise InstallError(
                f"{error} — geosound's audio encoder {AUDIO_ENCODER} is not a dependency of the "
                "wheel (its pins clash); give an index or --find-links that has it, or share "
                "the packages of an environment that does"
            ) from None

    # -- running commands --------------------------------------------------------------------

    def _run(
        self, name: str, command: list[str], start: float, stop: float, pip: bool = False
    ) -> Step:
        """Run one step, streaming its output into the transcript; raise if it fails."""
        step = Step(name, command)
        self.steps.append(step)
        try:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True, encoding="utf-8", errors="replace",
                bufsize=1, env=child_environment(), **_no_window(),
            )  # fmt: skip
        except OSError as error:
            raise InstallError(f"{name}: could not start {command[0]} ({error})") from None
        lines: queue.Queue[str | None] = queue.Queue()
        reader = threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True)
        reader.start()
        collected = 0
        while True:
            if self.is_canceled():
                process.kill()
                process.wait()
                step.returncode = process.returncode
                raise InstallCanceled(f"{name}: canceled")
            try:
                line = lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if line is None:
                break
            text = line.rstrip()
            if not text:
                continue
            step.output.append(text)
            if pip and text.startswith(("Collecting", "Processing", "Downloading")):
                collected += 1  # pip names every package it fetches: progress by count
                self._report(start + (stop - start) * 0.8 * (1 - 0.85**collected), text)
            elif pip and text.startswith("Installing collected packages"):
                self._report(start + (stop - start) * 0.85, text[:120])
        step.returncode = process.wait()
        reader.join(timeout=1.0)
        if step.returncode != 0:
            tail = " | ".join(list(step.output)[-3:]) or "no output"
            raise InstallError(f"{name} failed (exit code {step.returncode}): {tail}")
        self._report(stop, f"{name}: done")
        return step

    @staticmethod
    def _python_version(python: str) -> str | None:
        try:
            done = subprocess.run(
                [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True, text=True, timeout=30, env=child_environment(),
                **_no_window(),
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    def _report(self, fraction: float, message: str) -> None:
        if self.on_progress is not None:
            self.on_progress(min(max(fraction, 0.0), 1.0), message)

    # -- the report --------------------------------------------------------------------------

    def diagnostics(self, context: Sequence[str] = ()) -> str:
        """A plain-text report of the plan, every command, its exit code and its output."""
        plan = self.plan
        lines = [
            "geosound environment set-up — diagnostics",
            *context,
            f"platform: {platform.platform()}; QGIS's Python {sys.version.split()[0]} "
            f"({sys.executable})",
            f"target: {plan.target}",
            f"source: {plan.source or '(none)'}",
            f"index: {plan.index_url or '(pip default)'}; pip options: "
            f"{' '.join(plan.pip_options) or '(none)'}",
            f"system site-packages: {plan.system_site_packages}; shared site-packages: "
            f"{', '.join(plan.shared_site_packages) or '(none)'}",
            f"base Python: {self.base_python or plan.base_python or '(not found)'}",
            *self.notes,
        ]
        for step in self.steps:
            lines += ["", f"$ {shlex.join(step.command)}", f"exit code: {step.returncode}"]
            lines += [f"  {text}" for text in list(step.output)[-60:]]
        lines += ["", f"result: {self.error or (f'geosound {self.version} at {self.python}')}"]
        return "\n".join(lines)


def _pump(stream: object, lines: queue.Queue[str | None]) -> None:
    try:
        for line in iter(stream.readline, ""):  # type: ignore[attr-defined]
            lines.put(line)
    finally:
        stream.close()  # type: ignore[attr-defined]
        lines.put(None)


def _no_window() -> dict[str, int]:
    if sys.platform == "win32":
        return {"creationflags": getattr(subprocess, "CREATE_NO_WINDOW", 0)}
    return {}
