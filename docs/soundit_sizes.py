"""The SounDiT model-size table of docs/soundit.md: parameters and forward FLOPs per preset.

FLOPs are counted by torch's ``FlopCounterMode`` (``count_flops``) for one 16×16×4 latent with
5 sound tokens and 1 scene token; a multiply-add counts two. Run:
    .venv/bin/python docs/soundit_sizes.py
"""

from __future__ import annotations

from geosound.models.soundit import build_soundit, count_flops, count_parameters


def main() -> None:
    """Print the table as Markdown."""
    print("| preset | hidden | depth | heads | experts | parameters | GFLOPs / image / step |")
    print("|---|---|---|---|---|---|---|")
    for preset, plain in (("tiny", False), ("tiny", True), ("S", False), ("B", False)):
        model = build_soundit(preset, **({"use_moe": False} if plain else {}))
        config = model.config
        name = f"{preset}, plain cross-attention" if plain else preset
        experts = "—" if plain else str(config.num_experts)
        print(
            f"| {name} | {config.hidden_dim} | {config.depth} | {config.heads} | {experts} "
            f"| {count_parameters(model) / 1e6:.2f} M | {count_flops(model) / 1e9:.3g} |"
        )
    extra = count_parameters(build_soundit("tiny", global_conditioning=True)) - count_parameters(
        build_soundit("tiny")
    )
    print(f"\n(`global_conditioning=True` adds {extra:,} parameters to `tiny`.)")


if __name__ == "__main__":
    main()
