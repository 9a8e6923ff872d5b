"""The docs' command-line page is generated from the app: every command, usage and option."""

from __future__ import annotations

import re

import typer.main

from geosound.cli.app import app
from geosound.cli.reference import cli_reference_markdown


def test_every_command_has_a_section_with_its_options():
    page = cli_reference_markdown()
    root = typer.main.get_command(app)
    context = typer.Context(root, info_name="geosound")
    for name in root.list_commands(context):
        assert f"## geosound {name}\n" in page
    assert "### geosound index build\n" in page and "### geosound index search\n" in page
    assert "geosound map [OPTIONS] RASTER\n" in page
    # An option with its default and range, as --help prints it.
    assert re.search(
        r"\| <code>--chunk-rows &lt;int range&gt;</code> \| Tile rows per unit .*default: 8",
        page,
    )
    assert "<code>--encoder-backend &lt;torch&#124;onnx&#124;openvino&gt;</code>" in page


def test_table_cells_cannot_break_the_table():
    page = cli_reference_markdown()
    for line in page.splitlines():
        if line.startswith("| <code>"):
            cells = re.split(r"(?<!\\)\|", line)
            assert len(cells) == 4, line  # "", option, meaning, ""
