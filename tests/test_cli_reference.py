"""The docs' command-line page is generated from the app: every command, usage and option."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

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


def row_names(section: str) -> list[list[str]]:
    """The option names of each table row of a section (``-o, --out <path>`` → -o, --out)."""
    cells = re.findall(r"^\| <code>(.*?)</code>", section, flags=re.MULTILINE)
    return [[name.split(" ")[0] for name in cell.split(", ")] for cell in cells]


def test_every_parameter_of_every_command_is_in_the_reference():
    page = cli_reference_markdown()
    root = typer.main.get_command(app)
    context = typer.Context(root, info_name="geosound")
    sections = re.split(r"^#+ ", page, flags=re.MULTILINE)
    assert "<code>--version</code>" in sections[1] and "<code>--verbose</code>" in sections[1]

    def commands(group, path):
        for name in group.list_commands(context):
            command = group.get_command(context, name)
            if not command.hidden:
                yield (*path, name), command
                if hasattr(command, "list_commands"):
                    yield from commands(command, (*path, name))

    for path, command in commands(root, ("geosound",)):
        section = next(s for s in sections if s.startswith(" ".join(path) + "\n"))
        for param in command.params:
            if getattr(param, "hidden", False):
                continue
            if param.param_type_name == "option":
                # A row's first cell names the option, e.g. "-o, --out &lt;path&gt;".
                assert set(param.opts) in [set(names) for names in row_names(section)], (
                    f"{' '.join(path)}: no row for {', '.join(param.opts)}"
                )
            else:
                argument = param.name.upper()  # shown as NAME, or [NAME] when optional
                assert re.search(rf"<code>\[?{argument}", section), f"{path}: {argument}"


def test_placeholders_in_help_texts_are_shown_not_taken_for_html():
    page = cli_reference_markdown()
    # generate's -o help names <layer>_landscapes.vrt; raw, a browser would drop "<layer>".
    assert "(default: &lt;layer&gt;_landscapes.vrt beside the layer)" in page
    for line in page.splitlines():
        outside_code = re.sub(r"<code>.*?</code>|`[^`]*`|<br>", "", line)
        assert "<" not in outside_code.replace("<=", ""), line


def test_a_no_rewrap_paragraph_keeps_its_line_breaks():
    tiny = typer.Typer()

    @tiny.command()
    def first() -> None:
        """Show the steps.

        \b
        one: read
        two: write <out>
        """

    @tiny.command()
    def second() -> None:
        """Another."""

    page = cli_reference_markdown("tiny", tiny)
    assert "one: read<br>\ntwo: write &lt;out&gt;\n" in page
    assert "\b" not in page


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every leaf command of the app with its name path."""
    if hasattr(command, "commands"):  # a group (typer's own Group class)
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))
    else:
        yield path, command


def test_no_help_text_holds_what_rich_would_take_for_markup():
    """``--help`` renders with rich, which silently drops ``[word …]`` as a markup tag: a help
    text "DDIM steps of --images [default: 25]." printed as "DDIM steps of --images ."."""
    markup = re.compile(r"\[/?[a-z#@][^\]]*\]")
    commands = list(_commands(typer.main.get_command(app)))
    assert ("index", "build") in [path for path, _ in commands] and len(commands) > 20
    for path, command in commands:
        texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
        for text in texts:
            assert not markup.search(text), f"geosound {' '.join(path)}: {text!r}"
