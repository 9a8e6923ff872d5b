"""``geosound train`` and ``geosound evaluate``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from geosound.cli.checks import check_checkpoint_file, check_input_file, check_output_folder
from geosound.cli.progress import ProgressMode, ProgressOption, emit_json, progress_reporter

DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Dev data folder (default: GEOSOUND_DEV_DATA or ../shared/data)."
    ),
]


def train_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder.")] = Path("runs/sat2sound"),
    config: Annotated[
        Path | None, typer.Option("--config", help="Training config YAML (default: built-in).")
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(help="Override the number of epochs (at least 1).", min=1)
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Override the seed.", min=0)] = None,
    manifest: Annotated[
        Path | None,
        typer.Option(
            "--manifest",
            help="Train on this pair manifest (real pairs, see `geosound pairs`) instead of "
            "the sonified dev data.",
        ),
    ] = None,
    data_dir: DataDirOption = None,
    progress: ProgressOption = ProgressMode.bar,
) -> None:
    """Train Sat2Sound on the dev data (sonified EuroSAT tiles + ESC-50 clips) and evaluate it.

    Rerunning with the same --out resumes: pairs, features and Lightning checkpoints are kept.
    """
    from geosound.training.config import TrainConfig

    check_output_folder(out, "--out")
    if config is not None:
        check_input_file(config, "training config", "--config")
    if manifest is not None:
        check_input_file(manifest, "pair manifest", "--manifest")
    settings = TrainConfig.from_yaml(config) if config else TrainConfig()
    if epochs is not None:
        settings.epochs = epochs
    if seed is not None:
        settings.seed = seed
    settings.validate()

    from geosound.training.pipeline import run_training

    with progress_reporter(progress, "train") as report:
        outcome = run_training(
            out,
            settings,
            data_dir=data_dir,
            manifest=manifest,
            progress=report,
            progress_bar=progress is ProgressMode.bar,
        )
    if progress is ProgressMode.json:
        emit_json({"ok": True, "outputs": [str(outcome.checkpoint)], "model_id": outcome.model_id})
        return
    typer.echo(outcome.table)
    typer.echo(f"\ngeosound train: wrote {outcome.checkpoint} ({outcome.model_id})")


def evaluate_command(
    checkpoint: Annotated[
        Path | None, typer.Option("--checkpoint", help="Model to evaluate (default: shipped).")
    ] = None,
    compare: Annotated[
        list[Path] | None,
        typer.Option("--compare", help="More checkpoints to put in the same table."),
    ] = None,
    work: Annotated[Path, typer.Option("--work", help="Folder for the rebuilt pairs.")] = Path(
        "runs/evaluate"
    ),
    data_dir: DataDirOption = None,
    progress: ProgressOption = ProgressMode.bar,
) -> None:
    """Print the retrieval table of a checkpoint on the dev eval split, beside the baselines.

    The pairs are rebuilt from the checkpoint's own training config (same seed, same split),
    so the eval split is the one the model never saw.
    """
    given = [(checkpoint, "--checkpoint")] if checkpoint else []
    given += [(path, "--compare") for path in compare or []]
    for path, option in given:
        check_checkpoint_file(path, option)  # in milliseconds, before torch loads
    check_output_folder(work, "--work")

    from geosound.config import dev_data_dir
    from geosound.errors import InputError
    from geosound.evaluation.sat2sound_eval import format_table
    from geosound.models.checkpoint import load_checkpoint
    from geosound.models.default import default_checkpoint_paths
    from geosound.training.config import TrainConfig
    from geosound.training.pipeline import TABLE_TITLE, evaluation_rows, load_features

    paths = [checkpoint] if checkpoint else default_checkpoint_paths()
    paths += list(compare or [])
    loaded = [load_checkpoint(path) for path in paths]
    settings = TrainConfig.from_dict(loaded[0].info.get("train_config", {}))
    with progress_reporter(progress, "evaluate") as report:
        features = load_features(data_dir or dev_data_dir(), settings, work, progress=report)
    for path, item in zip(paths, loaded, strict=True):
        if item.encoders != features.encoder_ids:
            raise InputError(
                f"model was trained on encoders {item.encoders}, the features come from "
                f"{features.encoder_ids}",
                path,
            )
    models = {_method_name(item): item.model for item in loaded}
    table = format_table(evaluation_rows(features, models), TABLE_TITLE)
    if progress is ProgressMode.json:
        emit_json({"ok": True, "outputs": [], "table": table})
        return
    typer.echo(table)


def _method_name(item: object) -> str:
    model = item.model  # type: ignore[attr-defined]
    kind = "Sat2Sound" if model.config.use_codebook else "no codebook"
    return f"{kind} ({item.model_id})"  # type: ignore[attr-defined]
