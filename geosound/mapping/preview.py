"""PNG previews of map products: the scene beside each layer, with titles and a colour bar.

A preview is a contact sheet: at most :data:`MAX_PREVIEW_LAYERS` layers are drawn (the first
ones), so a map of a thousand queries gets its PNG in seconds and bounded memory; the note on
the sheet, and the PNG's ``Description`` text, say how many more layers the COG holds.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from geosound.atomic import atomic_path

MAX_PREVIEW_LAYERS = 12
"""Layers a preview draws at most; the rest are only in the product's COG."""


def write_layers_preview(
    path: str | os.PathLike[str],
    layers: xr.DataArray,
    scene_rgb: np.ndarray | None = None,
    scene_bounds: tuple[float, float, float, float] | None = None,
    title: str = "",
    note: str = "",
    colorbar_label: str = "cosine similarity",
    cmap: str = "magma",
    max_layers: int = MAX_PREVIEW_LAYERS,
) -> Path:
    """One panel per band of ``layers`` (titled with the band name), the scene first.

    All layer panels share one colour scale, so they can be compared with each other. Past
    ``max_layers`` bands only the first ``max_layers`` are drawn (and only they are read),
    and the note says that the others are in the COG.

    Args:
        path: Destination PNG; written atomically.
        layers: (band, y, x) DataArray with x/y coordinates (NaN = nodata).
        scene_rgb: Optional (3, h, w) RGB in [0, 1] of the scene, shown first and under each
            layer.
        scene_bounds: (left, bottom, right, top) of ``scene_rgb`` in the layers' CRS
            (default: the layers' extent).
        title: Figure title.
        note: Small print under the figure (e.g. how the layers were made).
        colorbar_label: What the colours mean.
        cmap: Matplotlib colour map.
        max_layers: Most bands drawn.
    """
    total = len(layers["band"])
    shown = max(1, int(max_layers))
    metadata = None
    if total > shown:
        layers = layers.isel(band=slice(0, shown))
        truncation = (
            f"Showing the first {shown} of {total} layers; all {total} are bands of the COG."
        )
        note = f"{truncation} {note}" if note else truncation
        metadata = {"Description": truncation}
    values = layers.values
    finite = values[np.isfinite(values)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    x, y = layers["x"].values, layers["y"].values
    half_x = abs(x[1] - x[0]) / 2 if len(x) > 1 else 0.5
    half_y = abs(y[1] - y[0]) / 2 if len(y) > 1 else 0.5
    extent = (x.min() - half_x, x.max() + half_x, y.min() - half_y, y.max() + half_y)

    panels = len(layers["band"]) + (scene_rgb is not None)
    columns = min(panels, 3)
    rows = int(np.ceil(panels / columns))
    # A bare Figure, not pyplot: no backend is chosen or changed, so importing geosound
    # leaves a notebook's inline plots (or a user's GUI backend) as they were.
    figure = Figure(figsize=(4.2 * columns, 4.0 * rows + 0.8), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    flat = list(axes.ravel())
    if scene_bounds is not None:
        left, bottom, right, top = scene_bounds
        scene_extent = (left, right, bottom, top)
    else:
        scene_extent = extent
    if scene_rgb is not None:
        axis = flat.pop(0)
        axis.imshow(np.moveaxis(scene_rgb, 0, -1), extent=scene_extent)
        axis.set_title("scene (RGB)")
    image = None
    grey = None if scene_rgb is None else scene_rgb.mean(axis=0)
    for axis, band in zip(flat, layers["band"].values, strict=False):
        if grey is not None:  # the place under the layer, so the map can be read
            axis.imshow(grey, extent=scene_extent, cmap="gray", vmin=0, vmax=1)
        image = axis.imshow(
            layers.sel(band=band).values,
            extent=extent,
            cmap=cmap,
            vmin=vmin,
            vmax=vmax,
            interpolation="nearest",
            alpha=0.75 if grey is not None else 1.0,
        )
        axis.set_title(f"“{band}”", fontsize=10)
    for axis in flat[len(layers["band"]) :]:
        axis.axis("off")
    for axis in axes.ravel():
        axis.set_xlim(scene_extent[0], scene_extent[1])
        axis.set_ylim(scene_extent[2], scene_extent[3])
        axis.set_xticks([])
        axis.set_yticks([])
    if image is not None:
        figure.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label=colorbar_label)
    if title:
        figure.suptitle(title)
    if note:
        figure.text(0.01, 0.005, note, fontsize=7, ha="left", va="bottom", wrap=True)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=110, format="png", metadata=metadata)
    return Path(path)
