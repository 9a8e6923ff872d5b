"""How SounDiT's sampler should be set: a sweep of RAG strength, voters and guidance scales.

``strength`` is the share of the DDIM schedule run from the retrieved layout latent (1: from
pure noise); ``voters`` how many retrieved knowledge-base entries vote on the scene and the
layout (1: the nearest entry alone); the scene and sound scales weigh classifier-free
guidance. For each combination of settings this draws the held-out sounds
of ``geosound evaluate-generator`` (same plan, classifier and reference) and their
shuffled-sound control, and prints PSS-scene (proxy), FD-EffNet and diversity. Dev figures:
the defaults of :class:`geosound.generation.generator.GenerationOptions` were chosen from this
table, so the dev eval sounds are no longer unseen for them.

    .venv/bin/python docs/soundit_rag_sweep.py --data runs/soundit
    .venv/bin/python docs/soundit_rag_sweep.py --strength 0.4 --voters 50 --scene-scale 1.5 3 6
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from geosound.generation.evaluation import EvaluationSettings, score_variants
from geosound.generation.generator import GenerationOptions, LandscapeGenerator
from geosound.generation.sampling import GuidanceScales
from geosound.training.generator import GeneratorData


def main() -> None:
    """Print one Markdown row per setting (dev figures; PSS-scene is a proxy)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("runs/soundit"),
        help="a train-generator run folder (soundit.pt, geokd.npz, its data)",
    )
    parser.add_argument("--strength", type=float, nargs="+", default=[0.3, 0.4, 0.5, 0.7, 1.0])
    parser.add_argument("--voters", type=int, nargs="+", default=[1, 50])
    default = GuidanceScales()
    parser.add_argument("--scene-scale", type=float, nargs="+", default=[default.scene])
    parser.add_argument("--sound-scale", type=float, nargs="+", default=[default.sound])
    args = parser.parse_args()
    run = args.data
    generator = LandscapeGenerator.from_files(run / "soundit.pt", run / "geokd.npz")
    data = GeneratorData.load(run / "generator_data.npz")
    base = GenerationOptions()
    variants = {
        f"strength {strength:g}, voters {voters}, scales {sound:g} / {scene:g}": (
            dataclasses.replace(
                base, strength=strength, voters=voters, scales=GuidanceScales(sound, scene)
            )
        )
        for strength in args.strength
        for voters in args.voters
        for sound in args.sound_scale
        for scene in args.scene_scale
    }
    rows = score_variants(
        generator, data, variants, EvaluationSettings(), run / "landcover_classifier.npz"
    )
    print(
        f"SounDiT {generator.loaded.model_id}; {base.steps} DDIM steps "
        "(dev figures; PSS is a proxy)"
    )
    print()
    print(
        "| strength, voters, guidance sound / scene | PSS-scene (proxy) | shuffled sounds "
        "| FD-EffNet | diversity |"
    )
    print("|---|---|---|---|---|")
    for conditioned, shuffled in rows:
        c, sh = conditioned.scores, shuffled.scores
        assert c is not None and sh is not None
        print(
            f"| {conditioned.name} | {c.pss_scene:.3f} | {sh.pss_scene:.3f} | "
            f"{c.fd_effnet:.1f} | {c.diversity:.2f} |"
        )


if __name__ == "__main__":
    main()
