"""The ``geosound`` command line: thin — parse, call the public API, print.

One error contract for every command (:func:`main`):

- Errors the user can fix — a bad option value (typer's checks and :mod:`geosound.cli.checks`),
  :class:`~geosound.errors.InputError` and friends, an output that cannot be written — print
  one line ``geosound: error: ...`` naming the option or the file, and exit 2.
- Anything else is an internal error (exit 1), one line unless ``GEOSOUND_DEBUG=1`` asks for
  the traceback.
- With ``--progress json`` the last stdout line of a failed run is ``{"error": "..."}``, also
  when the arguments are refused before the command starts.
- Library warnings are held back, so that nothing precedes the error line; ``--verbose`` (or
  ``GEOSOUND_DEBUG=1``) prints them.
- SIGTERM (what a GUI's cancel sends) unwinds like Ctrl-C, so temporary files are removed; it
  exits 143 with ``geosound: error: terminated`` (Ctrl-C: 130, ``interrupted``).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from geosound.cli.checks import (
    check_input_file,
    check_output_file,
    check_output_folder,
    crs_callback,
)
from geosound.cli.evaluate import evaluate_command
from geosound.cli.evaluate_generator import evaluate_generator_command
from geosound.cli.evaluate_scene import evaluate_scene_command
from geosound.cli.generate import generate_command, train_generator_command
from geosound.cli.index import index_app
from geosound.cli.maps import map_command
from geosound.cli.progress import (
    JSON_MODE,
    ProgressMode,
    ProgressOption,
    emit_json,
    progress_reporter,
    report_outputs,
)
from geosound.cli.query_auc import evaluate_queries_command
from geosound.cli.resources import DeviceOption, ThreadsOption, use_resources
from geosound.cli.separate import (
    evaluate_separator_command,
    separate_command,
    train_separator_command,
)
from geosound.cli.sonify import pairs_command, sonify_command
from geosound.cli.synthesize import synthesize_command
from geosound.cli.train import train_command
from geosound.errors import GeosoundError
from geosound.errors import InputError as GeosoundInputError
from geosound.runtime import set_process_defaults
from geosound.version import __version__

app = typer.Typer(
    name="geosound",
    help="Soundscape mapping: what places sound like, as GIS layers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Dataset cards and the local dev data.", no_args_is_help=True)
encoders_app = typer.Typer(help="The encoder registry.", no_args_is_help=True)
audio_app = typer.Typer(help="Inspect and embed recordings.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(encoders_app, name="encoders")
app.add_typer(audio_app, name="audio")
app.add_typer(index_app, name="index")
app.command("map")(map_command)
app.command("synthesize")(synthesize_command)
app.command("sonify")(sonify_command)
app.command("pairs")(pairs_command)
app.command("train")(train_command)
app.command("train-generator")(train_generator_command)
app.command("generate")(generate_command)
app.command("evaluate")(evaluate_command)
app.command("evaluate-generator")(evaluate_generator_command)
app.command("separate")(separate_command)
app.command("train-separator")(train_separator_command)
app.command("evaluate-separator")(evaluate_separator_command)
app.command("evaluate-queries")(evaluate_queries_command)
app.command("evaluate-scene")(evaluate_scene_command)


VERBOSE = {"active": False}
"""Set by ``geosound --verbose``: print the library warnings that are otherwise held back."""


def _version(value: bool) -> None:
    if value:
        typer.echo(f"geosound {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", help="Also print library warnings (held back otherwise), to stderr."
        ),
    ] = False,
) -> None:
    """Soundscape mapping: what places sound like, as GIS layers."""
    VERBOSE["active"] = verbose


@app.command()
def info(
    rasters: Annotated[list[Path], typer.Argument(help="One or more raster files.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Describe rasters: CRS, bounds, size, bands, data type, nodata."""
    from geosound.geo import raster_info

    infos = [raster_info(path) for path in rasters]
    if as_json:
        typer.echo(json.dumps([i.as_dict() for i in infos], indent=2))
        return
    for item in infos:
        left, bottom, right, top = item.bounds
        typer.echo(
            f"{item.path}\n"
            f"  driver      {item.driver}{' (tiled)' if item.is_tiled else ''}, "
            f"{item.overviews} overview level(s)\n"
            f"  crs         {item.crs}\n"
            f"  bounds      left {left:.6g}, bottom {bottom:.6g}, "
            f"right {right:.6g}, top {top:.6g}\n"
            f"  size        {item.width} x {item.height} px, resolution "
            f"{item.resolution[0]:.6g} x {item.resolution[1]:.6g}\n"
            f"  bands       {item.count} ({', '.join(sorted(set(item.dtypes)))})"
            + "".join(f"\n    {i}: {d}" for i, d in enumerate(item.descriptions, 1) if d)
            + f"\n  nodata      {item.nodata}"
        )


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path(
        "geosound-demo"
    ),
    query: Annotated[
        list[str] | None, typer.Option("--query", "-q", help="Sound query (repeatable).")
    ] = None,
    progress: ProgressOption = ProgressMode.bar,
) -> None:
    """Map the sample scene shipped with geosound against sound queries, offline."""
    check_output_folder(out, "--out")
    from geosound.mapping.demo import DEMO_QUERIES, run_demo

    with progress_reporter(progress, "demo") as report:
        result = run_demo(out, tuple(query) if query else DEMO_QUERIES, progress=report)
    report_outputs("demo", progress, [result.layers, result.sidecar, result.preview], result.note)


@app.command()
def chip(
    raster: Annotated[Path, typer.Argument(help="Georeferenced raster to cut from.")],
    x: Annotated[float, typer.Option("--x", help="Point x (longitude for EPSG:4326).")],
    y: Annotated[float, typer.Option("--y", help="Point y (latitude for EPSG:4326).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output GeoTIFF.")],
    crs: Annotated[str, typer.Option(help="CRS of the point.", callback=crs_callback)] = (
        "EPSG:4326"
    ),
    size: Annotated[int, typer.Option(help="Chip edge in pixels.", min=1)] = 64,
) -> None:
    """Cut an image chip centred on a point (e.g. where a recording was made)."""
    check_output_file(out, "--out")
    from geosound.geo import RasterSource, chip_windows, write_raster

    with RasterSource(raster) as source:
        (window,) = chip_windows(source, [(x, y)], size, crs)
        image = source.part(window)
        nodata = source.nodata if source.nodata is not None else 0
        write_raster(
            out,
            image.pixels,
            transform=image.transform,
            crs=image.crs,
            band_descriptions=[
                d or f"band {i}" for i, d in enumerate(source.info().descriptions, 1)
            ],
            nodata=nodata,
        )
    typer.echo(f"geosound chip: wrote {out}")


@audio_app.command("info")
def audio_info(files: Annotated[list[Path], typer.Argument(help="Audio files.")]) -> None:
    """Duration, sample rate, channels and loudness (LUFS, ITU-R BS.1770) of recordings."""
    from geosound.audio import load_audio, measure_lufs

    for path in files:
        clip = load_audio(path, sample_rate=None, mono=False)
        lufs = measure_lufs(clip.samples, clip.sample_rate)
        typer.echo(
            f"{path}: {clip.duration:.2f} s, {clip.sample_rate} Hz, {clip.channels} channel(s), "
            f"{lufs:.1f} LUFS"
        )


@audio_app.command("embed")
def audio_embed(
    files: Annotated[list[Path], typer.Argument(help="Audio files.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .npz.")],
    encoder: Annotated[str, typer.Option(help="Audio encoder name.")] = "aisfx",
    threads: ThreadsOption = None,
    device: DeviceOption = None,
    progress: ProgressOption = ProgressMode.bar,
) -> None:
    """Embed recordings with an audio encoder; writes pooled vectors and file names (.npz)."""
    check_output_file(out, "--out")
    for path in files:
        check_input_file(path, "recording", "FILE")
    use_resources(threads, device)
    import numpy as np

    from geosound.atomic import atomic_path
    from geosound.audio import load_audio
    from geosound.audio.pipeline import prefetch_map
    from geosound.encoders import get_encoder

    audio_encoder = get_encoder(encoder)
    if audio_encoder.modality != "audio":
        raise GeosoundInputError(f"{encoder} is a {audio_encoder.modality} encoder, not audio")
    # Encoders that stream long recordings (aiSFX) embed those one by one in flat memory;
    # the others, and short recordings, are decoded by a worker thread a batch ahead of the
    # encoder, which runs on a batch at a time.
    stream = getattr(audio_encoder, "pooled_long", None)
    pooled: dict[int, np.ndarray] = {}
    with progress_reporter(progress, "embedding") as report:

        def done(indices: list[int], vectors: Iterable[np.ndarray]) -> None:
            pooled.update(zip(indices, vectors, strict=True))
            report(len(pooled) / len(files), f"embedded {len(pooled)}/{len(files)} recordings")

        short: list[int] = []
        for i, path in enumerate(files):
            vector = stream(path) if stream is not None else None
            if vector is None:
                short.append(i)
            else:
                done([i], [vector])
        size = max(1, int(audio_encoder.batch_size))
        batches = [short[start : start + size] for start in range(0, len(short), size)]
        clips = prefetch_map(
            lambda batch: [load_audio(files[i], sample_rate=None) for i in batch], batches, ahead=1
        )
        for batch, batch_clips in zip(batches, clips, strict=True):
            done(batch, audio_encoder.encode(batch_clips).pooled.numpy())
    with atomic_path(out) as tmp, open(tmp, "wb") as handle:
        np.savez(
            handle,
            embeddings=np.stack([pooled[i] for i in range(len(files))]),
            files=np.array([str(f) for f in files]),
            encoder=np.array(audio_encoder.id),
        )
    if progress is ProgressMode.json:
        emit_json({"ok": True, "outputs": [str(out)]})
    else:
        typer.echo(f"geosound audio embed: wrote {len(files)} x {audio_encoder.dim} to {out}")


@data_app.command("list")
def data_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the dataset cards and whether each dev set is present locally."""
    from geosound.config import dev_data_dir
    from geosound.data import card_is_available, load_catalog

    cards = load_catalog()
    rows = [
        {
            "id": card.id,
            "name": card.name,
            "kind": card.kind,
            "licence": card.licence,
            "size": card.size,
            "local": card.local,
            "available": card_is_available(card),
        }
        for card in cards
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    typer.echo(f"dev data folder: {dev_data_dir()}  (set GEOSOUND_DEV_DATA to change)")
    for row in rows:
        where = ("here" if row["available"] else "missing") if row["local"] else "not local"
        typer.echo(
            f"  {row['id']:<24} {row['kind']:<8} {where:<9} {row['licence']}  ({row['size']})"
        )


@encoders_app.command("list")
def encoders_list() -> None:
    """List the registered encoders (their weights load only when used)."""
    from geosound.encoders import DEFAULT_ENCODERS, available_encoders

    defaults = set(DEFAULT_ENCODERS.values())
    for name, cls in sorted(available_encoders().items()):
        marker = " (default)" if name in defaults else ""
        typer.echo(f"  {name:<20} {cls.modality:<6} {cls.dim:>5}-d{marker}")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that it unwinds (and cleans up) as on Ctrl-C."""


_SIGNALLED: dict[str, int | None] = {"signal": None}

_USER_ERRNOS = {
    errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR,
    errno.EISDIR, errno.ENAMETOOLONG,
}  # fmt: skip
"""Filesystem errors about a named file that are the user's to fix (exit 2, not 1)."""


_CLICK_ERRORS: Any = sys.modules[typer.BadParameter.__module__]
"""Click's exception classes: click's own, or the copy that newer typer releases vendor."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _SIGNALLED["signal"] = signum
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one is enough; let the cleanup run
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: run the app and turn errors into one line and an exit code."""
    set_process_defaults()  # before anything loads torch's OpenMP runtime
    args = list(sys.argv[1:] if argv is None else argv)
    if _asks_for_json(args):
        JSON_MODE["active"] = True  # so that a refusal before progress starts is JSON too
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
    with warnings.catch_warnings(record=True) as held:
        try:
            code = _run(args)
        finally:
            _show_warnings(held)
    if _SIGNALLED["signal"] is not None or code == 130:
        _quiet_teardown()
    if code:
        sys.exit(code)


def _run(args: list[str]) -> int:
    """Run the app; every failure becomes one line (:func:`_fail`), the return is the exit code."""
    try:
        result = app(args=args, prog_name="geosound", standalone_mode=False)
    except _CLICK_ERRORS.ClickException as error:
        if type(error).__name__ == "NoArgsIsHelpError":
            return int(error.exit_code)  # the help was printed, as it always was
        return _fail(_usage_message(error), int(error.exit_code))
    except typer.Abort:
        return _fail("aborted", 1)
    except GeosoundError as error:
        return _fail(str(error), error.exit_code)
    except KeyboardInterrupt:
        return _interrupted()
    except SystemExit:  # a library's exit(1) on Ctrl-C/SIGTERM (Lightning does that)
        if _SIGNALLED["signal"] is not None:
            return _interrupted()
        raise
    except OSError as error:
        if error.filename is not None and error.errno in _USER_ERRNOS:
            return _fail(f"{error.filename}: {error.strerror or error}", 2)
        return _internal(error)
    except Exception as error:
        return _internal(error)
    if _SIGNALLED["signal"] is not None or result == 130:  # typer turns Ctrl-C into exit 130
        return _interrupted()
    return result if isinstance(result, int) else 0


def _internal(error: Exception) -> int:
    if os.environ.get("GEOSOUND_DEBUG"):
        raise error
    return _fail(
        f"internal error: {type(error).__name__}: {error} (set GEOSOUND_DEBUG=1 for the traceback)",
        1,
    )


def _quiet_teardown() -> None:
    """Keep an interrupted run's last line last.

    A run stopped mid-chunk leaves zarr's async reads pending: at exit asyncio logs each task as
    "Task was destroyed but it is pending!" and the garbage collector warns of each coroutine
    "never awaited" (seen in CI after SIGTERM). Once the run has said it stopped, both are noise.
    Set after ``catch_warnings`` has restored the filters, since the warnings come at shutdown.
    """
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    warnings.simplefilter("ignore")


def _interrupted() -> int:
    if _SIGNALLED["signal"] == signal.SIGTERM:
        return _fail("terminated", 128 + signal.SIGTERM)
    return _fail("interrupted", 130)


def _usage_message(error: Exception) -> str:
    """Click's message (it names the option), with where to read the command's help."""
    message = str(error.format_message())  # type: ignore[attr-defined]
    ctx = getattr(error, "ctx", None)
    if ctx is not None:
        return f"{message} (see {ctx.command_path} --help)"
    return message


def _asks_for_json(args: list[str]) -> bool:
    """Whether ``--progress json`` is on the command line (read before typer parses it)."""
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "--progress=json" or (arg == "--progress" and args[i + 1 : i + 2] == ["json"]):
            return True
    return False


def _show_warnings(held: list[warnings.WarningMessage]) -> None:
    """Print held-back warnings with ``--verbose`` or ``GEOSOUND_DEBUG``; drop them otherwise."""
    if not (VERBOSE["active"] or os.environ.get("GEOSOUND_DEBUG")):
        return
    for item in held:
        text = warnings.formatwarning(
            item.message, item.category, item.filename, item.lineno, item.line
        )
        sys.stderr.write(text)
    sys.stderr.flush()


def _fail(message: str, code: int) -> int:
    """Print the one error line (and the JSON error object); return the exit code."""
    line = "; ".join(part.strip() for part in str(message).strip().splitlines() if part.strip())
    if JSON_MODE["active"]:
        emit_json({"error": line})
    typer.echo(f"geosound: error: {line}", err=True)
    return code


if __name__ == "__main__":
    main()
