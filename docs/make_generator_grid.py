"""Rebuild ``docs/generator_grid.png``: pictures SounDiT draws from held-out sounds, by class.

One row per land cover of the EuroSAT RGB tiles. On the left, pictures generated from
held-out (eval split) sounds paired with tiles of that class — the generator never saw these
sounds nor their tiles; on the right, real eval tiles of the class, for comparison. Every
picture is drawn as ``geosound generate`` draws it (no scene given: the retrieved one is used,
RAG on, the default guidance), seeded:

    .venv/bin/python docs/make_generator_grid.py --run runs/soundit     # a train-generator run
    .venv/bin/python docs/make_generator_grid.py                        # the shipped generator

``--run`` gives the run folder whose ``generator_data.npz`` defines the held-out sounds (the
shipped generator was trained with the default settings, so a run with those settings gives
the same split); ``--model`` overrides its checkpoint. Options: ``--per-class`` (4),
``--steps`` (25), ``--seed`` (0), ``-o`` (docs/generator_grid.png).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from geosound.generation.default import RUN_CHECKPOINT, default_generator_path, knowledge_beside
from geosound.generation.generator import GenerationOptions, LandscapeGenerator
from geosound.training.generator import GeneratorData

RGB_CLASSES = ["Forest", "Pasture", "Residential", "Industrial", "River"]
"""The land covers of the 3,000 EuroSAT RGB dev tiles (Sentinel-2 classes have too few tiles)."""


def held_out_rows(data: GeneratorData, label: str, count: int, seed: int) -> np.ndarray:
    """``count`` eval-split pairs of one class, drawn reproducibly."""
    rows = np.flatnonzero((data.pair_splits == "eval") & (data.labels == label))
    return np.random.default_rng(seed).choice(rows, size=min(count, len(rows)), replace=False)


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
    data = GeneratorData.load(args.run / "generator_data.npz")
    model = args.model or (
        args.run / RUN_CHECKPOINT
        if (args.run / RUN_CHECKPOINT).is_file()
        else default_generator_path()
    )
    generator = LandscapeGenerator.from_files(model, knowledge_beside(model))
    n = args.per_class
    figure, axes = plt.subplots(
        len(RGB_CLASSES), 2 * n, figsize=(2 * n * 1.1, len(RGB_CLASSES) * 1.2), squeeze=False
    )
    for row, label in enumerate(RGB_CLASSES):
        rows = held_out_rows(data, label, n, args.seed + row)
        for column, pair in enumerate(rows):
            options = GenerationOptions(steps=args.steps, seed=args.seed + column)
            picture = generator.generate(data.sound([pair]), options=options)
            axes[row, column].imshow(np.clip(picture.pixels.transpose(1, 2, 0), 0, 1))
            real = data.images[data.pair_image[pair]].transpose(1, 2, 0)
            axes[row, n + column].imshow(real)
        axes[row, 0].set_ylabel(label, fontsize=8)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    axes[0, 0].set_title("generated from held-out sounds", fontsize=8, loc="left")
    axes[0, n].set_title("the real tiles those sounds were paired with", fontsize=8, loc="left")
    figure.suptitle(f"SounDiT ({generator.loaded.model_id}), {args.steps} DDIM steps, dev data",
                    fontsize=9)  # fmt: skip
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
