"""Camera intrinsics from a field of view, a lens, or a camera file."""

import json

import numpy as np
import pytest

from inference.camera import (
    CameraError,
    fov_of,
    intrinsics_from_focal_mm,
    intrinsics_from_fov,
    load_intrinsics,
    project,
    resolve_intrinsics,
)


def test_focal_length_and_field_of_view_agree():
    # 36 mm sensor, 18 mm lens: half the sensor width equals the focal length -> 90 degrees.
    matrix = intrinsics_from_focal_mm(18, (1920, 1080))
    assert matrix[0, 0] == pytest.approx(960) and fov_of(matrix, (1920, 1080)) == pytest.approx(90)
    np.testing.assert_allclose(matrix, intrinsics_from_fov(90, (1920, 1080)))
    portrait = intrinsics_from_focal_mm(18, (1080, 1920))  # the sensor spans the longer side
    assert portrait[1, 1] == pytest.approx(960) and portrait[0, 2] == pytest.approx(539.5)
    assert intrinsics_from_focal_mm(50, (6000, 4000), sensor_width_mm=23.5)[0, 0] == pytest.approx(
        50 / 23.5 * 6000
    )
    with pytest.raises(CameraError, match="positive"):
        intrinsics_from_focal_mm(0, (10, 10))


def test_resolve_defaults_and_exclusive_options(tmp_path):
    matrix, text = resolve_intrinsics((1280, 720))
    np.testing.assert_allclose(matrix, intrinsics_from_fov(55, (1280, 720)))
    assert "55 deg" in text and "default" in text
    matrix, text = resolve_intrinsics((1280, 720), focal_mm=35, sensor_width_mm=24)
    assert matrix[0, 0] == pytest.approx(35 / 24 * 1280) and "35 mm lens" in text
    with pytest.raises(CameraError, match="only one"):
        resolve_intrinsics((1280, 720), fov_deg=50, focal_mm=35)
    with pytest.raises(CameraError, match="needs --focal-mm"):
        resolve_intrinsics((1280, 720), sensor_width_mm=24)
    with pytest.raises(CameraError, match="between 0 and 180"):
        resolve_intrinsics((1280, 720), fov_deg=200)


@pytest.mark.parametrize(
    "content",
    [
        {"K": [[1000, 0, 639.5], [0, 1000, 359.5], [0, 0, 1]]},
        {
            "camera_matrix": {
                "rows": 3,
                "cols": 3,
                "data": [1000, 0, 639.5, 0, 1000, 359.5, 0, 0, 1],
            }
        },
        {"fx": 1000, "fy": 1000, "cx": 639.5, "cy": 359.5},
        {"fx": 2000, "fy": 2000, "cx": 1279.5, "cy": 719.5, "image_size": [2560, 1440]},
    ],
)
def test_camera_files(tmp_path, content):
    path = tmp_path / "camera.json"
    path.write_text(json.dumps(content))
    matrix = load_intrinsics(path, (1280, 720))
    np.testing.assert_allclose(matrix, [[1000, 0, 639.5], [0, 1000, 359.5], [0, 0, 1]])


def test_rescaled_calibration_projects_the_same_point():
    from inference.camera import _rescale

    full = np.array([[1500.0, 0, 950], [0, 1500, 530], [0, 0, 1]])
    half = _rescale(full, (1920, 1080), (960, 540))
    point = np.array([300.0, -200, 4000])
    # Pixel centres: x_half + 0.5 = (x_full + 0.5) / 2
    np.testing.assert_allclose(project(point, half) + 0.5, (project(point, full) + 0.5) / 2)


def test_matrix_files_and_bad_content(tmp_path):
    matrix = np.array([[800.0, 0, 320], [0, 810, 240], [0, 0, 1]])
    np.save(tmp_path / "k.npy", matrix)
    np.savetxt(tmp_path / "k.txt", matrix)
    for name in ("k.npy", "k.txt"):
        np.testing.assert_allclose(load_intrinsics(tmp_path / name, (640, 480)), matrix)
    bad = {
        "skew.json": ({"K": [[800, 5, 320], [0, 800, 240], [0, 0, 1]]}, "skewed"),
        "row.json": ({"K": [[800, 0, 320], [0, 800, 240], [0, 1, 1]]}, "last row"),
        "neg.json": ({"K": [[-800, 0, 320], [0, 800, 240], [0, 0, 1]]}, "positive focal"),
        "short.json": ({"K": [1, 2, 3]}, "9 numbers"),
        "none.json": ({"focal": 3}, "needs one of"),
        "aspect.json": ({"fx": 1, "fy": 1, "cx": 0, "cy": 0, "image_size": [640, 640]}, "aspect"),
        "null.json": ({"fx": None, "fy": 800, "cx": 320, "cy": 240}, "cannot read"),
        "null_fov.json": ({"fov_deg": None}, "cannot read"),
        "size_dict.json": ({"K": matrix.tolist(), "image_size": {"width": 640}}, "image_size"),
        "size_text.json": ({"K": matrix.tolist(), "image_size": "640x480"}, "image_size"),
        "size_zero.json": ({"K": matrix.tolist(), "image_size": [0, 0]}, "image_size"),
        # a 4K calibration given for 640x480 frames without its image size
        "4k.json": ({"fx": 3000, "fy": 3000, "cx": 1919.5, "cy": 1079.5}, "far outside the 640"),
    }
    for name, (content, message) in bad.items():
        (tmp_path / name).write_text(json.dumps(content))
        with pytest.raises(CameraError, match=message):
            load_intrinsics(tmp_path / name, (640, 480))
    corner = {"fx": 800, "fy": 800, "cx": -100.0, "cy": 600.0}  # a crop of a frame's corner
    (tmp_path / "corner.json").write_text(json.dumps(corner))
    assert load_intrinsics(tmp_path / "corner.json", (640, 480))[0, 2] == -100.0
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(CameraError, match="cannot read"):
        load_intrinsics(tmp_path / "broken.json", (640, 480))
    with pytest.raises(CameraError, match="not found"):
        load_intrinsics(tmp_path / "absent.json", (640, 480))
