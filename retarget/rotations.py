"""Rotation helpers on stacked numpy arrays. Quaternions are ``(..., 4)`` in Blender's (w, x, y, z)
order; rotation matrices are ``(..., 3, 3)`` acting on column vectors; Euler and axis-angle values
are in the channel layout of Blender's other rotation modes."""

import math

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


# Blender's other rotation modes: keys go into the channels of the bone's own mode (never changed).
_AXES = {"X": 0, "Y": 1, "Z": 2}


def quaternion_to_euler(quaternions: np.ndarray, order: str) -> np.ndarray:
    """Euler angles ``(T, 3)`` (radians, in X, Y, Z channel order as Blender stores them) of
    quaternions ``(T, 4)`` for a Blender rotation mode such as "XYZ" (X applied first:
    ``R = Rz · Ry · Rx``). Each frame takes whichever of the rotation's two Euler triples, each
    angle shifted by whole turns, lies closest to the previous frame's (as Blender's compatible
    Euler), so the channels stay continuous through the middle axis's ±90° too: the curves
    Blender interpolates between keys are the motion, not a flip."""
    matrix = quaternion_to_matrix(quaternions)
    a0, a1, a2 = (_AXES[c] for c in order)
    even = (a1 - a0) % 3 == 1  # XYZ, YZX, ZXY: R = R_a2 · R_a1 · R_a0 with a cyclic order
    sign = 1.0 if even else -1.0
    middle = np.arcsin(np.clip(-sign * matrix[:, a2, a0], -1.0, 1.0))
    first = np.arctan2(sign * matrix[:, a2, a1], matrix[:, a2, a2])
    last = np.arctan2(sign * matrix[:, a1, a0], matrix[:, a0, a0])
    one, other = np.empty((len(matrix), 3)), np.empty((len(matrix), 3))
    one[:, a0], one[:, a1], one[:, a2] = first, middle, last
    if not len(matrix) or np.abs(middle).max() < 1.4:  # far from ±90°: the other triple never wins
        return np.unwrap(one, axis=0)
    other[:, a0], other[:, a1], other[:, a2] = first + np.pi, np.pi - middle, last + np.pi
    return _continuous_euler(one, other)


def _continuous_euler(one: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Per frame, ``one`` or ``other`` (T, 3: the same rotations), each angle moved by whole
    turns, closest to the previous frame's choice."""
    turn = 2.0 * math.pi
    chosen = np.empty_like(one)
    previous = one[0].tolist() if len(one) else []
    for t, candidates in enumerate(zip(one.tolist(), other.tolist(), strict=True)):
        best, best_distance = previous, math.inf
        for angles in candidates:
            shifted = [
                a + turn * round((p - a) / turn) for a, p in zip(angles, previous, strict=True)
            ]
            distance = sum(abs(a - p) for a, p in zip(shifted, previous, strict=True))
            if distance < best_distance:
                best, best_distance = shifted, distance
        chosen[t] = previous = best
    return chosen


def quaternion_to_axis_angle(quaternions: np.ndarray) -> np.ndarray:
    """Blender axis-angle channels ``(T, 4)`` (angle, x, y, z) of continuous quaternions."""
    q = np.asarray(quaternions, np.float64)
    vector = q[:, 1:]
    size = np.linalg.norm(vector, axis=-1)
    angle = 2.0 * np.arctan2(size, q[:, 0])
    axis = np.where(size[:, None] > 1e-12, vector / np.maximum(size, 1e-12)[:, None], [0, 1.0, 0])
    return np.concatenate([angle[:, None], axis], axis=1)
