"""Random static body poses and body proportions for synthetic training images.

The motion generator (:mod:`.motion`) gives natural but repetitive poses; training also needs the
poses it does not cover (arms raised, bending, crouching, kneeling, twisting). :func:`random_pose`
draws every joint angle independently inside anatomical limits and poses the skeleton with the
motion module's forward kinematics. :func:`scale_bones` varies a body's proportions (legs, arms,
torso, shoulder and hip width, head size) on any posed skeleton while keeping bone directions.

Joints follow ``smpl+head_30``; world frame Z up, metres; the body faces +Y at zero heading.
"""

import numpy as np

from .motion import SKELETON, forward_kinematics, rest_pose

_X, _Y, _Z = np.eye(3)  # body axes: +X the person's right, +Y forward, +Z up

# Limits in degrees (low, high), for the LEFT side; the right side mirrors the signs of the roll
# and yaw angles. Flexion signs follow the forward kinematics: hip flexion is +X rotation, knee
# flexion -X, trunk forward bend -X, left elbow flexion -Z, left arm lowering -Y.
_LIMITS = {
    "hip_flex": (-25.0, 110.0),
    "hip_abduct": (-10.0, 40.0),
    "hip_twist": (-25.0, 25.0),
    "knee_flex": (0.0, 140.0),
    "ankle_flex": (-30.0, 25.0),
    "trunk_bend": (-45.0, 15.0),  # per trunk joint (bell, spin, thor); negative leans forward
    "trunk_side": (-12.0, 12.0),
    "trunk_twist": (-20.0, 20.0),
    "neck_bend": (-30.0, 25.0),
    "neck_side": (-20.0, 20.0),
    "neck_twist": (-40.0, 40.0),
    "arm_raise": (-88.0, 70.0),  # roll of the T-posed arm: -88 hangs down, +70 above the head
    "arm_swing": (-50.0, 150.0),  # forward swing of the lowered arm
    "arm_across": (-30.0, 40.0),  # horizontal adduction in front of the chest
    "arm_twist": (-40.0, 40.0),
    "elbow_flex": (0.0, 145.0),
    "wrist": (-30.0, 30.0),
}

BONE_GROUPS = {
    "legs": ("lkne", "rkne", "lank", "rank", "ltoe", "rtoe"),
    "arms": ("lelb", "relb", "lwri", "rwri", "lhan", "rhan"),
    "torso": ("bell", "spin", "thor", "neck", "head"),
    "shoulders": ("lcla", "rcla", "lsho", "rsho"),
    "hips": ("lhip", "rhip"),
    "head": ("htop", "lear", "leye", "nose", "rear", "reye"),
}


def axis_angle_matrix(axis: np.ndarray, degrees: float) -> np.ndarray:
    """Rotation matrix (3, 3) about the unit ``axis`` by ``degrees`` (right-hand rule)."""
    angle = np.radians(degrees)
    x, y, z = axis
    cross = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def _uniform(rng: np.random.Generator, name: str, spread: float) -> float:
    """An angle inside the limits of ``name``, narrowed towards its mid-range by ``spread`` < 1."""
    low, high = _LIMITS[name]
    mid, half = 0.5 * (low + high), 0.5 * (high - low) * spread
    return float(rng.uniform(mid - half, mid + half))


def _skewed(rng: np.random.Generator, name: str) -> float:
    """An angle inside the limits, denser near the lower limit (relaxed joints are common)."""
    low, high = _LIMITS[name]
    return float(low + (high - low) * rng.uniform() ** 1.7)


def random_local_rotations(rng: np.random.Generator) -> np.ndarray:
    """Local joint rotations (J, 3, 3) of one random pose within the limits above."""
    rotations = np.tile(np.eye(3), (SKELETON.num_joints, 1, 1))
    idx = SKELETON.index
    for side, sign in (("l", 1.0), ("r", -1.0)):
        hip = (
            axis_angle_matrix(_X, _skewed(rng, "hip_flex") if rng.uniform() < 0.5 else
                              _uniform(rng, "hip_flex", 0.35) - 15)
            @ axis_angle_matrix(_Y, sign * _skewed(rng, "hip_abduct"))
            @ axis_angle_matrix(_Z, sign * _uniform(rng, "hip_twist", 1.0))
        )  # fmt: skip
        rotations[idx(side + "hip")] = hip
        rotations[idx(side + "kne")] = axis_angle_matrix(_X, -_skewed(rng, "knee_flex"))
        rotations[idx(side + "ank")] = axis_angle_matrix(_X, _uniform(rng, "ankle_flex", 1.0))
        shoulder = (
            axis_angle_matrix(_X, _skewed(rng, "arm_swing") if rng.uniform() < 0.6 else 0.0)
            @ axis_angle_matrix(_Y, sign * _uniform(rng, "arm_raise", 1.0))
            @ axis_angle_matrix(_Z, -sign * _uniform(rng, "arm_across", 1.0))
            @ axis_angle_matrix(_X, _uniform(rng, "arm_twist", 1.0))
        )
        rotations[idx(side + "sho")] = shoulder
        rotations[idx(side + "elb")] = axis_angle_matrix(_Z, -sign * _skewed(rng, "elbow_flex"))
        rotations[idx(side + "wri")] = axis_angle_matrix(_Y, _uniform(rng, "wrist", 1.0))
    for joint in ("bell", "spin", "thor"):
        rotations[idx(joint)] = (
            axis_angle_matrix(_X, _uniform(rng, "trunk_bend", 0.6) / 1.5)
            @ axis_angle_matrix(_Y, _uniform(rng, "trunk_side", 1.0) / 1.5)
            @ axis_angle_matrix(_Z, _uniform(rng, "trunk_twist", 1.0) / 1.5)
        )
    rotations[idx("neck")] = axis_angle_matrix(_X, _uniform(rng, "neck_bend", 1.0) / 2)
    rotations[idx("head")] = (
        axis_angle_matrix(_X, _uniform(rng, "neck_bend", 1.0) / 2)
        @ axis_angle_matrix(_Y, _uniform(rng, "neck_side", 1.0))
        @ axis_angle_matrix(_Z, _uniform(rng, "neck_twist", 1.0))
    )
    return rotations


def random_pose(rng: np.random.Generator, height_m: float = 1.75) -> np.ndarray:
    """Joints (J, 3) world metres of a random pose of a person of ``height_m``, facing +Y, with the
    root above the origin and the lowest joint on the floor (z = 0.02 m, the toe joints' height
    when standing)."""
    rotations = random_local_rotations(rng)
    # Whole-body lean: mostly upright, sometimes bent over or leaning back.
    rotations[0] = axis_angle_matrix(_X, float(rng.normal(0, 8))) @ axis_angle_matrix(
        _Y, float(rng.normal(0, 5))
    )
    joints = forward_kinematics(rest_pose(height_m), rotations[None])[0]
    joints[:, 2] -= joints[:, 2].min() - 0.02 * height_m / 1.75
    return joints


def random_bone_scales(rng: np.random.Generator, spread: float = 1.0) -> np.ndarray:
    """Per-joint scale factors (J,) of the bone ending at each joint: one factor per group of
    :data:`BONE_GROUPS`, uniform in ``1 ± 0.08 * spread`` (widths ``1 ± 0.15 * spread``)."""
    scales = np.ones(SKELETON.num_joints)
    for group, joints in BONE_GROUPS.items():
        half = (0.15 if group in ("shoulders", "hips") else 0.08) * spread
        factor = rng.uniform(1 - half, 1 + half)
        for name in joints:
            scales[SKELETON.index(name)] = factor
    return scales


def scale_bones(joints: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Rebuild posed joints (..., J, 3) root to leaves with each bone's length times ``scales`` (J,);
    the root and all bone directions stay where they were."""
    out = np.array(joints, dtype=float, copy=True)
    for j, parent in enumerate(SKELETON.parents):
        if parent >= 0:
            out[..., j, :] = out[..., parent, :] + scales[j] * (
                joints[..., j, :] - joints[..., parent, :]
            )
    return out


def yaw_matrix(degrees: float) -> np.ndarray:
    """Rotation (3, 3) about world +Z (a person's heading; positive turns left)."""
    return axis_angle_matrix(_Z, degrees)
