"""The ``geosound`` command line: thin — parse, call the public API, print.

Errors the user can fix (:class:`~geosound.errors.InputError` and friends) are printed as one
line naming the file and the problem, with exit code 2; anything else is an internal error
(exit 1), printed as one line unless ``GEOSOUND_DEBUG=1`` asks for the traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

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
from geosound.cli.sonify import pairs_command, sonify_command
from geosound.cli.synthesize import synthesize_command
from geosound.cli.train import evaluate_command, train_command
from geosound.errors import GeosoundError
from geosound.errors import InputError as GeosoundInputError
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
app.command("evaluate")(evaluate_command)
app.command("evaluate-queries")(evaluate_queries_command)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"geosound {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Soundscape mapping: what places sound like, as GIS layers."""


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
    crs: Annotated[str, typer.Option(help="CRS of the point.")] = "EPSG:4326",
    size: Annotated[int, typer.Option(help="Chip edge in pixels.")] = 64,
) -> None:
    """Cut an image chip centred on a point (e.g. where a recording was made)."""
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
    progress: ProgressOption = ProgressMode.bar,
) -> None:
    """Embed recordings with an audio encoder; writes pooled vectors and file names (.npz)."""
    import numpy as np

    from geosound.atomic import atomic_path
    from geosound.audio import load_audio
    from geosound.encoders import get_encoder

    audio_encoder = get_encoder(encoder)
    if audio_encoder.modality != "audio":
        raise GeosoundInputError(f"{encoder} is a {audio_encoder.modality} encoder, not audio")
    clips = [load_audio(path, sample_rate=None) for path in files]
    pooled = []
    with progress_reporter(progress, "embedding") as report:
        for start in range(0, len(clips), audio_encoder.batch_size):
            batch = clips[start : start + audio_encoder.batch_size]
            pooled.append(audio_encoder.encode(batch).pooled.numpy())
            done = start + len(batch)
            report(done / len(clips), f"embedded {done}/{len(clips)} recordings")
    with atomic_path(out) as tmp, open(tmp, "wb") as handle:
        np.savez(
            handle,
            embeddings=np.concatenate(pooled),
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


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app and turn errors into one line and an exit code."""
    try:
        app(args=argv, prog_name="geosound")
    except GeosoundError as error:
        _fail(str(error), error.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as error:
        if os.environ.get("GEOSOUND_DEBUG"):
            raise
        _fail(
            f"internal error: {type(error).__name__}: {error} "
            "(set GEOSOUND_DEBUG=1 for the traceback)",
            1,
        )


def _fail(message: str, code: int) -> None:
    if JSON_MODE["active"]:
        emit_json({"error": message})
    typer.echo(f"geosound: error: {message}", err=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
