"""Bone-length consistency: one length per bone per person.

Re-placing joints root to leaves along the measured bone directions gives exact lengths, but every
joint then inherits the errors of all bones above it (a hand sits nine bones from the pelvis). So
:func:`fit_bone_lengths` first spreads each bone's length correction over both of its joints
(Gauss–Seidel constraint projection, a few sweeps over the tree), which keeps the joints close to
the measurements, and only then re-places root to leaves, which now moves them very little.

Joint arrays are ``(T, J, 3)`` in any length unit; ``parents`` is ``(J,)`` with -1 for roots.
"""

import numpy as np

from .. import RetargetError
from .vectors import norm3


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
    children = np.flatnonzero(parents >= 0)
    bones = norm3(joints[:, children] - joints[:, parents[children]])  # (T, B)
    finite = np.isfinite(bones)
    both = mask[:, children] & mask[:, parents[children]] & finite
    for b, j in enumerate(children):  # np.median selects (partition): no full sort
        usable = bones[both[:, b], b] if both[:, b].any() else bones[finite[:, b], b]
        lengths[j] = float(np.median(usable)) if usable.size else 0.0
    return lengths


def _unit_or_zero(vectors: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """``vectors`` (..., 3, T) over their ``norm`` (..., T); zero where the norm is below 1e-9."""
    return vectors / np.where(norm > 1e-9, norm, np.inf)[..., None, :]


def _coordinate_major(joints: np.ndarray) -> np.ndarray:
    """(T, J, 3) -> a (J, 3, T) copy: each joint coordinate's frames contiguous, so that the
    per-bone steps run over contiguous memory."""
    return np.array(np.asarray(joints, float).transpose(1, 2, 0), order="C")


def _length(vectors: np.ndarray) -> np.ndarray:
    """Norm (..., T) of (..., 3, T) vectors (the same numbers as ``np.linalg.norm``)."""
    x, y, z = vectors[..., 0, :], vectors[..., 1, :], vectors[..., 2, :]
    return np.sqrt(x * x + y * y + z * z)


def _enforce(out: np.ndarray, directions: np.ndarray, parents, lengths) -> np.ndarray:
    """Re-place the joints of ``out`` (J, 3, T) root to leaves along ``directions`` (J, 3, T)."""
    for j in topological_order(parents):
        p = parents[j]
        if p >= 0:
            direction = directions[j] - directions[p]
            out[j] = out[p] + lengths[j] * _unit_or_zero(direction, _length(direction))
    return out


def fit_bone_lengths(
    joints: np.ndarray, parents: np.ndarray, lengths: np.ndarray, sweeps: int = 4
) -> np.ndarray:
    """Joints (T, J, 3) with each bone at ``lengths`` (J,), staying close to ``joints``."""
    out = _coordinate_major(joints)
    order = [j for j in topological_order(parents) if parents[j] >= 0]
    for _ in range(sweeps):
        for j in order:  # Gauss-Seidel: each bone sees the corrections before it
            p = parents[j]
            bone = out[j] - out[p]  # (3, T)
            norm = _length(bone)
            correction = 0.5 * (norm - lengths[j]) * _unit_or_zero(bone, norm)
            out[j] -= correction
            out[p] += correction
    return _enforce(out.copy(), out, parents, lengths).transpose(2, 0, 1).copy()
