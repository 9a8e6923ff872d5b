"""``geosound separate``, ``train-separator`` and ``evaluate-separator``: AV-GAS, used and made.

``separate`` lists the sources in a recording (nearest classes, score, share of loudness);
``train-separator`` trains the separator on mixes of the dev clips; ``evaluate-separator``
scores a separator on mixes of held-out clips against the unseparated mix and the clean
sources (geosound/evaluation/separation.py says what each figure means).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from geosound.cli.checks import (
    DataDirOption,
    check_checkpoint_file,
    check_goes_with,
    check_input_file,
    check_output_file,
    check_output_folder,
)
from geosound.cli.progress import ProgressMode, ProgressOption, emit_json, progress_reporter
from geosound.cli.resources import DeviceOption, ThreadsOption, use_resources

if TYPE_CHECKING:
    import pandas as pd

    from geosound.generation.generator import LandscapeGenerator
    from geosound.generation.hearing import Listener
    from geosound.models.separator_checkpoint import LoadedSeparator
    from geosound.progress import Progress
    from geosound.separation import Separation, SourceFinder
    from geosound.space.shared import SharedSpace

SeparatorOption = Annotated[
    Path | None, typer.Option("--model", help="Separator checkpoint (default: shipped).")
]
Sat2SoundOption = Annotated[
    Path | None,
    typer.Option("--sat2sound", help="Its Sat2Sound checkpoint (default: shipped)."),
]
SweepOption = Annotated[
    int, typer.Option("--sweep", help="Held-out mixes per ratio of the loudness sweep.", min=1)
]


PICTURE_STEPS = 25
"""DDIM steps of the pictures ``--images`` and the Class Representation Score draw."""

CRS_MIXTURES = 50
"""Held-out mixes per source count the Class Representation Score draws."""


def _separator_path(model: Path | None) -> Path:
    """``--model``, or the shipped separator; refused with one line when neither exists."""
    from geosound.separation.default import default_separator_path

    if model is not None:
        check_checkpoint_file(model, "--model")
        return model
    return default_separator_path()


def separate_command(
    recording: Annotated[
        Path | None,
        typer.Argument(help="The recording (any soundfile format); or give --points."),
    ] = None,
    max_sources: Annotated[
        int | None,
        typer.Option("--max-sources", help="Report at most this many sources.", min=1),
    ] = None,
    points: Annotated[
        Path | None,
        typer.Option("--points", help="A points layer with a recording per point (GPKG, …)."),
    ] = None,
    audio_column: Annotated[
        str | None,
        typer.Option("--audio-column", help="Its column of recording paths (with --points)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="With --points: the layer with source columns (GeoPackage)."
        ),
    ] = None,
    model: SeparatorOption = None,
    sat2sound: Sat2SoundOption = None,
    images: Annotated[
        Path | None,
        typer.Option(
            "--images",
            help="Draw one picture per source and one of them combined into this folder "
            "(source1.png, …, combined.png; drawn by --generator, or the shipped generator).",
        ),
    ] = None,
    generator_model: Annotated[
        Path | None,
        typer.Option(
            "--generator",
            help="Generator for --images (default: the shipped one): a train-generator soundit.pt "
            "(--condition visual hears separated sources as it was trained to; its geokd.npz "
            "beside it is used).",
        ),
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option("--steps", help=f"DDIM steps of --images (default {PICTURE_STEPS}).", min=1),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seeds the noise of --images (default 0).", min=0)
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object, for programs.")] = False,
    threads: ThreadsOption = None,
    device: DeviceOption = None,
    progress: ProgressOption = ProgressMode.bar,
) -> None:
    """List the sources in a recording: nearest classes, score and share of loudness.

    A single-source clip gives one source; a stereo file is downmixed (and says so). With
    --points, every point's recording is separated and the layer is written to --out with
    the columns n_sources, source1, score1, share1, source2, … (loudest first). With --images,
    a generator draws what each source and all of them together look like (AV-GAS): the
    combined picture weighs each source by its share of the loudness.
    """
    generator_path = _check_images(images, generator_model, points, steps, seed)
    recordings = _recordings(recording, points, audio_column, out)
    path = _separator_path(model)
    if sat2sound is not None:
        check_checkpoint_file(sat2sound, "--sat2sound")
    use_resources(threads, device)
    from geosound.separation import DownmixWarning, SourceFinder

    with (
        progress_reporter(progress, "separate") as report,
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always", DownmixWarning)
        report(0.0, "loading the separator")
        finder = SourceFinder(path, sat2sound)
        separations = []
        for i, audio in enumerate(recordings):
            separations.append(finder.separate(audio, max_sources))
            report((i + 1) / len(recordings), f"separated {i + 1}/{len(recordings)}")
    notes = [str(w.message) for w in caught if issubclass(w.category, DownmixWarning)]
    for item in caught:
        if not issubclass(item.category, DownmixWarning):
            warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
    if points is not None and out is not None:
        columns = max_sources or finder.separator.model.config.num_slots
        written = _write_sources_layer(points, out, separations, columns)
        if as_json or progress is ProgressMode.json:
            emit_json({"ok": True, "outputs": [str(written)], "notes": notes})
            return
        typer.echo(f"geosound separate: wrote {written} ({len(separations)} recordings)")
        for note in notes:
            typer.echo(f"note: {note}")
        return
    drawn: list[str] = []
    if images is not None and generator_path is not None:
        drawn = _draw_sources(
            finder, separations[0], images, generator_path, sat2sound,
            steps or PICTURE_STEPS, seed or 0, progress,
        )  # fmt: skip
    if as_json or progress is ProgressMode.json:
        emit_json({"ok": True, "outputs": drawn, **separations[0].to_dict(), "notes": notes})
        return
    _print_sources(separations[0], notes)
    if drawn:
        typer.echo(f"geosound separate: wrote {len(drawn) // 2} pictures into {images}")


def _check_images(
    images: Path | None, generator: Path | None, points: Path | None,
    steps: int | None, seed: int | None,
) -> Path | None:  # fmt: skip
    """The generator checkpoint --images draws with, checked before anything loads."""
    from geosound.errors import InputError

    check_goes_with("--images DIR", images, generator=generator, steps=steps, seed=seed)
    if images is None:
        return None
    if points is not None:
        raise InputError("--images draws the sources of one RECORDING, not of --points")
    from geosound.generation.default import default_generator_path
    from geosound.generation.outputs import check_pictures_folder

    check_pictures_folder(images, "the sources'", "--images")
    if generator is None:
        try:
            return default_generator_path()
        except InputError:
            raise InputError(
                "--images needs --generator RUN/soundit.pt (no default generator is installed; "
                "train one with geosound train-generator)"
            ) from None
    check_checkpoint_file(generator, "--generator")
    return generator


def _draw_sources(
    finder: SourceFinder,
    separation: Separation,
    folder: Path,
    generator_path: Path,
    sat2sound: Path | None,
    steps: int,
    seed: int,
    progress: ProgressMode,
) -> list[str]:
    """Each source's picture and the combined one (generation/landscape.py)."""
    import numpy as np

    from geosound.generation.default import knowledge_beside
    from geosound.generation.generator import GenerationOptions, LandscapeGenerator
    from geosound.generation.landscape import Request, SeparatedSources, generate_sources

    generator = LandscapeGenerator.from_files(generator_path, knowledge_beside(generator_path))
    listener = _listener(generator, sat2sound)
    found = SeparatedSources(
        recording=separation.path,
        seconds=separation.seconds,
        labels=[source.label for source in separation.sources],
        shares=np.array([source.share for source in separation.sources]),
        audio_embeddings=np.stack([source.audio_embedding for source in separation.sources]),
        embeddings=np.stack([source.embedding for source in separation.sources]),
        space=separation.space,
        audio_encoder=finder.space.encoders["audio"].id,
        separator=separation.separator,
    )
    request = Request(None, 640.0, GenerationOptions(steps=steps, seed=seed))
    with progress_reporter(progress, "separate --images") as report:
        written = generate_sources(generator, listener, found, folder, request,
                                   knowledge_beside(generator_path), report)  # fmt: skip
    return [str(path) for path in written]


def _recordings(
    recording: Path | None, points: Path | None, audio_column: str | None, out: Path | None
) -> list[Path]:
    """What to separate: the one RECORDING, or every point's of --points (options checked)."""
    from geosound.cli.layers import layer_recordings
    from geosound.errors import InputError

    if (recording is None) == (points is None):
        raise InputError("give one RECORDING, or --points LAYER --audio-column COL -o OUT.gpkg")
    if recording is not None:
        if out is not None:
            raise InputError("--out is for --points; a single recording prints its sources")
        check_input_file(recording, "recording", "RECORDING")
        return [recording]
    if points is None or audio_column is None or out is None:
        raise InputError("--points needs --audio-column and --out")
    check_output_file(out, "--out")
    return [point.audio for point in layer_recordings(points, audio_column)]


def _print_sources(separation: Separation, notes: list[str]) -> None:
    count = len(separation.sources)
    typer.echo(
        f"{separation.path}: {count} source{'s' if count != 1 else ''} "
        f"({separation.seconds:.1f} s; separator {separation.separator})"
    )
    for i, source in enumerate(separation.sources, 1):
        others = ", ".join(f"{name} {score:.2f}" for name, score in source.classes[1:])
        typer.echo(
            f"  {i}. {source.label:<16} score {source.classes[0][1]:.2f}  "
            f"share {source.share:.0%}  (also: {others})"
        )
    for note in notes:
        typer.echo(f"note: {note}")


def _write_sources_layer(
    points: Path, out: Path, separations: list[Separation], columns: int
) -> Path:
    """The points layer with source columns, written atomically as a GeoPackage.

    Its features keep the input's FIDs where it has them, so the two layers join on them.
    """
    from geosound.cli.layers import feature_ids, read_points
    from geosound.geo import write_geopackage

    layer = read_points(points)
    fids = feature_ids(points)
    if fids is not None and "fid" not in layer:
        layer.insert(0, "fid", fids)  # GDAL's GeoPackage driver takes a "fid" column as FIDs
    layer["n_sources"] = [len(s.sources) for s in separations]
    for i in range(columns):
        found = [s.sources[i] if i < len(s.sources) else None for s in separations]
        layer[f"source{i + 1}"] = [f.label if f else None for f in found]
        layer[f"score{i + 1}"] = [round(f.classes[0][1], 4) if f else None for f in found]
        layer[f"share{i + 1}"] = [round(f.share, 4) if f else None for f in found]
    return write_geopackage(out, layer, out.stem)


def train_separator_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder.")] = Path("runs/separator"),
    preset: Annotated[str, typer.Option(help="Separator size: tiny or small.")] = "tiny",
    slots: Annotated[
        int, typer.Option("--slots", help="Most sources a recording can yield (N).", min=1)
    ] = 3,
    mixtures: Annotated[
        int, typer.Option("--mixtures", help="Training mixes, encoded once.", min=1)
    ] = 3000,
    epochs: Annotated[int, typer.Option(help="Epochs over the mixes.", min=1)] = 60,
    eval_mixtures: Annotated[
        int, typer.Option("--eval-mixtures", help="Held-out mixes per source count.", min=1)
    ] = 300,
    sweep: SweepOption = 150,
    seed: Annotated[int, typer.Option(help="Seed of the mixes and of training.", min=0)] = 0,
    positives: Annotated[
        str,
        typer.Option(
            "--positives",
            help="Positives of a slot's audio-to-audio loss: class (every source of its class) "
            "or clip (only its own clip, the paper's instance A2A).",
        ),
    ] = "class",
    data_dir: DataDirOption = None,
    sat2sound: Annotated[
        Path | None,
        typer.Option("--sat2sound", help="The space the slots land in (default: shipped)."),
    ] = None,
    threads: ThreadsOption = None,
    device: DeviceOption = None,
    progress: ProgressOption = ProgressMode.bar,
) -> None:
    """Train the AV-GAS separator on mixes of the dev clips; write it and its metrics.

    Writes ``separator.pt`` and ``metrics.json`` (the evaluate-separator figures on mixes of
    the held-out clips) into --out. Rerunning with the same --out resumes.
    """
    check_output_folder(out, "--out")
    if sat2sound is not None:
        check_checkpoint_file(sat2sound, "--sat2sound")
    use_resources(threads, device)
    from geosound.sidecar import write_sidecar
    from geosound.training.separator import SeparatorTrainConfig, run_separator_training

    config = SeparatorTrainConfig(
        preset=preset,
        model={"num_slots": slots},
        train_mixtures=mixtures,
        epochs=epochs,
        eval_mixtures=eval_mixtures,
        sweep_mixtures=sweep,
        seed=seed,
        positives=positives,
    ).validate()
    with progress_reporter(progress, "train-separator") as report:
        outcome = run_separator_training(
            out, config, data_dir, sat2sound=str(sat2sound) if sat2sound else None, progress=report
        )
    metrics = write_sidecar(
        out / "metrics.json",
        "separator training run",
        model_id=outcome.model_id,
        train_config=config.to_dict(),
        metrics=outcome.metrics,
    )
    outputs = [str(outcome.checkpoint), str(metrics)]
    if progress is ProgressMode.json:
        emit_json({"ok": True, "outputs": outputs, "model_id": outcome.model_id})
        return
    typer.echo(_table(outcome.metrics["evaluation"]))
    typer.echo(f"geosound train-separator: wrote {', '.join(outputs)} ({outcome.model_id})")


def evaluate_separator_command(
    model: SeparatorOption = None,
    sat2sound: Sat2SoundOption = None,
    mixtures: Annotated[
        int, typer.Option("--mixtures", help="Held-out mixes per source count.", min=1)
    ] = 300,
    sweep: SweepOption = 150,
    seed: Annotated[int, typer.Option(help="Seeds the mixes.", min=0)] = 0,
    data_dir: DataDirOption = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the figures to this JSON file.")
    ] = None,
    generator_model: Annotated[
        Path | None,
        typer.Option(
            "--generator",
            help="Also score the Class Representation Score (proxy) of this generator's "
            "pictures of 2- and 3-source mixes (a train-generator soundit.pt).",
        ),
    ] = None,
    classifier: Annotated[
        Path | None,
        typer.Option(
            "--classifier",
            help="The land-cover classifier judging those pictures (default: the "
            "landcover_classifier.npz evaluate-generator wrote beside --generator).",
        ),
    ] = None,
    crs_mixtures: Annotated[
        int | None,
        typer.Option(
            "--crs-mixtures",
            help=f"Mixes per source count for the CRS (default {CRS_MIXTURES}).",
            min=1,
        ),
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option(
            "--steps", help=f"DDIM steps of the CRS pictures (default {PICTURE_STEPS}).", min=1
        ),
    ] = None,
    threads: ThreadsOption = None,
    progress: ProgressOption = ProgressMode.bar,
) -> None:
    """Score a separator on mixes of held-out clips (R@k*, source counting; dev figures).

    Beside the separator: the unseparated mix's one embedding, and the clean sources
    (oracle). The eval split is the one the separator's own training config records. With
    --generator, each of those is also drawn as one picture per mix and judged by the
    land-cover classifier: does the picture show every source (Class Representation Score)?
    """
    path = _separator_path(model)
    if sat2sound is not None:
        check_checkpoint_file(sat2sound, "--sat2sound")
    if json_out is not None:
        check_output_file(json_out, "--json")
    if generator_model is not None:
        check_checkpoint_file(generator_model, "--generator")
        classifier = classifier or generator_model.parent / "landcover_classifier.npz"
        check_input_file(classifier, "land-cover classifier", "--classifier")
    check_goes_with(
        "--generator", generator_model, classifier=classifier, crs_mixtures=crs_mixtures,
        steps=steps,
    )  # fmt: skip
    use_resources(threads, None)
    from geosound.atomic import atomic_path
    from geosound.evaluation.separation import evaluate_separator, separation_clips
    from geosound.models.separator_checkpoint import load_separator
    from geosound.progress import stage
    from geosound.space.shared import SharedSpace

    with progress_reporter(progress, "evaluate-separator") as report:
        separator = load_separator(path)
        trained = separator.info.get("train_config", {})
        clips = separation_clips(
            data_dir, float(trained.get("eval_fraction", 0.3)), int(trained.get("seed", 0))
        )
        space = SharedSpace.from_checkpoint(sat2sound)
        judging = (
            _CrsJudges(generator_model, classifier, sat2sound, space)
            if generator_model is not None and classifier is not None
            else None
        )  # loaded and checked before the long evaluation, so a mismatch fails at once
        figures = evaluate_separator(
            separator,
            space,
            clips,
            mixtures=mixtures,
            sweep_mixtures=sweep,
            seed=seed,
            progress=stage(report, 0.0, 0.5 if judging else 1.0),
        )
        if judging is not None:
            figures["class_representation"] = judging.score(
                separator,
                clips,
                crs_mixtures or CRS_MIXTURES,
                seed,
                steps or PICTURE_STEPS,
                stage(report, 0.5, 1.0),
            )
    if json_out is not None:
        with atomic_path(json_out) as tmp:
            tmp.write_text(json.dumps(figures, indent=2) + "\n")
    if progress is ProgressMode.json:
        emit_json({"ok": True, "figures": figures})
        return
    typer.echo(_table(figures))


class _CrsJudges:
    """The generator, how it hears and the classifier of ``evaluate-separator --generator``."""

    def __init__(
        self, generator_path: Path, classifier_path: Path, sat2sound: Path | None,
        space: SharedSpace,
    ) -> None:  # fmt: skip
        from geosound.encoders.base import encoder_from_id
        from geosound.evaluation.generated import LandcoverClassifier
        from geosound.generation.default import knowledge_beside
        from geosound.generation.generator import LandscapeGenerator

        self.generator = LandscapeGenerator.from_files(
            generator_path, knowledge_beside(generator_path)
        )
        self.listener = _listener(self.generator, sat2sound)
        self.listener.check_sources(space.space_id, space.encoders["audio"].id)
        self.space = space
        self.judge = LandcoverClassifier.load(classifier_path)
        self.image_encoder = encoder_from_id(self.judge.encoder_id)

    def score(
        self, separator: LoadedSeparator, clips: pd.DataFrame, mixtures: int, seed: int,
        steps: int, report: Progress | None,
    ) -> dict[str, object]:  # fmt: skip
        """The CRS rows for 2 and 3 sources (geosound/generation/class_representation.py)."""
        from geosound.evaluation.separation import separated_mixtures
        from geosound.generation.class_representation import class_representation
        from geosound.generation.generator import GenerationOptions
        from geosound.progress import stage

        loaded = self.generator.loaded
        rows: dict[str, object] = {
            "generator": loaded.model_id,
            "via": loaded.via,
            "classifier": {"encoder": self.judge.encoder_id, "classes": list(self.judge.classes)},
        }
        for i, k in enumerate((2, 3)):
            if report is not None:
                report(i / 2, f"Class Representation Score: {k} sources")
            mixes = separated_mixtures(separator, self.space, clips, k, mixtures, seed)
            rows[f"{k} sources"] = class_representation(
                self.generator, self.listener, self.space, mixes, self.judge, self.image_encoder,
                GenerationOptions(steps=steps, seed=seed), stage(report, i / 2, (i + 1) / 2),
            )  # fmt: skip
        rows["note"] = (
            "proxy, dev figures: a picture of a held-out mix counts when each source has a land "
            "cover it is plausible for (LANDCOVER_SOUNDS) among the picture's k most probable "
            "classes under the land-cover classifier, k the number of sources; 'shuffled' "
            "judges the separator row's pictures against another mix's sources"
        )
        return rows


def _listener(generator: LandscapeGenerator, sat2sound: Path | None) -> Listener:
    """How a generator hears separated sources.

    Through the separator's Sat2Sound (SounDiT), or through its own aligner, which takes no
    Sat2Sound (Sound2Scene).
    """
    from geosound.generation.hearing import Listener

    return Listener(generator.loaded, sat2sound if generator.loaded.via == "sound" else None)


def _table(figures: dict[str, object]) -> str:
    """The figures as a Markdown table (what the closing note and docs quote)."""
    sets = figures["sets"]
    assert isinstance(sets, dict)
    chance = figures["chance"]
    assert isinstance(chance, dict)
    lines = [
        f"separator {figures['separator']} in {figures['space']}: mixes of "
        f"{figures['eval_clips']} held-out clips, {figures['classes']} classes (dev figures)",
        "",
        "| set | mixes | R@k* separator (proto / text) | R@k* mix | R@k* oracle | chance "
        "| counting separator | counting mix |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in sets.items():
        k = int(name.split()[0])
        recall = row["recall"]
        lines.append(
            f"| {name} | {row['mixes']} "
            f"| {recall['separator']['prototypes']:.3f} / {recall['separator']['text']:.3f} "
            f"| {recall['mix']['prototypes']:.3f} / {recall['mix']['text']:.3f} "
            f"| {recall['oracle']['prototypes']:.3f} / {recall['oracle']['text']:.3f} "
            f"| {chance[f'R@{k}*']:.4f} "
            f"| {row['counting']['separator']:.3f} | {row['counting']['mix']:.3f} |"
        )
    crs = figures.get("class_representation")
    if isinstance(crs, dict):
        lines += [
            "",
            f"Class Representation Score (proxy) of {crs['generator']} (via {crs['via']}) "
            "pictures, one per held-out mix:",
            "",
            "| set | mixes | separator | mix | oracle | shuffled |",
            "|---|---|---|---|---|---|",
        ]
        for name in ("2 sources", "3 sources"):
            row, score = crs[name], crs[name]["crs"]
            lines.append(
                f"| {name} | {row['mixes']} | {score['separator']:.3f} | {score['mix']:.3f} "
                f"| {score['oracle']:.3f} | {score['shuffled']:.3f} |"
            )
    return "\n".join(lines)
