"""Procedural human motion with exact ground truth, for tests, benchmarks, the demo and training data.

Joints follow the ``smpl+head_30`` skeleton. A body is a fixed set of bone offsets (scaled by the
person's height); a motion is per-frame local joint rotations from a gait model, applied by forward
kinematics. The root is moved so that the stance foot stays planted, which gives foot contacts with
zero slide in the ground truth. Everything is in the Blender world frame: Z up, metres.
"""

from dataclasses import dataclass

import numpy as np

from retarget.rotations import quaternion_to_matrix
from retarget.skeletons import SMPL_HEAD_30

SKELETON = SMPL_HEAD_30

# Rest positions (T-pose, facing +Y, person's left at -X) of a 1.75 m adult, metres.
_REST_1P75 = {
    "pelv": (0.0, 0.0, 0.95), "lhip": (-0.09, 0.0, 0.88), "rhip": (0.09, 0.0, 0.88),
    "bell": (0.0, -0.01, 1.06), "lkne": (-0.09, 0.01, 0.49), "rkne": (0.09, 0.01, 0.49),
    "spin": (0.0, -0.01, 1.19), "lank": (-0.09, -0.01, 0.08), "rank": (0.09, -0.01, 0.08),
    "thor": (0.0, 0.0, 1.25), "ltoe": (-0.10, 0.13, 0.02), "rtoe": (0.10, 0.13, 0.02),
    "neck": (0.0, 0.0, 1.47), "lcla": (-0.07, 0.0, 1.40), "rcla": (0.07, 0.0, 1.40),
    "head": (0.0, 0.03, 1.56), "lsho": (-0.18, 0.0, 1.42), "rsho": (0.18, 0.0, 1.42),
    "lelb": (-0.45, 0.0, 1.42), "relb": (0.45, 0.0, 1.42), "lwri": (-0.70, 0.0, 1.42),
    "rwri": (0.70, 0.0, 1.42), "lhan": (-0.78, 0.0, 1.42), "rhan": (0.78, 0.0, 1.42),
    "htop": (0.0, 0.02, 1.74), "lear": (-0.075, 0.02, 1.60), "leye": (-0.032, 0.11, 1.63),
    "nose": (0.0, 0.13, 1.60), "rear": (0.075, 0.02, 1.60), "reye": (0.032, 0.11, 1.63),
}  # fmt: skip


@dataclass(frozen=True)
class Motion:
    """Ground-truth motion of one person: ``joints`` (T, J, 3) world metres, ``frame_times`` (T,) s,
    ``contacts`` (T, 2) bool for the (left, right) foot being planted."""

    joints: np.ndarray
    frame_times: np.ndarray
    contacts: np.ndarray
    kind: str


def rest_pose(height_m: float = 1.75) -> np.ndarray:
    """T-pose joint positions ``(J, 3)`` metres for a person of the given height."""
    rest = np.array([_REST_1P75[name] for name in SKELETON.joint_names])
    return rest * (height_m / 1.75)


def _axis_angle(axis: tuple[float, float, float], angle: np.ndarray) -> np.ndarray:
    """Rotations ``(T, 3, 3)`` about a fixed axis by per-frame angles (radians)."""
    half = 0.5 * np.asarray(angle)
    quaternions = np.concatenate(
        [np.cos(half)[:, None], np.sin(half)[:, None] * np.asarray(axis)[None]], axis=1
    )
    return quaternion_to_matrix(quaternions)


def forward_kinematics(rest: np.ndarray, local_rotations: np.ndarray) -> np.ndarray:
    """Pose a rest skeleton: ``local_rotations`` (T, J, 3, 3) rotate each joint's subtree about it,
    expressed in the world axes of the rest pose. Returns joints (T, J, 3) relative to the root."""
    num_frames = local_rotations.shape[0]
    global_rotations = np.empty_like(local_rotations)
    joints = np.empty((num_frames, len(rest), 3))
    for j, parent in enumerate(SKELETON.parents):
        if parent < 0:
            global_rotations[:, j] = local_rotations[:, j]
            joints[:, j] = 0.0
            continue
        offset = rest[j] - rest[parent]
        global_rotations[:, j] = global_rotations[:, parent] @ local_rotations[:, j]
        joints[:, j] = joints[:, parent] + global_rotations[:, parent] @ offset
    return joints


# Rotation axes in the body frame: +X is the person's right, +Y forward, +Z up.
_PITCH = (1.0, 0.0, 0.0)  # positive = forward flexion of a hip, backward lean of the trunk
_ROLL = (0.0, 1.0, 0.0)
_YAW = (0.0, 0.0, 1.0)


def _gait_rotations(phase: np.ndarray, stride_deg: float, knee_deg: float) -> np.ndarray:
    """Local rotations (T, J, 3, 3) of a walking or running cycle at the given phase (radians)."""
    num_frames = len(phase)
    rotations = np.tile(np.eye(3), (num_frames, SKELETON.num_joints, 1, 1))
    idx = SKELETON.index
    stride = np.radians(stride_deg)
    for side, offset in (("l", 0.0), ("r", np.pi)):
        p = phase + offset
        hip = -stride * np.sin(p)  # negative pitch swings the leg forward (toward +Y)
        knee = -np.radians(knee_deg) * np.clip(np.sin(p - 1.9), 0, None) ** 1.5 - np.radians(4)
        ankle = -0.25 * stride * np.sin(p + 0.6)
        rotations[:, idx(side + "hip")] = _axis_angle(_PITCH, hip)
        rotations[:, idx(side + "kne")] = _axis_angle(_PITCH, knee)
        rotations[:, idx(side + "ank")] = _axis_angle(_PITCH, ankle)
        # Arms hang down (roll about the forward axis) and swing against the leg of the same side.
        hang = np.full(num_frames, np.radians(75.0) * (-1 if side == "l" else 1))
        swing = 0.8 * stride * np.sin(p)
        rotations[:, idx(side + "sho")] = _axis_angle(_PITCH, swing) @ _axis_angle(_ROLL, hang)
        bend = np.full(num_frames, np.radians(15.0) * (-1 if side == "l" else 1))
        rotations[:, idx(side + "elb")] = _axis_angle(_YAW, bend)  # forearms forward
    rotations[:, idx("spin")] = _axis_angle(_YAW, 0.15 * np.sin(phase))  # counter-rotation of chest
    rotations[:, idx("thor")] = _axis_angle(_PITCH, np.full(num_frames, np.radians(-3.0)))
    return rotations


def _plant_feet(
    joints_rel: np.ndarray, heading: np.ndarray, height_m: float
) -> tuple[np.ndarray, np.ndarray]:
    """Translate root-relative joints so the lower foot stays fixed; returns joints and contacts."""
    idx = SKELETON.index
    yaw = _axis_angle(_YAW, heading)
    joints = np.einsum("tij,tkj->tki", yaw, joints_rel)
    foot = joints[:, [idx("lank"), idx("rank")]]
    stance = np.argmin(foot[:, :, 2], axis=1)
    root = np.zeros((len(joints), 3))
    for t in range(1, len(joints)):
        s = stance[t]
        # Keep the stance foot where it was: move the root by minus the foot's own motion.
        root[t, :2] = root[t - 1, :2] - (foot[t, s, :2] - foot[t - 1, s, :2])
    joints = joints + root[:, None]
    lowest = joints[:, [idx("lank"), idx("rank"), idx("ltoe"), idx("rtoe")], 2].min(axis=1)
    joints[..., 2] -= lowest[:, None] - 0.02 * height_m / 1.75  # toe joints sit 2 cm above ground
    contacts = np.zeros((len(joints), 2), bool)
    contacts[np.arange(len(joints)), stance] = True
    return joints, contacts


def generate_motion(
    kind: str = "walk",
    duration_s: float = 4.0,
    fps: float = 30.0,
    seed: int = 0,
    height_m: float = 1.75,
    start_xy: tuple[float, float] = (0.0, 0.0),
    heading_deg: float = 0.0,
    turn_deg_per_s: float = 0.0,
) -> Motion:
    """A ground-truth motion of ``kind`` ("walk" or "run"); randomness only varies the cadence.

    The person starts at ``start_xy`` facing ``heading_deg`` (0 = +Y, positive turns left).
    """
    gaits = {"walk": (1.8, 30.0, 60.0), "run": (2.8, 45.0, 95.0)}  # steps/s, stride°, knee°
    if kind not in gaits:
        raise ValueError(f"unknown motion kind {kind!r}; choose one of {sorted(gaits)}")
    rng = np.random.default_rng(seed)
    cadence, stride_deg, knee_deg = gaits[kind]
    cadence *= rng.uniform(0.9, 1.1)
    frame_times = np.arange(int(round(duration_s * fps))) / fps
    phase = np.pi * cadence * frame_times + rng.uniform(0, 2 * np.pi)
    rest = rest_pose(height_m)
    joints_rel = forward_kinematics(rest, _gait_rotations(phase, stride_deg, knee_deg))
    heading = np.radians(heading_deg + turn_deg_per_s * frame_times)
    joints, contacts = _plant_feet(joints_rel, heading, height_m)
    joints[..., :2] += np.asarray(start_xy)
    return Motion(joints, frame_times, contacts, kind)
