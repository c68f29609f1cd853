"""Coordinate frames: camera (OpenCV axes, millimetres) <-> Blender world (Z up, metres, floor at
z = 0).

A camera pose is a 4x4 ``world_from_camera`` matrix in metres: ``p_world = R @ (0.001 * p_cam) + t``.
The cleaning stage fits it to the floor (:mod:`retarget.clean.floor`) and stores it in the cleaned
file; a raw file gets :func:`level_camera_pose`. The same pose places the Blender camera for the
camera-matching overlay.
"""

import numpy as np

# Level camera looking along world +Y: camera x (right) -> +X, y (down) -> -Z, z (forward) -> +Y.
LEVEL_CAMERA_ROTATION = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])

# Heels (the ankle joints), then toes, left before right: also the contact channels of the cleaning
# (the ``contact_channels`` extra) and of the solve's foot lock, in this order.
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
    per-frame lowest foot joint, so a few outliers below the floor do not move it. A quick
    fallback; the cleaning's floor fit (:func:`retarget.clean.floor.fit_floor`) also handles a
    tilted camera.
    """
    pose = np.eye(4)
    pose[:3, :3] = LEVEL_CAMERA_ROTATION
    foot = [joint_names.index(name) for name in FOOT_JOINTS if name in joint_names]
    heights = camera_to_world(poses3d_mm[:, :, foot or slice(None)], pose)[..., 2]
    # not np.nanmin: frames where a person is absent would warn "All-NaN slice" on every import
    lowest = np.where(np.isfinite(heights), heights, np.inf).min(axis=-1, initial=np.inf)
    lowest = lowest[np.isfinite(lowest)]
    pose[2, 3] = -np.percentile(lowest, 5) if lowest.size else 0.0
    return pose


def behind_camera(poses3d_mm: np.ndarray) -> np.ndarray:
    """``(P,)`` bool: people of ``poses3d_mm`` ``(T, P, J, 3)`` (camera frame) whose measured joints
    are mostly behind the camera (median depth <= 0). No camera sees such a person: the file's
    poses are in another frame (e.g. z pointing backwards), and nothing built from them is right."""
    depth = np.moveaxis(np.asarray(poses3d_mm[..., 2], float), 1, 0).reshape(
        poses3d_mm.shape[1], -1
    )
    depth = np.where(np.isfinite(depth), depth, np.nan)
    measured = np.isfinite(depth).any(axis=1)
    median = np.zeros(len(depth))
    if measured.any():  # nanmedian only over people with data (no All-NaN warning)
        median[measured] = np.nanmedian(depth[measured], axis=1)
    return measured & (median <= 0)


BEHIND_CAMERA_ADVICE = (
    "poses3d must be in the camera frame of OpenCV (x right, y down, z forward, millimetres); "
    "if another tool wrote the file, flip its z axis"
)
