"""Key reduction: a dense take (a key on every frame) -> few Bezier keys an animator can edit.

Blender evaluates a Bezier segment between keys ``(x0, y0)`` and ``(x1, y1)`` as a 2D cubic
through the right handle of the first and the left handle of the second. Handles placed a third
of the way along x make x linear in the curve parameter, so the segment is the cubic Hermite
curve with the slopes the handles give: what Blender draws and plays is exactly
:func:`evaluate`. Both handles of a key lie on one line through it (Blender's *Aligned* handles),
so moving a key keeps its curve smooth.

:func:`reduce_rotations` and :func:`reduce_location` keep few keys (greedily: every segment
whose curve strays further than the tolerance from the dense samples is split at its worst
frame, until none does), each key's slope the dense curve's own (central differences), the
channels of one bone sharing their key frames. The error is measured on all channels at once,
as the pose sees them: the angle between the rotation keyed densely and the one the curves give
(:func:`rotation_error_deg`, for quaternion, axis-angle and every Euler order, normalised as
Blender normalises them), the distance between two locations (:func:`distance`). Keys are a
subset of the dense frames, so every dense frame is within the tolerance and the first and last
frames are exact. Pure numpy.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import RetargetError

ErrorFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (T, C), (T, C) -> (T,)
EULER_ORDERS = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")
_AXES = {"X": 0, "Y": 1, "Z": 2}


@dataclass(frozen=True)
class KeyTolerance:
    """How far reduced keys may stray from the dense take, on any frame."""

    rotation_deg: float = 0.5  # per bone: angle between the dense and the keyed local rotation
    location_m: float = 0.005  # the root's location (pose-bone units: metres on an unscaled rig)

    @classmethod
    def from_mm(
        cls, rotation_deg: float | None = None, location_mm: float | None = None
    ) -> "KeyTolerance":
        """The bounds as the panel and the command line give them (None: the default)."""
        default = cls()
        return cls(
            default.rotation_deg if rotation_deg is None else rotation_deg,
            default.location_m if location_mm is None else 0.001 * location_mm,
        )

    def __post_init__(self) -> None:
        for name in ("rotation_deg", "location_m"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise RetargetError(f"key tolerance {name} must be a positive number, got {value}")


# While a foot is planted, the bones from the root down to it (root location, hips, thigh, shin,
# foot, toe) get this share of the tolerance: their errors add up at the foot, and a planted foot
# is where an animator sees a few millimetres (docs/design.md §7).
PLANTED_SHARE = 0.2


def planted_scales(
    bone_names: "list[str]",
    locked: np.ndarray,
    legs: "tuple[set[str], set[str]]",
    body: "set[str]",
    share: float = PLANTED_SHARE,
) -> dict[str, np.ndarray]:
    """Per bone, the factor ``(T,)`` on the tolerance: ``share`` on the frames where a foot is
    held (``locked`` ``(T, 2)`` left, right) for the bones of that leg (``legs``: left, right bone
    names) and for the ``body`` bones above both legs (hips, root), 1 elsewhere; bones of neither
    are left out (factor 1)."""
    locked = np.asarray(locked, bool)
    scales = {}
    for name in bone_names:
        held = np.zeros(len(locked), bool)
        for side, bones in enumerate(legs):
            if name in bones:
                held |= locked[:, side]
        if name in body:
            held |= locked.any(axis=1)
        if held.any():
            scales[name] = np.where(held, share, 1.0)
    return scales


@dataclass(frozen=True)
class BezierKeys:
    """Keys of ``C`` channels at shared frames: ``frames`` ``(K,)``, ``values`` ``(K, C)``,
    ``slopes`` ``(K, C)`` value per frame; the handles lie a third of the way to the neighbours."""

    frames: np.ndarray
    values: np.ndarray
    slopes: np.ndarray

    def handles(self) -> tuple[np.ndarray, np.ndarray]:
        """Left and right handles ``(K, C, 2)`` (frame, value), as Blender stores them."""
        gaps = np.diff(self.frames)
        first = gaps[0] if len(gaps) else 1.0
        last = gaps[-1] if len(gaps) else 1.0
        before = np.concatenate([[first], gaps])[:, None] / 3.0
        after = np.concatenate([gaps, [last]])[:, None] / 3.0
        frames = np.broadcast_to(self.frames[:, None], self.values.shape)
        left = np.stack([frames - before, self.values - self.slopes * before], axis=-1)
        right = np.stack([frames + after, self.values + self.slopes * after], axis=-1)
        return left, right


def evaluate(keys: BezierKeys, frames: np.ndarray) -> np.ndarray:
    """Values ``(T, C)`` of the keyed curves at ``frames`` ``(T,)`` (within the keyed range)."""
    frames = np.asarray(frames, np.float64)
    if len(keys.frames) == 1:
        return np.broadcast_to(keys.values[0], (len(frames), keys.values.shape[1])).copy()
    last = len(keys.frames) - 2
    segment = np.clip(np.searchsorted(keys.frames, frames, side="right") - 1, 0, last)
    x0, x1 = keys.frames[segment], keys.frames[segment + 1]
    span = (x1 - x0)[:, None]
    t = ((frames - x0) / (x1 - x0))[:, None]
    y0, y1 = keys.values[segment], keys.values[segment + 1]
    m0, m1 = keys.slopes[segment] * span, keys.slopes[segment + 1] * span
    t2, t3 = t * t, t * t * t
    return ((2 * t3 - 3 * t2 + 1) * y0 + (t3 - 2 * t2 + t) * m0 + (-2 * t3 + 3 * t2) * y1
            + (t3 - t2) * m1)  # fmt: skip


def dense_slopes(frames: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Slopes ``(T, C)`` of dense samples: central differences, one-sided at the ends."""
    if len(frames) < 2:
        return np.zeros_like(values)
    return np.gradient(values, frames, axis=0)


def _worst_frames(errors: np.ndarray, kept: np.ndarray, tolerance) -> np.ndarray:
    """Per segment between kept frames, its frame whose error exceeds its ``tolerance`` (a number
    or per frame) the most, relatively, if any does (never a kept frame; the first on a tie)."""
    excess = np.where(kept, -np.inf, errors / tolerance)
    starts = np.flatnonzero(kept)
    segment = np.cumsum(kept) - 1  # the segment each frame starts or lies in
    worst = np.maximum.reduceat(excess, starts)[segment]
    candidates = np.flatnonzero((excess == worst) & (excess > 1.0))
    if not len(candidates):
        return candidates
    first = np.concatenate([[True], np.diff(segment[candidates]) != 0])
    return candidates[first]


def _reduce(frames, values, slopes, kept, tolerance, error) -> tuple[BezierKeys, np.ndarray]:
    """Few keys (greedy) whose curves stay within ``tolerance`` (a number, or ``(T,)`` one per
    frame) of ``values`` ``(T, C)`` at every one of ``frames`` ``(T,)`` (increasing), as measured
    by ``error``, from the keys ``kept`` ``(T,)`` on (at least the first and last frames): the
    keys and the errors ``(T,)``."""
    kept = kept.copy()
    keys = BezierKeys(frames[kept], values[kept], slopes[kept])
    errors = error(values, evaluate(keys, frames))
    while True:
        split = _worst_frames(errors, kept, tolerance)
        if not len(split):
            return keys, errors
        kept[split] = True
        keys = BezierKeys(frames[kept], values[kept], slopes[kept])
        # A Hermite segment depends on its two keys only: only the split segments change.
        indices = np.flatnonzero(kept)
        where = np.searchsorted(indices, split)
        changed = np.zeros(len(frames) + 1, np.int64)
        np.add.at(changed, indices[where - 1], 1)
        np.add.at(changed, indices[where + 1] + 1, -1)
        inside = np.flatnonzero(np.cumsum(changed[:-1]) > 0)
        errors[inside] = error(values[inside], evaluate(keys, frames[inside]))


def quaternion_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton products ``a * b`` of quaternions ``(..., 4)`` (w, x, y, z)."""
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw],
                    axis=-1)  # fmt: skip


def euler_to_quaternion(angles: np.ndarray, order: str) -> np.ndarray:
    """Quaternions ``(T, 4)`` of Euler angles ``(T, 3)`` (radians, X, Y, Z channels as Blender
    stores them) in Blender's rotation mode ``order`` (first letter applied first: "XYZ" is
    ``Rz · Ry · Rx``)."""
    angles = np.asarray(angles, np.float64)
    result = np.zeros(angles.shape[:-1] + (4,))
    result[..., 0] = 1.0
    for letter in order:
        axis = _AXES[letter]
        half = 0.5 * angles[..., axis]
        turn = np.zeros_like(result)
        turn[..., 0], turn[..., 1 + axis] = np.cos(half), np.sin(half)
        result = quaternion_product(turn, result)
    return result


def axis_angle_to_quaternion(values: np.ndarray) -> np.ndarray:
    """Quaternions ``(T, 4)`` of Blender axis-angle values ``(T, 4)`` (angle, x, y, z); the axis
    is normalised as Blender does (a zero axis: no rotation)."""
    values = np.asarray(values, np.float64)
    axis = values[..., 1:]
    norm = np.linalg.norm(axis, axis=-1, keepdims=True)
    unit = np.where(norm > 1e-12, axis / np.maximum(norm, 1e-300), 0.0)
    half = 0.5 * values[..., :1]
    result = np.concatenate([np.cos(half), np.sin(half) * unit], axis=-1)
    return np.where(norm > 1e-12, result, [1.0, 0.0, 0.0, 0.0])


def channel_quaternions(values: np.ndarray, mode: str) -> np.ndarray:
    """Unit quaternions ``(T, 4)`` of a bone's rotation channels ``(T, 3|4)`` in rotation mode
    ``mode`` ("QUATERNION", "AXIS_ANGLE" or an Euler order), as Blender poses the bone."""
    if mode == "QUATERNION":
        q = np.asarray(values, np.float64)
        return q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-300)
    if mode == "AXIS_ANGLE":
        return axis_angle_to_quaternion(values)
    if mode in EULER_ORDERS:
        return euler_to_quaternion(values, mode)
    raise RetargetError(f"unknown rotation mode {mode!r}")


def quaternion_angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle (degrees) of the rotation between unit quaternions ``a`` and ``b`` ``(T, 4)``, either
    sign; accurate down to tiny angles (no arccos near 1)."""
    conjugate = a * np.array([1.0, -1.0, -1.0, -1.0])
    relative = quaternion_product(conjugate, b)
    return np.degrees(
        2.0 * np.arctan2(np.linalg.norm(relative[..., 1:], axis=-1), np.abs(relative[..., 0]))
    )


def rotation_error_deg(mode: str) -> ErrorFunction:
    """An :data:`ErrorFunction`: the angle (degrees) between the rotations two sets of channels
    ``(T, 3|4)`` of rotation mode ``mode`` give."""

    def error(dense: np.ndarray, keyed: np.ndarray) -> np.ndarray:
        return quaternion_angle_deg(channel_quaternions(dense, mode),
                                    channel_quaternions(keyed, mode))  # fmt: skip

    return error


def distance(dense: np.ndarray, keyed: np.ndarray) -> np.ndarray:
    """Euclidean distance ``(T,)`` between points ``(T, C)``."""
    return np.linalg.norm(np.asarray(dense) - np.asarray(keyed), axis=-1)


@dataclass(frozen=True)
class ReducedChannels:
    """One bone's reduced channels: the keys and the largest error on a dense frame (degrees for
    rotations, pose-bone units for locations)."""

    keys: BezierKeys
    max_error: float


def reduce_rotation(
    frames: np.ndarray, values: np.ndarray, mode: str, tolerance_deg
) -> ReducedChannels:
    """Reduce a bone's rotation channels ``(T, 3|4)`` in rotation ``mode``; ``tolerance_deg`` a
    number or ``(T,)`` one per frame."""
    tolerance = np.asarray(tolerance_deg, np.float64)
    return reduce_rotations(frames, np.asarray(values)[None], mode, tolerance[None])[0]


def reduce_rotations(
    frames: np.ndarray, values: np.ndarray, mode: str, tolerance_deg
) -> list[ReducedChannels]:
    """Reduce the rotation channels ``(B, T, 3|4)`` of ``B`` bones of one rotation ``mode``, each
    on its own keys, in one pass (as :func:`reduce_rotation` would one by one); ``tolerance_deg``
    a number, or per bone and frame (anything that broadcasts to ``(B, T)``)."""
    return _reduce_each(frames, values, tolerance_deg, rotation_error_deg(mode))


def reduce_location(frames: np.ndarray, values: np.ndarray, tolerance) -> ReducedChannels:
    """Reduce a bone's location channels ``(T, 3)``; ``tolerance`` a number or ``(T,)``."""
    tolerance = np.asarray(tolerance, np.float64)
    return _reduce_each(frames, np.asarray(values)[None], tolerance[None], distance)[0]


def _reduce_each(
    frames: np.ndarray, values: np.ndarray, tolerance, error: ErrorFunction
) -> list[ReducedChannels]:
    """The greedy reduction (:func:`_reduce`) of each of ``B`` curves ``(B, T, C)`` sharing
    ``frames`` ``(T,)``, with ``tolerance`` broadcast to ``(B, T)``.

    The curves are laid end to end on one time line (each moved past the previous one's end), so
    one reduction serves them all: each curve's first and last frames are keys, and a segment
    never spans two curves, so every curve gets exactly the keys it would get on its own, for the
    numpy overhead of one."""
    frames = np.asarray(frames, np.float64)
    values = np.asarray(values, np.float64)
    count, num = values.shape[:2]
    if not count:
        return []
    span = frames[-1] - frames[0] + 1.0
    shifted = (frames[None, :] + span * np.arange(count)[:, None]).reshape(-1)
    joined = values.reshape(count * num, -1)
    slopes = np.concatenate([dense_slopes(frames, v) for v in values])
    starts = np.zeros(count * num, bool)
    starts[::num] = True
    starts[num - 1 :: num] = True
    bounds = np.broadcast_to(np.asarray(tolerance, np.float64), (count, num)).reshape(-1)
    keys, errors = _reduce(shifted, joined, slopes, starts, bounds, error)
    kept_frames = keys.frames
    out = []
    for b in range(count):
        inside = (kept_frames >= shifted[b * num]) & (kept_frames <= shifted[(b + 1) * num - 1])
        own = BezierKeys(kept_frames[inside] - span * b, keys.values[inside], keys.slopes[inside])
        out.append(ReducedChannels(own, _max(errors[b * num : (b + 1) * num])))
    return out


def _max(errors: np.ndarray) -> float:
    return float(errors.max()) if errors.size else 0.0
