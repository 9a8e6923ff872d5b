"""Real geotagged recordings with imagery: `geosound pairs`, then `geosound train --manifest`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml


@pytest.mark.slow
def test_real_pairs_train_end_to_end(raster_pairs, tmp_path: Path, run_cli):
    table, raster = raster_pairs
    manifest = tmp_path / "pairs.parquet"
    made = run_cli("pairs", str(table), "--imagery", str(raster), "-o", str(manifest))
    assert made.returncode == 0, made.stderr
    assert "3 pairs" in made.stdout

    config = tmp_path / "tiny.yaml"
    config.write_text(
        yaml.safe_dump({"preset": "tiny", "epochs": 2, "batch_size": 2, "val_every": 1})
    )
    env = {"GEOSOUND_CACHE": str(tmp_path / "cache")}
    trained = run_cli(
        "train", "--manifest", str(manifest), "--config", str(config), "--out",
        str(tmp_path / "run"), "--progress", "none", env=env,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert (tmp_path / "run" / "sat2sound.pt").exists()
    assert "| Sat2Sound | image→audio |" in trained.stdout  # the table, on the held-out place
    # Maps made with it tile at the ground size of its chips: 64 px of the 10 m UTM raster.
    from geosound.models.checkpoint import load_checkpoint

    info = load_checkpoint(tmp_path / "run" / "sat2sound.pt").info
    assert info["tile_m"] == pytest.approx(640.0, rel=1e-3)


def test_pairs_with_a_point_off_the_imagery(raster_pairs, make_raster, tmp_path: Path, run_cli):
    table, _ = raster_pairs
    elsewhere = make_raster("elsewhere.tif", origin=(600000.0, 5300000.0))
    result = run_cli(
        "pairs", str(table), "--imagery", str(elsewhere), "-o", str(tmp_path / "m.parquet")
    )
    assert result.returncode == 2 and "elsewhere.tif" in result.stderr
    assert not (tmp_path / "m.parquet").exists()


@pytest.mark.slow
def test_real_pairs_with_their_times_train_a_model_that_maps_by_the_hour(
    raster_pairs, tmp_path: Path, run_cli
):
    table, raster = raster_pairs  # its recordings were made at 06:30, 07:30 and 08:30
    manifest = tmp_path / "pairs.parquet"
    made = run_cli("pairs", str(table), "--imagery", str(raster), "-o", str(manifest))
    assert made.returncode == 0, made.stderr
    config = tmp_path / "metadata.yaml"
    settings = {"preset": "tiny", "epochs": 2, "batch_size": 2, "val_every": 1,
                "model": {"use_metadata": True}}  # fmt: skip
    config.write_text(yaml.safe_dump(settings))
    env = {"GEOSOUND_CACHE": str(tmp_path / "cache")}
    trained = run_cli("train", "--manifest", str(manifest), "--config", str(config), "--out",
                      str(tmp_path / "run"), "--progress", "none", env=env)  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    checkpoint = tmp_path / "run" / "sat2sound.pt"
    from geosound.models.checkpoint import load_checkpoint

    assert load_checkpoint(checkpoint).model.config.use_metadata
    mapped = run_cli("map", str(raster), "-o", str(tmp_path / "map"), "--checkpoint",
                     str(checkpoint), "-t", "birds", "--hour", "6", "--hour", "18",
                     "--progress", "none", env=env)  # fmt: skip
    assert mapped.returncode == 0, mapped.stderr
    import rasterio

    with rasterio.open(tmp_path / "map" / "similarity.tif") as layers:
        assert layers.descriptions == ("similarity: text: birds @ 06:00",
                                       "similarity: text: birds @ 18:00")  # fmt: skip
    # The sonified dev pairs have no time: such a model is refused before anything is built.
    refused = run_cli("train", "--config", str(config), "--out", str(tmp_path / "dev"),
                      "--progress", "none", env=env)  # fmt: skip
    assert refused.returncode == 2 and "needs real pairs" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and not (tmp_path / "dev").exists()
