"""``geosound evaluate-queries``: do sound queries rank the right land cover first? (dev)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from geosound.cli.checks import DataDirOption, check_checkpoint_file
from geosound.cli.progress import ProgressMode, ProgressOption, emit_json, progress_reporter

if TYPE_CHECKING:
    from geosound.space.imagenet_bridge import ImageNetTextBridge


class SplitChoice(StrEnum):
    """Which dev tiles to score."""

    eval = "eval"
    all = "all"


def evaluate_queries_command(
    checkpoint: Annotated[
        Path | None, typer.Option("--checkpoint", help="Model to evaluate (default: shipped).")
    ] = None,
    data_dir: DataDirOption = None,
    split: Annotated[
        SplitChoice,
        typer.Option(
            "--split",
            help="eval: tiles held out from the checkpoint's training; all: every dev tile "
            "(includes training tiles).",
        ),
    ] = SplitChoice.eval,
    stand_in: Annotated[
        bool,
        typer.Option(
            "--stand-in/--no-stand-in",
            help="Also score the training-free ImageNet-label bridge, for comparison.",
        ),
    ] = True,
    stand_in_size: Annotated[
        int | None,
        typer.Option(
            "--stand-in-size",
            help="Resize tiles to this many pixels for the stand-in's image encoder "
            "(default: native size, as maps use it).",
            min=1,
        ),
    ] = None,
    permutations: Annotated[
        int, typer.Option("--permutations", help="Label shuffles for the null.")
    ] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Seeds the label shuffles.", min=0)] = 0,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print a Markdown table.")] = False,
    progress: ProgressOption = ProgressMode.bar,
) -> None:
    """Per-query ROC-AUC of land-cover ranking on the dev EuroSAT tiles, each tile mapped alone.

    The eval split is rebuilt from the checkpoint's own training config, so by default only
    tiles the model never trained on are scored. Queries and their positive classes:
    geosound.evaluation.query_auc.DEFAULT_QUERY_CLASSES. Dev figures.
    """
    from geosound.errors import InputError

    if permutations < 1:
        raise InputError(f"--permutations must be at least 1; got {permutations}")
    if checkpoint is not None:
        check_checkpoint_file(checkpoint, "--checkpoint")

    from geosound.evaluation.query_auc import (
        DEFAULT_QUERY_CLASSES,
        auc_table,
        dev_tiles,
        format_query_table,
        read_tile_images,
        shuffled_null,
        tile_similarities,
    )
    from geosound.space.shared import SharedSpace

    queries = list(DEFAULT_QUERY_CLASSES)
    with progress_reporter(progress, "evaluate-queries") as report:
        report(0.0, "loading the model")
        space = SharedSpace.from_checkpoint(checkpoint)
        tiles = dev_tiles(data_dir, split.value, space.loaded.info.get("train_config"))
        labels = tiles["label"].astype(str).tolist()
        images = read_tile_images(
            tiles["path"].astype(str).tolist(), lambda f, m: report(0.05 + 0.25 * f, m)
        )
        report(0.3, "Sat2Sound: embedding tiles and queries")
        similarities = tile_similarities(space, images, queries)
        methods = {"Sat2Sound": auc_table(similarities, labels, DEFAULT_QUERY_CLASSES)}
        null = shuffled_null(similarities, labels, DEFAULT_QUERY_CLASSES, permutations, seed)
        if stand_in:
            report(0.5, "stand-in: embedding 1000 ImageNet class names")
            bridge = _stand_in(stand_in_size)
            size = f", {stand_in_size} px" if stand_in_size else ""
            methods[f"stand-in (ImageNet bridge{size})"] = auc_table(
                tile_similarities(bridge, images, queries), labels, DEFAULT_QUERY_CLASSES
            )
        report(1.0, "done")
    which = (
        "held-out eval tiles (never trained on)"
        if split is SplitChoice.eval
        else "all tiles — includes training tiles"
    )
    title = (
        f"Query → land-cover ROC-AUC, dev EuroSAT, {which}: {len(tiles)} tiles; Sat2Sound = "
        f"{space.loaded.model_id}; null: {permutations} label shuffles, seed {seed} (dev figures)"
    )
    table = format_query_table(methods, null, title, markdown=markdown)
    if progress is ProgressMode.json:
        emit_json({"ok": True, "outputs": [], "table": table})
        return
    typer.echo(table)


def _stand_in(input_size: int | None) -> ImageNetTextBridge:
    """The training-free bridge, built from the same encoders maps fall back to."""
    from geosound.encoders import DEFAULT_ENCODERS, get_encoder
    from geosound.space.imagenet_bridge import ImageNetTextBridge

    image_kwargs = {"input_size": input_size} if input_size else {}
    return ImageNetTextBridge(
        get_encoder(DEFAULT_ENCODERS["image"], **image_kwargs),
        get_encoder(DEFAULT_ENCODERS["text"]),
    )
