"""`geosound evaluate` on the dev data: the zero-shot tables, their rows and their items."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest


def _row(table: str, name: str) -> list[str]:
    line = next(line for line in table.splitlines() if line.startswith(f"| {name}"))
    return [cell.strip() for cell in line.strip("|").split("|")][1:]


@pytest.mark.slow
@pytest.mark.devdata
def test_evaluate_prints_the_zero_shot_tables(dev_data: Path, tmp_path: Path, run_cli):
    result = run_cli(
        "evaluate", "--work", str(tmp_path / "work"), "--data-dir", str(dev_data),
        "--no-retrieval", "--progress", "json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    table = json.loads(result.stdout.splitlines()[-1])["table"]
    # The shipped model's split (seed 0, 30 %): 54 of 181 Sentinel-2 tiles, 60 of 168 clips;
    # the RGB tiles were never trained on and are split 2100 / 900 for the probe.
    assert "54 10-class Sentinel-2 eval tiles" in table and "900 5-class RGB eval tiles" in table
    assert "60 unseen clips" in table
    chance = _row(table, "chance (uniform guess)")
    assert float(chance[0]) == pytest.approx(0.1) and float(chance[1]) == pytest.approx(0.2)
    probe = [float(v) for v in _row(table, "linear probe, frozen image features")[:2]]
    assert probe[0] > 0.3 and probe[1] > 0.5  # the frozen features do know land cover
    figures = [float(v) for v in re.findall(r"\| (\d\.\d{3})", table)]
    assert figures and all(0.0 <= v <= 1.0 for v in figures)
    for heading in ("Zero-shot land cover", "Image→audio class-level precision@10",
                    "Audio→text zero-shot", "confusion matrix"):  # fmt: skip
        assert heading in table
    assert "| Sat2Sound (" in table and "| linear map (untrained encoders) |" in table
    assert "R@10%" not in table  # --no-retrieval
