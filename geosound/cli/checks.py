"""Checks of command-line values, made before anything slow (reading rasters, the model) runs.

Each check names the option (or the file) it refuses, so that the one error line tells the user
what to change. Value checks that need nothing but the value are typer callbacks; checks that
need another option or a file (a bbox in the raster's CRS, a tile larger than the raster) are
plain functions the commands call first.
"""

from __future__ import annotations

import math
import os
import socket
import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

import typer

from geosound.errors import InputError

if TYPE_CHECKING:
    from pyproj import CRS

Bbox = tuple[float, float, float, float]

SCHEDULER_TIMEOUT_S = 5.0
"""How long ``--scheduler`` gets to accept a connection before the run is refused."""


def check_goes_with(main: str, main_value: object, **followers: object) -> None:
    """Refuse options that only mean something beside ``main`` when ``main`` is not given.

    ``followers`` maps each such option (``--steps`` as ``steps``) to its value, ``None`` when
    not given: an option given alone would be silently ignored, so it is an error instead.

    Raises:
        InputError: The first follower given without ``main``, named.
    """
    if main_value is not None:
        return
    for name, value in followers.items():
        if value is not None:
            raise InputError(f"--{name.replace('_', '-')} goes with {main}")


def option_error(option: str, message: str) -> typer.BadParameter:
    """A usage error (exit 2) whose one line is ``Invalid value for '--option': message``."""
    return typer.BadParameter(message, param_hint=f"'{option}'")


def parse_crs(value: str, option: str) -> CRS:
    """``value`` as a pyproj CRS; an unknown one is an error naming ``option`` and the value."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        return CRS.from_user_input(value)
    except CRSError as error:
        reason = str(error).rsplit("proj_create: ", 1)[-1].rstrip(")").strip()
        raise option_error(
            option, f"unknown CRS {value!r} ({reason}); give e.g. EPSG:4326 or a WKT/PROJ string"
        ) from None


def crs_callback(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> str | None:
    """Typer callback: refuse a CRS that PROJ does not know, before any file is opened."""
    if value is not None:
        parse_crs(value, _name(param))
    return value


def bbox_callback(
    ctx: typer.Context, param: typer.CallbackParam, value: Bbox | None
) -> Bbox | None:
    """Typer callback: a bbox must be four finite numbers with an area.

    The order of the corners is checked by :func:`check_bbox` (it depends on the bbox's CRS:
    ``minx > maxx`` in degrees is a box across the antimeridian).
    """
    if value is None:
        return value
    option = _name(param)
    if not all(math.isfinite(v) for v in value):
        raise option_error(option, f"{_show(value)}: every value must be a finite number")
    minx, miny, maxx, maxy = value
    if minx == maxx or miny == maxy:
        axis = "minx == maxx" if minx == maxx else "miny == maxy"
        raise option_error(
            option, f"{_show(value)} has zero area ({axis}); give minx miny maxx maxy"
        )
    return value


def check_bbox(bbox: Bbox, *, geographic: bool, option: str = "--bbox") -> None:
    """Refuse an inverted bbox, and a geographic one across the antimeridian or beyond a pole.

    Args:
        bbox: (minx, miny, maxx, maxy), already through :func:`bbox_callback`.
        geographic: Whether the bbox's CRS (``--bbox-crs``, or the raster's) is in degrees.
        option: The option's name, for the message.
    """
    minx, miny, maxx, maxy = bbox
    if geographic:
        if minx > maxx:
            raise option_error(
                option,
                f"{_show(bbox)} crosses the antimeridian (minx {minx:g} > maxx {maxx:g}); "
                "geosound does not map across 180°: split it into two boxes at 180°",
            )
        if min(miny, maxy) < -90 or max(miny, maxy) > 90:
            raise option_error(option, f"{_show(bbox)}: latitudes must lie within [-90, 90]")
    elif minx > maxx:
        raise option_error(
            option, f"{_show(bbox)} is inverted (minx {minx:g} > maxx {maxx:g}); "
            "give minx miny maxx maxy",
        )  # fmt: skip
    if miny > maxy:
        raise option_error(
            option, f"{_show(bbox)} is inverted (miny {miny:g} > maxy {maxy:g}); "
            "give minx miny maxx maxy",
        )  # fmt: skip


def tile_m_callback(
    ctx: typer.Context, param: typer.CallbackParam, value: float | None
) -> float | None:
    """Typer callback: a tile's ground size is a positive, finite number of metres."""
    if value is not None and not 0 < value < math.inf:
        raise option_error(_name(param), f"must be a positive number of metres; got {value:g}")
    return value


DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Dev data folder (default: GEOSOUND_DEV_DATA or ../shared/data)."
    ),
]
"""``--data-dir`` of every command that reads the shared dev data."""

MonthOption = Annotated[
    int | None,
    typer.Option("--month", help="Month 1-12 (models trained with metadata only).", min=1, max=12),
]
"""``--month`` of map and synthesize."""


def hour_option(help: str) -> Any:
    """``--hour`` of map and synthesize, parsed by :func:`hours_callback`.

    Only the help differs: a map makes a layer per hour, a synthesis mixes one.
    """
    return typer.Option("--hour", help=help, callback=hours_callback)


def hours_callback(
    ctx: typer.Context, param: typer.CallbackParam, value: list[str] | None
) -> list[float]:
    """Typer callback: ``--hour`` values (``5``, ``5.5``, ``0-23``, ``5,17``) as sorted hours.

    A range ``a-b`` is every whole hour from ``a`` to ``b`` inclusive (``22-2`` wraps past
    midnight); each hour lies in [0, 24).
    """
    option = _name(param)
    hours: list[float] = []
    for text in value or []:
        for part in filter(None, (p.strip() for p in text.split(","))):
            hours.extend(_hour_values(part, option))
    return sorted(set(hours))


def _hour_values(part: str, option: str) -> list[float]:
    def number(text: str) -> float:
        try:
            hour = float(text)
        except ValueError:
            raise option_error(
                option, f"{part!r} is not an hour; give e.g. 5, 17.5, 0-23 or 5,17"
            ) from None
        if not 0 <= hour < 24:
            raise option_error(option, f"{part!r}: hours lie in [0, 24)")
        return hour

    start, dash, stop = part.partition("-")
    if not dash:
        return [number(part)]
    first, last = number(start), number(stop)
    if first != int(first) or last != int(last):
        raise option_error(option, f"{part!r}: a range goes from one whole hour to another")
    span = (int(last) - int(first)) % 24
    return [float((int(first) + i) % 24) for i in range(span + 1)]


def check_tile_options(tile: int | None, tile_m: float | None) -> None:
    """``--tile`` (pixels) and ``--tile-m`` (metres) choose the same thing: one at most."""
    if tile is not None and tile_m is not None:
        raise option_error("--tile-m", "give either --tile (pixels) or --tile-m (metres), not both")


def check_time_options(checkpoint: Path | None, month: int | None, hours: list[float]) -> float:
    """Refuse ``--month``/``--hour`` for a model without metadata; the model's tile metres.

    Reads only the checkpoint's header (milliseconds), so both answers come before the model
    and the encoders load.

    Returns:
        The ground size in metres of the tiles the model was trained on.
    """
    from geosound.models.checkpoint import read_header
    from geosound.models.default import default_checkpoint_paths

    path = checkpoint if checkpoint is not None else default_checkpoint_paths()[0]
    header = read_header(path)
    if (month is not None or hours) and not header.use_metadata:
        option = "--month" if month is not None else "--hour"
        raise option_error(
            option,
            f"the model {path.name} was trained without location and time "
            "(use_metadata is off), so it cannot map a month or an hour; give a checkpoint "
            "trained with metadata (docs/time_and_place.md)",
        )
    return header.tile_m


def check_scheduler(address: str, option: str = "--scheduler") -> None:
    """Refuse a Dask scheduler address that is malformed or does not accept a connection.

    Only the TCP connection is tried (again and again for ``SCHEDULER_TIMEOUT_S``), so an
    unreachable scheduler fails in seconds, before the model loads, rather than after the model
    loaded and Dask's own 30 s timeout.
    """
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme in ("inproc", "ucx"):
        return  # not a TCP address; Dask checks it
    if parts.scheme not in ("tcp", "tls"):
        raise option_error(option, f"{address!r}: expected tcp://host:port (a Dask scheduler)")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or port is None:
        raise option_error(option, f"{address!r}: expected tcp://host:port (a Dask scheduler)")
    deadline = time.monotonic() + SCHEDULER_TIMEOUT_S
    while True:  # retried: a scheduler started just before this run may not listen yet
        try:
            with socket.create_connection((host, port), timeout=SCHEDULER_TIMEOUT_S):
                return
        except OSError as error:
            if time.monotonic() >= deadline:
                reason = error.strerror or str(error) or type(error).__name__
                raise option_error(
                    option,
                    f"cannot reach the Dask scheduler at {address} within "
                    f"{SCHEDULER_TIMEOUT_S:g} s ({reason})",
                ) from None
            time.sleep(0.25)


def check_output_folder(path: Path, option: str = "--out") -> None:
    """An output folder must be a folder (or creatable) and writable; the error names it."""
    if path.exists():
        if not path.is_dir():
            raise InputError(f"exists and is not a folder ({option} wants a folder)", path)
        if not _writable(path):
            raise InputError(f"the output folder is not writable ({option})", path)
        return
    _check_creatable(path, option)


def check_output_file(path: Path, option: str = "--out") -> None:
    """An output file must not be a folder, and its folder must be writable (or creatable)."""
    if path.is_dir():
        raise InputError(f"is a folder ({option} wants a file name)", path)
    parent = path.parent
    if parent.exists():
        if not parent.is_dir():
            raise InputError(f"{parent} is not a folder ({option})", path)
        if not _writable(parent):
            raise InputError(f"cannot write here: {parent} is not writable ({option})", path)
        return
    _check_creatable(path, option)


def check_manifest_output(path: Path, option: str = "--out") -> None:
    """A pair manifest to write: a ``.parquet`` name (it is GeoParquet) that can be written."""
    if path.suffix.lower() not in (".parquet", ".geoparquet"):
        raise InputError(f"the manifest is GeoParquet; give {option} a .parquet name", path)
    check_output_file(path, option)


def check_checkpoint_file(path: Path, option: str = "--checkpoint") -> None:
    """A cheap look at a checkpoint before torch loads: it exists and is an archive.

    ``torch.save`` writes a zip archive; anything else (a text file, a YAML, random bytes) is
    refused here in milliseconds, naming the file, instead of after the model libraries load.
    """
    if not path.exists():
        raise InputError(f"checkpoint not found ({option})", path)
    if path.is_dir():
        raise InputError(f"is a folder, not a checkpoint ({option})", path)
    if not path.is_file():
        raise InputError(f"is not a regular file, so not a checkpoint ({option})", path)
    try:
        is_archive = zipfile.is_zipfile(path)
    except OSError as error:
        raise InputError(f"cannot read the checkpoint ({error.strerror or error})", path) from None
    if not is_archive:
        raise InputError(
            f"not a geosound checkpoint ({option}; expected a .pt file from `geosound train`)",
            path,
        )


def check_input_file(path: Path, what: str, option: str) -> None:
    """An input file exists and is a file, else an error naming it and the option."""
    if not path.exists():
        raise InputError(f"{what} not found ({option})", path)
    if path.is_dir():
        raise InputError(f"is a folder, not a {what} ({option})", path)


def _check_creatable(path: Path, option: str) -> None:
    """The nearest existing ancestor of ``path`` must be a writable folder."""
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InputError(f"cannot create it: {ancestor} is a file, not a folder ({option})", path)
    if not _writable(ancestor):
        raise InputError(f"cannot create it: {ancestor} is not writable ({option})", path)


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def _name(param: typer.CallbackParam) -> str:
    opts = getattr(param, "opts", None) or [f"--{param.name}"]
    return max(opts, key=len)


def _show(bbox: Bbox) -> str:
    return " ".join(f"{v:g}" for v in bbox)
