"""A realistic error model for per-frame monocular 3D pose estimates, and ground-truth scenarios.

:func:`corrupt` turns an exact trajectory (as
:func:`inference.training.synth.clip.motions_to_trajectory` writes it) into what a per-frame estimator such as MeTRAbs delivers, in the camera frame:

* per-joint white noise, with depth (camera z) several times noisier than x/y (the same for
  every joint, or scaled per joint: :data:`NOISIER_EXTREMITIES`);
* a slowly varying per-joint bias (Gaussian-smoothed noise, ~0.5 s correlation), the part of the
  error that no smoother can remove;
* a global depth error of the whole person along the viewing ray of the pelvis (monocular scale
  ambiguity): frame-to-frame jitter plus a slow drift, both proportional to the distance;
* ~1 % of joint-frames with large errors (15–60 cm), and rare whole-frame depth jumps;
* dropped frames (short bursts and occasional long gaps) and dropped joints (short bursts);
* occasional left/right swaps of a leg, an arm or the whole body for a few frames.

The ``uncertainty`` key gets a per-joint spread that follows the model's own noise level, and
flags about half of the large errors, as a real model's uncertainty output does.

:func:`make_scenario` builds a whole test case: a :mod:`~inference.training.synth.motion` motion, a
camera (position, height, tilt, direction of travel relative to it) and the exact and corrupted
trajectories.
"""

from dataclasses import dataclass, field

import numpy as np

from retarget import metrics
from retarget.contract import Trajectory
from retarget.frames import camera_to_world

from ...camera import look_at
from .clip import motions_to_trajectory
from .motion import FOOT_CHANNELS, SKELETON, Motion, generate_motion

# Left/right groups that an estimator swaps as a whole; "body" swaps every paired joint.
SWAP_GROUPS = {
    "leg": ("hip", "kne", "ank", "toe"),
    "arm": ("cla", "sho", "elb", "wri", "han"),
}


@dataclass(frozen=True)
class ErrorModel:
    """Parameters of :func:`corrupt`; rates are shares of frames or joint-frames."""

    white_mm: float = 3.0  # per-joint white noise sigma on x and y (camera frame)
    white_scale: tuple[tuple[str, float], ...] = ()  # (joint name, factor on white_mm) pairs
    depth_factor: float = 3.0  # depth (z) noise and bias sigma = this x the x/y sigma
    bias_mm: float = 13.0  # per-joint slow bias sigma on x and y
    bias_time_s: float = 0.5  # correlation time (Gaussian kernel sigma) of the per-joint bias
    root_jitter: float = 0.008  # global depth jitter sigma per frame, share of the distance
    root_drift: float = 0.025  # slow global depth error sigma, share of the distance
    root_drift_time_s: float = 1.5  # its correlation time
    outlier_rate: float = 0.01  # joint-frames with a large error
    outlier_mm: tuple[float, float] = (150.0, 600.0)  # size range of large errors
    frame_outlier_rate: float = 0.003  # frames whose whole-person depth jumps by 15-40 %
    drop_frame_rate: float = 0.02  # frames missing, in bursts of 1-12 frames
    long_gaps_per_minute: float = 4.0  # extra gaps of 0.6-1.4 s
    drop_joint_rate: float = 0.01  # joint-frames missing, in bursts of 1-6 frames
    swap_rate: float = 0.005  # frames with a left/right swap, in bursts of 1-4 frames
    uncertainty_hit_rate: float = 0.5  # share of large errors the uncertainty output flags


# White noise per joint as an estimator's limbs show it: the bundled model's wrists and hands are
# 2-4x noisier than its median joint, its elbows, knees and feet 1.5-2x.
NOISIER_EXTREMITIES = (
    ("lelb", 2.0), ("relb", 2.0), ("lwri", 3.0), ("rwri", 3.0), ("lhan", 3.0), ("rhan", 3.0),
    ("lkne", 2.0), ("rkne", 2.0), ("lank", 2.0), ("rank", 2.0), ("ltoe", 2.0), ("rtoe", 2.0),
)  # fmt: skip

NO_ERRORS = ErrorModel(
    white_mm=0.0, bias_mm=0.0, root_jitter=0.0, root_drift=0.0, outlier_rate=0.0,
    frame_outlier_rate=0.0, drop_frame_rate=0.0, long_gaps_per_minute=0.0, drop_joint_rate=0.0,
    swap_rate=0.0,
)  # fmt: skip


def _smooth_noise(rng, frame_times: np.ndarray, shape: tuple, time_s: float) -> np.ndarray:
    """Unit-variance Gaussian noise (T, *shape) smoothed in time with a Gaussian of ``time_s``."""
    num = len(frame_times)
    step = float(np.median(np.diff(frame_times))) if num > 1 else 1 / 30
    width = max(time_s / step, 1e-3)
    half = int(np.ceil(3 * width))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / width) ** 2)
    kernel /= np.sqrt(np.sum(kernel**2))  # unit variance after convolution
    white = rng.normal(size=(num + 2 * half,) + shape)
    out = np.apply_along_axis(lambda x: np.convolve(x, kernel, mode="valid"), 0, white)
    return out[:num]


def _bursts(rng, num: int, rate: float, lengths: tuple[int, int]) -> list[tuple[int, int]]:
    """Random [start, stop) bursts covering about ``rate`` of ``num`` frames."""
    if rate <= 0 or num == 0:
        return []
    mean_length = 0.5 * (lengths[0] + lengths[1])
    count = rng.poisson(rate * num / mean_length)
    out = []
    for _ in range(count):
        length = int(rng.integers(lengths[0], lengths[1] + 1))
        start = int(rng.integers(0, max(num - length, 1)))
        out.append((start, min(start + length, num)))
    return out


def _swap_permutation(group: str) -> np.ndarray:
    names = SKELETON.joint_names
    perm = np.arange(len(names))
    for j, name in enumerate(names):
        if (
            name[0] not in "lr"
            or name[1:] == ""
            or (group != "body" and name[1:] not in SWAP_GROUPS[group])
        ):
            continue
        mirror = {"l": "r", "r": "l"}[name[0]] + name[1:]
        if mirror in names:
            perm[j] = names.index(mirror)
    return perm


def corrupt(truth: Trajectory, model: ErrorModel = ErrorModel(), seed: int = 0) -> Trajectory:
    """The trajectory a per-frame estimator would deliver for ``truth`` (camera frame, mm)."""
    rng = np.random.default_rng(seed)
    poses = np.array(truth.poses3d, float)  # (T, P, J, 3)
    num, people, joints, _ = poses.shape
    times = truth.frame_times
    sigma = np.array([1.0, 1.0, model.depth_factor])
    scale = np.ones((joints, 1))
    for name, factor in model.white_scale:
        if name in truth.joint_names:
            scale[truth.joint_names.index(name)] = factor
    poses += model.white_mm * sigma * scale * rng.normal(size=poses.shape)
    poses += (
        model.bias_mm * sigma * _smooth_noise(rng, times, (people, joints, 3), model.bias_time_s)
    )
    root = poses[:, :, 0]
    distance = np.linalg.norm(root, axis=-1)  # (T, P) mm
    ray = root / np.maximum(distance, 1e-9)[..., None]
    depth_error = distance * (
        model.root_jitter * rng.normal(size=(num, people))
        + model.root_drift * _smooth_noise(rng, times, (people,), model.root_drift_time_s)
    )
    for start, stop in _bursts(rng, num, model.frame_outlier_rate, (1, 1)):
        depth_error[start:stop] += (
            distance[start:stop] * rng.choice([-1, 1]) * rng.uniform(0.15, 0.4)
        )
    poses += depth_error[..., None, None] * ray[:, :, None, :]

    white = model.white_mm * scale[:, 0]  # (J,)
    uncertainty = np.broadcast_to(
        np.sqrt((white**2 + model.bias_mm**2) * np.sum(sigma**2) / 3), poses.shape[:3]
    ) * rng.lognormal(0.0, 0.3, size=poses.shape[:3])
    outliers = rng.random(poses.shape[:3]) < model.outlier_rate
    directions = rng.normal(size=poses.shape) * np.array([1.0, 1.0, 2.0])
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    sizes = rng.uniform(*model.outlier_mm, size=poses.shape[:3])
    poses += np.where(outliers[..., None], sizes[..., None] * directions, 0.0)
    flagged = outliers & (rng.random(outliers.shape) < model.uncertainty_hit_rate)
    uncertainty = np.where(flagged, sizes, uncertainty)

    for person in range(people):
        for start, stop in _bursts(rng, num, model.swap_rate, (1, 4)):
            group = rng.choice(["leg", "leg", "arm", "body"])
            poses[start:stop, person] = poses[start:stop, person][:, _swap_permutation(group)]
        for start, stop in _bursts(rng, num, model.drop_frame_rate, (1, 12)):
            poses[start:stop, person] = np.nan
        duration_min = (times[-1] - times[0]) / 60 if num > 1 else 0.0
        step = float(np.median(np.diff(times))) if num > 1 else 1 / 30
        for _ in range(rng.poisson(model.long_gaps_per_minute * duration_min)):
            length = int(rng.uniform(0.6, 1.4) / step)
            start = int(rng.integers(0, max(num - length, 1)))
            poses[start : start + length, person] = np.nan
        for j in range(joints):
            for start, stop in _bursts(rng, num, model.drop_joint_rate, (1, 6)):
                poses[start:stop, person, j] = np.nan
    uncertainty = np.where(np.isnan(poses[..., 0]), np.nan, uncertainty)
    return truth.replace(
        poses3d=poses.astype(np.float32),
        uncertainty=uncertainty.astype(np.float32),
        model="synthetic error model",
    )


@dataclass(frozen=True)
class Scenario:
    """A ground-truth test case: the motion(s), the true camera pose (``world_from_camera``, 4x4
    metres) and the exact and corrupted trajectories."""

    name: str
    motions: list[Motion]
    world_from_camera: np.ndarray
    truth: Trajectory
    raw: Trajectory
    info: dict = field(default_factory=dict)

    def score(
        self,
        poses_mm: np.ndarray,
        world_from_camera: np.ndarray,
        clearance_m: np.ndarray | None = None,
    ) -> dict:
        """All cleaning metrics (``retarget.metrics.summary``) of the first person's ``poses_mm``
        (T, J, 3) camera frame against the truth, with the feet seen in ``world_from_camera``
        (the method's own floor; the true one for raw/baseline) and their penetration measured
        below ``clearance_m`` (per :data:`FOOT_CHANNELS`, metres above that floor; default the
        truth's planted heights)."""
        names = self.truth.joint_names
        feet = [names.index(name) for name in FOOT_CHANNELS]
        motion = self.motions[0]
        return metrics.summary(
            poses_mm,
            self.truth.poses3d[:, 0].astype(float),
            self.truth.joint_edges,
            camera_to_world(poses_mm[:, feet], world_from_camera),
            motion.channel_contacts,
            motion.clearance if clearance_m is None else clearance_m,
            support=np.isfinite(self.raw.poses3d[:, 0]).all(axis=-1),
            foot_joints=feet,
        )


# direction of travel relative to the camera (which looks along world +Y) -> heading in degrees
DIRECTIONS = {"away": 0.0, "towards": 180.0, "left": 90.0, "right": -90.0}


def scenario_camera(
    motion: Motion,
    min_distance_m: float = 3.0,
    height_m: float = 1.3,
    tilt_deg: float = 8.0,
    roll_deg: float = 0.0,
) -> np.ndarray:
    """A camera looking along world +Y, at least ``min_distance_m`` in front of the person at
    every frame, ``height_m`` above the floor, pitched down by ``tilt_deg`` and rolled by
    ``roll_deg``; returns ``world_from_camera`` (4x4)."""
    pelvis = motion.joints[:, 0]
    eye = np.array([pelvis[:, 0].mean(), pelvis[:, 1].min() - min_distance_m, height_m])
    target = eye + np.array([0.0, 1.0, -np.tan(np.radians(tilt_deg))])
    pose = look_at(eye, target)
    if roll_deg:
        c, s = np.cos(np.radians(roll_deg)), np.sin(np.radians(roll_deg))
        pose[:3, :3] = pose[:3, :3] @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
    return pose


def make_scenario(
    kind: str = "walk",
    fps: float = 30.0,
    seed: int = 0,
    duration_s: float = 6.0,
    direction: str = "left",
    height_m: float = 1.75,
    camera_height_m: float = 1.3,
    tilt_deg: float = 8.0,
    roll_deg: float = 0.0,
    min_distance_m: float = 3.0,
    model: ErrorModel = ErrorModel(),
    frame_times: np.ndarray | None = None,
    **motion_kwargs,
) -> Scenario:
    """One person doing ``kind`` in ``direction`` (see :data:`DIRECTIONS`) seen by a camera."""
    motion = generate_motion(
        kind,
        duration_s,
        fps,
        seed=seed,
        height_m=height_m,
        heading_deg=DIRECTIONS[direction],
        frame_times=frame_times,
        **motion_kwargs,
    )
    camera = scenario_camera(motion, min_distance_m, camera_height_m, tilt_deg, roll_deg)
    truth = motions_to_trajectory([motion], camera, source=f"synthetic {kind}")
    raw = corrupt(truth, model, seed=seed + 1000)
    name = f"{kind}-{direction}@{fps:g}"
    return Scenario(name, [motion], camera, truth, raw, {"kind": kind, "fps": fps, "seed": seed})
