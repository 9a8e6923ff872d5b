"""``geosound sonify``: pair the EuroSAT dev tiles with real ESC-50 clips (Seeing Sound, §3).

A thin command over :func:`geosound.data.sonify.sonify_tiles`: load the dev tiles and clips,
split them train/eval (disjoint in tiles and in clips), sonify, write the manifest, and
optionally render every mix to a WAV so a person can listen to what was paired. It is
registered in :mod:`geosound.cli.app`; this module imports nothing from there, so the app
can import it without a cycle.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from geosound.cli.checks import check_input_file, check_manifest_output, check_output_folder
from geosound.cli.progress import ProgressMode, ProgressOption, emit_json, progress_reporter
from geosound.cli.resources import DeviceOption, ThreadsOption, use_resources

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["pairs_command", "sonify_command", "summarize_sonified"]


def summarize_sonified(
    manifest: pd.DataFrame, clip_split: pd.Series
) -> dict[str, dict[str, dict[str, Any]]]:
    """Counts a person checks after sonifying: pairs, clips and classes per split.

    Args:
        manifest: The sonified manifest.
        clip_split: The clip table's split (``pandas.Series`` from
            :func:`~geosound.data.splits.split_by_tile_and_clip`), for pool sizes.

    Returns:
        ``{"splits": {split: {"pairs", "tiles", "pool_clips", "clips_used",
        "tile_classes", "clip_classes"}}}``, JSON-ready.
    """
    from geosound.data.recipe import MixRecipe

    splits: dict[str, dict[str, Any]] = {}  # JSON-ready counts and class lists
    for name in sorted(set(manifest["split"]) | set(clip_split)):
        rows = manifest[manifest["split"] == name]
        used: set[str] = set()
        clip_classes: Counter[str] = Counter()
        for audio in rows["audio"]:
            for source in MixRecipe.from_json(str(audio)).sources:
                used.add(str(source["path"]))
                clip_classes[str(source["class"])] += 1
        splits[name] = {
            "pairs": len(rows),
            "tiles": int(rows["tile_id"].nunique()) if "tile_id" in rows else len(rows),
            "pool_clips": int((clip_split == name).sum()),
            "clips_used": len(used),
            "tile_classes": dict(sorted(Counter(rows["label"].astype(str)).items())),
            "clip_classes": dict(sorted(clip_classes.items())),
        }
    return {"splits": splits}


def sonify_command(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Manifest to write (GeoParquet, .parquet).")
    ],
    variants: Annotated[
        int, typer.Option("--variants", "-n", help="Pairs per tile, each its own draw.")
    ] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Seeds every random choice.", min=0)] = 0,
    eval_fraction: Annotated[
        float,
        typer.Option(
            "--eval-fraction", help="Share of tiles and of clips per class held out for eval."
        ),
    ] = 0.3,
    render: Annotated[
        Path | None, typer.Option("--render", help="Also render every mix to DIR/<id>.wav.")
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Folder holding eurosat_ms_geotiff/ and esc50_outdoor_16k/ "
            "(default: the dev data, GEOSOUND_DEV_DATA).",
        ),
    ] = None,
    classes: Annotated[
        list[str] | None,
        typer.Option("--class", help="Only tiles of this EuroSAT class (repeatable)."),
    ] = None,
    k: Annotated[int, typer.Option("--k", help="Top-k of the retrieval's dynamic threshold.")] = 10,
    threads: ThreadsOption = None,
    device: DeviceOption = None,
    progress: ProgressOption = ProgressMode.bar,
) -> None:
    """Pair the dev satellite tiles with real ESC-50 clips through text (Seeing Sound)."""
    # Each tile gets 1-3 sounding concepts from its land-cover class; each concept retrieves a
    # real clip (signed-sqrt scores, top-k threshold, random pick); the clips are mixed at
    # random LUFS targets and the mix is stored as a recipe in the manifest.
    from geosound.data.manifest import write_manifest
    from geosound.data.sonify import render_manifest, sonify_dev_sets
    from geosound.errors import InputError

    if variants < 1:
        raise InputError(f"--variants must be >= 1; got {variants}")
    if not 0.0 <= eval_fraction < 1.0:
        raise InputError(f"--eval-fraction must be in [0, 1); got {eval_fraction}")
    if k < 1:
        raise InputError(f"--k must be >= 1; got {k}")
    check_manifest_output(out)
    if render is not None:
        check_output_folder(render, "--render")
    use_resources(threads, device)  # the text encoder that pairs tiles with clips

    with progress_reporter(progress, "sonify") as report:
        share = 0.8 if render is not None else 1.0
        manifest, clip_split = sonify_dev_sets(
            data_dir,
            variants=variants,
            seed=seed,
            eval_fraction=eval_fraction,
            classes=classes,
            k=k,
            progress=lambda fraction, message: report(share * fraction, message),
        )
        write_manifest(manifest, out)
        rendered = []
        if render is not None:
            rendered = render_manifest(
                manifest,
                render,
                progress=lambda fraction, message: report(share + (1 - share) * fraction, message),
            )
        report(1.0, "done")

    summary = summarize_sonified(manifest, clip_split)
    outputs = [str(out)] + ([str(render)] if render is not None else [])
    if progress is ProgressMode.json:
        emit_json({"ok": True, "outputs": outputs, "summary": summary})
        return
    typer.echo(f"geosound sonify: wrote {len(manifest)} pairs to {out}")
    for name, counts in summary["splits"].items():
        typer.echo(
            f"  {name:<5} {counts['pairs']} pairs from {counts['tiles']} tiles; "
            f"{counts['clips_used']} of {counts['pool_clips']} clips used"
        )
        typer.echo(
            "        tile classes: "
            + ", ".join(f"{c} {n}" for c, n in counts["tile_classes"].items())
        )
        typer.echo(
            "        clip classes: "
            + ", ".join(f"{c} {n}" for c, n in counts["clip_classes"].items())
        )
    if render is not None:
        typer.echo(f"  rendered {len(rendered)} mixes to {render}")
    typer.echo(
        "note: pairs are made by text retrieval over clip captions (no joint text-audio "
        "encoder offline); figures on dev data are dev figures."
    )


def pairs_command(
    table: Annotated[
        Path, typer.Argument(help="Geotagged recordings: CSV, Parquet or GeoParquet.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Manifest to write (.parquet).")],
    imagery: Annotated[
        Path | None,
        typer.Option("--imagery", help="Raster to cut a chip around each recording from."),
    ] = None,
    chip_size: Annotated[int, typer.Option("--chip-size", help="Chip edge in pixels.", min=1)] = 64,
    licence: Annotated[
        str | None, typer.Option("--licence", help="Licence of rows that give none.")
    ] = None,
) -> None:
    """Turn real geotagged recordings into a pair manifest for `geosound train --manifest`.

    Each recording is paired with imagery of its place: a chip cut from a raster, a pre-cut
    chip, or a street-level photo.
    """
    check_input_file(table, "recordings table", "TABLE")
    if imagery is not None:
        check_input_file(imagery, "raster", "--imagery")
    check_manifest_output(out)
    from geosound.data.manifest import write_manifest
    from geosound.data.pairs_table import manifest_from_pairs_table

    manifest = manifest_from_pairs_table(table, imagery, chip_size, licence=licence)
    write_manifest(manifest, out)
    counts = manifest["split"].value_counts().to_dict()
    typer.echo(f"geosound pairs: wrote {len(manifest)} pairs to {out} (splits: {counts})")
