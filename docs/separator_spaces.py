"""Which space tells sound classes apart: nearest-class-mean on the held-out ESC-50 clips.

docs/separation.md explains why the separator's slots live in the audio encoder's pooled space
and not in the shared Sat2Sound space. This prints the evidence: each of the 60 dev eval clips
is named by the nearest of the 32 class means of the 108 train clips (unit vectors, cosine),
once in the audio encoder's pooled space and twice in a Sat2Sound model's shared space: each
clip embedded as the model embeds any recording (all its tokens through the audio side), and
its pooled vector lifted as a one-token recording, as the separator's slots are.

    .venv/bin/python docs/separator_spaces.py                          # the shipped model
    .venv/bin/python docs/separator_spaces.py --checkpoint previous.pt # e.g. an older model
"""

from __future__ import annotations

import argparse

import numpy as np

from geosound.data.feature_cache import FeatureCache
from geosound.encoders import DEFAULT_ENCODERS, get_encoder
from geosound.evaluation.separation import (
    class_prototypes,
    clip_vectors,
    lift_to_shared,
    separation_clips,
)
from geosound.space.shared import load_shared_space


def nearest_class_mean_accuracy(
    vectors: np.ndarray, labels: np.ndarray, train: np.ndarray
) -> float:
    """Share of the non-train clips whose nearest train class mean is their own class."""
    classes, means = class_prototypes(vectors[train], labels[train])
    unit = vectors[~train] / np.linalg.norm(vectors[~train], axis=1, keepdims=True)
    named = np.asarray(classes)[np.argmax(unit @ means.T, axis=1)]
    return float(np.mean(named == labels[~train]))


def main() -> None:
    """Print both accuracies (dev figures)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="Sat2Sound checkpoint (default: the shipped one)")
    args = parser.parse_args()
    clips = separation_clips()
    labels = clips["label"].astype(str).to_numpy()
    train = (clips["split"] == "train").to_numpy()
    audio = clip_vectors(FeatureCache(None, get_encoder(DEFAULT_ENCODERS["audio"])), clips["path"])
    space = load_shared_space(args.checkpoint)
    rows = {
        f"audio encoder ({DEFAULT_ENCODERS['audio']}), pooled": audio,
        f"{space.space_id}, recordings": space.embed_recordings(clips["path"].tolist()),
        f"{space.space_id}, pooled vector lifted": lift_to_shared(space, audio),
    }
    print(f"Nearest-class-mean accuracy: {int(train.sum())} train clips, {int((~train).sum())} "
          f"eval clips, {len(set(labels))} classes (dev figures)")
    for name, vectors in rows.items():
        print(f"  {name}: {nearest_class_mean_accuracy(vectors, labels, train):.3f}")


if __name__ == "__main__":
    main()
