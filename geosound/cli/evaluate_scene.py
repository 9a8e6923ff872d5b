"""``geosound evaluate-scene``: do a map's layers find the water, vegetation and built land?"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from geosound.cli.checks import check_checkpoint_file, check_input_file, option_error
from geosound.cli.progress import ProgressMode, ProgressOption, emit_json, progress_reporter

if TYPE_CHECKING:
    import pandas as pd


class DarkObject(StrEnum):
    """When to subtract each band's dark object before the indices."""

    auto = "auto"
    on = "on"
    off = "off"


def _parse_queries(values: list[str] | None) -> dict[str, str]:
    from geosound.evaluation.scene_truth import DEFAULT_SCENE_QUERIES, SCENE_CLASSES

    if not values:
        return dict(DEFAULT_SCENE_QUERIES)
    queries: dict[str, str] = {}
    for value in values:
        text, _, truth = value.rpartition("=")
        text, truth = text.strip(), truth.strip()
        if not text or truth not in SCENE_CLASSES:
            raise option_error(
                "--query",
                f"{value!r}: give TEXT=CLASS with CLASS one of {', '.join(SCENE_CLASSES)} "
                "(e.g. 'sea waves=water')",
            )
        queries[text] = truth
    return queries


def _parse_rgb(value: str) -> list[int]:
    parts = [p.strip() for p in value.split(",")]
    if len(parts) != 3 or not all(p.isdigit() and int(p) >= 1 for p in parts):
        raise option_error("--rgb", f"{value!r}: give three 1-based bands, e.g. 3,2,1")
    return [int(p) for p in parts]


def evaluate_scene_command(
    raster: Annotated[
        Path, typer.Argument(help="A georeferenced scene with a near-infrared band.")
    ],
    checkpoint: Annotated[
        Path | None, typer.Option("--checkpoint", help="Model to evaluate (default: shipped).")
    ] = None,
    query: Annotated[
        list[str] | None,
        typer.Option(
            "--query",
            "-q",
            help="TEXT=CLASS, CLASS one of water, vegetation, bare/built (repeatable; "
            "default: nine fixed queries, see geosound.evaluation.scene_truth).",
        ),
    ] = None,
    bands: Annotated[
        str | None,
        typer.Option(
            "--bands",
            help="Which 1-based bands are green, red and near-infrared, e.g. "
            "green=2,red=3,nir=4 (default: from band descriptions, the Sentinel-2 13-band or "
            "the 4-band R,G,B,NIR layout).",
        ),
    ] = None,
    rgb: Annotated[
        str | None,
        typer.Option(
            "--rgb",
            help="Bands the map should see as red, green, blue, e.g. 3,2,1 for Landsat 7 "
            "ETM+ (default: bands 1-3, or the preset's).",
        ),
    ] = None,
    tile_m: Annotated[
        float,
        typer.Option(
            "--tile-m",
            help="Tile ground size in metres (default 640: a EuroSAT tile, 64 px at 10 m, "
            "what the model was trained on), converted with the scene's pixel size.",
            min=1.0,
        ),
    ] = 640.0,
    tile: Annotated[
        int | None, typer.Option("--tile", help="Tile edge in pixels (overrides --tile-m).", min=2)
    ] = None,
    stride: Annotated[
        int | None,
        typer.Option("--stride", help="Step between tiles in pixels (default: tile / 2).", min=1),
    ] = None,
    dark_object: Annotated[
        DarkObject,
        typer.Option(
            "--dark-object",
            help="Dark-object subtraction before the indices: auto (8-bit digital numbers "
            "only), on, off.",
        ),
    ] = DarkObject.auto,
    preset: Annotated[
        str | None, typer.Option("--preset", help="Band preset of the map (default: guessed).")
    ] = None,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print a Markdown table.")] = False,
    progress: ProgressOption = ProgressMode.bar,
) -> None:
    """Per-query ROC-AUC of the map's layers against truth from the scene's own bands.

    Water is NDWI > 0 (McFeeters 1996), vegetation NDVI > 0.3, bare/built neither (8-bit
    digital numbers get dark-object subtraction first, Chavez 1988); a tile counts as a class
    when it covers at least 80 % of it (mixed tiles are left out). The map is made exactly
    as `geosound map` makes it. Dev figures.
    """
    from geosound.errors import InputError
    from geosound.evaluation.scene_truth import parse_band_spec, scene_bands

    check_input_file(raster, "raster", "RASTER")
    if checkpoint is not None:
        check_checkpoint_file(checkpoint, "--checkpoint")
    queries = _parse_queries(query)
    given = parse_band_spec(bands) if bands else None
    rgb_bands = _parse_rgb(rgb) if rgb else None

    from geosound.evaluation.scene_truth import dark_objects, needs_dark_objects, pixel_metres
    from geosound.geo import RasterSource, check_tileable

    with RasterSource(raster) as source:  # refused here, before the model loads
        chosen = scene_bands(source, given)
        metres = pixel_metres(source)
        if tile is None:
            tile = max(2, round(tile_m / metres))
        stride = stride or max(1, tile // 2)
        check_tileable(source, tile, stride)
        subtract = (
            needs_dark_objects(source) if dark_object is DarkObject.auto
            else dark_object is DarkObject.on
        )  # fmt: skip
        offsets = dark_objects(source, chosen) if subtract else None

    import tempfile

    from geosound.evaluation.scene_truth import band_view, scene_auc_table, tile_truth
    from geosound.geo import tile_grid
    from geosound.mapping.similarity import text_similarity_map
    from geosound.space.shared import load_shared_space

    with (
        progress_reporter(progress, "evaluate-scene") as report,
        tempfile.TemporaryDirectory(prefix="geosound-scene-") as folder,
    ):
        view = band_view(raster, rgb_bands, Path(folder)) if rgb_bands else raster
        report(0.0, "loading the model")
        space = load_shared_space(None if checkpoint is None else str(checkpoint.resolve()))
        layers = text_similarity_map(
            view, list(queries), tile_size=tile, stride=stride, preset=preset, space=space,
            progress=lambda f, m: report(0.05 + 0.8 * f, m),
        )  # fmt: skip
        report(0.9, "truth from the scene's bands")
        with RasterSource(raster) as source:
            grid = tile_grid(source, tile, stride)
            truth = tile_truth(source, grid, chosen, tile, offsets)
        similarity = layers["similarity"].values  # (query, grid row, grid col)
        rows, cols = truth["row"].to_numpy(), truth["col"].to_numpy()
        if rows.max() >= similarity.shape[1] or cols.max() >= similarity.shape[2]:
            raise InputError("the map's grid and the truth grid differ", raster)
        table = scene_auc_table(similarity[:, rows, cols].T, truth["truth"].tolist(), queries)
        report(1.0, "scored")
    counts = truth["truth"].value_counts()
    summary = ", ".join(f"{int(counts.get(c, 0))} {c}" for c in ("water", "vegetation",
                        "bare/built", "mixed", "none"))  # fmt: skip
    seen = f"; map bands {rgb} as RGB" if rgb else ""
    dos = (
        "dark objects " + "/".join(f"{v:g}" for v in offsets) + " subtracted"
        if offsets is not None else "no dark-object subtraction"
    )  # fmt: skip
    title = (
        f"Scene ROC-AUC, {raster.name}{seen}: {len(truth)} tiles of {tile} px "
        f"({tile * metres:.0f} m at {metres:.1f} m/px), stride {stride} ({summary}; mixed and "
        f"empty tiles left out); bands green={chosen.green}, red={chosen.red}, "
        f"nir={chosen.nir} ({chosen.source}; {dos}); {space.space_id} (dev figures)"
    )
    text = _format(table, title, markdown)
    if progress is ProgressMode.json:
        aucs = {  # JSON has no NaN: an undefined AUC is null
            q: None if v != v else float(v)
            for q, v in zip(table["query"], table["roc_auc"], strict=True)
        }
        emit_json({"ok": True, "outputs": [], "table": text, "roc_auc": aucs})
        return
    typer.echo(text)


def _format(table: pd.DataFrame, title: str, markdown: bool) -> str:
    """The AUC table; AUCs resting on fewer than MIN_TILES tiles on a side are bracketed."""
    from geosound.evaluation.scene_truth import MIN_TILES

    solid = (table["n_pos"] >= MIN_TILES) & (table["n_neg"] >= MIN_TILES)

    def cell(value: float, ok: bool) -> str:
        if value != value:
            return "—"
        return f"{value:.3f}" if ok else f"({value:.3f})"

    shown = table.assign(
        roc_auc=[cell(v, ok) for v, ok in zip(table["roc_auc"], solid, strict=True)]
    )
    kept = table[solid]
    water = kept.loc[kept["positive"] == "water", "roc_auc"]
    tail = (
        f"mean over queries {_mean(kept['roc_auc'])}; water queries {_mean(water)} "
        f"(means over AUCs with at least {MIN_TILES} tiles on each side)"
    )
    if not markdown:
        return f"{title}\n\n{shown.to_string(index=False)}\n\n{tail}"
    lines = [title, "", "| query | positive | n+ | n− | ROC-AUC |", "|---|---|---|---|---|"]
    lines += [
        f"| {r.query} | {r.positive} | {r.n_pos} | {r.n_neg} | {r.roc_auc} |"
        for r in shown.itertuples(index=False)
    ]
    return "\n".join([*lines, "", tail])


def _mean(values: pd.Series) -> str:
    return f"{values.mean():.3f}" if len(values) else "—"
