"""The Sat2Sound checkpoints shipped in the package: safe to load, and their figures hold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from geosound.config import assets_dir
from geosound.encoders import DEFAULT_ENCODERS, get_encoder
from geosound.models.checkpoint import load_checkpoint
from geosound.models.default import DEFAULT_CHECKPOINT, NO_CODEBOOK_CHECKPOINT


@pytest.mark.parametrize("name", [DEFAULT_CHECKPOINT, NO_CODEBOOK_CHECKPOINT])
def test_shipped_checkpoints_load_with_weights_only(name: str):
    path = assets_dir() / name
    assert path.stat().st_size < 20e6
    payload = torch.load(path, map_location="cpu", weights_only=True)
    assert payload["format"] == "geosound-sat2sound"
    loaded = load_checkpoint(path)
    assert loaded.encoders == {m: get_encoder(n).id for m, n in DEFAULT_ENCODERS.items()}
    assert loaded.model.config.use_codebook is (name == DEFAULT_CHECKPOINT)
    assert loaded.info["train_config"]["seed"] == 0
    assert "Sat2Sound" in loaded.info["metrics"]


@pytest.mark.slow
@pytest.mark.devdata
def test_evaluate_reproduces_the_recorded_figures(dev_data: Path, tmp_path: Path, run_cli):
    """`geosound evaluate` rebuilds the eval pairs from the checkpoint's own config and must
    find the figures recorded at training time (same pairs, same features, same model)."""
    result = run_cli(
        "evaluate",
        "--work",
        str(tmp_path / "work"),
        "--data-dir",
        str(dev_data),
        "--progress",
        "json",
    )
    assert result.returncode == 0, result.stderr
    table = json.loads(result.stdout.splitlines()[-1])["table"]
    recorded = load_checkpoint(assets_dir() / DEFAULT_CHECKPOINT).info["metrics"]
    for direction, row in recorded["Sat2Sound"].items():
        line = next(
            line
            for line in table.splitlines()
            if line.startswith("| Sat2Sound (") and f"| {direction} |" in line
        )
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert float(cells[-1]) == pytest.approx(row["cR@10"], abs=0.02)
        assert float(cells[4]) == pytest.approx(row["R@10"], abs=0.02)
    assert "| linear map (untrained encoders) |" in table and "| chance |" in table
    assert "| no codebook (" in table
