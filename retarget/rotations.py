"""Rotation helpers on stacked numpy arrays. Quaternions are ``(..., 4)`` in Blender's (w, x, y, z)
order; rotation matrices are ``(..., 3, 3)`` acting on column vectors."""

import numpy as np


def normalize(vectors: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Unit vectors along the last axis; zero vectors stay zero."""
    norm = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norm, eps)


def frame_from_axes(y_axis: np.ndarray, hint: np.ndarray) -> np.ndarray:
    """Right-handed frames ``(..., 3, 3)`` whose columns are x, y, z, with y along ``y_axis`` and x
    the part of ``hint`` orthogonal to y (Blender bones point along their local y)."""
    y = normalize(y_axis)
    x = normalize(hint - np.sum(hint * y, axis=-1, keepdims=True) * y)
    z = np.cross(x, y)
    return np.stack([x, y, z], axis=-1)


def matrix_to_quaternion(matrices: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` -> unit quaternions ``(..., 4)`` with w >= 0."""
    m = np.asarray(matrices, dtype=np.float64)
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # Shepperd's method: build all four candidates, keep the one with the largest pivot, which is
    # the numerically stable choice for that matrix.
    pivots = np.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1
    )
    s = 2.0 * np.sqrt(np.maximum(pivots, 1e-12))  # (..., 4): 4·w, 4·x, 4·y, 4·z per candidate
    d21, d02, d10 = (
        m[..., 2, 1] - m[..., 1, 2],
        m[..., 0, 2] - m[..., 2, 0],
        m[..., 1, 0] - m[..., 0, 1],
    )
    s01, s02, s12 = (
        m[..., 0, 1] + m[..., 1, 0],
        m[..., 0, 2] + m[..., 2, 0],
        m[..., 1, 2] + m[..., 2, 1],
    )
    candidates = np.stack(
        [
            np.stack([s[..., 0] ** 2 / 4, d21, d02, d10], -1) / s[..., 0:1],
            np.stack([d21, s[..., 1] ** 2 / 4, s01, s02], -1) / s[..., 1:2],
            np.stack([d02, s01, s[..., 2] ** 2 / 4, s12], -1) / s[..., 2:3],
            np.stack([d10, s02, s12, s[..., 3] ** 2 / 4], -1) / s[..., 3:4],
        ],
        axis=-2,
    )
    best = np.argmax(pivots, axis=-1)[..., None, None]
    q = normalize(np.take_along_axis(candidates, best, axis=-2)[..., 0, :])
    return np.where(q[..., :1] < 0, -q, q)


def quaternion_to_matrix(quaternions: np.ndarray) -> np.ndarray:
    """Quaternions ``(..., 4)`` (w, x, y, z), not necessarily unit -> rotation matrices ``(..., 3, 3)``."""
    w, x, y, z = np.moveaxis(normalize(np.asarray(quaternions, np.float64)), -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=-2,
    )


def make_continuous(quaternions: np.ndarray) -> np.ndarray:
    """Quaternions ``(T, ..., 4)`` with signs flipped so consecutive ones (along axis 0, time) have
    a non-negative dot product: the sign of frame t is the running product of the signs of the
    consecutive dot products up to t."""
    q = np.asarray(quaternions, np.float64)
    steps = np.where(np.sum(q[1:] * q[:-1], axis=-1) < 0, -1.0, 1.0)
    signs = np.concatenate([np.ones((1,) + steps.shape[1:]), np.cumprod(steps, axis=0)], axis=0)
    return q * signs[..., None]


def rotation_between(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Smallest rotations ``(..., 3, 3)`` turning directions ``source`` onto ``target``."""
    a, b = normalize(source), normalize(target)
    axis = np.cross(a, b)
    cos = np.clip(np.sum(a * b, axis=-1), -1.0, 1.0)
    sin = np.linalg.norm(axis, axis=-1)
    # Opposite vectors: rotate by pi about any axis orthogonal to a.
    fallback = np.cross(a, np.where(np.abs(a[..., :1]) < 0.9, [1.0, 0, 0], [0, 1.0, 0]))
    axis = np.where((sin < 1e-9)[..., None], fallback, axis)
    k = normalize(axis)
    kx = np.zeros(k.shape[:-1] + (3, 3))
    kx[..., 0, 1], kx[..., 0, 2], kx[..., 1, 2] = -k[..., 2], k[..., 1], -k[..., 0]
    kx = kx - np.swapaxes(kx, -1, -2)
    angle = np.arctan2(sin, cos)[..., None, None]
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * (kx @ kx)
