"""The image encoder's inference backends agree with the wheel's own network on real tiles.

Real tiles: 64 px tiles of the shipped NAIP demo raster, read the way maps read them
(``read_tiles`` + ``to_rgb``). The reference is the unmodified ``efficientnet_lite_pytorch``
network's ``extract_features``; every backend (batch norm folded, channels-last torch, ONNX
Runtime, OpenVINO) must give the same tokens to 1e-4, which is what keeps region caches and
banks made before the change valid.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from geosound.config import assets_dir
from geosound.encoders import get_encoder
from geosound.encoders.base import (
    BACKEND_VARIABLE,
    EncoderBackend,
    backend_installed,
    encoder_backend,
    set_encoder_backend,
)
from geosound.encoders.efficientnet_folded import FoldedEfficientNet
from geosound.encoders.runtimes import EXPORT_FORMAT, export_dir
from geosound.errors import EncoderError
from geosound.geo import RasterSource, get_preset, read_tiles, tile_grid, to_rgb

TOLERANCE = 1e-4
BACKENDS: list[EncoderBackend] = ["torch", "onnx", "openvino"]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Exports go to this test's folder; the backend setting starts unset (empty)."""
    monkeypatch.setenv("GEOSOUND_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(BACKEND_VARIABLE, "")  # recorded, so a test that sets it is undone


@pytest.fixture(scope="module")
def demo_tiles() -> np.ndarray:
    """Every whole 64 px tile of the demo raster as encoder RGB: (80, 3, 64, 64)."""
    preset = get_preset("rgb8")
    with RasterSource(assets_dir() / "demo_naip_nd_2020.tif") as source:
        grid = tile_grid(source, 64)
        batches = list(read_tiles(source, grid, preset.bands, batch_size=len(grid)))
    pixels = np.ma.concatenate([batch.pixels for batch in batches])
    return to_rgb(pixels, preset)


def _wheel_tokens(images: np.ndarray) -> torch.Tensor:
    """Tokens from the wheel's unmodified network: what every cache so far was made with."""
    encoder = get_encoder("efficientnet-lite0")
    with torch.inference_mode():
        feature_map = encoder.model.extract_features(encoder._prepare(images))
    return feature_map.flatten(2).transpose(1, 2)


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_backends_match_the_wheel_on_demo_tiles(
    backend: EncoderBackend, demo_tiles: np.ndarray
) -> None:
    if not backend_installed(backend):
        pytest.skip(f"{backend} backend: its runtime is not installed")
    assert demo_tiles.shape == (80, 3, 64, 64) and demo_tiles.std() > 0.05  # real imagery
    expected = _wheel_tokens(demo_tiles)
    encoder = get_encoder("efficientnet-lite0", backend=backend, batch_size=48)  # 48 + 32
    out = encoder.encode(demo_tiles)
    assert out.tokens.shape == expected.shape == (80, 4, 1280)
    worst = float((out.tokens - expected).abs().max())
    assert worst <= TOLERANCE, f"{backend}: max abs diff {worst:.3g}"
    assert torch.allclose(out.pooled, out.tokens.mean(dim=1))
    assert encoder.id == "efficientnet-lite0@1"  # the backend never changes the cache key


@pytest.mark.slow
def test_folding_keeps_other_tile_sizes_exact() -> None:
    """Odd and even sizes pad differently at stride 2 ("same" padding); both must match."""
    encoder = get_encoder("efficientnet-lite0")
    for size in (37, 96):
        images = np.random.default_rng(size).random((3, 3, size, size), dtype=np.float32)
        expected = _wheel_tokens(images)
        with torch.inference_mode():
            folded = FoldedEfficientNet(encoder.model)(encoder._prepare(images))
        assert float((folded.flatten(2).transpose(1, 2) - expected).abs().max()) <= TOLERANCE


@pytest.mark.slow
def test_onnx_export_is_cached_by_encoder_id_and_size(demo_tiles: np.ndarray) -> None:
    if not backend_installed("onnx"):
        pytest.skip("onnx backend: onnxruntime is not installed")
    get_encoder("efficientnet-lite0", backend="onnx").encode(demo_tiles[:2])
    exported = export_dir() / f"efficientnet-lite0@1.64x64.v{EXPORT_FORMAT}.onnx"
    assert [p.name for p in export_dir().iterdir()] == [exported.name]  # no temporary left
    stamp = exported.stat().st_mtime_ns
    # A second encoder (another process, in effect) reuses the file instead of exporting.
    get_encoder("efficientnet-lite0", backend="onnx").encode(demo_tiles[2:4])
    assert exported.stat().st_mtime_ns == stamp


def test_backend_setting_reaches_new_encoders_and_is_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert encoder_backend() == "torch"
    assert get_encoder("efficientnet-lite0").backend == "torch"
    set_encoder_backend("onnx")
    assert get_encoder("efficientnet-lite0").backend == "onnx"
    with pytest.raises(EncoderError, match="choose one of torch, onnx, openvino"):
        set_encoder_backend("tensorrt")
    monkeypatch.setenv(BACKEND_VARIABLE, "jax")
    with pytest.raises(EncoderError, match=BACKEND_VARIABLE):
        get_encoder("efficientnet-lite0")


def test_map_refuses_an_unknown_encoder_backend(run_cli, tmp_path: Path) -> None:
    demo = assets_dir() / "demo_naip_nd_2020.tif"
    result = run_cli("map", str(demo), "--out", str(tmp_path / "out"), "--text", "birds",
                     "--encoder-backend", "tensorrt")  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--encoder-backend" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_map_runs_the_image_encoder_on_the_backend_asked_for(run_cli, tmp_path: Path) -> None:
    if not backend_installed("onnx"):
        pytest.skip("onnx backend: onnxruntime is not installed")
    demo = assets_dir() / "demo_naip_nd_2020.tif"
    cache = tmp_path / "cache"
    result = run_cli(
        "map", str(demo), "--out", str(tmp_path / "out"), "--text", "birds", "--tile", "64",
        "--encoder-backend", "onnx", "--progress", "none", env={"GEOSOUND_CACHE": str(cache)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # The export the onnx backend runs on was built (in this run's cache) for the map's tiles.
    assert [p.name for p in (cache / "encoders").iterdir()] == [
        f"efficientnet-lite0@1.64x64.v{EXPORT_FORMAT}.onnx"
    ]
