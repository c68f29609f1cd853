"""Coordinate frames: camera (OpenCV axes, millimetres) -> Blender world (Z up, metres).

A camera pose is a 4x4 ``world_from_camera`` matrix in metres: ``p_world = R @ (0.001 * p_cam) + t``.
"""

import numpy as np

# Level camera looking along world +Y: camera x (right) -> +X, y (down) -> -Z, z (forward) -> +Y.
LEVEL_CAMERA_ROTATION = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])

FOOT_JOINTS = ("lank", "rank", "ltoe", "rtoe")


def camera_to_world(points_mm: np.ndarray, world_from_camera: np.ndarray) -> np.ndarray:
    """``(..., 3)`` camera-frame millimetres -> ``(..., 3)`` world metres."""
    rotation, translation = world_from_camera[:3, :3], world_from_camera[:3, 3]
    return 0.001 * points_mm @ rotation.T + translation


def world_to_camera(points_m: np.ndarray, world_from_camera: np.ndarray) -> np.ndarray:
    """Inverse of :func:`camera_to_world`: ``(..., 3)`` world metres -> camera millimetres."""
    rotation, translation = world_from_camera[:3, :3], world_from_camera[:3, 3]
    return 1000.0 * (points_m - translation) @ rotation


def level_camera_pose(poses3d_mm: np.ndarray, joint_names: tuple[str, ...]) -> np.ndarray:
    """Pose of a level camera whose floor (z = 0) is under the lowest foot joints.

    ``poses3d_mm`` is ``(T, P, J, 3)`` camera frame. The floor height is a low percentile of the
    per-frame lowest foot joint, so a few outliers below the floor do not move it.
    """
    pose = np.eye(4)
    pose[:3, :3] = LEVEL_CAMERA_ROTATION
    foot = [joint_names.index(name) for name in FOOT_JOINTS if name in joint_names]
    heights = camera_to_world(poses3d_mm[:, :, foot or slice(None)], pose)[..., 2]
    lowest = np.nanmin(heights, axis=-1) if np.isfinite(heights).any() else np.zeros(1)
    lowest = lowest[np.isfinite(lowest)]
    pose[2, 3] = -np.percentile(lowest, 5) if lowest.size else 0.0
    return pose
