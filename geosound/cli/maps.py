"""``geosound map``: soundscape layers for a raster."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from geosound.cli.checks import (
    Bbox,
    MonthOption,
    bbox_callback,
    check_bbox,
    check_checkpoint_file,
    check_input_file,
    check_output_folder,
    check_scheduler,
    check_tile_options,
    check_time_options,
    crs_callback,
    hour_option,
    parse_crs,
    tile_m_callback,
)
from geosound.cli.progress import ProgressMode, ProgressOption, progress_reporter, report_outputs
from geosound.cli.resources import DeviceOption, ThreadsOption, use_resources
from geosound.errors import InputError

if TYPE_CHECKING:
    import numpy as np


class EncoderBackendChoice(StrEnum):
    """geosound.encoders.base.ENCODER_BACKENDS, spelled out so that --help needs no torch."""

    torch = "torch"
    onnx = "onnx"
    openvino = "openvino"


def map_command(
    raster: Annotated[Path, typer.Argument(help="Georeferenced raster (GeoTIFF, COG, ...).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    text: Annotated[
        list[str] | None, typer.Option("--text", "-t", help="Text query (repeatable).")
    ] = None,
    audio: Annotated[
        list[Path] | None, typer.Option("--audio", "-a", help="Audio query (repeatable).")
    ] = None,
    separate: Annotated[
        bool,
        typer.Option(
            "--separate",
            help="Separate each --audio recording into its sources first (AV-GAS): one layer "
            "per source instead of one for the mix.",
        ),
    ] = False,
    separator: Annotated[
        Path | None,
        typer.Option("--separator", help="Separator checkpoint for --separate (default: shipped)."),
    ] = None,
    concepts: Annotated[bool, typer.Option("--concepts", help="Concept layers.")] = False,
    retrieve: Annotated[int, typer.Option("--retrieve", help="Top-k sounds per tile.", min=0)] = 0,
    bank: Annotated[Path | None, typer.Option("--bank", help="Audio bank for --retrieve.")] = None,
    checkpoint: Annotated[
        Path | None, typer.Option("--checkpoint", help="Sat2Sound checkpoint (default: shipped).")
    ] = None,
    tile_m: Annotated[
        float | None,
        typer.Option(
            "--tile-m",
            help="Tile ground size in metres, whatever the raster's pixel size (default: what "
            "the model was trained on, 640 m if it does not say). Rasters in degrees are "
            "converted at the raster's centre latitude.",
            callback=tile_m_callback,
        ),
    ] = None,
    tile: Annotated[
        int | None,
        typer.Option("--tile", help="Tile size in pixels, instead of --tile-m.", min=1),
    ] = None,
    stride: Annotated[
        int | None,
        typer.Option("--stride", help="Tile step in pixels (default: the tile size).", min=1),
    ] = None,
    month: MonthOption = None,
    hour: Annotated[
        list[str] | None,
        hour_option(
            "Local hour(s) of day: 5, 17.5, 0-23 or 5,17, repeatable; one layer per hour "
            "(models trained with metadata only; each tile's own lon/lat is used)."
        ),
    ] = None,
    preset: Annotated[str | None, typer.Option("--preset", help="Band preset.")] = None,
    bbox: Annotated[
        tuple[float, float, float, float] | None,
        typer.Option(
            "--bbox", help="Area of interest: minx miny maxx maxy.", callback=bbox_callback
        ),
    ] = None,
    bbox_crs: Annotated[
        str | None,
        typer.Option(
            "--bbox-crs", help="CRS of --bbox (default: the raster's).", callback=crs_callback
        ),
    ] = None,
    cache: Annotated[
        Path | None, typer.Option("--cache", help="Region cache (default: OUT/region_cache.zarr).")
    ] = None,
    chunk_rows: Annotated[
        int,
        typer.Option(
            "--chunk-rows", help="Tile rows per unit of work (resume granularity).", min=1
        ),
    ] = 8,
    workers: Annotated[
        int, typer.Option("--workers", help="Dask LocalCluster workers (0: in-process).", min=0)
    ] = 0,
    scheduler: Annotated[
        str | None, typer.Option("--scheduler", help="Existing Dask scheduler, tcp://host:8786.")
    ] = None,
    encoder_backend: Annotated[
        EncoderBackendChoice | None,
        typer.Option(
            "--encoder-backend",
            help="Image encoder runtime: torch, onnx or openvino (default: torch, or "
            "GEOSOUND_ENCODER_BACKEND). Same embeddings to 1e-4; only the speed differs.",
        ),
    ] = None,
    threads: ThreadsOption = None,
    device: DeviceOption = None,
    progress: ProgressOption = ProgressMode.bar,
) -> None:
    """Embed every tile of a raster once, then write query, concept and retrieval layers.

    Rerunning on the same --out (or --cache) resumes an interrupted run and re-queries a mapped
    region without re-encoding it.
    """
    hours = [float(h) for h in hour or []]
    _check_map_options(
        raster, out, audio or [], checkpoint, tile, tile_m, stride, bbox, bbox_crs, scheduler,
        month, hours,
    )  # fmt: skip
    if separate and not audio:
        raise InputError("--separate separates --audio recordings; give at least one")
    if separator is not None:
        if not separate:
            raise InputError("--separator is for --separate")
        check_checkpoint_file(separator, "--separator")
    _use_encoder_backend(encoder_backend)
    use_resources(threads, device)
    from geosound.mapping.maps import map_region

    with progress_reporter(progress, "map") as report:
        sounds = _separated(audio or [], separator, checkpoint) if separate else {}
        result = map_region(
            raster, out, texts=text or (),
            recordings=[] if separate else [str(a) for a in audio or ()], sounds=sounds,
            concepts=concepts, retrieve=retrieve, bank=bank, checkpoint=checkpoint,
            tile_size=tile, tile_m=tile_m, stride=stride, month=month, hours=hours,
            preset=preset, bbox=bbox, bbox_crs=bbox_crs,
            cache=cache, chunk_rows=chunk_rows, workers=workers, scheduler=scheduler,
            progress=report,
        )  # fmt: skip
    report_outputs("map", progress, result.outputs, result.note)


def _separated(
    recordings: list[Path], separator: Path | None, checkpoint: Path | None
) -> dict[str, np.ndarray]:
    """The sources of each recording as map queries, named ``audio: FILE / source N: CLASS``."""
    from geosound.separation import SourceFinder
    from geosound.separation.default import default_separator_path

    finder = SourceFinder(separator or default_separator_path(), checkpoint)
    sounds = {}
    for path in recordings:
        for i, source in enumerate(finder.separate(path).sources, 1):
            name = f"audio: {path.name} / source {i}: {source.label} ({source.share:.0%})"
            sounds[name] = source.embedding
    return sounds


def _check_map_options(
    raster: Path,
    out: Path,
    audio: list[Path],
    checkpoint: Path | None,
    tile: int | None,
    tile_m: float | None,
    stride: int | None,
    bbox: Bbox | None,
    bbox_crs: str | None,
    scheduler: str | None,
    month: int | None,
    hours: list[float],
) -> None:
    """Refuse what is wrong with the options in seconds, before the model and the encoders load.

    The raster is opened (a text file, a raster without CRS, one with no tile to map fail here:
    :func:`~geosound.geo.check_tileable`, which the library runs again for its own callers),
    the bbox checked in its CRS, the output folder, the query recordings and the checkpoint
    looked at (its header only: does it take ``--hour``, what tile size was it trained on),
    the tile size in metres turned into pixels of this raster, and the scheduler asked for a
    connection.
    """
    from geosound.geo import RasterSource, check_tileable
    from geosound.geo.ground import ground_tile

    check_tile_options(tile, tile_m)
    check_output_folder(out, "--out")
    for path in audio:
        check_input_file(path, "recording", "--audio")
    if checkpoint is not None:
        check_checkpoint_file(checkpoint, "--checkpoint")
    trained_m = check_time_options(checkpoint, month, hours)
    with RasterSource(raster) as source:
        if bbox is not None:
            crs = parse_crs(bbox_crs, "--bbox-crs") if bbox_crs else source.crs
            check_bbox(bbox, geographic=bool(crs.is_geographic))
        chosen = ground_tile(source, pixels=tile, tile_m=tile_m, trained_m=trained_m)
        check_tileable(source, chosen.pixels, stride, bounds=bbox, bounds_crs=bbox_crs)
    if scheduler is not None:
        check_scheduler(scheduler, "--scheduler")


def _use_encoder_backend(backend: EncoderBackendChoice | None) -> None:
    """Make ``--encoder-backend`` this process's image encoder runtime, and its Dask workers'.

    Checked before the model loads: a runtime that is not installed is one line and exit 2,
    not a failure halfway through a map. Workers of a ``--scheduler`` cluster read their own
    ``GEOSOUND_ENCODER_BACKEND``.
    """
    if backend is None:
        return
    from geosound.cli.checks import option_error
    from geosound.encoders.base import (
        BACKEND_PACKAGES,
        backend_installed,
        check_backend,
        set_encoder_backend,
    )

    chosen = check_backend(backend.value, "--encoder-backend")
    if not backend_installed(chosen):
        raise option_error(
            "--encoder-backend",
            f"{backend} needs the {BACKEND_PACKAGES[chosen]} package, which is not installed",
        )
    set_encoder_backend(chosen)
