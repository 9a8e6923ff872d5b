"""mkdocs hook: the "Command line" page (cli.md), generated from the app at build time.

The page is not a file in docs/: it is made by geosound.cli.reference from the typer app of
the installed package, so a docs build always documents the options a user really has.
"""

from __future__ import annotations

from typing import Any

from mkdocs.structure.files import File, Files

from geosound.cli.reference import cli_reference_markdown


def on_files(files: Files, config: Any) -> Files:
    files.append(File.generated(config, "cli.md", content=cli_reference_markdown()))
    return files
