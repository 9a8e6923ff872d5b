"""``geosound train`` (``geosound evaluate`` is in :mod:`geosound.cli.evaluate`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from geosound.cli.checks import DataDirOption, check_input_file, check_output_folder
from geosound.cli.progress import ProgressMode, ProgressOption, emit_json, progress_reporter
from geosound.cli.resources import DeviceOption, ThreadsOption, use_resources


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
    threads: ThreadsOption = None,
    device: DeviceOption = None,
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
    use_resources(threads, device)

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
