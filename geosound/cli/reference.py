"""The command-line reference as Markdown, read from the typer app itself.

The documentation site renders this page at build time (``docs/hooks/cli_reference.py``), so
the reference can never drift from the options a user actually gets: a new option, a changed
default or help text shows up in the next docs build without anyone editing a page.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import typer
import typer.main
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from geosound.cli.app import app

# typer vendors its own click (typer._click): its objects are reached through typer's names.
_Command = TyperCommand | TyperGroup


def cli_reference_markdown(program: str = "geosound", typer_app: typer.Typer = app) -> str:
    """Every command of the app, in the app's own order, with its usage and options.

    Args:
        program: The name the usage lines start with.
        typer_app: The app (default: geosound's).

    Returns:
        A Markdown page: one ``##`` section per command (``###`` per subcommand of a group),
        each with the command's help text, a usage line and a table of its arguments and
        options (as ``--help`` prints them, defaults included).
    """
    root = typer.main.get_command(typer_app)
    if not isinstance(root, TyperGroup):
        raise TypeError(f"the {program} app is expected to be a group of commands")
    context = typer.Context(root, info_name=program)
    lines = [
        "# Command line",
        "",
        f"Generated from the `{program}` app when the documentation is built; `{program} "
        "COMMAND --help` prints the same.",
        "",
        _help_text(root),
        "",
        f"Options of `{program}` itself, given before the command:",
        "",
        *_options_table(root, context),
    ]
    for path, command, depth in _walk(root, context, (program,)):
        lines += _command_section(path, command, depth)
    return "\n".join(lines).rstrip() + "\n"


def _walk(
    group: _Command, context: typer.Context, path: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], _Command, int]]:
    if not isinstance(group, TyperGroup):
        return
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        if not isinstance(command, _Command) or command.hidden:
            continue
        yield (*path, name), command, len(path)
        child = typer.Context(command, info_name=name, parent=context)
        yield from _walk(command, child, (*path, name))


def _command_section(path: tuple[str, ...], command: _Command, depth: int) -> list[str]:
    heading = "#" * min(depth + 1, 4)
    context = typer.Context(command, info_name=path[-1])
    lines = [f"{heading} {' '.join(path)}", "", _help_text(command), ""]
    if isinstance(command, TyperGroup):
        return lines
    arguments = [p for p in command.params if isinstance(p, TyperArgument)]
    usage = " ".join([*path, "[OPTIONS]", *(_argument_usage(a) for a in arguments)])
    lines += ["```text", usage, "```", ""]
    return lines + _options_table(command, context)


def _options_table(command: _Command, context: typer.Context) -> list[str]:
    rows = [row for p in command.params if (row := _param_row(p, context)) is not None]
    if not rows:
        return []
    return ["| argument or option | meaning |", "|---|---|", *rows, ""]


def _help_text(command: _Command) -> str:
    r"""The help text as Markdown paragraphs.

    click rewraps every paragraph except one that starts with a ``\b`` line; such a
    paragraph keeps its line breaks here too (a Markdown hard break, ``<br>``).
    """
    text = (command.help or command.short_help or "").strip()
    paragraphs = []
    for paragraph in text.split("\n\n"):
        lines = paragraph.splitlines()
        if lines and lines[0].strip() == "\b":
            paragraphs.append("<br>\n".join(_markdown_text(line) for line in lines[1:]))
        else:
            paragraphs.append("\n".join(_markdown_text(line) for line in lines))
    return "\n\n".join(paragraphs)


def _markdown_text(text: str) -> str:
    """``text`` with ``&``, ``<`` and ``>`` escaped outside its code spans.

    Help texts name placeholders such as ``<layer>_landscapes.vrt``: raw, a browser takes
    ``<layer>`` for an unknown HTML tag and shows nothing. Inside backticks Markdown already
    shows them as written, and an entity would be shown literally.
    """
    pieces = re.split(r"(`+[^`]*`+)", text)
    return "".join(
        piece if piece.startswith("`") else html.escape(piece, quote=False) for piece in pieces
    )


def _argument_usage(argument: TyperArgument) -> str:
    name = (argument.name or "arg").upper()
    if argument.nargs != 1:
        name += "..."
    return name if argument.required else f"[{name}]"


def _param_row(param: object, context: typer.Context) -> str | None:
    if not isinstance(param, TyperArgument | TyperOption):
        return None
    record = param.get_help_record(context)
    if record is None:
        return None
    names, meaning = record
    if isinstance(param, TyperArgument):
        names = _argument_usage(param)
    # An HTML code element, not backticks: Markdown tables keep a "\|" inside a code span as
    # written, and option metavars hold pipes (<torch|onnx|openvino>).
    code = html.escape(_cell(names)).replace("|", "&#124;")
    text = _markdown_text(_cell(meaning)).replace("|", "\\|")
    return f"| <code>{code}</code> | {text} |"


def _cell(text: str) -> str:
    return " ".join(text.split())
