"""From armature-space rotations to what is keyed: local quaternions per keyed bone (with joint
limits, children following their parent's clamped pose), continuous in sign; the bones' posed heads
and the canonical joints they carry; bones that only follow others. Pure numpy."""

import numpy as np

from ..rotations import make_continuous, matrix_to_quaternion, normalize, quaternion_to_matrix
from .params import RetargetParams
from .target import Plan


def bone_heads(plan: Plan, deltas: dict[int, np.ndarray], num_frames: int) -> dict[int, np.ndarray]:
    """Posed heads ``(T, 3)`` of the evaluated bones, with the root bone at its rest position."""
    rig = plan.rig
    heads: dict[int, np.ndarray] = {}
    for b in plan.order:
        followed, p = rig.follow[b], rig.parents[b]
        if followed >= 0 and rig.follow_location[b]:
            heads[b] = heads[followed]
        elif p < 0 or p not in heads:
            heads[b] = np.broadcast_to(rig.heads[b], (num_frames, 3))
        else:
            heads[b] = heads[p] + np.einsum("tij,j->ti", deltas[p], rig.heads[b] - rig.heads[p])
    return heads


def posed_joints(plan: Plan, deltas, heads) -> dict[str, np.ndarray]:
    """Canonical joints ``(T, 3)`` moved rigidly with the keyed bone each is attached to."""
    rig = plan.rig
    return {
        joint: heads[b] + np.einsum("tij,j->ti", deltas[b], plan.joints[joint] - rig.heads[b])
        for joint, b in plan.attach.items()
    }


def propagate(plan: Plan, deltas: dict[int, np.ndarray], num_frames: int) -> None:
    """Recompute the deltas of bones that only follow others, keyed toes included (after foot
    locking turned the legs and feet)."""
    rig = plan.rig
    eye = np.broadcast_to(np.eye(3), (num_frames, 3, 3))
    for b in plan.order:
        unit = plan.unit_of.get(b)
        if unit is not None and unit.kind != "inherit":
            continue
        followed, p = rig.follow[b], rig.parents[b]
        if followed >= 0:
            deltas[b] = deltas[followed] @ (rig.rotations[followed] @ rig.rotations[b].T)
        else:
            deltas[b] = deltas[p] if p >= 0 else eye


def _clamp(quaternions: np.ndarray, max_angle: float) -> np.ndarray:
    """Limit the rotation angle of quaternions ``(T, 4)`` (w >= 0 assumed) to ``max_angle`` rad."""
    q = np.where(quaternions[:, :1] < 0, -quaternions, quaternions)
    half = np.arccos(np.clip(q[:, 0], -1.0, 1.0))
    limit = 0.5 * max_angle
    over = half > limit
    axis = normalize(q[:, 1:])
    clamped = np.concatenate([np.cos(limit) * np.ones((len(q), 1)), np.sin(limit) * axis], 1)
    return np.where(over[:, None], clamped, q)


def local_rotations(plan: Plan, deltas, params: RetargetParams, num_frames: int):
    """Local quaternions ``(T, 4)`` per keyed bone, parents first; with joint limits on, each
    child aims at its target relative to its parent's *clamped* pose."""
    rig = plan.rig
    posed: dict[int, np.ndarray] = {}
    local: dict[int, np.ndarray] = {}
    eye = np.broadcast_to(np.eye(3), (num_frames, 3, 3))
    for b in plan.order:
        followed, p = rig.follow[b], rig.parents[b]
        if b not in plan.unit_of:
            if followed >= 0:
                posed[b] = posed[followed] @ (rig.rotations[followed] @ rig.rotations[b].T)
            else:
                posed[b] = posed[p] if p >= 0 else eye
            continue
        parent = posed[p] if p >= 0 else eye
        rest = rig.rotations[b]
        matrix = rest.T @ np.swapaxes(parent, -1, -2) @ deltas[b] @ rest
        q = matrix_to_quaternion(matrix)
        limit = (params.joint_limits or {}).get(plan.unit_of[b].slot.split(".")[0])
        if limit is not None:
            q = _clamp(q, np.radians(limit))
            posed[b] = parent @ rest @ quaternion_to_matrix(q) @ rest.T
        else:
            posed[b] = deltas[b]
        local[b] = make_continuous(q)
    return local, posed
