"""``geosound demo``: a real map product from the sample shipped in the package, offline.

The sample is a 640 × 512 crop (3.2 × 2.6 km at 5 m) of a 2020 NAIP scene in North Dakota's
prairie pothole region — lakes, wetlands, fields and roads — so sound queries have something
to find. See ``geosound/assets/README.md`` for provenance and licence.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from geosound.config import assets_dir
from geosound.geo import RasterSource, get_preset, to_rgb
from geosound.mapping.preview import write_layers_preview
from geosound.mapping.similarity import text_similarity_map, write_similarity_layers
from geosound.progress import Progress

DEMO_RASTER = "demo_naip_nd_2020.tif"
DEMO_PRESET = "naip-rgb"
DEMO_QUERIES = (
    "birds chirping in trees",
    "water waves lapping on a lake shore",
    "cars driving on a road",
    "wind blowing over open fields",
)


@dataclass(frozen=True)
class DemoResult:
    """Paths of what the demo wrote, and the caveat to print with them."""

    layers: Path
    sidecar: Path
    preview: Path
    note: str


def demo_raster() -> Path:
    """The sample scene shipped inside the package."""
    return assets_dir() / DEMO_RASTER


def run_demo(
    out_dir: str | os.PathLike[str] = "geosound-demo",
    queries: tuple[str, ...] = DEMO_QUERIES,
    progress: Progress | None = None,
) -> DemoResult:
    """Map the sample scene against a few sound queries; write a COG, a sidecar and a PNG."""
    out = Path(out_dir)
    raster = demo_raster()
    dataset = text_similarity_map(
        raster, queries, tile_size=64, stride=16, preset=DEMO_PRESET, progress=progress
    )
    note = str(dataset.attrs["note"])
    layers = write_similarity_layers(dataset, out / "soundscape_similarity.tif")
    with RasterSource(raster) as source:
        preset = get_preset(DEMO_PRESET)
        scene = to_rgb(source.read_decimated(preset.bands, max_size=640), preset)
        bounds = source.bounds
    preview = write_layers_preview(
        out / "soundscape_similarity.png",
        dataset["similarity"],
        scene_rgb=scene,
        scene_bounds=bounds,
        title="geosound demo: what might this place sound like? (NAIP 2020, North Dakota)",
        note=f"Per-tile cosine similarity, 320 m tiles every 80 m. {note}.",
    )
    return DemoResult(layers, layers.with_suffix(".json"), preview, note)
