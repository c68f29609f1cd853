"""Pinhole camera models: intrinsics from a field of view, projection, look-at poses."""

import numpy as np

DEFAULT_FOV_DEG = 55.0  # on the longer image side, as the official MeTRAbs demo assumes


def intrinsics_from_fov(fov_deg: float, image_size: tuple[int, int]) -> np.ndarray:
    """3x3 camera matrix with the given field of view on the longer side of ``(width, height)``."""
    width, height = image_size
    if not 0 < fov_deg < 180:
        raise ValueError(f"field of view must be between 0 and 180 degrees, got {fov_deg}")
    focal = 0.5 * max(width, height) / np.tan(np.radians(fov_deg) / 2)
    return np.array([[focal, 0, (width - 1) / 2], [0, focal, (height - 1) / 2], [0, 0, 1.0]])


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
