"""Analytic two-bone inverse kinematics (hip -> knee -> ankle), the one solver both foot locks use:
the cleaning's joint-level lock (:func:`retarget.clean.contacts.lock_feet`) and the solve's
rotation-level one (:mod:`retarget.solve.footlock`). Pure numpy."""

import numpy as np

from .rotations import normalize


def two_bone_ik(
    root: np.ndarray,
    mid: np.ndarray,
    target: np.ndarray,
    upper_length: float | np.ndarray,
    lower_length: float | np.ndarray,
    soft_reach: float = 0.03,
    free_distance: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Analytic two-bone IK. ``root`` (hip), ``mid`` (current knee, the pole) and ``target``
    (ankle goal) are ``(T, 3)``, the bone lengths metres, one each or per frame ``(T,)``; returns
    the new knee and ankle ``(T, 3)``.

    The knee stays in the plane through hip, target and current knee. Beyond the last
    ``soft_reach`` fraction of the full leg length (or beyond ``free_distance`` ``(T,)``, the
    hip-ankle distance of the unlocked pose, if that is longer) the reach approaches full length
    exponentially, so the chain never snaps straight and the ankle stops short of a target that
    is too far. A target at the unlocked ankle gives back the unlocked pose exactly. With
    ``soft_reach`` 0 a target out of reach stops the chain at full length.
    """
    upper, lower = np.asarray(upper_length, float), np.asarray(lower_length, float)
    full = upper + lower
    shortest = abs(upper - lower) + 1e-6 * full
    offset = target - root
    distance = np.linalg.norm(offset, axis=-1)
    axis = normalize(offset)
    if soft_reach > 0:
        knee_start = np.full(len(distance), full * (1.0 - soft_reach))
        if free_distance is not None:
            knee_start = np.clip(free_distance, knee_start, full)
        soft = np.maximum(full - knee_start, 1e-12)
        reach = np.where(
            distance > knee_start,
            knee_start + soft * (1.0 - np.exp(-np.maximum(distance - knee_start, 0.0) / soft)),
            distance,
        )
    else:
        reach = np.minimum(distance, full)
    reach = np.maximum(reach, shortest)
    # Pole: the current knee's offset from the hip-target line; keep its side of the plane.
    bend = mid - root
    pole = bend - np.sum(bend * axis, axis=-1, keepdims=True) * axis
    degenerate = np.linalg.norm(pole, axis=-1) < 1e-9 * full
    if degenerate.any():
        # Straight chain along the target line: any perpendicular works; keep a stable one.
        fallback = np.cross(axis, [1.0, 0.0, 0.0])
        fallback = np.where(np.linalg.norm(fallback, axis=-1, keepdims=True) < 1e-6,
                            np.cross(axis, [0.0, 1.0, 0.0]), fallback)  # fmt: skip
        pole = np.where(degenerate[:, None], fallback, pole)
    pole = normalize(pole)
    cos_root = np.clip((upper**2 + reach**2 - lower**2) / (2.0 * upper * reach), -1.0, 1.0)
    sin_root = np.sqrt(1.0 - cos_root**2)
    knee = root + upper[..., None] * (cos_root[:, None] * axis + sin_root[:, None] * pole)
    ankle = root + reach[:, None] * axis
    return knee, ankle
