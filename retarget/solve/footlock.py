"""Foot locking in the solve: planted targets from contact intervals, the legs re-solved by
analytic two-bone IK (:func:`retarget.ik.two_bone_ik`).

During a contact the ankle is held at one planted spot (the mean horizontal position of the
retargeted ankle over the interval; its height follows the motion, so the foot still rolls); the
correction fades in and out over ``ease_frames`` around the contact. If a locked foot is
out of the leg's reach, the root is lowered just enough (smoothed in time), and each leg is then
solved in closed form: the knee stays in the plane of hip, ankle target and the original knee (the
pole comes from the source motion), with a soft reach limit so the knee straightens smoothly
instead of popping. Pure numpy.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .. import RetargetError
from ..frames import FOOT_JOINTS
from ..ik import two_bone_ik
from ..rotations import matrix_to_quaternion, normalize, quaternion_to_matrix, rotation_between
from .rigmaps import SIDES

if TYPE_CHECKING:  # annotations only: target.py -> params.py -> this module would be a cycle
    from .target import Plan


@dataclass(frozen=True)
class FootLockParams:
    """Foot-locking settings."""

    ease_frames: int = 5  # frames of blend into and out of each contact (docs/design.md §5)
    min_contact_frames: int = 2  # shorter contacts (single frames) are noise, not locked
    soft_reach: float = 0.03  # the last 3 % of leg length is approached softly (no knee pop)
    root_smoothing_frames: int = 7  # window of the moving average that eases the root lowering


def contact_intervals(contacts: np.ndarray, min_frames: int = 1) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` (stop exclusive) of the runs of True in ``contacts`` ``(T,)``."""
    padded = np.concatenate([[False], np.asarray(contacts, bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    runs = list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))
    return [(a, b) for a, b in runs if b - a >= min_frames]


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def lock_targets(
    positions: np.ndarray,
    contacts: np.ndarray,
    params: FootLockParams = FootLockParams(),
    spots: dict[tuple[int, int], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Goal positions ``(T, 3)`` and lock weights ``(T,)`` for one foot joint.

    ``positions`` ``(T, 3)`` is where the joint is without locking, ``contacts`` ``(T,)`` bool.
    Inside a contact (weight 1) the goal's horizontal position is the interval's planted spot:
    ``spots[(start, stop)]`` ``(2,)`` if given, else the interval's mean; its height stays the
    motion's own, so the foot can still roll heel to toe. Around a contact the correction it
    needed at its first/last frame fades in/out over ``ease_frames`` (the foot in the air is
    never pulled towards where it will land). Where two fades overlap, the nearer contact wins.
    """
    positions = np.asarray(positions, np.float64)
    num_frames = len(positions)
    correction = np.zeros((num_frames, 3))
    weights = np.zeros(num_frames)
    ease = max(int(params.ease_frames), 0)
    for start, stop in contact_intervals(contacts, params.min_contact_frames):
        planted = (spots or {}).get((start, stop))
        if planted is None:
            planted = positions[start:stop, :2].mean(axis=0)
        first, last = max(start - ease, 0), min(stop + ease, num_frames)
        frames = np.arange(first, last)  # the interval and its fades only
        weight = np.ones(len(frames))
        inside = planted - positions[first:last, :2]
        before, after = frames < start, frames >= stop
        weight[before] = _smoothstep((frames[before] - (start - ease - 1)) / (ease + 1))
        weight[after] = _smoothstep(((stop + ease) - frames[after]) / (ease + 1))
        inside[before] = planted - positions[start, :2]
        inside[after] = planted - positions[stop - 1, :2]
        take = weight > weights[first:last]
        weights[first:last][take] = weight[take]
        correction[first:last][take, :2] = weight[take, None] * inside[take]
    return positions + correction, weights


def required_drop(hip: np.ndarray, target: np.ndarray, reach: np.ndarray | float) -> np.ndarray:
    """How far ``(T,)`` the hip must move down (-Z) so ``target`` is within ``reach`` (metres,
    scalar or ``(T,)``) of it."""
    offset = target - hip
    horizontal_sq = offset[:, 0] ** 2 + offset[:, 1] ** 2
    # |offset + drop·ẑ| = reach  ->  drop = -dz - sqrt(reach² - h²) where the target is reachable
    vertical = np.sqrt(np.maximum(reach**2 - horizontal_sq, 0.0))
    drop = -offset[:, 2] - vertical
    return np.maximum(drop, 0.0)


def smooth_drop(drop: np.ndarray, window: int) -> np.ndarray:
    """Spread a per-frame lowering in time: running maximum, then a moving average, so the root
    eases down ahead of the frames that need it and never ends up higher than required."""
    if window <= 1 or len(drop) < 2:
        return drop
    half = window // 2
    padded = np.pad(drop, half, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    peak = windows.max(axis=1)
    padded = np.pad(peak, half, mode="edge")
    return np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1).mean(axis=1)


def contacts_from_extras(
    extras: Mapping[str, np.ndarray], person: int, num_frames: int
) -> np.ndarray | None:
    """Contacts of one person from a trajectory's extras, or None when the file carries none.

    The cleaning stage writes ``contacts`` bool ``(T, P, C)`` with ``contact_channels`` naming the
    C channels (joint names ``lank, rank, ltoe, rtoe``: heels are the ankle joints); the result is
    then ``(T, 4)`` in :data:`~retarget.frames.FOOT_JOINTS` order (a channel the file lacks is
    never in contact). Without channel names, ``(T, P, 2)`` is read as per-foot (left, right)
    contacts ``(T, 2)``.
    """
    if "contacts" not in extras:
        return None
    contacts = np.asarray(extras["contacts"]).astype(bool)
    if contacts.ndim != 3 or contacts.shape[0] != num_frames or person >= contacts.shape[1]:
        raise RetargetError(
            f"'contacts' in the trajectory has shape {contacts.shape}; expected (T, P, channels) "
            f"with T = {num_frames}"
        )
    channels = contacts[:, person]
    key = "contact_channels" if "contact_channels" in extras else "contact_joints"
    if key in extras:
        names = [str(n) for n in np.asarray(extras[key]).reshape(-1)]
        if len(names) != channels.shape[1]:
            raise RetargetError(f"'{key}' must name every channel of 'contacts'")
        unknown = sorted(set(names) - set(FOOT_JOINTS))
        if unknown:
            raise RetargetError(f"unknown contact channels {unknown}; expected {list(FOOT_JOINTS)}")
        out = np.zeros((num_frames, len(FOOT_JOINTS)), bool)
        for c, name in enumerate(names):
            out[:, FOOT_JOINTS.index(name)] = channels[:, c]
        return out
    if channels.shape[1] != 2:
        raise RetargetError(
            f"'contacts' has {channels.shape[1]} channels per person but no 'contact_channels' "
            "to name them; expected 2 (left, right)"
        )
    return channels


@dataclass
class FootGoals:
    """Where one foot must go: ``ankle`` ``(T, 3)`` goals; ``toe`` ``(T, 3)`` goals with
    ``orient`` ``(T,)`` in [0, 1], how much the foot must turn to point at them (heel and toe both
    planted); ``held`` ``(T,)`` frames where a heel or toe is planted."""

    ankle: np.ndarray
    toe: np.ndarray | None
    orient: np.ndarray
    held: np.ndarray


def foot_goals(
    ankle: np.ndarray,
    toe: np.ndarray | None,
    heel_contacts: np.ndarray,
    toe_contacts: np.ndarray | None,
    params: FootLockParams = FootLockParams(),
) -> FootGoals:
    """Goals of one foot from its heel (ankle joint) and toe contacts ``(T,)``.

    A planted heel holds the ankle. A planted toe alone (heel lifted, pushing off) holds the toe:
    the ankle goal moves by the toe's correction, so the foot turns about its toe instead of
    sliding. Heel and toe both planted hold both: the ankle, and the foot turned to point at the
    toe's spot. Around contacts the corrections fade (see :func:`lock_targets`).
    """
    heel_goal, heel_weight = lock_targets(ankle, heel_contacts, params)
    heel_fix = heel_goal - ankle
    held = heel_weight >= 1.0
    if toe is None or toe_contacts is None or not np.any(toe_contacts):
        return FootGoals(heel_goal, None, np.zeros(len(ankle)), held)
    toe_goal, toe_weight = lock_targets(
        toe, toe_contacts, params, _toe_spots(ankle, toe, heel_goal, held, toe_contacts, params)
    )
    toe_fix = toe_goal - toe
    toe_only = (toe_weight >= 1.0) & ~held
    # Fades mix; in contact the planted channel rules: the heel, or the toe when only it is down.
    correction = heel_fix + (1.0 - heel_weight)[:, None] * toe_fix
    correction[toe_only] = toe_fix[toe_only]
    orient = np.minimum(heel_weight, toe_weight)
    return FootGoals(ankle + correction, toe_goal, orient, held | (toe_weight >= 1.0))


def _toe_spots(ankle, toe, heel_goal, heel_held, toe_contacts, params) -> dict:
    """Planted toe spots that agree with the planted heel: a rigid foot cannot put heel and toe on
    two independently averaged spots, so where a toe contact overlaps a held heel, its spot is
    the heel's spot plus the foot's horizontal length, in the direction the toe was planted. The
    toe then stays where the flat foot put it when the heel lifts."""
    spots = {}
    for start, stop in contact_intervals(toe_contacts, params.min_contact_frames):
        both = np.flatnonzero(heel_held[start:stop]) + start
        if not len(both):
            continue
        heel = heel_goal[both, :2].mean(axis=0)
        length = np.linalg.norm(toe[both, :2] - ankle[both, :2], axis=-1).mean()
        direction = normalize(toe[start:stop, :2].mean(axis=0) - heel)
        spots[(start, stop)] = heel + length * direction
    return spots


def lock_feet(
    plan: "Plan",
    solver_deltas: dict[int, np.ndarray],
    joints: dict[str, np.ndarray],
    contacts: np.ndarray,
    lock: FootLockParams,
    offset: np.ndarray,
) -> np.ndarray:
    """Foot locking in place: updates thigh/shin deltas and the root offset; returns the frames
    (T, 2) where each foot was held. ``contacts`` is (T, 2) per foot (the ankle is held) or
    (T, 4) heel/toe channels in :data:`~retarget.frames.FOOT_JOINTS` order."""
    rig = plan.rig
    held = np.zeros((len(offset), 2), bool)
    goals, drops, legs = {}, [], []
    for s, side in enumerate(SIDES):
        p = side.lower()
        slots = (f"thigh.{side}", f"shin.{side}")
        if not all(slot in plan.rig_map.bones for slot in slots):
            continue
        if not all(p + j in joints for j in ("hip", "kne", "ank")):
            continue
        ankle = joints[p + "ank"]
        if contacts.shape[1] == 2:
            foot = foot_goals(ankle, None, contacts[:, s], None, lock)
        else:
            toe = joints.get(p + "toe")
            foot = foot_goals(ankle, toe, contacts[:, s], contacts[:, 2 + s], lock)
        goal, held[:, s] = foot.ankle, foot.held
        upper = float(np.linalg.norm(plan.joints[p + "kne"] - plan.joints[p + "hip"]))
        lower = float(np.linalg.norm(plan.joints[p + "ank"] - plan.joints[p + "kne"]))
        # The leg may reach as far as it did unlocked, and at least to the soft-reach limit.
        free = np.linalg.norm(ankle - joints[p + "hip"], axis=-1)
        reach = np.maximum(free, (upper + lower) * (1.0 - lock.soft_reach))
        drops.append(required_drop(joints[p + "hip"], goal, reach))
        goals[side] = (goal, free, foot)
        legs.append((side, p, upper, lower))
    if not legs:
        return held
    drop = smooth_drop(np.max(drops, axis=0), lock.root_smoothing_frames)
    offset[:, 2] -= drop
    for name in joints:
        joints[name] = joints[name] - drop[:, None] * np.array([0.0, 0.0, 1.0])
    for side, p, upper, lower in legs:
        hip, knee, ankle = joints[p + "hip"], joints[p + "kne"], joints[p + "ank"]
        goal, free, foot = goals[side]
        new_knee, new_ankle = two_bone_ik(hip, knee, goal, upper, lower, lock.soft_reach, free)
        turns = {
            f"thigh.{side}": rotation_between(knee - hip, new_knee - hip),
            f"shin.{side}": rotation_between(ankle - knee, new_ankle - new_knee),
        }
        if foot.toe is not None and f"foot.{side}" in plan.rig_map.bones and np.any(foot.orient):
            # Heel and toe planted: turn the foot (about its ankle) so the toe lands on its spot;
            # the foot is rigid, so its pitch is what puts the toe at the spot's distance.
            toe = joints[p + "toe"]
            length = np.linalg.norm(plan.joints[p + "toe"] - plan.joints[p + "ank"])
            aim = foot.toe - new_ankle
            across = np.linalg.norm(aim[:, :2], axis=-1)
            drop = np.sqrt(np.maximum(length**2 - across**2, 0.0))
            aim[:, 2] = np.where(toe[:, 2] < ankle[:, 2], -drop, drop)
            turn = rotation_between(toe - ankle, aim)
            turns[f"foot.{side}"] = _partial(turn, foot.orient)
        for slot, turn in turns.items():
            for name in plan.rig_map.bones[slot]:
                b = rig.index(name)
                solver_deltas[b] = turn @ solver_deltas[b]
    return held


def _partial(rotations: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``rotations`` ``(T, 3, 3)`` scaled to ``weights`` ``(T,)`` of their angle."""
    q = matrix_to_quaternion(rotations)
    half = np.arccos(np.clip(q[:, 0], -1.0, 1.0)) * weights
    axis = normalize(q[:, 1:])
    return quaternion_to_matrix(np.concatenate([np.cos(half)[:, None],
                                                np.sin(half)[:, None] * axis], 1))  # fmt: skip
