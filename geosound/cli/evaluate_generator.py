"""``geosound evaluate-generator``: SounDiT's pictures of held-out sounds, scored (dev figures)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from geosound.cli.checks import check_checkpoint_file, check_input_file, check_output_file
from geosound.cli.generate import StrengthOption, VotersOption
from geosound.cli.progress import ProgressMode, ProgressOption, emit_json, progress_reporter
from geosound.cli.resources import ThreadsOption, use_resources
from geosound.generation.default import RUN_CHECKPOINT, RUN_KNOWLEDGE

DATA_NAME = "generator_data.npz"
CLASSIFIER_NAME = "landcover_classifier.npz"


def evaluate_generator_command(
    model: Annotated[
        Path | None,
        typer.Option("--model", help=f"SounDiT checkpoint (default: RUN_DIR/{RUN_CHECKPOINT})."),
    ] = None,
    knowledge: Annotated[
        Path | None,
        typer.Option(
            "--knowledge",
            help=f"Its GeoKD knowledge base (default: RUN_DIR/{RUN_KNOWLEDGE}).",
        ),
    ] = None,
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help=f"The training run folder holding {DATA_NAME} (its pairs, splits and sound "
            "conditions), or that file itself.",
        ),
    ] = Path("runs/soundit"),
    per_class: Annotated[
        int, typer.Option("--per-class", help="Held-out sounds per land-cover class.", min=1)
    ] = 10,
    per_sound: Annotated[
        int, typer.Option("--per-sound", help="Pictures drawn per sound (seeds).", min=1)
    ] = 4,
    steps: Annotated[
        list[int] | None,
        typer.Option(
            "--steps",
            help="DDIM step counts of the ablation rows (repeat; default 10 25 50).",
            min=1,
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seeds the sounds, tiles and noise.", min=0)] = 0,
    strength: StrengthOption = 0.4,
    voters: VotersOption = 50,
    ablation_model: Annotated[
        Path | None,
        typer.Option(
            "--ablation-model",
            help="A second checkpoint of the other architecture (TA-PMoE vs plain "
            "cross-attention), trained on the same pairs; absent, its row says 'not trained'.",
        ),
    ] = None,
    ablation_knowledge: Annotated[
        Path | None,
        typer.Option(
            "--ablation-knowledge",
            help=f"Its knowledge base (default: {RUN_KNOWLEDGE} beside it).",
        ),
    ] = None,
    classifier: Annotated[
        Path | None,
        typer.Option(
            "--classifier",
            help=f"Where the land-cover classifier is kept (default: RUN_DIR/{CLASSIFIER_NAME}); "
            "trained once, reused while the training tiles are the same.",
        ),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the figures to this JSON file.")
    ] = None,
    threads: ThreadsOption = None,
    progress: ProgressOption = ProgressMode.bar,
) -> None:
    """Score SounDiT on held-out sounds beside its bound, controls and ablations (dev figures).

    Draws pictures for eval-split sounds of the five RGB land covers and scores them with
    PSS-scene (proxy) and PSS-element (proxy) — a land-cover classifier we train on the dev
    train tiles, its own accuracy printed — FD-EffNet (a Fréchet distance in the image
    encoder's features; not FID) and diversity. Beside them: real tiles of the paired class,
    the same tiles through the autoencoder, a shuffled-sound control, unconditional samples,
    pictures given the paired tile's scene word, and the ablations RAG off, scene off, no
    vote, DDIM steps and TA-PMoE vs plain cross-attention. Definitions:
    geosound.evaluation.generated and geosound.generation.evaluation.
    """
    bundle = data if data.suffix == ".npz" and not data.is_dir() else data / DATA_NAME
    run_dir = bundle.parent
    model = model or run_dir / RUN_CHECKPOINT
    knowledge = knowledge or run_dir / RUN_KNOWLEDGE
    check_checkpoint_file(model, "--model")
    check_input_file(knowledge, "knowledge base", "--knowledge")
    check_input_file(bundle, "generator data bundle", "--data")
    if ablation_model is not None:
        check_checkpoint_file(ablation_model, "--ablation-model")
        ablation_knowledge = ablation_knowledge or ablation_model.parent / RUN_KNOWLEDGE
        check_input_file(ablation_knowledge, "knowledge base", "--ablation-knowledge")
    classifier = classifier or run_dir / CLASSIFIER_NAME
    check_output_file(classifier, "--classifier")
    if json_out is not None:
        check_output_file(json_out, "--json")
    use_resources(threads, None)  # sampling runs on the CPU: no --device here

    from geosound.generation.evaluation import (
        EvaluationSettings,
        evaluate_generator,
        format_evaluation,
    )
    from geosound.generation.generator import GenerationOptions, LandscapeGenerator
    from geosound.sidecar import write_sidecar
    from geosound.training.generator import GeneratorData

    settings = EvaluationSettings(
        per_class=per_class,
        per_sound=per_sound,
        steps=tuple(steps) if steps else EvaluationSettings().steps,
        seed=seed,
        options=GenerationOptions(strength=strength, voters=voters),
    ).validate()
    with progress_reporter(progress, "evaluate-generator") as report:
        report(0.0, "loading the models")
        generator = LandscapeGenerator.from_files(model, knowledge)
        ablation = (
            LandscapeGenerator.from_files(ablation_model, ablation_knowledge)
            if ablation_model is not None
            else None
        )
        result = evaluate_generator(
            generator,
            GeneratorData.load(bundle),
            settings,
            ablation=ablation,
            classifier_path=classifier,
            progress=report,
            names=(f"--model {model}", f"--ablation-model {ablation_model}"),
        )
    table = format_evaluation(result)
    outputs = [] if result.classifier_reused else [str(classifier)]
    if json_out is not None:
        inputs = {
            "model": str(model),
            "knowledge": str(knowledge),
            "data": str(bundle),
            "ablation_model": None if ablation_model is None else str(ablation_model),
        }
        write_sidecar(json_out, "SounDiT evaluation", inputs=inputs, **result.to_dict())
        outputs.append(str(json_out))
    if progress is ProgressMode.json:
        emit_json({"ok": True, "outputs": outputs, "table": table})
        return
    typer.echo(table)
    if json_out is not None:
        typer.echo(f"geosound evaluate-generator: wrote {json_out}")
