"""Does a generator's sound condition carry the land cover? A check on its training pairs.

docs/soundit.md argues that SounDiT's low PSS-scene is the generator's, not the pairs': the
sound embeddings a run conditions on do tell the paired tile's land cover apart. This prints
the evidence from a run's data bundle (``generator_data.npz``, the first thing
``geosound train-generator`` writes): for the eval-split pairs of the five RGB land covers,
the share whose tile class is found from the pair's sound embedding alone by

* a 1-nearest-neighbour vote over the train pairs' sound embeddings (cosine), and
* a logistic-regression probe trained on them (``geosound.evaluation.zero_shot.linear_probe``),
* and what GeoKD retrieval sees: a vote of the k most similar sounds among *all* the train
  pairs (every land cover, as the knowledge base holds them), for k = 1, 20 and 50
  (:func:`geosound.generation.geokd.consensus` counts votes the same way),

beside the most any hearing of these pairs could give: an oracle told the sound classes of the
concepts each tile drew (:func:`geosound.data.concepts.landcover_bound`, exact from the
concept tables; the classes equally likely).

    .venv/bin/python docs/sound_carries_class.py --data runs/soundit
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np

from geosound.data.concepts import landcover_bound
from geosound.evaluation.suite import RGB_CLASSES
from geosound.evaluation.zero_shot import linear_probe
from geosound.training.generator import GeneratorData


def main() -> None:
    """Print the chance level and both shares (dev figures)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("runs/soundit"),
                        help="a train-generator run folder, or its generator_data.npz")
    args = parser.parse_args()
    bundle = args.data / "generator_data.npz" if args.data.is_dir() else args.data
    data = GeneratorData.load(bundle)
    labels = data.labels.astype(str)
    chosen = np.isin(labels, RGB_CLASSES)
    train = chosen & (data.pair_splits == "train")
    held_out = chosen & (data.pair_splits == "eval")
    vectors = data.sound_embedding / np.linalg.norm(data.sound_embedding, axis=1, keepdims=True)
    nearest = np.argmax(vectors[held_out] @ vectors[train].T, axis=1)
    vote = float(np.mean(labels[train][nearest] == labels[held_out]))
    probe = float(np.mean(
        linear_probe(vectors[train], labels[train], vectors[held_out]) == labels[held_out]
    ))
    print(f"{bundle}: {int(held_out.sum())} eval pairs of {', '.join(RGB_CLASSES)} against "
          f"{int(train.sum())} train pairs (dev figures)")
    print(f"  chance {1 / len(RGB_CLASSES):.3f}; 1-nearest-neighbour vote {vote:.3f}; "
          f"logistic regression {probe:.3f}")
    every = data.pair_splits == "train"
    ranked = np.argsort(-(vectors[held_out] @ vectors[every].T), axis=1)
    votes = []
    for k in (1, 20, 50):
        nearest_labels = labels[every][ranked[:, :k]]
        winners = [Counter(row).most_common(1)[0][0] for row in nearest_labels]
        votes.append(f"{k} nearest {np.mean(np.array(winners) == labels[held_out]):.3f}")
    print(f"  vote among all {int(every.sum())} train pairs: {'; '.join(votes)}")
    print(f"  an oracle told the sound classes each tile drew (the pairs' own bound): "
          f"{landcover_bound(RGB_CLASSES):.3f}")


if __name__ == "__main__":
    main()
