"""Foot contacts: per-foot heel and toe detection with hysteresis, planted targets, and a joint-level
foot lock.

Channels are foot joints in the Blender world frame (Z up, metres, floor at z = 0), in the order of
:data:`~retarget.frames.FOOT_JOINTS` restricted to the joints a skeleton has: the heels are the ankle joints,
the toes the toe joints. A channel's *height* is its joint's height above its own *clearance* (the
height of that joint when the foot stands flat: ≈8 cm for ankles, ≈2 cm for toes).

Detection (docs/design.md §5): a channel enters contact below 3 cm height and 0.25 m/s, leaves
above 5 cm or 0.5 m/s. The minimum duration is 0.1 s (at least two frames), not a fixed 5 frames,
since a running stance lasts 0.2–0.25 s (5–6 frames at 25 fps) and smoothing eats a frame at each
end; and the touch-down is back-dated to the first low frame of the stretch, because the low-pass
filter blurs the foot's stop over a frame or two.

Each contact gets one *target*: the mean horizontal position of the joint over the contact, at
its clearance height. *Weights* are 1 inside a contact and ease to 0 over ``ease_frames`` either
side (smoothstep). In those ease frames the target is the joint's own position shifted by its
offset from the planted point at the contact's nearest frame, so ``p + w * (target - p)`` removes
the jump into the lock without dragging a moving foot towards where it is going to land.

:func:`lock_feet` applies the targets to the joints themselves: heel and toe are pulled onto their
targets by their weights, kept above the floor, the foot keeps its length, and the knee is
re-solved by analytic two-bone IK (hip fixed, thigh and shin lengths kept, bending towards the
original knee). The retarget stage can lock again at the rotation level from the same outputs.
"""

from dataclasses import dataclass

import numpy as np

from ..frames import FOOT_JOINTS
from ..ik import two_bone_ik
from .vectors import norm3

_LEGS = (("lhip", "lkne", "lank", "ltoe"), ("rhip", "rkne", "rank", "rtoe"))


@dataclass(frozen=True)
class ContactSettings:
    """Hysteresis thresholds and timing of contact detection and locking."""

    enter_height_m: float = 0.03
    exit_height_m: float = 0.05
    enter_speed_m_s: float = 0.25
    exit_speed_m_s: float = 0.5
    min_s: float = 0.1  # shortest contact kept, seconds (at least 2 frames)
    ease_frames: int = 5


def channels_of(joint_names: tuple[str, ...]) -> tuple[str, ...]:
    """The contact channels a skeleton has, in :data:`~retarget.frames.FOOT_JOINTS` order."""
    return tuple(name for name in FOOT_JOINTS if name in joint_names)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def speeds(positions: np.ndarray, frame_times: np.ndarray) -> np.ndarray:
    """Speed (T, C) m/s of ``positions`` (T, C, 3) m by central differences on real frame times."""
    num = len(positions)
    if num < 2:
        return np.zeros(positions.shape[:-1])
    velocity = np.empty_like(positions)
    velocity[1:-1] = (positions[2:] - positions[:-2]) / (frame_times[2:] - frame_times[:-2])[
        :, None, None
    ]
    velocity[0] = (positions[1] - positions[0]) / (frame_times[1] - frame_times[0])
    velocity[-1] = (positions[-1] - positions[-2]) / (frame_times[-1] - frame_times[-2])
    return norm3(velocity)


def _next_true(mask: np.ndarray) -> np.ndarray:
    """First frame at or after each frame where ``mask`` (T, C) holds, T where none: (T + 1, C)
    (the last row, T, for a stretch that ends with the clip)."""
    num = len(mask)
    index = np.where(mask, np.arange(num)[:, None], num)
    return np.minimum.accumulate(np.vstack([index, np.full((1, mask.shape[1]), num)])[::-1])[::-1]


def detect_contacts(
    heights: np.ndarray, speed: np.ndarray, settings: ContactSettings, fps: float = 30.0
) -> np.ndarray:
    """Contact mask (T, C) from ``heights`` above clearance (m) and ``speed`` (m/s), both (T, C).

    Inside each stretch where the exit conditions are not met, contact starts at the first frame
    that meets the enter conditions and lasts to the end of the stretch."""
    low = heights < settings.enter_height_m
    enter = low & (speed < settings.enter_speed_m_s)
    stay = (heights <= settings.exit_height_m) & (speed <= settings.exit_speed_m_s)
    num, channels = heights.shape
    shortest = max(2, int(np.ceil(settings.min_s * fps - 1e-9)))
    # Every stretch of "stay" of every channel: channel, first frame, stop frame.
    pad = np.zeros((1, channels), np.int8)
    edges = np.diff(np.concatenate([pad, stay.astype(np.int8), pad]), axis=0).T  # (C, T + 1)
    channel, start = np.nonzero(edges == 1)
    stop = np.nonzero(edges == -1)[1]
    # Contact runs from the first low frame of a stretch with an entering frame (smoothing blurs
    # the touch-down, so it is back-dated; an entering frame is low itself) to its end.
    first = _next_true(low)[start, channel]
    kept = (_next_true(enter)[start, channel] < stop) & (stop - first >= shortest)
    marks = np.zeros((num + 1, channels), int)
    np.add.at(marks, (first[kept], channel[kept]), 1)
    np.add.at(marks, (stop[kept], channel[kept]), -1)
    return np.cumsum(marks, axis=0)[:num] > 0


def intervals(contacts: np.ndarray) -> np.ndarray:
    """Contact intervals (N, 3) int: channel, first frame, stop frame (exclusive)."""
    rows = [
        (c, start, stop) for c in range(contacts.shape[1]) for start, stop in _runs(contacts[:, c])
    ]
    return np.array(rows, np.int64).reshape(-1, 3)


def targets_and_weights(
    positions: np.ndarray, contacts: np.ndarray, clearance: np.ndarray, ease_frames: int
) -> tuple[np.ndarray, np.ndarray]:
    """Planted targets (T, C, 3) m and lock weights (T, C) in [0, 1].

    ``positions`` (T, C, 3) world metres, ``contacts`` (T, C), ``clearance`` (C,) m. Inside a
    contact the target is the planted point; in the ease frames around it, the joint's own
    position shifted by its offset from the planted point at the contact's nearest frame (apply
    ``p + w * (target - p)``); NaN where the weight is 0."""
    num, channels = contacts.shape
    targets = np.full((num, channels, 3), np.nan)
    weights = np.zeros((num, channels))
    index = np.arange(num)
    for c in range(channels):
        held = contacts[:, c]
        if not held.any():
            continue
        runs = np.array(_runs(held))
        # Planted point of each contact: mean horizontal position over it, at the clearance.
        sums = np.add.reduceat(np.vstack([positions[:, c, :2], np.zeros((1, 2))]), runs.ravel())
        planted = sums[::2] / (runs[:, 1] - runs[:, 0])[:, None]
        run_of = np.cumsum(np.isin(index, runs[:, 0])) - 1  # contact index of a contact frame
        # Nearest contact frame before and after every frame.
        before = np.maximum.accumulate(np.where(held, index, -1))
        after = np.minimum.accumulate(np.where(held, index, num)[::-1])[::-1]
        gap_before = np.where(before >= 0, index - before, num)
        gap_after = np.where(after < num, after - index, num)
        nearest = np.where(gap_before <= gap_after, before, after)
        distance = np.minimum(gap_before, gap_after)
        reach = distance <= ease_frames
        ramp = 1.0 - distance[reach] / (ease_frames + 1.0)
        weights[reach, c] = ramp * ramp * (3 - 2 * ramp)
        # Inside a contact: the planted point. Around it: the joint's own motion shifted by its
        # offset at the nearest contact frame, so the ease removes the jump without dragging a
        # moving foot towards where it is going to land.
        edge = nearest[reach]
        goal = np.concatenate(
            [planted[run_of[edge]], np.full((len(edge), 1), clearance[c])], axis=1
        )
        targets[reach, c] = positions[reach, c] + (goal - positions[edge, c])
    return targets, weights


def lock_feet(
    joints: np.ndarray,
    joint_names: tuple[str, ...],
    targets: np.ndarray,
    weights: np.ndarray,
    clearance: np.ndarray,
) -> tuple[np.ndarray, int]:
    """Pull heels/toes of ``joints`` (T, J, 3) world metres onto their ``targets`` (T, C, 3) by
    ``weights`` (T, C), keep them above their ``clearance`` (C,), keep foot, shin and thigh lengths
    and re-solve the knees. Returns the joints and the number of frames where a leg could not reach
    (the ankle then stops at full extension)."""
    out = np.array(joints, float, copy=True)
    channels = channels_of(joint_names)
    unreachable = np.zeros(len(joints), bool)
    for leg in _LEGS:
        if not all(name in joint_names for name in leg[:3]):
            continue
        hip_i, knee_i, ankle_i = (joint_names.index(name) for name in leg[:3])
        # Contiguous copies: every step below then runs over contiguous memory.
        hip, knee, ankle = (np.ascontiguousarray(joints[:, i]) for i in (hip_i, knee_i, ankle_i))
        heel_c = channels.index(leg[2]) if leg[2] in channels else None
        toe_c = channels.index(leg[3]) if leg[3] in channels else None
        wanted_ankle = _pull(ankle, targets, weights, heel_c)
        if toe_c is not None:
            toe_i = joint_names.index(leg[3])
            toe = np.ascontiguousarray(joints[:, toe_i])
            wanted_toe = _pull(toe, targets, weights, toe_c)
            foot = norm3(toe - ankle)[..., None]
            heel_weight = weights[:, heel_c] if heel_c is not None else np.zeros(len(toe))
            toe_leads = (weights[:, toe_c] > heel_weight)[:, None]
            master = np.where(toe_leads, wanted_toe, wanted_ankle)
            other = np.where(toe_leads, wanted_ankle, wanted_toe)
            other = master + foot * _unit(other - master)  # rigid foot
            floor_master = np.where(
                toe_leads[:, 0], clearance[toe_c], _clearance(clearance, heel_c)
            )
            floor_other = np.where(toe_leads[:, 0], _clearance(clearance, heel_c), clearance[toe_c])
            lift = np.maximum(floor_master - master[:, 2], 0.0)[:, None] * [0.0, 0.0, 1.0]
            master, other = master + lift, other + lift
            other = _swing_above(master, other, foot[:, 0], floor_other)
            wanted_ankle = np.where(toe_leads, other, master)
            wanted_toe = np.where(toe_leads, master, other)
        elif heel_c is not None:
            wanted_ankle[:, 2] = np.maximum(wanted_ankle[:, 2], clearance[heel_c])
        thigh = norm3(knee - hip)
        shin = norm3(ankle - knee)
        reach = (thigh + shin)[:, None]
        offset = wanted_ankle - hip
        distance = norm3(offset)[..., None]
        too_far = distance > reach
        unreachable |= too_far[:, 0]
        shortfall = np.where(too_far, offset * (reach / np.maximum(distance, 1e-12) - 1.0), 0.0)
        wanted_ankle = wanted_ankle + shortfall
        out[:, knee_i] = two_bone_ik(hip, knee, wanted_ankle, thigh, shin, soft_reach=0.0)[0]
        out[:, ankle_i] = wanted_ankle
        if toe_c is not None:
            out[:, toe_i] = wanted_toe + shortfall
    return out, int(unreachable.sum())


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(norm3(vectors)[..., None], 1e-12)


def _clearance(clearance: np.ndarray, channel: int | None) -> float:
    return float(clearance[channel]) if channel is not None else -np.inf


def _pull(position: np.ndarray, targets, weights, channel: int | None) -> np.ndarray:
    """``position`` (T, 3) moved towards the channel's target by its lock weight."""
    if channel is None:
        return position.copy()
    w = weights[:, channel, None]
    return np.where(w > 0, position + w * (np.nan_to_num(targets[:, channel]) - position), position)


def _swing_above(pivot: np.ndarray, point: np.ndarray, length: np.ndarray, floor) -> np.ndarray:
    """Where ``point`` (T, 3) is below ``floor``, rotate it about ``pivot`` (keeping ``length``)
    up to the floor, keeping its horizontal direction."""
    below = point[:, 2] < floor
    if not below.any():
        return point
    height = np.clip(np.maximum(floor, point[:, 2]) - pivot[:, 2], -length, length)
    horizontal = point[:, :2] - pivot[:, :2]
    reach = np.sqrt(np.maximum(length**2 - height**2, 0.0))
    direction = horizontal / np.maximum(np.linalg.norm(horizontal, axis=-1, keepdims=True), 1e-12)
    lifted = np.concatenate(
        [pivot[:, :2] + reach[:, None] * direction, (pivot[:, 2] + height)[:, None]], axis=1
    )
    return np.where(below[:, None], lifted, point)
