"""Build the installable plugin zip: ``geosound_qgis/`` at the zip root, no caches.

QGIS's "Install from ZIP" expects exactly one folder at the root of the archive, named like the
plugin package. Run with any Python 3 (no dependencies):

    python3 qgis_plugin/build_zip.py [OUT.zip]     # default dist/geosound_qgis-<version>.zip
"""

from __future__ import annotations

import json
import os
import sys
import zipfile
from pathlib import Path

PLUGIN = Path(__file__).resolve().parent / "geosound_qgis"
SKIPPED_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
SKIPPED_SUFFIXES = {".pyc", ".pyo", ".orig", ".rej", ".swp"}


def plugin_version(plugin: Path = PLUGIN) -> str:
    """``version=`` of metadata.txt, the one place the plugin's version is written."""
    for line in (plugin / "metadata.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith("version="):
            return line.split("=", 1)[1].strip()
    raise SystemExit(f"no version= line in {plugin / 'metadata.txt'}")


def plugin_files(plugin: Path = PLUGIN) -> list[Path]:
    """Every file of the plugin that belongs in a release, sorted (reproducible zips)."""
    return sorted(
        path
        for path in plugin.rglob("*")
        if path.is_file()
        and not SKIPPED_DIRS.intersection(path.relative_to(plugin).parts)
        and path.suffix not in SKIPPED_SUFFIXES
        and path.name != RECORD  # a record left by a test: each zip writes its own
    )


RECORD = "build_environment.json"
"""Inside the zip: the geosound environment beside which it was built (environment.py reads it)."""


def build_environment(plugin: Path = PLUGIN) -> dict[str, str] | None:
    """The python of the environment the zip is built beside: ``GEOSOUND_PYTHON`` if set, else
    the checkout's ``.venv``; None when neither exists (the record is then left out)."""
    root = plugin.parents[1]
    configured = os.environ.get("GEOSOUND_PYTHON", "").strip()
    for python, source in (
        (configured, "GEOSOUND_PYTHON at build time"),
        (str(root / ".venv" / "bin" / "python"), f"the .venv of {root}"),
        (str(root / ".venv" / "Scripts" / "python.exe"), f"the .venv of {root}"),
    ):
        if python and Path(python).is_file():
            return {"python": str(Path(python).absolute()), "source": source}
    return None


def build(out: Path, plugin: Path = PLUGIN) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in plugin_files(plugin):
            arcname = Path(plugin.name) / path.relative_to(plugin)
            info = zipfile.ZipInfo(arcname.as_posix(), date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
        record = build_environment(plugin)
        if record is not None:
            info = zipfile.ZipInfo(f"{plugin.name}/{RECORD}", date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, json.dumps(record, indent=1) + "\n")
        licence = plugin.parents[1] / "LICENSE"
        if licence.is_file():  # the plugin repository wants the licence inside the zip
            info = zipfile.ZipInfo(f"{plugin.name}/LICENSE", date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, licence.read_bytes())
    tmp.replace(out)
    return out


def main(argv: list[str]) -> int:
    default = PLUGIN.parents[1] / "dist" / f"geosound_qgis-{plugin_version()}.zip"
    out = Path(argv[1]) if len(argv) > 1 else default
    built = build(out)
    print(f"wrote {built} ({len(plugin_files())} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
