"""Quality metrics of a 3D motion against ground truth, and ground-truth-free foot metrics.

Pure numpy; every metric ignores missing (NaN) samples and says so by returning NaN when nothing
is left to measure. Shapes: poses ``(T, J, 3)`` millimetres in one frame (camera or world),
foot channels ``(T, C, 3)`` metres in a Z-up world frame with the floor at z = 0.

* :func:`mpjpe` — mean per-joint position error after aligning the roots (mm), the usual
  "MPJPE"; :func:`absolute_error` without alignment; :func:`root_error` of the root alone.
* :func:`accel_error` — mean norm of the difference of second differences (mm/frame²), on
  root-relative joints by default (as SmoothNet and others report it), or absolute.
* :func:`bone_length_cv` — coefficient of variation of each bone's length over time, averaged
  over bones (%); 0 for a rigid skeleton.
* :func:`foot_slide` — horizontal displacement per frame of a joint while it is in contact
  (mm/frame); :func:`slide_summary` its mean and the share of contact frames sliding more than
  2.5 cm (skate ratio).
* :func:`penetration` — per-frame depth of the deepest foot joint below its clearance height
  above the floor (mm); :func:`floor_tilt_deg` — the angle between two camera poses' floors.
* :func:`sign_flips`, :func:`twist_jumps`, :func:`direction_errors_deg` — of a solved take: sign
  flips and twist jumps of its local quaternions, limb direction errors (degrees).
"""

import numpy as np

from .rotations import normalize

SKATE_THRESHOLD_MM = 25.0


def _mean_norm(values: np.ndarray) -> float:
    norms = np.linalg.norm(values, axis=-1)
    norms = norms[np.isfinite(norms)]
    return float(norms.mean()) if norms.size else float("nan")


def _relative(poses: np.ndarray, root: int) -> np.ndarray:
    return poses - poses[:, root : root + 1]


def mpjpe(pred: np.ndarray, truth: np.ndarray, root: int = 0) -> float:
    """Root-aligned mean per-joint position error (mm) over the non-root joints."""
    error = _relative(pred, root) - _relative(truth, root)
    return _mean_norm(np.delete(error, root, axis=1))


def absolute_error(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean per-joint position error without alignment (mm)."""
    return _mean_norm(pred - truth)


def root_error(pred: np.ndarray, truth: np.ndarray, root: int = 0) -> float:
    """Mean position error of the root joint (mm)."""
    return _mean_norm(pred[:, root] - truth[:, root])


def accel_error(pred: np.ndarray, truth: np.ndarray, root: int = 0, relative: bool = True):
    """Mean acceleration error (mm/frame²): second differences along time of root-relative (or
    absolute) joints, compared where three consecutive samples exist."""
    if len(pred) < 3:
        return float("nan")
    if relative:
        pred, truth = _relative(pred, root), _relative(truth, root)
    error = np.diff(pred, 2, axis=0) - np.diff(truth, 2, axis=0)
    if relative:
        error = np.delete(error, root, axis=1)
    return _mean_norm(error)


def bone_length_cv(poses: np.ndarray, edges: np.ndarray) -> float:
    """Mean over bones of std/mean of the bone length over time (%)."""
    lengths = np.linalg.norm(poses[:, edges[:, 1]] - poses[:, edges[:, 0]], axis=-1)
    values = []
    for bone in lengths.T:
        bone = bone[np.isfinite(bone)]
        if bone.size > 1 and bone.mean() > 0:
            values.append(bone.std() / bone.mean())
    return 100.0 * float(np.mean(values)) if values else float("nan")


def foot_slide(feet_m: np.ndarray, contacts: np.ndarray) -> np.ndarray:
    """Horizontal displacement (mm) of foot joints ``(T, 3)`` or channels ``(T, C, 3)`` (world
    metres) over every frame step where ``contacts`` ``(T,)`` / ``(T, C)`` holds on both ends, one
    value per step and channel (unknown steps left out). A planted foot may still roll heel to toe,
    which moves its ankle up and down, but it must not slide."""
    steps = 1000.0 * np.linalg.norm(np.diff(feet_m[..., :2], axis=0), axis=-1)
    contacts = np.asarray(contacts, bool)
    held = contacts[1:] & contacts[:-1] & np.isfinite(steps)
    return steps[held]


def slide_summary(
    slides_mm: np.ndarray, threshold_mm: float = SKATE_THRESHOLD_MM
) -> tuple[float, float]:
    """(mean slide mm/frame, skate ratio: the share of slides over ``threshold_mm``) of
    :func:`foot_slide`'s values; NaN for both when there are none."""
    if slides_mm.size == 0:
        return float("nan"), float("nan")
    return float(slides_mm.mean()), float(np.mean(slides_mm > threshold_mm))


def penetration(feet_m: np.ndarray, clearance_m: np.ndarray) -> np.ndarray:
    """Per-frame penetration (T,) mm: how far the deepest foot channel is below its clearance
    height above the floor (0 when none is; NaN when no channel is known)."""
    depth = 1000.0 * (np.asarray(clearance_m)[None] - feet_m[..., 2])
    known = np.isfinite(depth)
    worst = np.max(np.where(known, depth, -np.inf), axis=1)
    return np.where(known.any(axis=1), np.maximum(worst, 0.0), np.nan)


def floor_tilt_deg(estimated: np.ndarray, true: np.ndarray) -> float:
    """Angle (degrees) between the floor normals (world +Z in the camera frame) of two
    ``world_from_camera`` poses (4x4)."""
    cosine = float(np.clip(estimated[2, :3] @ true[2, :3], -1.0, 1.0))
    return float(np.degrees(np.arccos(cosine)))


def coverage(poses: np.ndarray) -> float:
    """Share of joint-frames that are present (finite)."""
    return float(np.mean(np.all(np.isfinite(poses), axis=-1))) if poses.size else 0.0


def summary(
    pred_mm: np.ndarray,
    truth_mm: np.ndarray,
    edges: np.ndarray,
    pred_feet_m: np.ndarray | None = None,
    contacts: np.ndarray | None = None,
    clearance_m: np.ndarray | None = None,
    root: int = 0,
    support: np.ndarray | None = None,
    foot_joints: list[int] | None = None,
) -> dict[str, float]:
    """All metrics in one dict: ``mpjpe``, ``abs``, ``root``, ``accel``, ``accel_abs``,
    ``bone_cv``, ``coverage`` and, given world-frame foot channels with ground-truth contacts and
    clearances, ``slide``, ``skate``, ``pen_ok`` (share of frames penetrating < 1 cm) and
    ``pen_p99`` (mm).

    With ``support`` (T, J) bool (e.g. where the raw estimate exists), the position and
    acceleration errors are measured on those samples only, so a cleaned result and the raw input
    are compared on the same joint-frames; ``mpjpe_gaps`` then measures the samples outside it
    (filled gaps), and ``coverage`` still counts every sample. Given ``foot_joints`` (the joint
    index of each foot channel), the slide is also measured on supported samples only: inside a
    long gap nothing was observed, so no contact can be found there."""
    core = pred_mm
    if support is not None:
        core = np.where(support[..., None], pred_mm, np.nan)
    out = {
        "mpjpe": mpjpe(core, truth_mm, root),
        "abs": absolute_error(core, truth_mm),
        "root": root_error(core, truth_mm, root),
        "accel": accel_error(core, truth_mm, root),
        "accel_abs": accel_error(core, truth_mm, root, relative=False),
        "bone_cv": bone_length_cv(pred_mm, edges),
        "coverage": coverage(pred_mm),
    }
    if support is not None:
        outside = np.where(support[..., None], np.nan, pred_mm)
        outside[:, root] = pred_mm[:, root]  # the alignment needs the root everywhere
        out["mpjpe_gaps"] = mpjpe(outside, truth_mm, root)
    if pred_feet_m is not None and contacts is not None:
        feet = pred_feet_m
        if support is not None and foot_joints is not None:
            feet = np.where(support[:, foot_joints, None], pred_feet_m, np.nan)
        out["slide"], out["skate"] = slide_summary(foot_slide(feet, contacts))
    if pred_feet_m is not None and clearance_m is not None:
        depth = penetration(pred_feet_m, clearance_m)
        depth = depth[np.isfinite(depth)]
        out["pen_ok"] = float(np.mean(depth < 10.0)) if depth.size else float("nan")
        out["pen_p99"] = float(np.percentile(depth, 99)) if depth.size else float("nan")
    return out


# Quality measures of a solved take: local quaternions and limb directions.


def sign_flips(quaternions: np.ndarray) -> int:
    """Consecutive frames whose quaternions ``(T, ..., 4)`` have a negative dot product."""
    return int(np.sum(np.sum(quaternions[1:] * quaternions[:-1], axis=-1) < 0))


def twist_angles(quaternions: np.ndarray) -> np.ndarray:
    """Twist about the bone's own Y axis (radians) of local quaternions ``(..., 4)``."""
    return 2.0 * np.arctan2(quaternions[..., 2], quaternions[..., 0])


def twist_jumps(quaternions: np.ndarray, limit_deg: float = 90.0) -> int:
    """Frame-to-frame twist changes larger than ``limit_deg`` in quaternions ``(T, ..., 4)``."""
    twist = twist_angles(quaternions)
    step = np.angle(np.exp(1j * np.diff(twist, axis=0)))
    return int(np.sum(np.abs(step) > np.radians(limit_deg)))


def direction_errors_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angles (degrees) between direction vectors ``(..., 3)``."""
    cos = np.sum(normalize(a) * normalize(b), axis=-1)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
