"""``geosound evaluate``: retrieval and zero-shot tables of checkpoints on the dev eval split."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from geosound.cli.checks import DataDirOption, check_checkpoint_file, check_output_folder
from geosound.cli.progress import ProgressMode, ProgressOption, emit_json, progress_reporter
from geosound.cli.resources import DeviceOption, ThreadsOption, use_resources


def evaluate_command(
    checkpoint: Annotated[
        Path | None, typer.Option("--checkpoint", help="Model to evaluate (default: shipped).")
    ] = None,
    compare: Annotated[
        list[Path] | None,
        typer.Option(
            "--compare",
            help="More checkpoints to put in the same tables (e.g. the previous shipped "
            "model), scored on the first checkpoint's eval split.",
        ),
    ] = None,
    work: Annotated[Path, typer.Option("--work", help="Folder for the rebuilt pairs.")] = Path(
        "runs/evaluate"
    ),
    retrieval: Annotated[
        bool,
        typer.Option(
            "--retrieval/--no-retrieval",
            help="Also print the pair-retrieval table (R@k, cR@k of each pair's own mix).",
        ),
    ] = True,
    data_dir: DataDirOption = None,
    threads: ThreadsOption = None,
    device: DeviceOption = None,
    progress: ProgressOption = ProgressMode.bar,
) -> None:
    """Zero-shot tables of checkpoints on the dev eval split, beside baselines (dev figures).

    Zero-shot land cover from sound prompts, image→audio precision@10 and audio→text top-1,
    each beside chance, the frozen features' linear-probe ceiling and the untrained linear map.

    The pairs are rebuilt from the first checkpoint's own training config (same seed, same
    split), so the tiles and clips scored are ones that model never trained on. Definitions:
    geosound.evaluation.zero_shot and geosound.evaluation.suite.
    """
    given = [(checkpoint, "--checkpoint")] if checkpoint else []
    given += [(path, "--compare") for path in compare or []]
    for path, option in given:
        check_checkpoint_file(path, option)  # in milliseconds, before torch loads
    check_output_folder(work, "--work")
    use_resources(threads, device)

    from geosound.config import dev_data_dir
    from geosound.encoders.base import encoder_from_id
    from geosound.errors import InputError
    from geosound.evaluation.sat2sound_eval import format_table, pooled
    from geosound.evaluation.suite import (
        check_items,
        encode_items,
        eval_items,
        format_suite,
        run_suite,
    )
    from geosound.evaluation.zero_shot import LinearMapMethod, Method, Sat2SoundMethod
    from geosound.models.checkpoint import load_checkpoint
    from geosound.models.default import default_checkpoint_paths
    from geosound.training.config import TrainConfig
    from geosound.training.pipeline import TABLE_TITLE, build_pairs, evaluation_rows, load_features

    paths = [checkpoint] if checkpoint else default_checkpoint_paths()
    paths += list(compare or [])
    loaded = [load_checkpoint(path) for path in paths]
    settings = TrainConfig.from_recorded(loaded[0].info.get("train_config", {}))
    root = Path(data_dir or dev_data_dir())
    with progress_reporter(progress, "evaluate") as report:
        features = load_features(root, settings, work, progress=lambda f, m: report(0.6 * f, m))
        for path, item in zip(paths, loaded, strict=True):
            if item.encoders != features.encoder_ids:
                raise InputError(
                    f"model was trained on encoders {item.encoders}, the features come from "
                    f"{features.encoder_ids}",
                    path,
                )
        items = eval_items(build_pairs(root, settings, work), root, settings.eval_fraction,
                           settings.seed)  # fmt: skip
        check_items(items)
        encoders = {m: encoder_from_id(e) for m, e in loaded[0].encoders.items()}
        encoded = encode_items(items, encoders, progress=lambda f, m: report(0.6 + 0.35 * f, m))
        train = features.split("train")
        if train.audio_caption_tokens is None or train.audio_caption_mask is None:
            raise InputError("the training pairs have no audio captions to fit the linear map")
        methods: list[Method] = [
            LinearMapMethod(
                pooled(train.image_tokens, train.image_mask),
                pooled(train.audio_tokens, train.audio_mask),
                pooled(train.audio_caption_tokens, train.audio_caption_mask),
            )
        ]
        names = [_method_name(item, i) for i, item in enumerate(loaded)]
        methods += [Sat2SoundMethod(n, item.model) for n, item in zip(names, loaded, strict=True)]
        result = run_suite(encoded, methods, seed=settings.seed)
        result.notes += items.notes
        report(1.0, "scored")
    title = (
        f"Zero-shot evaluation on the dev eval split of {loaded[0].model_id} "
        f"(seed {settings.seed}, eval fraction {settings.eval_fraction}; dev figures)"
    )
    table = format_suite(result, title, confusion_of=names[0])
    if retrieval:
        models = {n: item.model for n, item in zip(names, loaded, strict=True)}
        table += "\n\n" + format_table(evaluation_rows(features, models), TABLE_TITLE)
    if progress is ProgressMode.json:
        emit_json({"ok": True, "outputs": [], "table": table})
        return
    typer.echo(table)


def _method_name(item: object, position: int) -> str:
    model = item.model  # type: ignore[attr-defined]
    kind = "Sat2Sound" if model.config.use_codebook else "no codebook"
    return f"{kind} ({item.model_id})"  # type: ignore[attr-defined]
