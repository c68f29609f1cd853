"""Joint positions -> bone rotations.

For every bone, a frame is built from its direction (head joint -> primary child) and a twist hint
(a vector between two joints that turns with the bone). The armature-space change from the rest
pose is ``delta = frame_now @ frame_rest.T``; bones with no reliable hint inherit their parent's
twist and only swing. With ``r`` the bone's rest rotation (``bone.matrix_local``, roll included),
the Blender local key is ``q_local = r⁻¹ · delta_parent⁻¹ · delta · r`` — roll-independent, and the
user's rig is never edited.
"""

from dataclasses import dataclass

import numpy as np

from .rotations import frame_from_axes, make_continuous, matrix_to_quaternion, rotation_between
from .skeletons import Skeleton

# joint -> (a, b): the twist hint of the joint's bone is position(a) - position(b)
TWIST_HINTS = {
    "pelv": ("lhip", "rhip"),
    "thor": ("lcla", "rcla"),
    "head": ("lear", "rear"),
    "lhip": ("ltoe", "lank"),
    "rhip": ("rtoe", "rank"),
    "lkne": ("ltoe", "lank"),
    "rkne": ("rtoe", "rank"),
    "lank": ("lkne", "lank"),
    "rank": ("rkne", "rank"),
}


@dataclass(frozen=True)
class SolveBone:
    """One bone to solve: its head joint, primary child joint (None for a leaf), parent bone index
    in the solve order (-1 for the root) and rest rotation ``(3, 3)`` in armature space."""

    joint: str
    child: str | None
    parent: int
    rest_rotation: np.ndarray


def armature_deltas(
    joints: np.ndarray, rest_joints: np.ndarray, skeleton: Skeleton, bones: list[SolveBone]
) -> np.ndarray:
    """Armature-space rotations from rest, ``(T, B, 3, 3)``, for joints ``(T, J, 3)``.

    ``rest_joints`` ``(J, 3)`` are the joint positions of the rest pose, in the same space.
    """
    index = skeleton.index
    deltas = np.empty((joints.shape[0], len(bones), 3, 3))
    for b, bone in enumerate(bones):
        parent_delta = deltas[:, bone.parent] if bone.parent >= 0 else np.eye(3)[None]
        if bone.child is None:
            deltas[:, b] = parent_delta
            continue
        head, child = index(bone.joint), index(bone.child)
        direction = joints[:, child] - joints[:, head]
        rest_direction = rest_joints[child] - rest_joints[head]
        hint = TWIST_HINTS.get(bone.joint)
        if hint is None:
            swung = np.einsum("tij,j->ti", parent_delta, rest_direction)
            deltas[:, b] = rotation_between(swung, direction) @ parent_delta
        else:
            a, c = index(hint[0]), index(hint[1])
            now = frame_from_axes(direction, joints[:, a] - joints[:, c])
            rest = frame_from_axes(rest_direction, rest_joints[a] - rest_joints[c])
            deltas[:, b] = now @ rest.T
    return deltas


def local_rotations(deltas: np.ndarray, bones: list[SolveBone]) -> np.ndarray:
    """Blender pose-bone quaternions ``(T, B, 4)`` (w, x, y, z), continuous in time."""
    quaternions = np.empty(deltas.shape[:2] + (4,))
    for b, bone in enumerate(bones):
        parent_delta = deltas[:, bone.parent] if bone.parent >= 0 else np.eye(3)[None]
        rest = bone.rest_rotation
        local = rest.T @ np.swapaxes(parent_delta, -1, -2) @ deltas[:, b] @ rest
        quaternions[:, b] = matrix_to_quaternion(local)
    return make_continuous(quaternions)


def root_location(
    pelvis: np.ndarray, rest_head: np.ndarray, rest_rotation: np.ndarray
) -> np.ndarray:
    """Pose-bone location ``(T, 3)`` that puts a parentless bone's head at ``pelvis`` ``(T, 3)``."""
    return (pelvis - rest_head) @ rest_rotation
