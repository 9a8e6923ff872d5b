"""``geosound train-generator``: SounDiT (autoencoder, then the DiT) from the dev data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from geosound.cli.checks import check_output_folder
from geosound.cli.progress import ProgressMode, ProgressOption, emit_json, progress_reporter

CHECKPOINT_NAME = "soundit.pt"
KNOWLEDGE_BASE_NAME = "geokd.npz"


def train_generator_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder.")] = Path("runs/soundit"),
    preset: Annotated[str, typer.Option(help="SounDiT size: tiny (CPU), S or B (GPU).")] = "tiny",
    epochs: Annotated[int, typer.Option(help="SounDiT epochs over the train pairs.", min=1)] = 100,
    autoencoder_epochs: Annotated[
        int, typer.Option("--autoencoder-epochs", help="Autoencoder epochs.", min=1)
    ] = 20,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Batch size.", min=1)] = 64,
    plain_cross_attention: Annotated[
        bool,
        typer.Option(
            "--plain-cross-attention",
            help="One multi-head cross-attention over the sound instead of TA-PMoE (ablation).",
        ),
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the pairs and of training.", min=0)] = 0,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Dev data folder (default: GEOSOUND_DEV_DATA)."),
    ] = None,
    progress: ProgressOption = ProgressMode.bar,
) -> None:
    """Train SounDiT on the dev imagery paired with dev sounds; write it and its GeoKD.

    Writes ``soundit.pt`` (EMA weights, autoencoder, scene words), ``geokd.npz`` (the
    knowledge base of the train pairs) and ``metrics.json`` into --out. Rerunning with the
    same --out resumes (data bundle and Lightning checkpoints are kept).
    """
    from geosound.models.soundit import SOUNDIT_PRESETS

    check_output_folder(out, "--out")
    if preset not in SOUNDIT_PRESETS:
        raise typer.BadParameter(
            f"unknown preset {preset!r}; presets: {', '.join(SOUNDIT_PRESETS)}",
            param_hint="--preset",
        )
    from geosound.generation.geokd import KnowledgeBase
    from geosound.models.soundit_checkpoint import save_generator
    from geosound.sidecar import write_sidecar
    from geosound.training.generator import GeneratorTrainConfig, run_generator_training

    config = GeneratorTrainConfig(
        preset=preset,
        epochs=epochs,
        autoencoder_epochs=autoencoder_epochs,
        batch_size=batch_size,
        seed=seed,
        model={"use_moe": False} if plain_cross_attention else {},
    ).validate()
    with progress_reporter(progress, "train-generator") as report:
        outcome = run_generator_training(out, config, data_dir, progress=report)
    meta = outcome.data.meta
    knowledge = KnowledgeBase(**outcome.knowledge_rows("train"), space_id=meta["sound_space"])
    knowledge_path = knowledge.save(out / KNOWLEDGE_BASE_NAME)
    info = {"train_config": config.to_dict(), "metrics": outcome.metrics}
    checkpoint = out / CHECKPOINT_NAME
    model_id = save_generator(
        checkpoint,
        outcome.model,
        outcome.codec,
        meta["sound_space"],
        meta["encoders"],
        outcome.scenes,
        info,
    )
    metrics = write_sidecar(out / "metrics.json", "SounDiT training run", model_id=model_id, **info)
    outputs = [str(checkpoint), str(knowledge_path), str(metrics)]
    if progress is ProgressMode.json:
        emit_json({"ok": True, "outputs": outputs, "model_id": model_id})
        return
    ae = outcome.metrics["autoencoder_eval"]
    typer.echo(
        f"autoencoder on {ae['tiles']} dev eval tiles: PSNR {ae['psnr_db']} dB, SSIM {ae['ssim']}"
        f"\nSounDiT EMA eval ε-MSE {outcome.metrics['soundit_eval_loss_ema']} (dev figures)"
    )
    typer.echo(f"geosound train-generator: wrote {', '.join(outputs)} ({model_id})")
