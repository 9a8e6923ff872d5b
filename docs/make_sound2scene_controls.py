"""Controls of the Sound2Scene path: mix two places' sounds, turn one up, interpolate.

Sound2Scene (paper 004) shows that its pictures follow the sound: mixing two recordings draws
what both suggest, a louder source takes over, and interpolating two aligned embeddings moves
the picture from one place to the other. This script measures the same on held-out dev
sounds with a ``train-generator --condition visual`` run, and draws
``docs/sound2scene_controls.png``:

    .venv/bin/python docs/make_sound2scene_controls.py --run runs/visual

The sounds are those ``geosound evaluate-generator`` holds out (the plan's first
``--per-class`` eval sounds of each of the 5 RGB land covers); every unordered pair of land
covers (a, b) is mixed sound by sound. A held-out sound is a sonified mix (a recipe of
loudness-normalised clips), so mixing two is one recipe holding both sets of sources, and
turning b up or down shifts the loudness targets of its sources by that many dB; the mix is
rendered, heard (audio encoder → the run's aligner) and drawn as ``geosound generate`` draws
it (RAG and the retrieved scene on, default guidance, 25 DDIM steps).

Two figures per step, averaged over the mixtures (dev figures):

* ``picture share b``: P(b) / (P(a) + P(b)) of the generated picture under the land-cover
  classifier of ``evaluate-generator`` (a proxy, and one reading the same EfficientNet
  features the generator is conditioned in);
* ``aligned nearer b``: the share of mixtures whose aligned vector is nearer (cosine) to the
  mean image embedding of b's train tiles than to a's — no picture involved.

Options: ``--per-class`` (2), ``--steps`` (25), ``--json`` (docs/sound2scene_controls.json),
``-o`` (docs/sound2scene_controls.png), ``--data-dir`` (the dev data). Bad input: one line,
exit 2.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from geosound.atomic import atomic_path
from geosound.data.recipe import MixRecipe, is_recipe
from geosound.encoders import DEFAULT_ENCODERS, get_encoder
from geosound.errors import DataError, GeosoundError, InputError
from geosound.evaluation.generated import LandcoverClassifier
from geosound.evaluation.suite import RGB_CLASSES
from geosound.generation.evaluation import EvaluationSettings, check_held_out, plan_evaluation
from geosound.generation.generator import GenerationOptions, LandscapeGenerator
from geosound.generation.hearing import Listener
from geosound.models.soundit import vector_condition
from geosound.training.generator import GeneratorData

GAINS: tuple[float | None, ...] = (None, -18.0, -12.0, -6.0, 0.0, 6.0)
"""Loudness of b's sources relative to their own targets, in dB (None: b left out)."""
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
"""Interpolation weights of b's aligned vector."""


@dataclass
class Pairing:
    """Two held-out sounds of two land covers, mixed and interpolated."""

    a: str
    b: str
    recipe_a: MixRecipe
    recipe_b: MixRecipe
    seed: int


def eval_recipes(
    data: GeneratorData, train_config: dict[str, Any], data_dir: Path | None
) -> dict[str, MixRecipe]:
    """The mix recipe of every eval pair, rebuilt from the run's recorded split settings."""
    from geosound.data.sonify import sonify_dev_sets

    pairs, _ = sonify_dev_sets(
        data_dir,
        variants=train_config["variants"],
        seed=train_config["seed"],
        eval_fraction=train_config["eval_fraction"],
        imagery=train_config["imagery"],
        sounds=train_config["sounds"],
        mix_bank=train_config["mix_bank"] or None,
    )
    audio = dict(zip(pairs["id"].astype(str), pairs["audio"].astype(str), strict=True))
    missing = [i for i in data.pair_ids if str(i) not in audio]
    if missing:
        raise DataError(f"the dev data no longer gives pair {missing[0]}: rerun train-generator")
    return {
        str(i): MixRecipe.from_json(audio[str(i)])
        for i in data.pair_ids
        if is_recipe(audio[str(i)])
    }


def both(a: MixRecipe, b: MixRecipe, gain_db: float | None) -> MixRecipe:
    """a with b mixed in ``gain_db`` from its own loudness (None: a alone)."""
    return a if gain_db is None else a.mixed_with(b, gain_db)


class Controls:
    """Hears recipes, draws pictures and scores both figures."""

    def __init__(self, run: Path, steps: int) -> None:
        self.data = GeneratorData.load(run / "generator_data.npz")
        self.generator = LandscapeGenerator.from_files(run / "soundit.pt", run / "geokd.npz")
        if self.generator.loaded.aligner is None:
            raise InputError("not a Sound2Scene run: train it with --condition visual", run)
        self.listener = Listener(self.generator.loaded)
        self.image = get_encoder(DEFAULT_ENCODERS["image"])
        self.classifier = LandcoverClassifier.load(run / "landcover_classifier.npz")
        self.steps = steps
        assert self.data.image_embedding is not None  # a visual run's bundle has them
        train = self.data.image_splits == "train"
        tile_labels = self.data.per_tile(self.data.labels.astype(str))
        units = F.normalize(torch.from_numpy(self.data.image_embedding), dim=-1)
        self.centroids = {
            label: F.normalize(
                units[torch.from_numpy(train & (tile_labels == label))].mean(0), dim=0
            )
            for label in RGB_CLASSES
        }

    def hear(self, recipes: Sequence[MixRecipe]) -> torch.Tensor:
        """Aligned unit vectors of rendered recipes, heard as ``geosound generate`` hears."""
        return torch.cat([self.listener.hear(f"mix {i}", recipe.render()).condition.embedding
                          for i, recipe in enumerate(recipes)])  # fmt: skip

    def draw(self, vector: torch.Tensor, seed: int) -> np.ndarray:
        """A picture of one aligned vector, as ``geosound generate`` draws it."""
        options = GenerationOptions(steps=self.steps, seed=seed)
        return self.generator.generate(vector_condition(vector[None]), options=options).pixels

    def share_b(self, pictures: np.ndarray, a: str, b: str) -> np.ndarray:
        """P(b) / (P(a) + P(b)) of each picture under the land-cover classifier."""
        probabilities = self.classifier.probabilities(
            self.image.encode(list(pictures)).pooled.numpy()
        )
        columns = list(self.classifier.classes)
        pa, pb = probabilities[:, columns.index(a)], probabilities[:, columns.index(b)]
        return np.asarray(pb / np.maximum(pa + pb, 1e-12))

    def nearer_b(self, vectors: torch.Tensor, a: str, b: str) -> np.ndarray:
        """Whether each aligned vector is nearer b's train-tile centroid than a's."""
        return np.asarray((vectors @ self.centroids[b] > vectors @ self.centroids[a]).numpy())


def pairings(controls: Controls, per_class: int, data_dir: Path | None) -> list[Pairing]:
    """Every unordered pair of RGB land covers, matched sound by sound (held-out sounds)."""
    data, generator = controls.data, controls.generator
    settings = EvaluationSettings(classes=RGB_CLASSES, per_class=per_class, per_sound=1)
    plan = plan_evaluation(data, settings)
    check_held_out(generator, data, plan, "the run's soundit.pt")
    recipes = eval_recipes(data, generator.loaded.info["train_config"], data_dir)
    # One picture per sound (per_sound = 1): slot i is sound i, with its own noise seed.
    slots = {label: np.flatnonzero(plan.slot_labels == label) for label in plan.classes}

    def recipe(slot: int) -> MixRecipe:
        return recipes[str(data.pair_ids[plan.sound_rows[plan.slot_sound[slot]]])]

    out = []
    for a, b in itertools.combinations(plan.classes, 2):
        for slot_a, slot_b in zip(slots[a], slots[b], strict=True):
            out.append(Pairing(a, b, recipe(slot_a), recipe(slot_b), int(plan.slot_seed[slot_a])))
    return out


def run_controls(args: argparse.Namespace) -> dict[str, Any]:
    """Both sweeps over every pairing; returns the report and writes the figure."""
    controls = Controls(args.run, args.steps)
    matched = pairings(controls, args.per_class, args.data_dir)
    gain_rows: dict[str, list[list[float]]] = {_gain(g): [[], []] for g in (*GAINS, "b only")}
    weight_rows: dict[str, list[list[float]]] = {f"{w:.2f}": [[], []] for w in WEIGHTS}
    examples: list[tuple[str, list[str], np.ndarray]] = []
    for n, pairing in enumerate(matched):
        print(f"{n + 1}/{len(matched)}: {pairing.a} + {pairing.b}", file=sys.stderr)
        heard = controls.hear([*(both(pairing.recipe_a, pairing.recipe_b, g) for g in GAINS),
                               pairing.recipe_b])  # fmt: skip
        ends = heard[[0, -1]]
        blends = F.normalize(torch.stack([(1 - w) * ends[0] + w * ends[1] for w in WEIGHTS]), -1)
        pictures = {}
        for name, rows, vectors in [("gain", gain_rows, heard), ("blend", weight_rows, blends)]:
            pictures[name] = np.stack([controls.draw(v, pairing.seed) for v in vectors])
            shares = controls.share_b(pictures[name], pairing.a, pairing.b)
            nearer = controls.nearer_b(vectors, pairing.a, pairing.b)
            for key, share, near in zip(rows, shares, nearer, strict=True):
                rows[key][0].append(float(share))
                rows[key][1].append(float(near))
        if n % max(1, len(matched) // 3) == 0 and len(examples) < 6:
            pair = f"a {pairing.a}\nb {pairing.b}"
            examples.append((pair, list(gain_rows), pictures["gain"]))
            examples.append((pair, [f"a→b {w:.2f}" for w in WEIGHTS], pictures["blend"]))
    report = {
        "product": "Sound2Scene controls",
        "model_id": controls.generator.loaded.model_id,
        "mixtures": len(matched),
        "steps": args.steps,
        "note": "dev figures on held-out (eval split) sounds; 'picture share b' is a proxy "
        "(land-cover classifier on EfficientNet-Lite0 features, the space the generator is "
        "conditioned in)",
        "gain": [_row(k, v) for k, v in gain_rows.items()],
        "interpolation": [_row(k, v) for k, v in weight_rows.items()],
    }
    _figure(examples, args.out, controls.generator.loaded.model_id)
    return report


def _gain(gain: float | str | None) -> str:
    return "a only" if gain is None else gain if isinstance(gain, str) else f"b at {gain:+.0f} dB"


def _row(key: str, values: list[list[float]]) -> dict[str, Any]:
    return {
        "step": key,
        "picture_share_b": round(float(np.mean(values[0])), 3),
        "aligned_nearer_b": round(float(np.mean(values[1])), 3),
    }


def _figure(rows: list[tuple[str, list[str], np.ndarray]], out: Path, model_id: str) -> None:
    """Each example pairing twice: the gain sweep, then the interpolation."""
    columns = max(len(pictures) for _, _, pictures in rows)
    figure, axes = plt.subplots(
        len(rows), columns, figsize=(columns * 1.2, len(rows) * 1.35), squeeze=False
    )
    for r, (pair, titles, pictures) in enumerate(rows):
        for c, axis in enumerate(axes[r]):
            if c >= len(pictures):
                axis.axis("off")
                continue
            axis.imshow(np.clip(pictures[c].transpose(1, 2, 0), 0, 1))
            axis.set_xticks([])
            axis.set_yticks([])
            axis.set_title(titles[c], fontsize=6)
        axes[r, 0].set_ylabel(pair, fontsize=6)
    figure.suptitle(
        f"Sound2Scene ({model_id}) on held-out dev sounds: a mixed with b as b gets louder, "
        "then a's and b's aligned vectors interpolated",
        fontsize=7,
    )
    figure.tight_layout()
    with atomic_path(out) as tmp:
        figure.savefig(tmp, dpi=110, format="png")


def format_report(report: dict[str, Any]) -> str:
    """The two Markdown tables."""
    lines = [
        f"{report['model_id']}, {report['mixtures']} pairs of held-out sounds (dev figures)",
        "",
        "| step | picture share b (proxy) | aligned nearer b |",
        "|---|---|---|",
    ]
    for row in [
        *report["gain"],
        *[{**r, "step": f"interpolation {r['step']}"} for r in report["interpolation"]],
    ]:
        lines.append(
            f"| {row['step']} | {row['picture_share_b']:.3f} | {row['aligned_nearer_b']:.3f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/visual"))
    parser.add_argument("--per-class", type=int, default=2)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--json", type=Path, default=Path("docs/sound2scene_controls.json"))
    parser.add_argument("-o", "--out", type=Path, default=Path("docs/sound2scene_controls.png"))
    args = parser.parse_args()
    try:
        for name in ("generator_data.npz", "soundit.pt", "geokd.npz", "landcover_classifier.npz"):
            if not (args.run / name).is_file():
                raise InputError(
                    f"no {name}: run train-generator --condition visual and "
                    "evaluate-generator on this run first",
                    args.run,
                )
        report = run_controls(args)
    except GeosoundError as error:
        print(f"make_sound2scene_controls: {error}", file=sys.stderr)
        return error.exit_code
    with atomic_path(args.json) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    print(format_report(report))
    print(f"wrote {args.out} and {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
