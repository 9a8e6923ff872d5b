"""``geosound train-generator`` and ``geosound generate``: SounDiT, trained and used.

``train-generator`` trains the autoencoder, then the DiT, from the dev data. ``generate``
hears a recording and draws the landscape it sounds like: a PNG, or a GeoTIFF placed at
``--lon/--lat`` in the local UTM zone; ``--points`` draws one per recording point of a layer
and a VRT that shows them as one layer (geosound/generation/landscape.py).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from geosound.cli.checks import (
    DataDirOption,
    check_checkpoint_file,
    check_input_file,
    check_output_file,
    check_output_folder,
    option_error,
    tile_m_callback,
)
from geosound.cli.layers import layer_recordings
from geosound.cli.progress import (
    ProgressMode,
    ProgressOption,
    emit_json,
    progress_reporter,
    report_outputs,
)
from geosound.cli.resources import DeviceOption, ThreadsOption, use_resources
from geosound.generation.default import RUN_CHECKPOINT, RUN_KNOWLEDGE

if TYPE_CHECKING:  # imported inside the commands, so that the CLI starts fast
    from geosound.generation.generator import LandscapeGenerator
    from geosound.generation.hearing import Listener


def train_generator_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder.")] = Path("runs/soundit"),
    preset: Annotated[str, typer.Option(help="SounDiT size: tiny (CPU), S or B (GPU).")] = "tiny",
    epochs: Annotated[int, typer.Option(help="SounDiT epochs over the train pairs.", min=1)] = 40,
    autoencoder_epochs: Annotated[
        int, typer.Option("--autoencoder-epochs", help="Autoencoder epochs.", min=1)
    ] = 8,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Batch size.", min=1)] = 16,
    plain_cross_attention: Annotated[
        bool,
        typer.Option(
            "--plain-cross-attention",
            help="One multi-head cross-attention over the sound instead of TA-PMoE (ablation).",
        ),
    ] = False,
    global_conditioning: Annotated[
        bool,
        typer.Option(
            "--global-conditioning",
            help="Also feed the pooled sound and scene to every block's adaLN modulation, as "
            "DiT conditions on a class label (tried in docs/soundit.md: no measurable change).",
        ),
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the pairs and of training.", min=0)] = 0,
    imagery: Annotated[
        list[str] | None,
        typer.Option(
            "--imagery",
            help="Dev imagery to train on, repeatable: eurosat_ms (the 181 Sentinel-2 tiles, a "
            "couple of minutes on a CPU) and/or eurosat_rgb (the 3,000 RGB tiles). Default: both.",
        ),
    ] = None,
    condition: Annotated[
        str,
        typer.Option(
            "--condition",
            help="sound: SounDiT, conditioned on each pair's sound through Sat2Sound. visual: "
            "Sound2Scene, conditioned on each tile's own image embedding, plus an audio aligner "
            "trained on the pairs (generate hears through it).",
        ),
    ] = "sound",
    data_dir: DataDirOption = None,
    threads: ThreadsOption = None,
    device: DeviceOption = None,
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
    from geosound.data.splits import DEV_IMAGERY

    unknown = sorted(set(imagery or ()) - set(DEV_IMAGERY))
    if unknown:
        known = " or ".join(DEV_IMAGERY)
        raise option_error("--imagery", f"unknown dev imagery {', '.join(unknown)}; give {known}")
    use_resources(threads, device)
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
        model={
            **({"use_moe": False} if plain_cross_attention else {}),
            **({"global_conditioning": True} if global_conditioning else {}),
        },
        condition=condition,
    )
    if imagery:
        config.imagery = list(imagery)
    config.validate()
    with progress_reporter(progress, "train-generator") as report:
        outcome = run_generator_training(out, config, data_dir, progress=report)
    meta = outcome.data.meta
    space = outcome.condition_space
    knowledge = KnowledgeBase(**outcome.knowledge_rows("train"), space_id=space)
    knowledge_path = knowledge.save(out / RUN_KNOWLEDGE)
    info = {"train_config": config.to_dict(), "metrics": outcome.metrics}
    checkpoint = out / RUN_CHECKPOINT
    model_id = save_generator(
        checkpoint,
        outcome.model,
        outcome.codec,
        space,
        meta["encoders"],
        outcome.scenes,
        info,
        aligner=outcome.aligner,
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
    aligned = outcome.metrics.get("aligner_eval", {})
    if "class_top1" in aligned:
        typer.echo(
            f"audio aligner on {aligned['pairs']} dev eval pairs: nearest land cover "
            f"{aligned['class_top1']} (chance {aligned['class_top1_chance']}; the tiles' own "
            f"embeddings {aligned['class_top1_tiles']}), own tile in the nearest 10 "
            f"{aligned['recall_at_10']} (chance {aligned['recall_at_10_chance']}) (dev figures)"
        )
    typer.echo(f"geosound train-generator: wrote {', '.join(outputs)} ({model_id})")


def _strength(value: float) -> float:
    """Typer callback: RAG runs a share of the schedule, in (0, 1]."""
    if not 0.0 < value <= 1.0:
        raise option_error("--strength", f"must be in (0, 1] (a share of the steps); got {value:g}")
    return value


StrengthOption = Annotated[
    float,
    typer.Option(
        "--strength",
        help="Share of the steps run from the retrieved layout (1: pure noise).",
        callback=_strength,
    ),
]
VotersOption = Annotated[
    int,
    typer.Option(
        "--voters",
        min=1,
        help="How many of the most similar known sounds vote on the scene and, unless --scene "
        "is given, the layout (1: the nearest alone).",
    ),
]


def _scale(ctx: typer.Context, param: typer.CallbackParam, value: float) -> float:
    """Typer callback: a guidance scale is a finite number >= 0."""
    if not (math.isfinite(value) and value >= 0):
        name = max(getattr(param, "opts", None) or [f"--{param.name}"], key=len)
        raise option_error(name, f"must be a finite number >= 0; got {value:g}")
    return value


def generate_command(
    audio: Annotated[
        Path | None, typer.Option("--audio", "-a", help="Recording to hear (any format).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="OUT.tif (GeoTIFF at --lon/--lat), OUT.png, or OUT.vrt with --points "
            "(default: <layer>_landscapes.vrt beside the layer).",
        ),
    ] = None,
    scene: Annotated[
        str | None,
        typer.Option(
            "--scene",
            help="Scene word, e.g. forest (default: the scene the most similar known "
            "sounds vote for). RAG starts from the best-ranked known sound of this scene "
            "(from noise if none has it).",
        ),
    ] = None,
    lon: Annotated[
        float | None,
        typer.Option("--lon", help="Longitude of the recording (EPSG:4326).", min=-180, max=180),
    ] = None,
    lat: Annotated[
        float | None,
        typer.Option("--lat", help="Latitude of the recording (EPSG:4326).", min=-90, max=90),
    ] = None,
    ground_m: Annotated[
        float,
        typer.Option(
            "--ground-m",
            help="Ground width of a placed picture in metres (the training tiles: 640).",
            callback=tile_m_callback,
        ),
    ] = 640.0,
    points: Annotated[
        Path | None,
        typer.Option("--points", help="Layer of recording points (.gpkg, .geojson, …; any CRS)."),
    ] = None,
    audio_column: Annotated[
        str | None,
        typer.Option(
            "--audio-column",
            help="Column of --points holding each point's recording (relative paths resolve "
            "against the layer's folder).",
        ),
    ] = None,
    steps: Annotated[int, typer.Option("--steps", help="DDIM steps.", min=1)] = 25,
    seed: Annotated[int, typer.Option("--seed", help="Seeds the noise.", min=0)] = 0,
    model: Annotated[
        Path | None,
        typer.Option("--model", help="Generator checkpoint (default: the shipped one)."),
    ] = None,
    knowledge: Annotated[
        Path | None,
        typer.Option(
            "--knowledge",
            help=f"GeoKD knowledge base (default: the {RUN_KNOWLEDGE} beside --model, or the "
            "shipped one).",
        ),
    ] = None,
    sat2sound: Annotated[
        Path | None,
        typer.Option(
            "--sat2sound",
            help="Sat2Sound checkpoint the generator was trained with (default: the shipped one).",
        ),
    ] = None,
    no_rag: Annotated[
        bool,
        typer.Option(
            "--no-rag",
            help="Start from noise, not from the retrieved layout (a scene is still retrieved "
            "when --scene is not given).",
        ),
    ] = False,
    strength: StrengthOption = 0.4,
    voters: VotersOption = 50,
    sound_scale: Annotated[
        float, typer.Option("--sound-scale", help="Guidance scale of the sound.", callback=_scale)
    ] = 3.0,
    scene_scale: Annotated[
        float, typer.Option("--scene-scale", help="Guidance scale of the scene.", callback=_scale)
    ] = 1.5,
    via: Annotated[
        str | None,
        typer.Option(
            "--via",
            help="How the model must hear the recording: sound (SounDiT, through Sat2Sound) or "
            "visual (Sound2Scene, through its audio aligner); a --model that does not is refused.",
        ),
    ] = None,
    threads: ThreadsOption = None,
    device: DeviceOption = None,
    progress: ProgressOption = ProgressMode.bar,
) -> None:
    """Draw the landscape a recording sounds like, placed where it was made.

    A generated picture is a plausible landscape for the sound (SounDiT, a diffusion model),
    not imagery of the place. A sidecar JSON beside the output records the model, the sound,
    the scene and where it came from, the retrieved neighbours, the seed and the place.
    """
    out = _check_generate_options(audio, out, lon, lat, points, audio_column)
    if via is not None:
        from geosound.models.soundit_checkpoint import CONDITIONS

        if via not in CONDITIONS:
            raise option_error("--via", f"must be {' or '.join(CONDITIONS)}; got {via!r}")
    model_path, knowledge_path = _model_files(model, knowledge, sat2sound)
    use_resources(threads, device)
    from geosound.audio import load_audio

    clip = load_audio(audio, sample_rate=None) if audio is not None else None
    layer_points = (
        layer_recordings(points, audio_column) if points is not None and audio_column else None
    )
    from geosound.generation.generator import GenerationOptions
    from geosound.generation.hearing import ShortClipWarning
    from geosound.generation.landscape import Request, generate_one, generate_points
    from geosound.generation.sampling import GuidanceScales

    options = GenerationOptions(
        steps=steps,
        seed=seed,
        scales=GuidanceScales(sound=sound_scale, scene=scene_scale),
        use_rag=not no_rag,
        strength=strength,
        voters=voters,
    )
    request = Request(scene, ground_m, options)
    with (
        progress_reporter(progress, "generate") as report,
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always", ShortClipWarning)
        report(0.0, "loading the generator")
        generator, listener = _load(model_path, knowledge_path, sat2sound, scene, via)
        if layer_points is not None:
            outputs = generate_points(
                generator, listener, layer_points, out, request, knowledge_path, report
            )
        else:
            assert audio is not None
            outputs = generate_one(
                generator, listener, audio, out, request, lon, lat, knowledge_path, report, clip
            )
    notes = _notes(caught, knowledge_path is None)
    report_outputs("generate", progress, outputs, "; ".join(notes) if notes else None)


def _check_generate_options(
    audio: Path | None,
    out: Path | None,
    lon: float | None,
    lat: float | None,
    points: Path | None,
    audio_column: str | None,
) -> Path:
    """Refuse contradictory or missing options before anything loads; the output path.

    One recording writes ``-o`` (.png, or .tif with a place); a layer writes a VRT, by default
    beside the layer.
    """
    from geosound.errors import InputError
    from geosound.generation.outputs import check_pictures_folder, picture_kind, pictures_folder

    if (audio is None) == (points is None):
        raise InputError("give exactly one of --audio CLIP or --points LAYER")
    if (lon is None) != (lat is None):
        raise InputError("--lon and --lat go together")
    if points is not None:
        if audio_column is None:
            raise InputError("--points needs --audio-column: the column naming each recording")
        if lon is not None:
            raise InputError("--points places each picture at its point: drop --lon/--lat")
        out = out or points.with_name(f"{points.stem}_landscapes.vrt")
        if out.suffix.lower() != ".vrt":
            raise InputError(
                "--points writes a VRT (one layer of all pictures): give -o OUT.vrt", out
            )
        check_output_file(out, "--out")
        check_pictures_folder(pictures_folder(out))
        return out
    if audio_column is not None:
        raise InputError("--audio-column goes with --points")
    if out is None:
        raise InputError("give -o OUT.png, or -o OUT.tif with --lon/--lat")
    if picture_kind(out) == "tif" and lon is None:
        raise InputError("a GeoTIFF needs a place: give --lon and --lat, or write a .png", out)
    check_output_file(out, "--out")
    return out


def _model_files(
    model: Path | None, knowledge: Path | None, sat2sound: Path | None
) -> tuple[Path, Path | None]:
    """The generator checkpoint and its knowledge base, checked before anything loads."""
    from geosound.generation.default import default_generator_path, knowledge_beside

    if model is not None:
        check_checkpoint_file(model, "--model")
    model = model if model is not None else default_generator_path()
    if knowledge is not None:
        check_input_file(knowledge, "knowledge base", "--knowledge")
    if sat2sound is not None:
        check_checkpoint_file(sat2sound, "--sat2sound")
    return model, knowledge if knowledge is not None else knowledge_beside(model)


def _load(
    model: Path, knowledge: Path | None, sat2sound: Path | None, scene: str | None, via: str | None
) -> tuple[LandscapeGenerator, Listener]:
    """The generator (a wrong kind or an unknown scene word is refused here), then its ears."""
    from geosound.errors import InputError
    from geosound.generation.generator import LandscapeGenerator
    from geosound.generation.hearing import Listener

    generator = LandscapeGenerator.from_files(model, knowledge)
    if via is not None and via != generator.loaded.via:
        raise InputError(
            f"this generator hears --via {generator.loaded.via}, not {via}; for --via {via} give "
            f"a --model trained with `geosound train-generator --condition {via}`",
            model,
        )
    if scene is not None:
        generator.scene_embedding(scene)
    return generator, Listener(generator.loaded, sat2sound)


def _notes(caught: list[warnings.WarningMessage], no_knowledge: bool) -> list[str]:
    """Notes for the user: padded clips (also said at once on stderr), a missing GeoKD.

    Other warnings go back to the CLI, which holds them for ``--verbose``.
    """
    from geosound.generation.hearing import ShortClipWarning

    padded = [str(w.message) for w in caught if issubclass(w.category, ShortClipWarning)]
    for item in caught:
        if not issubclass(item.category, ShortClipWarning):
            warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
    notes = []
    if len(padded) == 1:
        notes.append(padded[0])
    elif padded:
        notes.append(f"{len(padded)} recordings were shorter than the encoder's window and "
                     f"padded (first: {padded[0]})")  # fmt: skip
    if no_knowledge:
        notes.append("no knowledge base: sampled from noise, no retrieved scene or neighbours")
    for note in notes[: len(notes) - no_knowledge]:
        typer.echo(f"geosound: note: {note}", err=True)
    return notes
