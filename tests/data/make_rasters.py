"""Write the small fake rasters under tests/data/ (run it again to regenerate them).

    python tests/data/make_rasters.py            # into tests/data/
    python tests/data/make_rasters.py --out DIR  # elsewhere (tests/test_data_files.py does)

Deterministic: the pixels are position codes or come from a fixed seed, and the GeoTIFFs are
written with fixed creation options, so a rerun reproduces the committed files byte for byte
(with the same GDAL; the test checks it). Every file is a few KB (DEFLATE, predictor 2).

- ``utm_uint16.tif``: 100 × 80 px, 3 bands, uint16, EPSG:32632, 10 m, top-left corner
  (500000, 5200000); pixel value ``band·10000 + row·100 + col`` (bands from 0), which is
  what the ``make_raster`` fixture writes with its defaults.
- ``utm_uint16_nodata0.tif``: the same, with nodata 0.
- ``nocrs_uint16.tif``: the same pixels and transform, no CRS.
- ``utm_rgb8.tif``: 256 × 192 px, 8-bit RGB, EPSG:32632, 10 m, same corner: stripes and a
  gradient (``3·col``, ``2·row``, ``(row + col) // 4``, each mod 256).
- ``utm_rgbn8.tif``: 32 × 24 px, 4 bands (R, G, B, NIR), uint8, EPSG:32633, 5 m; seeded noise.
- ``utm_float32_nodata.tif``: 40 × 30 px, 1 band, float32, EPSG:3035, 20 m, nodata −9999 in
  rows 0-9 × columns 0-14; seeded values in [0, 1) elsewhere.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

HERE = Path(__file__).resolve().parent
SEED = 20240508
CREATION = {"compress": "deflate", "predictor": 2, "zlevel": 9}


def position_codes(width: int, height: int, count: int) -> np.ndarray:
    """``band·10000 + row·100 + col``: every pixel says where it is (what make_raster writes)."""
    rows, cols = np.mgrid[0:height, 0:width]
    return np.stack([(b * 10000 + rows * 100 + cols) % 60000 for b in range(count)])


def write(
    path: Path,
    data: np.ndarray,
    *,
    crs: str | None,
    origin: tuple[float, float],
    resolution: float,
    nodata: float | None = None,
    predictor: int = 2,
) -> Path:
    count, height, width = data.shape
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": data.dtype.name,
        "transform": from_origin(*origin, resolution, resolution),
        "nodata": nodata,
        **CREATION,
        "predictor": predictor,
    }
    if crs:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def make_all(out: Path) -> list[Path]:
    """Write every raster into ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    utm32 = {"origin": (500000.0, 5200000.0), "resolution": 10.0}
    codes = position_codes(100, 80, 3).astype(np.uint16)
    written = [
        write(out / "utm_uint16.tif", codes, crs="EPSG:32632", **utm32),
        write(out / "utm_uint16_nodata0.tif", codes, crs="EPSG:32632", nodata=0, **utm32),
        write(out / "nocrs_uint16.tif", codes, crs=None, **utm32),
    ]

    rows, cols = np.mgrid[0:192, 0:256]
    rgb = np.stack([(cols * 3) % 256, (rows * 2) % 256, ((rows + cols) // 4) % 256])
    written.append(write(out / "utm_rgb8.tif", rgb.astype(np.uint8), crs="EPSG:32632", **utm32))

    rgbn = rng.integers(0, 256, size=(4, 24, 32), dtype=np.uint8)
    written.append(
        write(
            out / "utm_rgbn8.tif",
            rgbn,
            crs="EPSG:32633",
            origin=(400000.0, 5800000.0),
            resolution=5.0,
        )
    )

    values = rng.random((1, 30, 40), dtype=np.float32)
    values[:, :10, :15] = -9999.0
    written.append(
        write(
            out / "utm_float32_nodata.tif",
            values,
            crs="EPSG:3035",
            origin=(4300000.0, 3400000.0),
            resolution=20.0,
            nodata=-9999.0,
            predictor=3,  # floating-point predictor
        )
    )
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write into")
    args = parser.parse_args()
    for path in make_all(args.out):
        print(f"{path.name:28s} {path.stat().st_size:7d} bytes")


if __name__ == "__main__":
    main()
