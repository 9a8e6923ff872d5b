"""The QGIS side of finding the environment: the settings and the profile folder."""

from __future__ import annotations

from pathlib import Path

from qgis.core import Qgis, QgsApplication, QgsSettings

from .environment import (
    SETTINGS_KEY,
    GeosoundEnvironment,
    candidates,
    find_environment,
    managed_environment,
)


def profile_folder() -> str:
    """The active QGIS profile folder (``…/profiles/default/``)."""
    return QgsApplication.qgisSettingsDirPath()


def managed_folder() -> Path:
    """Where "Set up geosound" puts its environment: ``<profile>/geosound/venv``."""
    folder = managed_environment(profile_folder())
    assert folder is not None
    return folder


def configured_python() -> str:
    return QgsSettings().value(SETTINGS_KEY, "", type=str)


def qgis_environment(configured: str | None = None) -> GeosoundEnvironment:
    """The environment the algorithms and the Listen tool use (raises EnvironmentNotFound)."""
    value = configured_python() if configured is None else configured
    return find_environment(value, profile_folder())


def looked_at(configured: str | None = None) -> list[str]:
    """Where detection looks, in order, for messages."""
    value = configured_python() if configured is None else configured
    return [source for _, source in candidates(value, profile_folder())]


def qgis_version() -> str:
    return f"QGIS {Qgis.QGIS_VERSION}"
