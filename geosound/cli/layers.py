"""Point layers on the command line, shared by every command that takes ``--points``.

Read with errors that name the file, features named as QGIS shows them, and the recordings a
layer's column points at: ``synthesize``, ``generate`` and ``separate`` read them alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from geosound.cli.checks import check_input_file
from geosound.errors import InputError

if TYPE_CHECKING:
    import geopandas as gpd

    from geosound.generation.outputs import PointRecording


def read_points(path: Path) -> gpd.GeoDataFrame:
    """The point layer, with errors that name the file."""
    import geopandas as gpd

    if not path.exists():
        raise InputError("point layer not found", path)
    if path.is_dir():
        raise InputError("is a folder, not a vector layer", path)
    try:
        layer = gpd.read_file(path, engine="pyogrio")
    except Exception as error:  # pyogrio raises its own DataSourceError, GDAL errors, …
        text = str(error).strip().splitlines()
        reason = text[0] if text else type(error).__name__
        raise InputError(f"not a vector layer GDAL can read ({reason})", path) from None
    if len(layer) == 0:
        raise InputError("the point layer has no features", path)
    if layer.crs is None:
        raise InputError("the point layer has no CRS; assign one in your GIS first", path)
    return layer


def layer_recordings(layer_path: Path, column: str) -> list[PointRecording]:
    """Every point of the layer with its recording, in WGS 84; every recording must exist.

    Raises:
        InputError: A missing column, a feature that is not a point, or a recording that is
            not there (naming the point).
    """
    from geosound.generation.outputs import PointRecording

    layer = read_points(layer_path)
    if column not in layer.columns:
        known = ", ".join(str(c) for c in layer.columns if c != layer.geometry.name)
        raise InputError(f"no column {column!r} (--audio-column); columns: {known}", layer_path)
    lonlat = layer.geometry.to_crs("EPSG:4326")
    recordings = []
    names = feature_names(layer_path, len(layer))
    for name, value, geometry in zip(names, layer[column], lonlat, strict=True):
        if geometry is None or geometry.is_empty or geometry.geom_type != "Point":
            raise InputError(
                f"{name} is not a point ({getattr(geometry, 'geom_type', None)})", layer_path
            )
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"{name} has no recording in column {column!r}", layer_path)
        audio = Path(value)
        audio = audio if audio.is_absolute() else layer_path.parent / audio
        check_input_file(audio, f"recording of {name}", "--audio-column")
        recordings.append(PointRecording(name, audio, float(geometry.x), float(geometry.y)))
    return recordings


def feature_names(layer_path: Path, count: int) -> list[str]:
    """``feature N`` for each feature, N being the id QGIS shows for it.

    That is the layer's FID where it has a FID column (:func:`feature_ids`), else the
    feature's position counted from 1.
    """
    fids = feature_ids(layer_path)
    if fids is None:
        return [f"feature {n}" for n in range(1, count + 1)]
    return [f"feature {fid}" for fid in fids]


def feature_ids(layer_path: Path) -> list[int] | None:
    """The layer's FIDs in reading order, the ids QGIS shows; None without a FID column.

    A GeoPackage's run from 1, with gaps where features were deleted; a shapefile or a CSV has
    none.
    """
    import pyogrio  # type: ignore[import-untyped]  # (no stubs; geopandas reads with it)

    if not pyogrio.read_info(layer_path).get("fid_column"):
        return None
    frame = pyogrio.read_dataframe(layer_path, columns=[], read_geometry=False, fid_as_index=True)
    return [int(fid) for fid in frame.index]
