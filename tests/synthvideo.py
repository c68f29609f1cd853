"""Synthetic test footage with exact ground truth (test helper).

People from ``inference.training.synth.motion`` are drawn as grey limbs with one coloured disc per
joint; the joint colours are 30 hues 12 degrees apart at full saturation (``JOINT_HUES``, OpenCV hue units), so
the test pose model in ``tinymodels.py`` can find joints by colour. Far people are drawn first.
"""

from pathlib import Path

import cv2
import numpy as np

from inference.training.synth.clip import default_camera, motions_to_trajectory
from inference.training.synth.motion import SKELETON, generate_motion
from retarget.contract import Trajectory

JOINT_HUES = np.arange(SKELETON.num_joints) * 6  # OpenCV hue (0..179) of each joint's disc
JOINT_COLOURS = cv2.cvtColor(
    np.stack(
        [JOINT_HUES, np.full_like(JOINT_HUES, 255), np.full_like(JOINT_HUES, 255)], axis=1
    ).astype(np.uint8)[None],
    cv2.COLOR_HSV2RGB,
)[0]
LIMB_COLOUR = (70, 70, 70)
BACKGROUND = 205


def render_frame(
    poses2d: np.ndarray, depths: np.ndarray, image_size: tuple[int, int], radius: int = 3
) -> np.ndarray:
    """RGB frame (H, W, 3) of people with 2D joints ``poses2d`` (P, J, 2) px at ``depths`` (P,)."""
    width, height = image_size
    image = np.full((height, width, 3), BACKGROUND, np.uint8)
    thickness = max(2, radius)
    for person in np.argsort(-depths):
        points = np.round(poses2d[person] * 16).astype(np.int64)  # 4 fractional bits
        for parent, child in SKELETON.edges:
            cv2.line(image, points[parent], points[child], LIMB_COLOUR, thickness, cv2.LINE_AA, 4)
        for joint, colour in enumerate(JOINT_COLOURS):
            cv2.circle(image, points[joint], radius * 16, tuple(int(c) for c in colour), -1, 8, 4)
    return image


def walking_people(
    num_people: int = 1,
    duration_s: float = 2.0,
    fps: float = 25.0,
    image_size: tuple[int, int] = (640, 360),
    spacing_m: float = 1.6,
    seed: int = 0,
    alternate: bool = True,
    distance_m: float | None = None,
    depth_step_m: float = 0.4,
) -> Trajectory:
    """Ground truth of ``num_people`` walking side by side across the view (contract form);
    with ``alternate`` every other person walks the other way, ``depth_step_m`` further back (a
    negative ``spacing_m`` makes them walk towards each other and cross)."""
    offsets = (np.arange(num_people) - (num_people - 1) / 2) * spacing_m
    motions = [
        generate_motion(
            "walk",
            duration_s,
            fps,
            seed=seed + i,
            start_xy=(offset, depth_step_m * (i % 2) if alternate else 0.0),
            heading_deg=-90 if i % 2 and alternate else 90,
        )
        for i, offset in enumerate(offsets)
    ]
    camera = default_camera(motions, distance_m=distance_m or 6.0 + 0.4 * num_people)
    return motions_to_trajectory(motions, camera, image_size=image_size)


def frames_of(truth: Trajectory, radius: int = 3) -> list[np.ndarray]:
    """Render every frame of a ground-truth trajectory."""
    size = tuple(int(v) for v in truth.image_size)
    depth = truth.poses3d[:, :, 0, 2]
    return [render_frame(truth.poses2d[t], depth[t], size, radius) for t in range(truth.num_frames)]


def write_video(
    path: str | Path, frames: list[np.ndarray], fps: float = 25.0, fourcc: str | None = None
) -> Path:
    """Write RGB frames with ``cv2.VideoWriter``; the codec follows the suffix unless given
    (``.mp4`` MPEG-4 part 2, ``.avi`` MJPEG, ``.mkv`` lossless FFV1)."""
    path = Path(path)
    fourcc = fourcc or {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "FFV1"}[path.suffix.lower()]
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened(), f"cannot write {path} with {fourcc}"
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def write_clip(path: str | Path, truth: Trajectory, radius: int = 3) -> Path:
    """Render and write ``truth`` as a video at its nominal frame rate, one frame at a time (long
    clips never sit in memory)."""
    path = Path(path)
    fourcc = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "FFV1"}[path.suffix.lower()]
    width, height = (int(v) for v in truth.image_size)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), truth.fps, (width, height))
    assert writer.isOpened(), f"cannot write {path} with {fourcc}"
    depth = truth.poses3d[:, :, 0, 2]
    for t in range(truth.num_frames):
        frame = render_frame(truth.poses2d[t], depth[t], (width, height), radius)
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


# Body part widths (metres) for filled figures: what a person detector trained on photos can see.
_PART_WIDTH_M = {"leg": 0.15, "arm": 0.09, "torso": 0.34, "neck": 0.12, "head": 0.2}


def _part(parent_name: str, child_name: str) -> str:
    names = parent_name + child_name
    if any(key in names for key in ("hip", "kne", "ank", "toe")) and "pelv" not in parent_name:
        return "leg"
    if any(key in names for key in ("sho", "elb", "wri", "han")):
        return "arm"
    if child_name in ("head", "neck"):
        return "neck"
    return "torso"


def render_bodies(
    poses2d: np.ndarray, depths_mm: np.ndarray, focal_px: float, image_size: tuple[int, int]
) -> np.ndarray:
    """RGB frame of filled human figures (dark clothes, skin-coloured head, textured background):
    limbs as capsules of realistic widths, for photo-trained detectors such as HOG."""
    width, height = image_size
    rng = np.random.default_rng(7)
    noise = rng.normal(0, 6, (height, width, 1))
    ramp = np.linspace(215, 185, height)[:, None, None]
    image = np.clip(ramp + noise, 0, 255).repeat(3, axis=2).astype(np.uint8)
    names = SKELETON.joint_names
    for person in np.argsort(-depths_mm):
        px_per_m = focal_px / (depths_mm[person] / 1000.0)
        points = np.round(poses2d[person]).astype(np.int64)
        for parent, child in SKELETON.edges:
            if names[child] in ("htop", "lear", "leye", "nose", "rear", "reye", "lhan", "rhan"):
                continue
            part = _part(names[parent], names[child])
            colour = {"leg": (40, 45, 70), "arm": (150, 60, 50), "torso": (150, 60, 50)}.get(
                part, (210, 160, 130)
            )
            thickness = max(1, int(_PART_WIDTH_M[part] * px_per_m))
            cv2.line(image, points[parent], points[child], colour, thickness, cv2.LINE_AA)
        head = (points[names.index("head")] + points[names.index("htop")]) // 2
        cv2.circle(image, head, int(0.11 * px_per_m), (210, 160, 130), -1, cv2.LINE_AA)
    return image
