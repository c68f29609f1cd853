"""Bone-length consistency: one length per bone per person.

Re-placing joints root to leaves along the measured bone directions gives exact lengths, but every
joint then inherits the errors of all bones above it (a hand sits nine bones from the pelvis). So
:func:`fit_bone_lengths` first spreads each bone's length correction over both of its joints
(Gauss–Seidel constraint projection, a few sweeps over the tree), which keeps the joints close to
the measurements, and only then re-places root to leaves, which now moves them very little.

Joint arrays are ``(T, J, 3)`` in any length unit; ``parents`` is ``(J,)`` with -1 for roots.
"""

import numpy as np

from . import RetargetError
from .frames import norm3


def parents_from_edges(edges: np.ndarray, num_joints: int) -> np.ndarray:
    """Parent index per joint (-1 for roots) from ``(E, 2)`` (parent, child) edges."""
    parents = np.full(num_joints, -1)
    for parent, child in np.asarray(edges, int).reshape(-1, 2):
        if parents[child] >= 0 and parents[child] != parent:
            raise RetargetError(
                f"joint {child} has two parents in 'joint_edges'; it must be a tree"
            )
        parents[child] = parent
    order = topological_order(parents)
    if len(order) != num_joints:
        raise RetargetError("'joint_edges' contain a cycle; they must form a tree")
    return parents


def topological_order(parents: np.ndarray) -> list[int]:
    """Joint indices with every parent before its children (joints in a cycle are left out)."""
    children: dict[int, list[int]] = {}
    for j, p in enumerate(parents):
        children.setdefault(int(p), []).append(j)
    order, stack = [], list(reversed(children.get(-1, [])))
    while stack:
        j = stack.pop()
        order.append(j)
        stack.extend(reversed(children.get(j, [])))
    return order


def median_bone_lengths(joints: np.ndarray, parents: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Median length (J,) of each joint's bone to its parent over the frames where both ends are
    in ``mask`` (T, J) (all frames when none are); 0 for roots."""
    lengths = np.zeros(len(parents))
    for j, p in enumerate(parents):
        if p < 0:
            continue
        bone = norm3(joints[:, j] - joints[:, p])
        both = mask[:, j] & mask[:, p] & np.isfinite(bone)
        usable = bone[both] if both.any() else bone[np.isfinite(bone)]
        lengths[j] = float(np.median(usable)) if usable.size else 0.0
    return lengths


def enforce_bone_lengths(
    joints: np.ndarray, parents: np.ndarray, lengths: np.ndarray
) -> np.ndarray:
    """Re-place joints root to leaves: child = parent + length x unit(child - parent), using the
    directions of ``joints``. A zero-length direction keeps the child on its parent."""
    out = np.array(joints, float, copy=True)
    for j in topological_order(parents):
        p = parents[j]
        if p < 0:
            continue
        direction = joints[:, j] - joints[:, p]
        norm = norm3(direction)[:, None]
        unit = np.divide(direction, norm, out=np.zeros_like(direction), where=norm > 1e-9)
        out[:, j] = out[:, p] + lengths[j] * unit
    return out


def fit_bone_lengths(
    joints: np.ndarray, parents: np.ndarray, lengths: np.ndarray, sweeps: int = 4
) -> np.ndarray:
    """Joints (T, J, 3) with each bone at ``lengths`` (J,), staying close to ``joints``."""
    out = np.array(joints, float, copy=True)
    order = [j for j in topological_order(parents) if parents[j] >= 0]
    for _ in range(sweeps):
        for j in order:
            p = parents[j]
            bone = out[:, j] - out[:, p]
            norm = norm3(bone)[:, None]
            unit = np.divide(bone, norm, out=np.zeros_like(bone), where=norm > 1e-9)
            correction = 0.5 * (norm - lengths[j]) * unit
            out[:, j] -= correction
            out[:, p] += correction
    return enforce_bone_lengths(out, parents, lengths)
