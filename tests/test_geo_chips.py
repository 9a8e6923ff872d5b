"""Chips centred on points given in any CRS."""

from __future__ import annotations

import geopandas as gpd
import pytest
import shapely
from pyproj import Transformer

from geosound.errors import OutsideRasterError
from geosound.geo import RasterSource, chip_windows, read_chips

# Pixel (col 30, row 20) of the test raster has its top-left corner here (EPSG:32632).
X, Y = 500000.0 + 30 * 10, 5200000.0 - 20 * 10


def test_chip_is_centred_on_a_utm_point(data_raster):
    with RasterSource(data_raster("utm_uint16.tif", "scene.tif")) as src:
        chips = read_chips(src, [(X, Y)], size=8, crs="EPSG:32632", indexes=(1,))
    assert chips.shape == (1, 1, 8, 8)
    # The point is the corner of pixel (20, 30): a centred 8-px chip starts 4 pixels before.
    assert chips[0, 0, 0, 0] == (20 - 4) * 100 + (30 - 4)


def test_lonlat_point_is_reprojected(data_raster):
    lon, lat = Transformer.from_crs("EPSG:32632", "EPSG:4326", always_xy=True).transform(
        X + 5, Y - 5
    )
    with RasterSource(data_raster("utm_uint16.tif", "scene.tif")) as src:
        (window,) = chip_windows(src, [(lon, lat)], size=4)  # default CRS: EPSG:4326
    assert (window.col_off, window.row_off) == (28, 18)


def test_geodataframe_points_use_their_own_crs(data_raster):
    points = gpd.GeoDataFrame(geometry=[shapely.Point(X + 5, Y - 5)], crs="EPSG:32632")
    with RasterSource(data_raster("utm_uint16.tif", "scene.tif")) as src:
        (window,) = chip_windows(src, points.to_crs("EPSG:3857"), size=4)
    assert (window.col_off, window.row_off) == (28, 18)


def test_chip_at_the_edge_is_padded_and_masked(data_raster):
    with RasterSource(data_raster("utm_uint16.tif", "scene.tif")) as src:
        chips = read_chips(src, [(500001.0, 5199999.0)], size=8, crs="EPSG:32632")
    assert chips.mask[0, :, :4, :].all() and chips.mask[0, :, :, :4].all()
    assert not chips.mask[0, :, 4:, 4:].any()


def test_point_outside_raster_names_file_and_point(data_raster):
    scene = data_raster("utm_uint16.tif", "scene.tif")
    with RasterSource(scene) as src, pytest.raises(OutsideRasterError) as error:
        read_chips(src, [(X, Y), (0.0, 0.0)], size=8, crs="EPSG:32632")
    assert "scene.tif" in str(error.value) and "point 1 at (0, 0)" in str(error.value)


def test_chip_ground_size_is_the_median_window_edge_in_metres(make_raster):
    from rasterio.windows import Window

    from geosound.geo.images import chip_ground_m, format_image_ref

    utm = make_raster("utm.tif", resolution=10.0)  # UTM 32N near 9° E: scale factor ~0.9996
    refs = [format_image_ref(utm, Window(0, 0, w, w)) for w in (8, 16, 64)]
    assert chip_ground_m(refs) == pytest.approx(160.0, rel=1e-3)  # 16 px × 10 m
    degrees = make_raster("ll.tif", crs="EPSG:4326", origin=(9.0, 60.0), resolution=0.001)
    # At 60° N a thousandth of a degree is ~55.8 m east-west and ~111.4 m north-south.
    assert chip_ground_m([format_image_ref(degrees, Window(0, 0, 10, 10))]) == pytest.approx(
        10 * (55.8 * 111.4) ** 0.5, rel=0.01
    )
    # One tall raster in degrees: a chip at 70° N covers less ground than one at 30° N.
    tall = make_raster("tall.tif", width=20, height=4000, crs="EPSG:4326", origin=(9.0, 70.0),
                       resolution=0.01)
    north, south = (chip_ground_m([format_image_ref(tall, Window(0, row, 10, 10))])
                    for row in (0, 3990))
    # A hundredth of a degree: 1.1 km north-south; east-west 0.38 km at 70° N, 0.96 km at 30° N.
    assert north == pytest.approx(10 * (381.0 * 1116.0) ** 0.5, rel=0.01)
    assert south == pytest.approx(10 * (964.0 * 1109.0) ** 0.5, rel=0.01)
    plain = make_raster("photo.tif", crs=None)
    assert chip_ground_m([*refs, str(plain)]) is None  # a photo's ground is unknown
    assert chip_ground_m([]) is None
