"""The floor under the people, and the world frame it defines (docs/design.md §3).

:func:`fit_floor` estimates the floor from the feet: a RANSAC plane through the foot joints while
they are slow (planted), with one normal shared by heels and toes and a separate height for each
(the ankle joint sits higher above the floor than the toe joint), refined by least squares on the
inliers. A weak prior towards the body's up direction (its axis averaged with the direction from
its planted feet to its centre of mass) keeps the tilt defined when the feet only trace a line (a
straight walk) or stay in one place (a kick), and a weaker one towards a level camera (no roll)
keeps a body leaning sideways in a kick from rolling the floor with it. :func:`world_from_floor`
turns the fit into the camera pose (:mod:`retarget.frames`): the floor normal becomes world +Z,
the camera's viewing direction projected on the floor becomes +Y, the camera sits above the world
origin, and the floor is z = 0.
"""

from dataclasses import dataclass

import numpy as np

from .. import RetargetError
from ..frames import FOOT_JOINTS, LEVEL_CAMERA_ROTATION
from .vectors import finite3, norm3

TOE_JOINTS = ("ltoe", "rtoe")


class FloorError(RetargetError):
    """The floor or camera pose cannot be estimated; the message says what would help."""


def world_from_floor(up: np.ndarray, floor_offset_m: float) -> np.ndarray:
    """Camera pose (4x4) for a floor ``{p : up . p = floor_offset_m}`` (camera frame, metres, ``up``
    a unit normal pointing from the floor towards the people)."""
    up = np.asarray(up, float) / np.linalg.norm(up)
    forward = np.array([0.0, 0.0, 1.0]) - up[2] * up
    if np.linalg.norm(forward) < 1e-6:  # looking straight down: image "up" becomes forward
        forward = np.array([0.0, -1.0, 0.0]) - (-up[1]) * up
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([right, forward, up])
    pose[2, 3] = -floor_offset_m
    return pose


@dataclass(frozen=True)
class FloorFit:
    """A fitted floor in camera coordinates (metres).

    ``up`` (3,) unit normal towards the head; ``floor_offset`` m with ``up . p = floor_offset`` on
    the floor (minus the camera height above the floor); ``plane_offsets`` per foot-joint type
    (0 = ankles, 1 = toes) of the planted joints; ``method`` "ransac", "body-up" or "level";
    ``inliers`` / ``candidates`` the support of the fit."""

    up: np.ndarray
    floor_offset: float
    plane_offsets: tuple[float, float]
    method: str
    inliers: int
    candidates: int

    @property
    def camera_height(self) -> float:
        return -self.floor_offset

    def world_from_camera(self) -> np.ndarray:
        return world_from_floor(self.up, self.floor_offset)

    def clearance(self, kind: int) -> float:
        """Height (m) above the floor of a planted foot joint of ``kind`` (0 ankle, 1 toe)."""
        return float(self.plane_offsets[kind] - self.floor_offset)


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(norm3(vectors)[..., None], 1e-12)


def body_up(poses_m: np.ndarray, joint_names: tuple[str, ...]) -> np.ndarray | None:
    """Median body axis (mid-ankles -> head and shoulders) in the camera frame, unit, over the
    frames where the person stands upright (both legs nearly straight), else over all frames;
    None when those joints are unknown. ``poses_m`` is ``(T, P, J, 3)``. The long axis keeps the
    per-joint errors of the estimate from tilting it much."""
    index = joint_names.index
    tops = [index(n) for n in ("neck", "head", "htop", "lsho", "rsho") if n in joint_names]
    bottoms = [index(n) for n in ("lank", "rank") if n in joint_names]
    if not bottoms and "pelv" in joint_names:
        bottoms = [index("pelv")]
    if not tops or not bottoms:
        return None
    axis = poses_m[..., tops, :].mean(axis=-2) - poses_m[..., bottoms, :].mean(axis=-2)
    axis = _unit(axis).reshape(-1, 3)
    upright = np.ones(len(axis), bool)
    for side in "lr":
        leg = [side + name for name in ("hip", "kne", "ank")]
        if not all(name in joint_names for name in leg):
            continue
        hip, knee, ankle = (poses_m[..., index(name), :].reshape(-1, 3) for name in leg)
        span = norm3(ankle - hip)
        full = norm3(knee - hip) + norm3(ankle - knee)
        with np.errstate(invalid="ignore"):
            upright &= span > 0.97 * full
    finite = finite3(axis)
    chosen = axis[finite & upright] if (finite & upright).sum() >= 5 else axis[finite]
    if len(chosen) == 0:
        return None
    return _unit(np.median(chosen, axis=0))


# Body segments as (joint, joint, share of the body mass): the segment's centre of mass is taken
# at the midpoint of its two joints. Shares from de Leva's adjusted anthropometric tables (1996).
MASS_SEGMENTS = (
    ("head", "htop", 0.069), ("pelv", "neck", 0.435),
    ("lsho", "lelb", 0.027), ("rsho", "relb", 0.027),
    ("lelb", "lwri", 0.016), ("relb", "rwri", 0.016),
    ("lwri", "lhan", 0.006), ("rwri", "rhan", 0.006),
    ("lhip", "lkne", 0.142), ("rhip", "rkne", 0.142),
    ("lkne", "lank", 0.043), ("rkne", "rank", 0.043),
    ("lank", "ltoe", 0.014), ("rank", "rtoe", 0.014),
)  # fmt: skip
PLANTED_SPEED_M_S = 0.3  # a foot joint slower than this stands on the floor
# Spread of the camera's roll that the floor fit assumes for footage shot level. On the mocap
# benchmark 8° gained 0.3-0.5° at 0° and ±6° of roll and cost 0-0.1° at ±12° (mean of both
# signs); 6° lost 0.5° at ±12°, 10° gained less (docs/design.md §3).
LEVEL_CAMERA_ROLL_DEG = 8.0


def centre_of_mass(poses_m: np.ndarray, joint_names: tuple[str, ...]) -> np.ndarray | None:
    """The body's centre of mass (..., 3) from the joints ``poses_m`` (..., J, 3), weighting each
    segment of :data:`MASS_SEGMENTS` by its mass; None when a segment's joints are not named."""
    if not all(a in joint_names and b in joint_names for a, b, _ in MASS_SEGMENTS):
        return None
    index = joint_names.index
    total = sum(share for _, _, share in MASS_SEGMENTS)
    return sum(
        (0.5 * share / total) * (poses_m[..., index(a), :] + poses_m[..., index(b), :])
        for a, b, share in MASS_SEGMENTS
    )


def _speeds(track: np.ndarray, frame_times: np.ndarray) -> np.ndarray:
    """Central-difference speed (T, ...) of ``track`` (T, ..., 3) at ``frame_times`` (T,); the
    ends copy their neighbour, and fewer than 3 frames count as still."""
    if len(frame_times) < 3:
        return np.zeros(track.shape[:-1])
    span = (frame_times[2:] - frame_times[:-2]).reshape((-1,) + (1,) * (track.ndim - 2))
    speed = norm3(track[2:] - track[:-2]) / span
    return np.concatenate([speed[:1], speed, speed[-1:]])


def balance_up(
    poses_m: np.ndarray, frame_times: np.ndarray, joint_names: tuple[str, ...]
) -> np.ndarray | None:
    """Median direction (3,) from the planted feet to the centre of mass over the frames where a
    foot joint is planted: a body standing on its feet keeps its mass above them on average, so
    this stays upright when the body leans (a kick, a run), where :func:`body_up` leans with it.
    ``poses_m`` is ``(T, P, J, 3)``; None without the joints or with fewer than 5 such frames."""
    com = centre_of_mass(poses_m, joint_names)
    if com is None or not all(name in joint_names for name in FOOT_JOINTS):
        return None
    feet = poses_m[:, :, [joint_names.index(name) for name in FOOT_JOINTS]]  # (T, P, 4, 3)
    with np.errstate(invalid="ignore"):
        planted = _speeds(feet, frame_times) < PLANTED_SPEED_M_S
    count = planted.sum(axis=2)
    support = np.where(planted[..., None], feet, 0.0).sum(axis=2) / np.maximum(count, 1)[..., None]
    direction = _unit(com - support)
    chosen = (count > 0) & finite3(direction)
    if chosen.sum() < 5:
        return None
    return _unit(np.median(direction[chosen], axis=0))


def _heights(normals: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``normals`` (H, 3) . ``points`` (N, 3) -> (H, N), written out: a BLAS product of this size
    would wake BLAS worker threads that then spin on the other core."""
    out = normals[:, 0, None] * points[None, :, 0]
    term = np.empty_like(out)
    for k in (1, 2):
        out += np.multiply(normals[:, k, None], points[None, :, k], out=term)
    return out


def _offsets_and_inliers(normals, points, labels, threshold):
    """Per hypothesis (H, 3): median plane offset of each label (H, L) and inlier masks (H, N)."""
    order = np.argsort(labels, kind="stable")  # each label's points side by side
    sorted_labels = labels[order]
    heights = _heights(normals, points[order])  # (H, N)
    offsets = np.zeros((len(normals), labels.max() + 1 if labels.size else 1))
    bounds = np.flatnonzero(np.diff(sorted_labels)) + 1
    for start, stop in zip([0, *bounds.tolist()], [*bounds.tolist(), len(labels)], strict=True):
        if stop > start:  # np.median's arithmetic: the middle one, or the mean of the middle two
            lo, hi = (stop - start - 1) // 2, (stop - start) // 2
            middle = np.sort(heights[:, start:stop], axis=1)  # faster than partition here
            offsets[:, sorted_labels[start]] = 0.5 * (middle[:, lo] + middle[:, hi])
    heights -= offsets[:, sorted_labels]
    inliers = np.empty(heights.shape, bool)
    inliers[:, order] = np.abs(heights, out=heights) < threshold
    return offsets, inliers


def _prior_weight(count: int, height_noise_m: float, degrees: float | None) -> float:
    """Weight of a prior on the normal that counts like ``count`` points lying
    ``height_noise_m`` off the plane per ``degrees`` of deviation (0 for None)."""
    if degrees is None:
        return 0.0
    return count * (height_noise_m / np.sin(np.radians(degrees))) ** 2


def _refine(points, groups, inliers, prior, prior_weight, roll_weight=0.0):
    """Shared-normal least squares on the inliers, each group centred on its own mean (by default
    one group per joint type: ankles and toes sit at different heights), with a prior pulling the
    normal towards ``prior`` and one pulling its component along the camera's x axis (the roll of
    the camera about its viewing direction) towards zero. (Grouping per joint instead removes the
    per-joint height offsets a monocular estimate has, but also the information in the feet's
    relative placement; on the ground-truth harness it was no better, so :func:`estimate_floor`
    groups per type.)"""
    scatter = np.zeros((3, 3))
    for group in np.unique(groups[inliers]):
        chosen = points[inliers & (groups == group)]
        if len(chosen) >= 2:
            centred = chosen - chosen.mean(axis=0)
            scatter += centred.T @ centred
    scatter += prior_weight * (np.eye(3) - np.outer(prior, prior))
    scatter[0, 0] += roll_weight
    _, eigenvectors = np.linalg.eigh(scatter)
    normal = eigenvectors[:, 0]
    return normal if normal @ prior >= 0 else -normal


def fit_floor(
    points_m: np.ndarray,
    kinds: np.ndarray,
    up_hint: np.ndarray,
    groups: np.ndarray | None = None,
    toe_clearance_m: float = 0.02,
    ankle_clearance_m: float = 0.08,
    threshold_m: float = 0.025,
    iterations: int = 128,
    max_tilt_deg: float = 40.0,
    prior_deg: float = 5.0,
    roll_prior_deg: float | None = LEVEL_CAMERA_ROLL_DEG,
    height_noise_m: float = 0.05,
    seed: int = 0,
) -> FloorFit:
    """Fit the floor to planted foot joints ``points_m`` (N, 3) camera metres of ``kinds`` (N,)
    (0 ankle, 1 toe), oriented towards ``up_hint`` (3,); ``groups`` (N,) tells which points belong
    to one joint of one person (default: one group per kind).

    The floor lies ``toe_clearance_m`` below the toe plane (``ankle_clearance_m`` below the ankle
    plane when no toes are given). Hypotheses more than ``max_tilt_deg`` away from the hint are
    discarded. With fewer than 3 usable points the hint itself is the normal ("body-up").
    ``height_noise_m`` is the assumed error of a planted joint's height: mostly the slow depth
    drift of a monocular estimate along the viewing ray, which shifts whole frames by a few
    centimetres of height. The final normal weighs the hint like every inlier lying
    ``height_noise_m`` off the plane per ``prior_deg`` of tilt, and a level camera the same way per
    ``roll_prior_deg`` of roll (None turns that prior off)."""
    up_hint = _unit(np.asarray(up_hint, float))
    points = np.asarray(points_m, float)
    kinds = np.asarray(kinds, int)
    groups = kinds if groups is None else np.asarray(groups, int)
    keep = finite3(points)
    points, kinds, groups = points[keep], kinds[keep], groups[keep]
    count = len(points)
    rng = np.random.default_rng(seed)
    normal, method = up_hint, "body-up"
    inliers = np.ones(count, bool)
    pools = [np.flatnonzero(kinds == kind) for kind in (0, 1)]
    pools = [pool for pool in pools if len(pool) >= 3]
    if pools:
        # Hypotheses from three points of one kind (so no per-kind offset enters the normal).
        sizes = np.array([len(pool) for pool in pools], float)
        pick = rng.choice(len(pools), size=iterations, p=sizes / sizes.sum())
        samples = np.stack([rng.choice(pools[p], 3, replace=False) for p in pick])
        a, b, c = points[samples[:, 0]], points[samples[:, 1]], points[samples[:, 2]]
        normals = np.cross(b - a, c - a)
        length = norm3(normals)
        usable = length > 1e-4  # m²: the three points span a real triangle
        normals = _unit(normals[usable])
        normals *= np.sign(normals @ up_hint)[:, None]
        normals = normals[normals @ up_hint > np.cos(np.radians(max_tilt_deg))]
        if len(normals):
            # Score hypotheses on at most 800 points; refine on all of them.
            scored = rng.choice(count, min(count, 800), replace=False)
            _, masks = _offsets_and_inliers(normals, points[scored], groups[scored], threshold_m)
            best = normals[np.argmax(masks.sum(axis=1))]
            inliers = _offsets_and_inliers(best[None], points, groups, threshold_m)[1][0]
            # Inliers are re-selected with the data's own plane; the prior (which decides the
            # tilt in directions where the planted feet have no spread: a straight walk, feet
            # planted in one place) enters only the final normal, so it cannot push far-away
            # feet out of the inlier band. The level-camera prior joins it there: footage is
            # mostly shot level, while a body leaning sideways (a kick) rolls the hint with it.
            for _ in range(3):
                normal = _refine(points, groups, inliers, up_hint, 1e-9)
                _, masks = _offsets_and_inliers(normal[None], points, groups, threshold_m)
                inliers = masks[0] if masks[0].sum() >= 3 else inliers
            prior_weight = _prior_weight(inliers.sum(), height_noise_m, prior_deg)
            roll_weight = _prior_weight(inliers.sum(), height_noise_m, roll_prior_deg)
            normal = _refine(points, groups, inliers, up_hint, prior_weight, roll_weight)
            method = "ransac"
    heights = _heights(normal[None], points)[0]
    offsets = []
    for kind in (0, 1):
        chosen = inliers & (kinds == kind)
        if chosen.any() and method == "ransac":
            offsets.append(float(np.median(heights[chosen])))
        elif chosen.any():  # no plane found: the lowest feet stand on the floor
            offsets.append(float(np.percentile(heights[chosen], 10)))
        elif (kinds == kind).any():
            offsets.append(float(np.percentile(heights[kinds == kind], 10)))
        else:
            offsets.append(float("nan"))
    if np.isfinite(offsets[1]):
        floor = offsets[1] - toe_clearance_m
    elif np.isfinite(offsets[0]):
        floor = offsets[0] - ankle_clearance_m
    else:
        raise FloorError("no foot joint was ever seen; cannot place the floor")
    if not np.isfinite(offsets[0]):
        offsets[0] = floor + ankle_clearance_m
    if not np.isfinite(offsets[1]):
        offsets[1] = floor + toe_clearance_m
    return FloorFit(
        normal, float(floor), (offsets[0], offsets[1]), method, int(inliers.sum()), count
    )


def foot_candidates(
    poses_mm: np.ndarray,
    frame_times: np.ndarray,
    joint_names: tuple[str, ...],
    max_speed_m_s: float = PLANTED_SPEED_M_S,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slow (planted) foot joints of all people: points (N, 3) camera metres, kinds (N,)
    (0 ankle, 1 toe) and groups (N,) (one per person and joint). ``poses_mm`` (T, P, J, 3) camera
    frame, ideally already smoothed. When no sample is slow enough (a person who never stops),
    the slowest fifth of the samples is used."""
    points, kinds, groups, speeds = [], [], [], []
    people = poses_mm.shape[1]
    for channel, name in enumerate(FOOT_JOINTS):
        if name not in joint_names:
            continue
        track = 0.001 * poses_mm[:, :, joint_names.index(name)]  # (T, P, 3)
        speed = _speeds(track, frame_times)
        points.append(track.reshape(-1, 3))
        speeds.append(speed.reshape(-1))
        kinds.append(np.full(track.shape[0] * people, int(name in TOE_JOINTS)))
        groups.append(np.tile(channel * people + np.arange(people), track.shape[0]))
    if not points:
        return np.zeros((0, 3)), np.zeros(0, int), np.zeros(0, int)
    points, kinds = np.concatenate(points), np.concatenate(kinds)
    groups, speeds = np.concatenate(groups), np.concatenate(speeds)
    ok = finite3(points) & np.isfinite(speeds)
    points, kinds, groups, speeds = points[ok], kinds[ok], groups[ok], speeds[ok]
    slow = speeds < max_speed_m_s
    if slow.sum() < 10 and len(speeds):
        slow = speeds <= np.percentile(speeds, 20)
    return points[slow], kinds[slow], groups[slow]


def estimate_floor(
    poses_mm: np.ndarray,
    frame_times: np.ndarray,
    joint_names: tuple[str, ...],
    toe_clearance_m: float = 0.02,
    roll_prior_deg: float | None = LEVEL_CAMERA_ROLL_DEG,
    seed: int = 0,
) -> FloorFit:
    """The floor under everyone in ``poses_mm`` (T, P, J, 3) camera frame (cleaned poses work
    best). Where the planted feet leave the tilt open, it follows the mean of :func:`body_up` and
    :func:`balance_up` (a level camera without either) and, unless ``roll_prior_deg`` is None, a
    camera held level (see :func:`fit_floor`); raises :class:`FloorError` when no joint is known
    at all."""
    poses_m = 0.001 * np.asarray(poses_mm, float)
    if not np.isfinite(poses_m).any():
        raise FloorError("no 3D joint in the clip; cannot place the floor")
    hints = [
        up
        for up in (body_up(poses_m, joint_names), balance_up(poses_m, frame_times, joint_names))
        if up is not None
    ]
    # The body axis leans with the posture, the feet-to-mass direction with the dynamics and
    # with weight taken off the feet (a chair): their mean is better than either on both the
    # motion-capture clips and the generated scenes (docs/design.md §3).
    hint = _unit(np.sum(hints, axis=0)) if hints else -LEVEL_CAMERA_ROTATION[2]  # level camera
    points, kinds, _ = foot_candidates(poses_mm, frame_times, joint_names)
    if len(points) == 0:
        # No feet: floor under the lowest joints along the hint.
        heights = poses_m.reshape(-1, 3) @ hint
        lowest = float(np.nanpercentile(heights, 1))
        return FloorFit(hint, lowest, (lowest, lowest), "level", 0, 0)
    return fit_floor(
        points,
        kinds,
        hint,
        toe_clearance_m=toe_clearance_m,
        roll_prior_deg=roll_prior_deg,
        seed=seed,
    )
