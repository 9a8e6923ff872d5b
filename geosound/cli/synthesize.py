"""``geosound synthesize``: what a place probably sounds like, as a WAV mixed from real clips.

One point (``--lon/--lat``, or ``--x/--y`` with ``--crs``) gives one WAV and its sidecar; a
vector layer (``--points``) gives one WAV per point plus ``points_with_sounds.gpkg``, the
layer with ``wav`` and ``sources`` attributes. The audio is synthesised by retrieval (real
recordings from a bank, loudness-normalised and mixed), never generated, and every output
says so (geosound/mapping/synthesis.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from geosound.cli.checks import (
    MonthOption,
    check_checkpoint_file,
    check_output_file,
    check_output_folder,
    check_tile_options,
    check_time_options,
    crs_callback,
    hour_option,
    option_error,
    tile_m_callback,
)
from geosound.cli.layers import read_points
from geosound.cli.progress import ProgressMode, ProgressOption, emit_json, progress_reporter
from geosound.cli.resources import DeviceOption, ThreadsOption, use_resources

if TYPE_CHECKING:  # imported inside the commands, so that the CLI starts fast
    import geopandas as gpd

    from geosound.mapping.timeplace import Moment
    from geosound.progress import Progress
    from geosound.retrieval.shards import Bank
    from geosound.space.shared import SharedSpace

POINTS_LAYER_NAME = "points_with_sounds.gpkg"
VECTOR_SUFFIXES = {".gpkg", ".geojson", ".json", ".shp", ".fgb"}


def _positive_seconds(value: float) -> float:
    """Typer callback: a mix lasts a positive, finite number of seconds."""
    if not 0 < value < float("inf"):
        raise option_error("--seconds", f"must be a positive number of seconds; got {value:g}")
    return value


def synthesize_command(
    bank: Annotated[
        Path, typer.Option("--bank", help="Audio bank folder (from `geosound index build`).")
    ],
    raster: Annotated[
        Path | None, typer.Option("--raster", help="Imagery to embed places from (any CRS).")
    ] = None,
    lon: Annotated[float | None, typer.Option("--lon", help="Longitude (EPSG:4326).")] = None,
    lat: Annotated[float | None, typer.Option("--lat", help="Latitude (EPSG:4326).")] = None,
    x: Annotated[float | None, typer.Option("--x", help="Point x in --crs.")] = None,
    y: Annotated[float | None, typer.Option("--y", help="Point y in --crs.")] = None,
    crs: Annotated[
        str | None,
        typer.Option(
            "--crs", help="CRS of --x/--y (default: the raster's CRS).", callback=crs_callback
        ),
    ] = None,
    points: Annotated[
        Path | None,
        typer.Option("--points", help="Vector layer of points (.gpkg, .geojson, …; any CRS)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="WAV to write for one point.")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out-dir", help="Folder for the WAVs of --points.")
    ] = None,
    id_column: Annotated[
        str | None,
        typer.Option("--id-column", help="Column naming the points' WAVs (default: row)."),
    ] = None,
    k: Annotated[int, typer.Option("--k", "-k", help="Recordings to mix.", min=1)] = 3,
    seconds: Annotated[
        float, typer.Option("--seconds", help="Length of the mix.", callback=_positive_seconds)
    ] = 10.0,
    seed: Annotated[int, typer.Option("--seed", help="Seeds the loudness balance.", min=0)] = 0,
    min_score: Annotated[
        float | None,
        typer.Option(
            "--min-score", help="Skip recordings less similar than this (cosine).", min=-1, max=1
        ),
    ] = None,
    sample_rate: Annotated[int, typer.Option("--sample-rate", help="Hz.", min=1)] = 16000,
    tile_m: Annotated[
        float | None,
        typer.Option(
            "--tile-m",
            help="Ground size in metres of the chip embedded at each place (default: what the "
            "model was trained on, 640 m if it does not say); rasters in degrees are converted "
            "at the raster's centre latitude.",
            callback=tile_m_callback,
        ),
    ] = None,
    chip_size: Annotated[
        int | None,
        typer.Option("--chip-size", help="Chip edge in pixels, instead of --tile-m.", min=1),
    ] = None,
    month: MonthOption = None,
    hour: Annotated[
        list[str] | None,
        hour_option(
            "Local hour of day, e.g. 5 or 17.5 (models trained with metadata only; the "
            "place's own lon/lat is used)."
        ),
    ] = None,
    preset: Annotated[
        str | None, typer.Option("--preset", help="Band preset (default: guessed).")
    ] = None,
    checkpoint: Annotated[
        Path | None, typer.Option("--checkpoint", help="Sat2Sound checkpoint (default: shipped).")
    ] = None,
    embedding_cache: Annotated[
        Path | None,
        typer.Option(
            "--embedding-cache",
            help="Region cache from `geosound map`: read place embeddings from it instead of "
            "embedding chips of --raster.",
        ),
    ] = None,
    threads: ThreadsOption = None,
    device: DeviceOption = None,
    progress: ProgressOption = ProgressMode.bar,
) -> None:
    """Synthesise the soundscape of a place by mixing the real recordings nearest to it."""
    point_given = _point_mode(lon, lat, x, y, crs)
    _check_modes(point_given, points, raster, embedding_cache, out, out_dir)
    if not bank.is_dir():
        from geosound.errors import InputError

        what = "is not a folder" if bank.exists() else "not found"
        raise InputError(f"audio bank {what} (--bank; a folder from `geosound index build`)", bank)
    check_tile_options(chip_size, tile_m)
    hours = [float(h) for h in hour or []]
    if len(hours) > 1:
        raise option_error("--hour", "synthesize mixes one place at one hour: give one --hour")
    if checkpoint is not None:
        check_checkpoint_file(checkpoint, "--checkpoint")
    trained_m = check_time_options(checkpoint, month, hours)
    chip = 0
    if raster is not None:
        chip = _check_raster(raster, point_given, chip_size, tile_m, trained_m)
    layer = read_points(points) if points is not None else None
    from geosound.mapping.timeplace import Moment

    moment = Moment(month, hours[0] if hours else None)
    use_resources(threads, device)

    from geosound.retrieval.shards import open_bank
    from geosound.space.shared import SharedSpace

    space = SharedSpace.from_checkpoint(checkpoint)
    audio_bank = open_bank(bank, expected_space_id=space.space_id)
    options: dict[str, Any] = {
        "k": k,
        "seconds": seconds,
        "sample_rate": sample_rate,
        "seed": seed,
        "min_score": min_score,
    }
    sources: list[dict[str, Any]] = []
    with progress_reporter(progress, "synthesize") as report:
        if layer is not None:
            assert out_dir is not None and points is not None
            outputs = _synthesize_layer(
                space,
                audio_bank,
                raster,
                embedding_cache,
                layer,
                out_dir,
                options,
                id_column=id_column,
                chip_size=chip,
                preset=preset,
                report=report,
                moment=moment,
            )
            summary = f"{len(outputs) - 1} soundscapes and {outputs[-1]}"
        else:
            assert out is not None and point_given is not None
            outputs, sources = _synthesize_one(
                space,
                audio_bank,
                raster,
                embedding_cache,
                point_given,
                out,
                options,
                chip_size=chip,
                preset=preset,
                report=report,
                moment=moment,
            )
            summary = f"{out} and its sidecar ({len(sources)} recordings)"
    _print_outcome(progress, outputs, summary, sources)


def _check_modes(
    point_given: tuple[float, float, str | None] | None,
    points: Path | None,
    raster: Path | None,
    embedding_cache: Path | None,
    out: Path | None,
    out_dir: Path | None,
) -> None:
    """Refuse contradictory or missing options before anything slow (reading, the model) runs.

    One point writes one file (``-o``), a layer writes a folder (``--out-dir``); places come
    from exactly one of a raster or a region cache.
    """
    from geosound.errors import InputError

    if (point_given is None) == (points is None):
        raise InputError("give exactly one of --lon/--lat, --x/--y or --points")
    if (raster is None) == (embedding_cache is None):
        raise InputError("give exactly one of --raster or --embedding-cache")
    if points is not None:
        if out_dir is None or out is not None:
            raise InputError("--points writes into --out-dir DIR (not -o)")
    elif out is None or out_dir is not None:
        raise InputError("one point writes one file: give -o place.wav (not --out-dir)")
    if out is not None and out.suffix.lower() not in (".wav", ".flac"):
        raise InputError("the soundscape must be written as .wav (or .flac)", out)
    if out is not None:
        check_output_file(out, "--out")
    if out_dir is not None:
        check_output_folder(out_dir, "--out-dir")
    if embedding_cache is not None and not embedding_cache.exists():
        raise InputError("region cache not found", embedding_cache)


def _check_raster(
    raster: Path,
    point_given: tuple[float, float, str | None] | None,
    chip_size: int | None,
    tile_m: float | None,
    trained_m: float,
) -> int:
    """Open the raster (and place the one point on it) so bad input fails in seconds.

    A missing, unreadable or CRS-less raster, a ``--tile-m`` it cannot take, or a point off
    it, fails before the model loads, not after.

    Returns:
        The chip edge in pixels: ``--chip-size``, or the ground size in pixels of this raster.
    """
    from geosound.geo import RasterSource, chip_windows
    from geosound.geo.ground import ground_tile

    with RasterSource(raster) as source:
        chip = ground_tile(source, pixels=chip_size, tile_m=tile_m, trained_m=trained_m).pixels
        if point_given is not None:
            px, py, pcrs = point_given
            chip_windows(source, [(px, py)], chip, pcrs or source.crs.to_wkt())
    return chip


def _print_outcome(
    progress: ProgressMode, outputs: list[str], summary: str, sources: list[dict[str, Any]]
) -> None:
    """The final ``ok`` line for ``--progress json``; otherwise what was written, and why.

    ``sources`` (one point's credited recordings) is listed only for a single point; a layer
    has them in its ``sources`` column instead.
    """
    from geosound.mapping.synthesis import METHOD_NOTE

    if progress is ProgressMode.json:
        emit_json({"ok": True, "outputs": outputs, "note": METHOD_NOTE})
        return
    typer.echo(f"geosound synthesize: wrote {summary}")
    for row in sources:
        typer.echo(
            f"  {row['rank']}. {row['score']:.3f}  {row['label'] or '-'}  "
            f"[{row['licence'] or 'licence unknown'}]  {row['path']}"
        )
    typer.echo(f"note: {METHOD_NOTE}.")


def _point_mode(
    lon: float | None,
    lat: float | None,
    x: float | None,
    y: float | None,
    crs: str | None,
) -> tuple[float, float, str | None] | None:
    """(x, y, crs) of the one point asked for, None if none; crs None means the raster's."""
    from geosound.errors import InputError

    geographic = lon is not None or lat is not None
    projected = x is not None or y is not None
    if geographic and projected:
        raise InputError("give either --lon/--lat or --x/--y, not both")
    if geographic:
        if lon is None or lat is None:
            raise InputError("--lon and --lat go together")
        if crs is not None:
            raise InputError("--crs goes with --x/--y; --lon/--lat are always EPSG:4326")
        return lon, lat, "EPSG:4326"
    if projected:
        if x is None or y is None:
            raise InputError("--x and --y go together")
        return x, y, crs
    if crs is not None:
        raise InputError("--crs goes with --x/--y")
    return None


def _synthesize_one(
    space: SharedSpace,
    bank: Bank,
    raster: Path | None,
    cache: Path | None,
    point: tuple[float, float, str | None],
    out: Path,
    options: dict[str, Any],
    *,
    chip_size: int,
    preset: str | None,
    report: Progress,
    moment: Moment,
) -> tuple[list[str], list[dict[str, Any]]]:
    from geosound.errors import InputError
    from geosound.mapping.synthesis import (
        embedding_from_region_cache,
        place_embedding_from_raster,
        synthesize_at,
        write_synthesis,
    )

    x, y, crs = point
    where: dict[str, Any] = {"x": x, "y": y}
    if moment.given:
        where["time"] = moment.record()
    if raster is not None:
        if crs is None:
            from geosound.geo import RasterSource

            with RasterSource(raster) as source:
                crs = source.crs.to_string()
        where.update(crs=crs, raster=str(raster), chip_size=chip_size)
        report(0.1, "embedding the place")
        embedding = place_embedding_from_raster(space, raster, x, y, crs, chip_size, preset, moment)
    else:
        assert cache is not None
        if crs is None:
            raise InputError("with --embedding-cache, give --crs for --x/--y (or use --lon/--lat)")
        where.update(crs=crs, embedding_cache=str(cache))
        report(0.1, "reading the place from the region cache")
        embedding = embedding_from_region_cache(cache, x, y, crs, space=space, moment=moment)
    report(0.4, "retrieving and mixing recordings")
    synthesis = synthesize_at(space, bank, embedding, point=where, **options)
    wav, sidecar = write_synthesis(synthesis, out)
    report(1.0, "written")
    return [str(wav), str(sidecar)], synthesis.sources_records()


def _synthesize_layer(
    space: SharedSpace,
    bank: Bank,
    raster: Path | None,
    cache: Path | None,
    layer: gpd.GeoDataFrame,
    out_dir: Path,
    options: dict[str, Any],
    *,
    id_column: str | None,
    chip_size: int,
    preset: str | None,
    report: Progress,
    moment: Moment,
) -> list[str]:
    import numpy as np

    from geosound.errors import GeosoundError
    from geosound.mapping.synthesis import (
        embedding_from_region_cache,
        synthesize_points,
        write_points_layer,
    )

    embeddings = None
    if cache is not None:
        # The cache holds its own CRS; hand it each point in the layer's CRS and name the
        # point that fails, since the cache's own message cannot know the layer's ids.
        crs = layer.crs.to_string()
        ids = layer[id_column] if id_column and id_column in layer.columns else layer.index
        rows = []
        for point_id, geometry in zip(ids, layer.geometry, strict=True):
            try:
                rows.append(
                    embedding_from_region_cache(
                        cache, geometry.x, geometry.y, crs, space=space, moment=moment
                    )
                )
            except GeosoundError as error:
                raise type(error)(f"point {point_id}: {error.message}", error.path) from error
            except (AttributeError, ValueError):
                pass  # not a point: synthesize_points names it with the others
        if len(rows) == len(layer):
            embeddings = np.stack(rows)
    result = synthesize_points(
        space,
        bank,
        raster,
        layer,
        out_dir,
        id_column=id_column,
        chip_size=chip_size,
        preset=preset,
        embeddings=embeddings,
        progress=report,
        moment=moment,
        **options,
    )
    gpkg = write_points_layer(result, out_dir / POINTS_LAYER_NAME)
    return [*result["wav"], str(gpkg)]
