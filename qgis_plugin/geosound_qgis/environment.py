"""Find the Python of the geosound environment that the plugin drives as a subprocess.

QGIS runs its own Python with its own GDAL and PROJ. geosound needs torch, rasterio wheels and
friends, which must never be imported into QGIS: their GDAL/PROJ builds clash with QGIS's, they
cost gigabytes of memory, and a crash in them would take QGIS down with the user's project. So
the plugin only ever talks to geosound as ``python -m geosound ...`` in the user's geosound
environment, and this module decides which ``python`` that is.

It imports nothing from QGIS, so it can be tested (and reused by scripts) outside QGIS; the
caller passes in the value read from the plugin settings.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SETTINGS_KEY = "geosound/python"
"""QgsSettings key holding the geosound environment's python (or its folder, or its CLI)."""
BANK_SETTINGS_KEY = "geosound/bank"
"""QgsSettings key holding the default audio bank (used by the Listen map tool)."""
ENV_VAR = "GEOSOUND_PYTHON"
WHERE_TO_SET = (
    "Plugins ▸ geosound ▸ Set up geosound… (creates one), Plugins ▸ geosound ▸ Settings… "
    "(QGIS setting 'geosound/python') or the GEOSOUND_PYTHON environment variable"
)
BUILD_RECORD = Path(__file__).resolve().parent / "build_environment.json"
"""Written by ``build_zip.py``: the geosound environment the zip was built beside, if any."""
MANAGED_FOLDER = ("geosound", "venv")
"""The managed environment "Set up geosound" creates, under the QGIS profile folder."""

# QGIS sets these for its own Python and its own GDAL/PROJ. Passed on, they make the geosound
# environment import QGIS's packages or load data files of another GDAL/PROJ version
# ("proj.db is of a different version"), so the child process starts without them; wheels
# and conda packages find their own data.
_DROPPED_VARIABLES = (
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "GDAL_DATA",
    "GDAL_DRIVER_PATH",
    "PROJ_LIB",
    "PROJ_DATA",
)

_CHECKED: dict[tuple[str, int], str] = {}


class EnvironmentNotFound(Exception):
    """No usable geosound environment; the message says what was tried and where to set it."""


@dataclass(frozen=True)
class GeosoundEnvironment:
    """A Python interpreter that can run ``python -m geosound``."""

    python: Path
    source: str
    version: str

    def command(self, *arguments: str) -> list[str]:
        """The full command line for ``geosound <arguments>`` in this environment."""
        return [str(self.python), "-m", "geosound", *arguments]


def child_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment variables for a geosound subprocess: QGIS's Python/GDAL/PROJ ones removed."""
    env = {k: v for k, v in (os.environ if base is None else base).items()}
    for name in _DROPPED_VARIABLES:
        env.pop(name, None)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def plugin_checkout_root() -> Path:
    """The folder two levels above this package: the repository root in a source checkout."""
    return Path(__file__).resolve().parents[2]


def _venv_python(folder: Path) -> Path | None:
    for relative in ("bin/python", "Scripts/python.exe", "python.exe", "bin/python3"):
        candidate = folder / relative
        if candidate.is_file():
            return candidate
    return None


def _python_of_script(script: Path) -> Path | None:
    """The interpreter named on the shebang line of a console script such as ``geosound``."""
    try:
        with open(script, "rb") as handle:
            first = handle.readline(512).decode("utf-8", "replace").strip()
    except OSError:
        return None
    if first.startswith("#!"):
        interpreter = Path(first[2:].strip().split()[0])
        if interpreter.is_file():
            return interpreter
    if sys.platform == "win32":  # pip's geosound.exe lives next to python.exe's Scripts
        return _venv_python(script.parent.parent)
    return None


def resolve_python(value: str) -> Path | None:
    """Turn what a user typed (python, environment folder or ``geosound`` CLI) into a python."""
    path = Path(os.path.expanduser(value.strip()))
    if path.is_dir():
        return _venv_python(path)
    if not path.is_file():
        return None
    if path.stem.lower() == "geosound":
        return _python_of_script(path)
    return path


def managed_environment(profile_folder: str | os.PathLike[str] | None) -> Path | None:
    """The folder of the managed environment under a QGIS profile folder (None: no profile)."""
    if not profile_folder:
        return None
    return Path(profile_folder).joinpath(*MANAGED_FOLDER)


def recorded_build_python(record: Path = BUILD_RECORD) -> str | None:
    """The python ``build_zip.py`` recorded (the environment the zip was built from), if any."""
    try:
        with open(record, encoding="utf-8") as handle:
            value = json.load(handle).get("python")
    except (OSError, ValueError, AttributeError):
        return None
    return str(value) if value else None


def candidates(
    configured: str | None, profile_folder: str | os.PathLike[str] | None = None
) -> list[tuple[str, str]]:
    """Where to look, in order, as ``(value, where it came from)``.

    An explicit choice (the setting, then the environment variable) is the only candidate:
    silently falling back to another environment would hide a typo behind different results.
    Without one, the first of these that imports geosound wins: the managed environment of
    "Set up geosound" (under ``profile_folder``), the environment recorded when the zip was
    built, the ``.venv`` of the source checkout the plugin was loaded from, ``geosound`` on
    the PATH.
    """
    if configured and configured.strip():
        return [(configured, f"the setting {SETTINGS_KEY}")]
    from_env = os.environ.get(ENV_VAR, "")
    if from_env.strip():
        return [(from_env, f"the environment variable {ENV_VAR}")]
    found: list[tuple[str, str]] = []
    managed = managed_environment(profile_folder)
    if managed is not None and managed.is_dir():
        found.append((str(managed), f"the managed environment ({managed})"))
    recorded = recorded_build_python()
    if recorded:
        found.append((recorded, "the environment the plugin zip was built from"))
    root = plugin_checkout_root()
    if (root / "pyproject.toml").is_file() and (root / "geosound").is_dir():
        found.append((str(root / ".venv"), f"the source checkout's .venv ({root})"))
    on_path = shutil.which("geosound")
    if on_path:
        found.append((on_path, "geosound on the PATH"))
    return found


def check_python(python: Path, timeout: float = 60.0) -> str:
    """The geosound version that ``python`` imports; raises EnvironmentNotFound if none.

    The answer is cached per interpreter (path and modification time), so the check costs one
    short subprocess per QGIS session, not one per algorithm run.
    """
    try:
        key = (str(python), python.stat().st_mtime_ns)
    except OSError as error:
        raise EnvironmentNotFound(f"{python} cannot be read ({error.strerror})") from None
    if key in _CHECKED:
        return _CHECKED[key]
    try:
        done = subprocess.run(
            [str(python), "-c", "import geosound; print(geosound.__version__)"],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=child_environment(),
            **_hidden_window(),
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise EnvironmentNotFound(f"{python} could not be run ({error})") from None
    if done.returncode != 0:
        lines = (done.stderr or "").strip().splitlines()
        reason = lines[-1] if lines else f"exit code {done.returncode}"
        raise EnvironmentNotFound(f"{python} cannot import geosound ({reason})")
    version = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "unknown"
    _CHECKED[key] = version
    return version


def find_environment(
    configured: str | None = None, profile_folder: str | os.PathLike[str] | None = None
) -> GeosoundEnvironment:
    """The geosound environment to use, checked; raises EnvironmentNotFound with the reasons."""
    tried: list[str] = []
    for value, source in candidates(configured, profile_folder):
        python = resolve_python(value)
        if python is None:
            tried.append(f"{value} (from {source}) is not a python, environment or geosound CLI")
            continue
        try:
            version = check_python(python)
        except EnvironmentNotFound as error:
            tried.append(f"{error} (from {source})")
            continue
        return GeosoundEnvironment(python=python, source=source, version=version)
    detail = (
        "; ".join(tried)
        if tried
        else ("no setting, no GEOSOUND_PYTHON, no managed environment, no geosound on PATH")
    )
    raise EnvironmentNotFound(f"geosound environment not found: {detail}. Set it in {WHERE_TO_SET}")


def _hidden_window() -> dict[str, int]:
    """On Windows, keep a console window from flashing up for every subprocess."""
    if sys.platform == "win32":
        return {"creationflags": getattr(subprocess, "CREATE_NO_WINDOW", 0)}
    return {}
