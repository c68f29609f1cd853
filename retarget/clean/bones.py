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


def _drift_offset(unit: np.ndarray, excess: np.ndarray, window: int) -> np.ndarray:
    """A slowly varying offset c(t) (3, T) of a bone's child from its parent that explains its
    length ``excess`` (T,) along each frame's direction ``unit`` (3, T) over a centred ``window``
    of frames: c = (mean u u^T + ridge I)^-1 mean u e (a bone that does not turn in the window
    pins down only the part along itself). The 3 x 3 systems are solved in closed form."""
    from .outliers import moving_average  # outliers -> filters; bones stays light to import

    x, y, z = unit
    stacked = np.stack([x * x, y * y, z * z, x * y, x * z, y * z, x * excess, y * excess,
                        z * excess], axis=1)  # fmt: skip
    m = moving_average(stacked, window).T  # (9, T)
    a, b, c = m[0] + _DRIFT_RIDGE, m[1] + _DRIFT_RIDGE, m[2] + _DRIFT_RIDGE
    d, e, f = m[3], m[4], m[5]  # the symmetric matrix [[a, d, e], [d, b, f], [e, f, c]]
    # Adjugate (cofactors) over the determinant; the ridge keeps it well away from zero.
    i00, i11, i22 = b * c - f * f, a * c - e * e, a * b - d * d
    i01, i02, i12 = e * f - d * c, d * f - e * b, d * e - a * f
    det = a * i00 + d * i01 + e * i02
    rx, ry, rz = m[6], m[7], m[8]
    return np.stack([i00 * rx + i01 * ry + i02 * rz, i01 * rx + i11 * ry + i12 * rz,
                     i02 * rx + i12 * ry + i22 * rz]) / det  # fmt: skip


_DRIFT_RIDGE = 0.2  # ridge of the drift fit (u u^T has eigenvalues up to 1)
_DRIFT_SWEEPS = 2  # sweeps over the tree of the drift fit


def fit_bone_lengths(
    joints: np.ndarray,
    parents: np.ndarray,
    lengths: np.ndarray,
    sweeps: int = 4,
    weights: np.ndarray | None = None,
    drift_window: int = 0,
) -> np.ndarray:
    """Joints (T, J, 3) with each bone at ``lengths`` (J,), staying close to ``joints``.

    ``weights`` (T, J): each joint's expected error; a bone's correction is shared by its two
    joints in proportion (None: half each), so a well-measured joint (slow, smoothed hard) next to
    a noisy one barely moves.

    ``drift_window`` (frames, > 1): before the per-frame fit, each bone is first corrected by a
    slowly varying offset (:func:`_drift_offset`, over that window). An estimator's per-joint
    errors drift slowly in the camera frame; fixing a bone's length along its own direction frame
    by frame turns such a slow error on a fast-turning bone into one that turns with the bone (an
    acceleration error the measurement did not have). The slow offset removes most of it
    first, and the per-frame fit only what is left."""
    out = _coordinate_major(joints)
    order = [j for j in topological_order(parents) if parents[j] >= 0]
    share = None if weights is None else np.ascontiguousarray(np.asarray(weights, float).T)
    if drift_window > 1 and len(out[0, 0]) > 2:
        for _ in range(_DRIFT_SWEEPS):
            for j in order:
                p = parents[j]
                bone = out[j] - out[p]
                norm = _length(bone)
                offset = _drift_offset(_unit_or_zero(bone, norm), norm - lengths[j], drift_window)
                out[j] -= 0.5 * offset
                out[p] += 0.5 * offset
    for _ in range(sweeps):
        for j in order:  # Gauss-Seidel: each bone sees the corrections before it
            p = parents[j]
            bone = out[j] - out[p]  # (3, T)
            norm = _length(bone)
            correction = (norm - lengths[j]) * _unit_or_zero(bone, norm)
            if share is None:
                out[j] -= 0.5 * correction
                out[p] += 0.5 * correction
            else:
                total = np.maximum(share[j] + share[p], 1e-12)
                out[j] -= (share[j] / total) * correction
                out[p] += (share[p] / total) * correction
    return _enforce(out.copy(), out, parents, lengths).transpose(2, 0, 1).copy()
