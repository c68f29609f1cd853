"""Pinhole camera models: intrinsics from a field of view, a lens or a file; projection; look-at.

Camera matrices are 3x3, pixels, OpenCV convention (x right, y down, principal point in pixel
coordinates where pixel centres are integers).
"""

import json
import os
from pathlib import Path

import numpy as np

from retarget.contract import DEFAULT_FOV_DEG, intrinsics_from_fov

from . import InferenceError


def project(points_cam: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """Pixel coordinates ``(..., 2)`` of camera-frame points ``(..., 3)`` (any unit, z forward)."""
    homogeneous = points_cam @ intrinsics.T
    return homogeneous[..., :2] / homogeneous[..., 2:3]


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``world_from_camera`` (4x4, metres, Z-up world) of an OpenCV camera at ``eye`` looking at
    ``target`` with no roll (camera x stays horizontal)."""
    forward = np.asarray(target, float) - np.asarray(eye, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([right, down, forward], axis=1)
    pose[:3, 3] = eye
    return pose


DEFAULT_SENSOR_WIDTH_MM = 36.0  # full-frame width, also Blender's default sensor


class CameraError(InferenceError):
    """Camera parameters that cannot be used; the message says what is expected."""


def intrinsics_from_focal_mm(
    focal_mm: float, image_size: tuple[int, int], sensor_width_mm: float = DEFAULT_SENSOR_WIDTH_MM
) -> np.ndarray:
    """3x3 camera matrix of a lens of ``focal_mm`` on a sensor ``sensor_width_mm`` wide.

    The sensor width spans the longer image side (Blender's "Auto" sensor fit), so a 35 mm-equivalent
    focal length with the default 36 mm sensor gives the same matrix for landscape and portrait
    footage. Square pixels, principal point at the image centre.
    """
    if not (np.isfinite(focal_mm) and focal_mm > 0):
        raise CameraError(f"focal length must be a positive number of millimetres, got {focal_mm}")
    if not (np.isfinite(sensor_width_mm) and sensor_width_mm > 0):
        raise CameraError(
            f"sensor width must be a positive number of millimetres, got {sensor_width_mm}"
        )
    width, height = image_size
    focal = focal_mm / sensor_width_mm * max(width, height)
    return np.array([[focal, 0, (width - 1) / 2], [0, focal, (height - 1) / 2], [0, 0, 1.0]])


def fov_of(intrinsics: np.ndarray, image_size: tuple[int, int]) -> float:
    """Field of view in degrees on the longer side of ``(width, height)``."""
    longer, focal = (
        (0, intrinsics[0, 0]) if image_size[0] >= image_size[1] else (1, intrinsics[1, 1])
    )
    return float(np.degrees(2 * np.arctan(0.5 * image_size[longer] / focal)))


def check_intrinsics(matrix: np.ndarray) -> np.ndarray:
    """Validate a 3x3 pinhole camera matrix (positive focal lengths, last row 0 0 1, no skew)."""
    matrix = np.asarray(matrix, np.float64)
    if matrix.shape != (3, 3) or not np.all(np.isfinite(matrix)):
        raise CameraError(f"a camera matrix must be 3x3 finite numbers, got shape {matrix.shape}")
    if not np.allclose(matrix[2], [0, 0, 1]):
        raise CameraError(
            f"the last row of a camera matrix must be 0 0 1, got {matrix[2].tolist()}"
        )
    if matrix[0, 0] <= 0 or matrix[1, 1] <= 0:
        raise CameraError("a camera matrix needs positive focal lengths fx and fy (in pixels)")
    if abs(matrix[0, 1]) > 1e-6 * matrix[0, 0] or abs(matrix[1, 0]) > 0:
        raise CameraError("skewed camera matrices are not supported (K[0,1] and K[1,0] must be 0)")
    return matrix


def _matrix_from_mapping(
    data: dict, image_size: tuple[int, int]
) -> tuple[np.ndarray, list[int] | None]:
    """Camera matrix and the calibration's image size (if stated) from a parsed JSON object."""
    calibrated_size = _size_of(data.get("image_size") or data.get("resolution"))
    for key in ("K", "intrinsics", "camera_matrix", "cameraMatrix"):
        if key in data:
            value = data[key]
            if isinstance(value, dict) and "data" in value:  # OpenCV FileStorage JSON layout
                value = value["data"]
            try:
                return np.asarray(value, np.float64).reshape(3, 3), calibrated_size
            except (TypeError, ValueError):
                raise CameraError(f"{key!r} must hold 9 numbers (a 3x3 matrix)") from None
    if {"fx", "fy", "cx", "cy"} <= data.keys():
        fx, fy, cx, cy = (float(data[k]) for k in ("fx", "fy", "cx", "cy"))
        return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]]), calibrated_size
    if "fov_deg" in data:
        return intrinsics_from_fov(float(data["fov_deg"]), image_size), None
    if "focal_mm" in data:
        sensor = float(data.get("sensor_width_mm", DEFAULT_SENSOR_WIDTH_MM))
        return intrinsics_from_focal_mm(float(data["focal_mm"]), image_size, sensor), None
    raise CameraError(
        "camera file needs one of: 'K' (3x3 matrix, also 'camera_matrix'), 'fx'/'fy'/'cx'/'cy', "
        "'fov_deg', or 'focal_mm' (+ 'sensor_width_mm'); optionally 'image_size': [width, height]"
    )


def _size_of(value: object) -> list[int] | None:
    """A calibration's ``[width, height]`` (two positive whole numbers), or None if not given."""
    if value is None:
        return None
    if (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, (int, float)) and v > 0 and float(v).is_integer() for v in value)
    ):
        return [int(v) for v in value]
    raise CameraError(f"'image_size' must be [width, height] in pixels, got {value!r}")


def load_intrinsics(path: str | os.PathLike, image_size: tuple[int, int]) -> np.ndarray:
    """Camera matrix for frames of ``image_size`` (width, height) from a file.

    ``.json``: see :func:`_matrix_from_mapping` for the accepted keys; a calibration made at another
    resolution of the same aspect ratio (``image_size``) is rescaled. ``.npy`` or text: the 3x3 matrix.
    Lens distortion is not modelled; undistort the footage first if it is strong.
    """
    path = Path(path)
    if not path.is_file():
        raise CameraError(f"camera file not found: {path}")
    calibrated_size = None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise CameraError(f"{path.name} must hold a JSON object")
            matrix, calibrated_size = _matrix_from_mapping(data, image_size)
        elif path.suffix.lower() == ".npy":
            matrix = np.load(path, allow_pickle=False)
        else:
            matrix = np.loadtxt(path, dtype=np.float64)
    except (TypeError, ValueError, OSError, UnicodeDecodeError) as error:  # e.g. "fx": null
        raise CameraError(f"cannot read camera file {path.name}: {error}") from None
    matrix = check_intrinsics(matrix)
    if calibrated_size is not None:
        matrix = _rescale(matrix, tuple(calibrated_size), image_size)
    # Off-centre crops of a frame can put the principal point outside it, but not this far.
    width, height = image_size
    if not (
        -width / 2 <= matrix[0, 2] <= 1.5 * width and -height / 2 <= matrix[1, 2] <= 1.5 * height
    ):
        raise CameraError(
            f"the principal point ({matrix[0, 2]:.1f}, {matrix[1, 2]:.1f}) in {path.name} lies "
            f"far outside the {width}x{height} frames: the calibration is for another "
            f"resolution; add its 'image_size': [width, height] to the JSON file"
        )
    return matrix


def _rescale(
    matrix: np.ndarray, calibrated: tuple[int, int], actual: tuple[int, int]
) -> np.ndarray:
    """Camera matrix of a calibration at ``calibrated`` (w, h) for frames of ``actual`` (w, h)."""
    if tuple(calibrated) == tuple(actual):
        return matrix
    sx, sy = actual[0] / calibrated[0], actual[1] / calibrated[1]
    if abs(sx - sy) > 0.01 * max(sx, sy):
        raise CameraError(
            f"the camera calibration is for {calibrated[0]}x{calibrated[1]} but the frames are "
            f"{actual[0]}x{actual[1]} (a different aspect ratio: rotated or cropped footage?); "
            f"calibrate at the footage's resolution"
        )
    scaled = matrix.copy()
    scaled[0] *= sx
    scaled[1] *= sy
    # Pixel centres: x_actual + 0.5 = s * (x_calibrated + 0.5)
    scaled[0, 2] = sx * (matrix[0, 2] + 0.5) - 0.5
    scaled[1, 2] = sy * (matrix[1, 2] + 0.5) - 0.5
    return scaled


def resolve_intrinsics(
    image_size: tuple[int, int],
    fov_deg: float | None = None,
    focal_mm: float | None = None,
    sensor_width_mm: float | None = None,
    intrinsics_file: str | os.PathLike | None = None,
) -> tuple[np.ndarray, str]:
    """The camera matrix for the crops and a one-line description of where it came from.

    At most one of ``fov_deg``, ``focal_mm`` or ``intrinsics_file`` may be given; with none, the
    field of view is :data:`DEFAULT_FOV_DEG` on the longer side.
    """
    given = [name for name, value in (("--fov", fov_deg), ("--focal-mm", focal_mm),
                                      ("--intrinsics", intrinsics_file)) if value is not None]  # fmt: skip
    if len(given) > 1:
        raise CameraError(f"give only one of {', '.join(given)}")
    if sensor_width_mm is not None and focal_mm is None:
        raise CameraError("--sensor-width needs --focal-mm")
    if intrinsics_file is not None:
        matrix = load_intrinsics(intrinsics_file, image_size)
        source = f"from {Path(intrinsics_file).name}"
    elif focal_mm is not None:
        sensor = DEFAULT_SENSOR_WIDTH_MM if sensor_width_mm is None else sensor_width_mm
        matrix = intrinsics_from_focal_mm(focal_mm, image_size, sensor)
        source = f"{focal_mm:g} mm lens on a {sensor:g} mm sensor"
    else:
        fov = DEFAULT_FOV_DEG if fov_deg is None else fov_deg
        try:
            matrix = intrinsics_from_fov(fov, image_size)
        except ValueError as error:
            raise CameraError(str(error)) from None
        source = f"{fov:g} deg field of view" + (" (default)" if fov_deg is None else "")
    return matrix, f"{source}: fx={matrix[0, 0]:.1f} px, {fov_of(matrix, image_size):.1f} deg"
