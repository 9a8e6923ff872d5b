"""Rebuild ``docs/generator_grid.png``: pictures SounDiT draws from held-out sounds, by class.

One row per land cover of the EuroSAT RGB tiles. On the left, pictures generated from
held-out (eval split) sounds paired with tiles of that class — the generator never saw these
sounds nor their tiles; on the right, real eval tiles of the class, for comparison. The
sounds and noise seeds are those ``geosound evaluate-generator`` draws
(:func:`geosound.generation.evaluation.plan_evaluation`, one picture per sound), and the same
check refuses a generator whose knowledge base holds any of them. Every picture is drawn as
``geosound generate`` draws it (no scene given: the retrieved one is used, RAG on, the
default guidance):

    .venv/bin/python docs/make_generator_grid.py --run runs/my_run      # a train-generator run
    .venv/bin/python docs/make_generator_grid.py                        # the shipped generator

Both read ``RUN/generator_data.npz`` (``--run``, default ``runs/soundit``), which defines the
held-out sounds. The shipped generator has no data bundle of its own, so the second command
still needs ``runs/soundit/generator_data.npz``: the bundle of a ``train-generator`` run with
the default settings (they give the shipped generator's split), its ``soundit.pt`` removed or
overridden, since ``--model`` defaults to ``RUN/soundit.pt`` and only without one to the shipped
generator. Options: ``--per-class`` (4), ``--steps`` (25), ``--seed`` (0), ``-o``
(docs/generator_grid.png). Bad input is one line and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from geosound.atomic import atomic_path
from geosound.errors import GeosoundError
from geosound.evaluation.suite import RGB_CLASSES
from geosound.generation.default import RUN_CHECKPOINT, default_generator_path, knowledge_beside
from geosound.generation.evaluation import (
    EvaluationSettings,
    check_held_out,
    heard,
    plan_evaluation,
)
from geosound.generation.generator import GenerationOptions, LandscapeGenerator
from geosound.training.generator import GeneratorData


def draw_grid(args: argparse.Namespace) -> Path:
    """Draw the grid the options ask for and write it; returns the file written."""
    data = GeneratorData.load(args.run / "generator_data.npz")
    model = args.model or (
        args.run / RUN_CHECKPOINT
        if (args.run / RUN_CHECKPOINT).is_file()
        else default_generator_path()
    )
    generator = LandscapeGenerator.from_files(model, knowledge_beside(model))
    settings = EvaluationSettings(classes=RGB_CLASSES, per_class=args.per_class, per_sound=1,
                                  seed=args.seed)  # fmt: skip
    plan = plan_evaluation(data, settings)
    check_held_out(generator, data, plan, str(model))
    for note in plan.notes:
        print(f"note: {note}", file=sys.stderr)
    n = args.per_class
    figure, axes = plt.subplots(
        len(plan.classes), 2 * n, figsize=(2 * n * 1.1, len(plan.classes) * 1.2), squeeze=False
    )
    for row, label in enumerate(plan.classes):
        # One slot per sound (per_sound = 1): slot i is sound i, with its own noise seed.
        slots = np.flatnonzero(plan.slot_labels == label)
        for column, slot in enumerate(slots):
            pair = int(plan.sound_rows[plan.slot_sound[slot]])
            options = GenerationOptions(steps=args.steps, seed=int(plan.slot_seed[slot]))
            picture = generator.generate(heard(generator, data, np.array([pair])), options=options)
            axes[row, column].imshow(np.clip(picture.pixels.transpose(1, 2, 0), 0, 1))
            axes[row, n + column].imshow(data.images[data.pair_image[pair]].transpose(1, 2, 0))
        axes[row, 0].set_ylabel(label, fontsize=8)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    axes[0, 0].set_title("generated from held-out sounds", fontsize=8, loc="left")
    axes[0, n].set_title("the real tiles those sounds were paired with", fontsize=8, loc="left")
    kind = "SounDiT" if generator.loaded.via == "sound" else "Sound2Scene"
    figure.suptitle(f"{kind} ({generator.loaded.model_id}), {args.steps} DDIM steps, dev data",
                    fontsize=9)  # fmt: skip
    figure.tight_layout()
    with atomic_path(args.out) as tmp:
        figure.savefig(tmp, dpi=110, format=args.out.suffix.lstrip(".") or "png")
    return Path(args.out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/soundit"))
    parser.add_argument("--model", type=Path, help="a soundit.pt (default: RUN/soundit.pt, "
                        "else the shipped generator)")  # fmt: skip
    parser.add_argument("--per-class", type=int, default=4)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--out", type=Path, default=Path("docs/generator_grid.png"))
    args = parser.parse_args()
    try:
        out = draw_grid(args)
    except GeosoundError as error:
        print(f"make_generator_grid: {error}", file=sys.stderr)
        return error.exit_code
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
