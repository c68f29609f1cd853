"""Turn ground-truth motions into a trajectory file as a perfect pose estimator would write it."""

import numpy as np

from retarget.contract import Trajectory
from retarget.frames import world_to_camera

from ...camera import intrinsics_from_fov, look_at, project
from .motion import SKELETON, Motion


def default_camera(
    motions: list[Motion], distance_m: float = 5.0, height_m: float = 1.2
) -> np.ndarray:
    """A camera ``distance_m`` in front of the motions' mean position, looking at it (level-ish)."""
    centre = np.mean([m.joints[:, 0].mean(axis=0) for m in motions], axis=0)
    eye = centre + np.array([0.0, -distance_m, 0.0])
    eye[2] = height_m
    return look_at(eye, np.array([centre[0], centre[1], height_m]))


def motions_to_trajectory(
    motions: list[Motion],
    world_from_camera: np.ndarray,
    image_size: tuple[int, int] = (1280, 720),
    fov_deg: float = 55.0,
    source: str = "synthetic",
) -> Trajectory:
    """Exact poses of ``motions`` (same frame times) seen by the camera, in the contract's form."""
    frame_times = motions[0].frame_times
    intrinsics = intrinsics_from_fov(fov_deg, image_size)
    poses3d = np.stack([world_to_camera(m.joints, world_from_camera) for m in motions], axis=1)
    poses2d = project(poses3d, intrinsics)
    low, high = np.nanmin(poses2d, axis=2), np.nanmax(poses2d, axis=2)
    boxes = np.concatenate([low, high - low, np.ones(low.shape[:-1] + (1,))], axis=-1)
    fps = 1.0 / float(np.median(np.diff(frame_times))) if len(frame_times) > 1 else 30.0
    return Trajectory(
        poses3d=poses3d.astype(np.float32),
        poses2d=poses2d.astype(np.float32),
        uncertainty=np.zeros(poses3d.shape[:3], np.float32),
        boxes=boxes.astype(np.float32),
        track_ids=np.arange(len(motions), dtype=np.int32),
        frame_times=frame_times,
        fps=fps,
        image_size=np.array(image_size, np.int32),
        intrinsics=intrinsics,
        joint_names=SKELETON.joint_names,
        joint_edges=SKELETON.edges,
        skeleton=SKELETON.name,
        source=source,
        model="ground-truth",
    )
