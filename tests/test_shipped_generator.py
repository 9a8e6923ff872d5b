"""The SounDiT generator shipped in the package: safe to load, made by the default recipe, in
the shipped Sat2Sound's space, with its knowledge base, and drawing without ``--model``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rasterio
import soundfile as sf
import torch

from geosound.config import assets_dir
from geosound.generation.default import (
    DEFAULT_GENERATOR,
    DEFAULT_KNOWLEDGE,
    default_generator_path,
    knowledge_beside,
)
from geosound.generation.geokd import KnowledgeBase
from geosound.models.default import load_default_model
from geosound.models.soundit_checkpoint import load_generator
from geosound.training.generator import GeneratorTrainConfig

SIZE_LIMIT = 30e6
"""Issue 10 item 7: the shipped generator is at most 30 MB, its knowledge base included."""


def test_shipped_generator_loads_with_weights_only_and_fits_the_size_limit() -> None:
    path, knowledge = assets_dir() / DEFAULT_GENERATOR, assets_dir() / DEFAULT_KNOWLEDGE
    assert path.stat().st_size + knowledge.stat().st_size <= SIZE_LIMIT
    payload = torch.load(path, map_location="cpu", weights_only=True)
    assert payload["model_id"].startswith("soundit-")
    loaded = load_generator(default_generator_path())
    assert loaded.model_id == payload["model_id"] and loaded.via == "sound"
    # It hears through the shipped Sat2Sound: a retrained Sat2Sound means a retrained generator.
    shipped_space = f"sat2sound:{load_default_model().model_id}"
    assert loaded.sound_space == shipped_space
    # Made by `geosound train-generator` with its defaults, so that command remakes it.
    assert loaded.info["train_config"] == GeneratorTrainConfig().to_dict()


def test_shipped_knowledge_base_belongs_to_the_shipped_generator() -> None:
    loaded = load_generator(default_generator_path())
    knowledge_path = knowledge_beside(default_generator_path())
    assert knowledge_path == assets_dir() / DEFAULT_KNOWLEDGE
    knowledge = KnowledgeBase.load(knowledge_path)
    assert knowledge.space_id == loaded.sound_space
    assert len(knowledge) > 1000 and knowledge.latents.shape[1:] == (4, 16, 16)
    assert set(knowledge.scenes) <= set(loaded.scenes)


def test_generate_without_a_model_uses_the_shipped_one(tmp_path: Path, run_cli) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(5 * 16000) / 16000
    clip = tmp_path / "tone.wav"
    sf.write(clip, 0.3 * np.sin(2 * np.pi * 440 * t) + 0.03 * rng.normal(size=t.size), 16000)
    out = tmp_path / "landscape.tif"
    result = run_cli("generate", "--audio", str(clip), "--lon", "9.19", "--lat", "45.46",
                     "--steps", "4", "-o", str(out), "--progress", "none")  # fmt: skip
    assert result.returncode == 0, result.stderr
    with rasterio.open(out) as picture:
        assert picture.count == 3 and (picture.width, picture.height) == (64, 64)
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["model_id"] == load_generator(default_generator_path()).model_id
    assert side["knowledge"] == str(assets_dir() / DEFAULT_KNOWLEDGE)
    assert side["scene_source"] == "retrieved" and side["layout"] is not None
