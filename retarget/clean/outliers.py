"""Outlier gates for one person's joints: mark implausible joint-frames missing, and undo
left/right swaps.

Positions are ``(T, J, 3)`` millimetres in the camera frame; ``valid`` is ``(T, J)`` bool. The
gates work on two signals so that the large, common depth jitter of monocular estimates does not
hide a single bad joint:

* the *centre*: a robust per-frame centre of the torso joints (which have no left/right twin;
  see :func:`centre`). A centre that jumps away from its own Savitzky–Golay trend, or moves
  faster than a person can, rejects the whole frame (a frame-level depth error);
* the *body*: joints relative to the centre, gated by bone length (more than ±25 % of the clip's
  median, or 4 robust sigmas, whichever is wider, so short bones are not rejected for noise; the
  joint whose bones are all bad is blamed, a leaf only when its parent is not), by speed (a spike
  faster than 20 m/s in and out: a kicking foot reaches 12-17 m/s), and by the residual against
  a Savitzky–Golay trend (order 2, ≈0.35 s) larger than k x 1.4826 x MAD (``trend_k``: 4 here,
  6 in the cleaning presets), per joint and axis, in two passes: the second trend is
  fitted without the samples the first rejected, and every sample is judged again. The MAD is
  taken over the clip and, clipped, over the surrounding second, because fast moves leave larger
  residuals than slow ones.

Left/right swaps (an estimator labelling the left leg as the right one for a few frames) are
corrected before gating: a frame's limb pair is swapped back when the swapped assignment is much
closer to the running median of the surrounding frames.
"""

from dataclasses import dataclass, field

import numpy as np

from .filters import savgol_filter
from .robust import (
    fill_linear,
    masked_median,
    median_and_sigma,
    moving_average,
    robust_sigma,
    running_median,
    valid_neighbours,
)
from .vectors import finite3, norm3

TORSO_JOINTS = ("pelv", "bell", "spin", "thor", "neck", "head")
# Left/right limb groups (joint name without the l/r prefix) swapped as a whole.
SWAP_GROUPS = {
    "leg": ("hip", "kne", "ank", "toe", "hee"),
    "arm": ("cla", "sho", "elb", "wri", "han", "thu", "fin"),
    "face": ("ear", "eye"),
}
MIN_DEPTH_MM = 100.0  # joints closer to the camera than this are impossible


@dataclass(frozen=True)
class GateSettings:
    """Thresholds of :func:`gate_person` (see the module docstring for what each gate does)."""

    bone_tolerance: float = 0.25  # relative deviation from the clip's median bone length
    max_speed_m_s: float = 10.0  # the torso centre faster in and out of a frame = a bad frame
    # A joint relative to the centre faster in and out of a sample = a spike. A kicking foot
    # reaches 12-17 m/s (the DeepMimic spin kick's toe: 12.4 m/s), a punch 10 m/s.
    max_limb_speed_m_s: float = 20.0
    speed_slack_mm: float = 60.0  # allowance for noise added to the speed limit per step
    trend_window_s: float = 0.35  # Savitzky–Golay window of the trend
    trend_k: float = 4.0  # residual threshold in robust sigmas
    trend_floor_mm: float = 40.0  # never reject residuals below this (noise-free clips)
    trend_passes: int = 2  # the first against the trend of all samples, then without rejected
    uncertainty_factor: float = 4.0  # reject joints this many times above their median spread
    uncertainty_floor_mm: float = 100.0
    fix_swaps: bool = True
    swap_ratio: float = 0.5  # swapped assignment must cost at most this share of the original


@dataclass
class GateReport:
    """What the gates did to one person: counts per gate, and the frames where swaps were undone."""

    invalid: int = 0
    uncertainty: int = 0
    frame: int = 0
    bone: int = 0
    speed: int = 0
    trend: int = 0
    swapped_frames: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "invalid": self.invalid,
            "uncertainty": self.uncertainty,
            "frame": self.frame,
            "bone": self.bone,
            "speed": self.speed,
            "trend": self.trend,
            "swapped_frames": len(self.swapped_frames),
        }


def odd_window(seconds: float, fps: float, minimum: int = 5) -> int:
    """An odd window length in frames covering about ``seconds``."""
    frames = max(int(round(seconds * fps)), minimum)
    return frames if frames % 2 else frames + 1


def _median_over_joints(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-frame median over joints of ``values`` (T, J, 3) where ``mask`` (T, J)."""
    full = np.broadcast_to(mask[..., None], values.shape)
    return masked_median(np.moveaxis(values, 1, 0), np.moveaxis(full, 1, 0))


def _near(changed: np.ndarray, half: int) -> np.ndarray:
    """Frames (T,) within ``half`` frames of a changed one."""
    return np.convolve(changed, np.ones(2 * half + 1), "same") > 0


def centre(
    poses: np.ndarray, valid: np.ndarray, names: tuple[str, ...], window: int = 11
) -> np.ndarray:
    """Per-frame robust centre (T, 3) of the torso joints (all joints when fewer than two torso
    joints are seen); NaN in frames with nothing valid.

    A plain median over joints spread along the trunk jumps by the spacing of the joints when one
    of them is wrong, so each joint is first moved by its own typical offset from the centre
    (running median over ``window`` frames): the median of those nearly equal values is robust."""
    return _centre(poses, valid, names, window)[0]


def _centre(poses, valid, names, window, before: dict | None = None) -> tuple[np.ndarray, dict]:
    """:func:`centre` and its intermediate results. Given those of a call on the same poses with
    another ``valid`` (``before``), only the frames the change can reach are computed again."""
    torso = np.array([names.index(n) for n in TORSO_JOINTS if n in names] or range(len(names)))
    few = valid[:, torso].sum(axis=1) < 2
    if before is None:
        redo = np.ones(len(valid), bool)
        rough = _median_over_joints(poses[:, torso], valid[:, torso])
    else:
        redo = (valid != before["valid"]).any(axis=1)
        rough = before["rough"].copy()
        rough[redo] = _median_over_joints(poses[redo][:, torso], valid[redo][:, torso])
    if (few & redo).any():
        rough[few & redo] = _median_over_joints(poses[few & redo], valid[few & redo])
    state = {"valid": valid, "rough": rough}
    seen = finite3(rough)
    if seen.sum() < 3:
        return rough, state
    width = min(window, 2 * (seen.sum() // 2) - 1)
    offsets = poses[:, torso] - rough[:, None]
    ok = valid[:, torso] & seen[:, None]
    filled = fill_linear(offsets, ok)
    if before is None or before.get("width") != width:
        typical = running_median(filled, width)
        refined = _median_over_joints(poses[:, torso] - typical, ok)
    else:
        # A frame's typical offsets change only near changed inputs, its median only there or
        # where its own validity changed.
        near = _near((filled != before["filled"]).any(axis=(1, 2)), int(width) // 2)
        typical, refined = before["typical"].copy(), before["refined"].copy()
        typical[near] = running_median(filled, width, near)
        redo = near | (ok != before["ok"]).any(axis=1)
        refined[redo] = _median_over_joints(poses[redo][:, torso] - typical[redo], ok[redo])
    state.update(width=width, ok=ok, filled=filled, typical=typical, refined=refined)
    return np.where((~few & seen)[:, None], refined, rough), state


def swap_groups(names: tuple[str, ...]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Group name -> (left joint indices, right joint indices) present in ``names``."""
    groups = {}
    for group, suffixes in SWAP_GROUPS.items():
        pairs = [
            (names.index("l" + s), names.index("r" + s))
            for s in suffixes
            if "l" + s in names and "r" + s in names
        ]
        if pairs:
            left, right = zip(*pairs, strict=True)
            groups[group] = (np.array(left), np.array(right))
    return groups


def _swap_cost(x, y, both):
    """Summed distance (T,) between limb joints ``x`` and ``y`` (T, k, 3) where ``both`` (T, k)."""
    distance = np.where(both, norm3(x - y), 0.0)  # (T, k)
    total = distance[:, 0].copy()
    for k in range(1, distance.shape[1]):  # a short axis: faster than np.sum
        total += distance[:, k]
    return total


def fix_swaps(
    relative: np.ndarray, valid: np.ndarray, names: tuple[str, ...], window: int, ratio: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undo left/right swaps of limb groups in ``relative`` (T, J, 3) mm (centre-relative).

    Returns the corrected positions and validity, and a (T,) bool of frames where a swap was
    undone. A group is swapped back in a frame when the swapped assignment lies within ``ratio``
    of the original's distance to the running median of the surrounding frames."""
    relative = relative.copy()
    valid = valid.copy()
    swapped = np.zeros(len(relative), bool)
    if len(relative) < 3:
        return relative, valid, swapped
    half = int(window) // 2
    groups = swap_groups(names)
    if not groups:
        return relative, valid, swapped
    last: dict[str, tuple] = {}  # per group: its inputs, medians and decisions of the last pass
    for attempt in range(2):  # a second pass sees the medians without the first pass's swaps
        if attempt and not swapped.any():
            break
        limbs = [np.concatenate(pair) for pair in groups.values()]  # each group's left, right
        filled = fill_linear(relative[:, np.concatenate(limbs)], valid[:, np.concatenate(limbs)])
        start = 0
        for (group, (left, right)), columns in zip(groups.items(), limbs, strict=True):
            values, flags = filled[:, start : start + len(columns)], valid[:, columns]
            start += len(columns)
            if group in last:
                # Only frames whose window saw a change get new medians and a new decision: the
                # decision of a frame depends on that frame's inputs and medians alone.
                old_values, old_flags, reference, frames = last[group]
                changed = (values != old_values).any(axis=(1, 2)) | (flags != old_flags).any(axis=1)
                rows = _near(changed, half)
                reference, frames = reference.copy(), frames.copy()
                reference[rows] = running_median(values, window, rows)
            else:
                rows = np.ones(len(values), bool)
                reference, frames = running_median(values, window), np.zeros(len(values), bool)
            k = len(left)
            a, b, ref, both = values[rows, :k], values[rows, k:], reference[rows], flags[rows]
            both = both[:, :k] & both[:, k:]
            keep = _swap_cost(a, ref[:, :k], both) + _swap_cost(b, ref[:, k:], both)
            flip = _swap_cost(b, ref[:, :k], both) + _swap_cost(a, ref[:, k:], both)
            noise_floor = 30.0 * both.sum(axis=1)  # mm; ignore near-symmetric poses
            frames[rows] = (flip < ratio * keep) & (keep - flip > noise_floor) & both.any(axis=1)
            last[group] = values, flags, reference, frames
            if frames.any():
                hit = np.flatnonzero(frames)
                for array in (relative, valid):  # positions and their flags move together
                    la, rb = array[hit][:, left].copy(), array[hit][:, right].copy()
                    array[hit[:, None], left[None]] = rb
                    array[hit[:, None], right[None]] = la
                swapped |= frames
    return relative, valid, swapped


def _bone_gate(relative, valid, parents, tolerance):
    """Joints to reject because their bones have implausible lengths."""
    num_joints = relative.shape[1]
    children = np.flatnonzero(parents >= 0)
    if children.size == 0:
        return np.zeros(valid.shape, bool)
    par = parents[children]
    lengths = norm3(relative[:, children] - relative[:, par])  # (T, B)
    both = valid[:, children] & valid[:, par]
    median, sigma = median_and_sigma(lengths, both)
    allowed = np.maximum(tolerance * median, 4.0 * sigma)
    bad = both & (np.abs(lengths - median) > allowed)
    bad_count = np.zeros(valid.shape, int)
    degree = np.zeros(num_joints, int)
    for b, (child, parent) in enumerate(zip(children, par, strict=True)):
        bad_count[:, child] += bad[:, b]
        bad_count[:, parent] += bad[:, b]
        degree[child] += 1
        degree[parent] += 1
    # A joint is to blame when all of its bones are bad; a leaf (one bone) only when its parent
    # is not to blame already (a bad wrist must not take the hand with it).
    blamed = valid & (bad_count > 0) & (bad_count >= degree[None]) & (degree[None] > 1)
    leaves = np.flatnonzero((degree == 1) & (parents >= 0))
    blamed[:, leaves] = valid[:, leaves] & (bad_count[:, leaves] > 0) & ~blamed[:, parents[leaves]]
    return blamed


def _speed_gate(relative, valid, times, max_speed_mm_s, slack_mm):
    """Joints whose step into and out of a sample both exceed the speed limit (spikes); a step
    joins a joint's consecutive valid samples."""
    num = len(valid)
    rejected = np.zeros(valid.shape, bool)
    if num < 3:
        return rejected
    before, after = valid_neighbours(valid)
    # Each sample's last valid position: a step into frame t starts there at frame t - 1.
    held = relative.copy()
    gap = np.nonzero(~valid & (before >= 0))
    held[gap] = relative[before[gap], gap[1]]
    steps = norm3(relative[1:] - held[:-1])  # (T - 1, J) into frames 1..T-1
    start = np.maximum(before[:-1], 0)
    limits = max_speed_mm_s * (times[1:, None] - times[start]) + slack_mm
    fast = np.zeros(valid.shape, bool)  # the step into a valid sample from the previous one
    fast[1:] = valid[1:] & (before[:-1] >= 0) & (steps > limits)
    # The next valid sample after t (strictly): its step out of t.
    ahead = np.full(valid.shape, num, np.int32)
    ahead[:-1] = after[1:]
    column = np.broadcast_to(np.arange(valid.shape[1]), valid.shape)
    rejected[valid] = fast[valid] & (ahead[valid] < num)
    spikes = np.flatnonzero(rejected)
    frame, joint = np.unravel_index(spikes, valid.shape)
    rejected[frame, joint] = fast[ahead[frame, joint], column[frame, joint]]
    return rejected


def _trend_gate(relative, valid, window, settings: GateSettings):
    """Samples far from the trend, per joint and axis (see module docstring)."""
    rejected = np.zeros(valid.shape, bool)
    if len(relative) < window:
        return rejected
    # The first trend sees the outliers too (their neighbours may be rejected wrongly); later
    # passes re-test every sample against a trend fitted without the rejected ones.
    local_window = 3 * window
    # Large temporaries are reused in place (fresh megabyte arrays cost page faults).
    for _ in range(max(settings.trend_passes, 1)):
        keep = valid & ~rejected
        trend = savgol_filter(fill_linear(relative, keep), window, 2)
        residual = np.subtract(relative, trend)
        np.abs(residual, out=residual)
        residual[~valid] = 0.0  # the trend's own residual there
        sigma = np.nan_to_num(robust_sigma(residual, np.broadcast_to(keep[..., None], trend.shape)))
        # Fast moves leave larger residuals than slow ones: also scale by the local residual
        # level (clipped so that an outlier barely raises its own limit).
        clipped = np.minimum(residual, settings.trend_k * sigma[None], out=trend)
        clipped[~keep] = 0.0
        kept = moving_average(keep[..., None].astype(float), local_window)  # same on every axis
        local = moving_average(clipped, local_window)
        local *= 1.2533
        local /= np.maximum(kept, 1e-9)
        limit = np.maximum(local, sigma[None], out=local)  # the scale
        limit *= settings.trend_k
        np.maximum(limit, settings.trend_floor_mm, out=limit)
        far = residual > limit
        rejected = valid & (far[..., 0] | far[..., 1] | far[..., 2])
    return rejected


def gate_person(
    poses: np.ndarray,
    valid: np.ndarray,
    times: np.ndarray,
    names: tuple[str, ...],
    parents: np.ndarray,
    uncertainty: np.ndarray | None,
    settings: GateSettings,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, GateReport]:
    """Gate one person's joints (see the module docstring).

    ``poses`` (T, J, 3) mm camera frame, ``valid`` (T, J), ``times`` (T,) s, ``parents`` (J,) with
    -1 for roots, ``uncertainty`` (T, J) mm or None. Returns the poses (swaps undone), the new
    validity, a (T,) bool of frames with undone swaps, and a :class:`GateReport`."""
    report = GateReport()
    poses = np.array(poses, float, copy=True)
    sane = valid & finite3(poses) & (np.nan_to_num(poses[..., 2]) > MIN_DEPTH_MM)
    report.invalid = int((valid & ~sane).sum())
    valid = sane
    if uncertainty is not None and np.any(np.isfinite(uncertainty) & (uncertainty > 0)):
        usable = valid & np.isfinite(uncertainty)
        spread = np.where(usable, uncertainty, np.nan)
        typical = masked_median(spread, usable)
        limit = np.maximum(settings.uncertainty_factor * typical, settings.uncertainty_floor_mm)
        doubtful = valid & (np.nan_to_num(spread) > np.nan_to_num(limit, nan=np.inf)[None])
        report.uncertainty = int(doubtful.sum())
        valid = valid & ~doubtful
    if not valid.any():
        return poses, valid, np.zeros(len(poses), bool), report
    fps = 1.0 / float(np.median(np.diff(times))) if len(times) > 1 else 30.0
    window = odd_window(settings.trend_window_s, fps)
    max_speed = 1000.0 * settings.max_speed_m_s
    max_limb_speed = 1000.0 * settings.max_limb_speed_m_s

    # Frame level: the centre against its own trend and the speed limit.
    middle, state = _centre(poses, valid, names, window)
    seen = finite3(middle)
    bad_frames = np.zeros(len(poses), bool)
    if seen.sum() >= 3:
        bad_frames |= _speed_gate(middle[:, None], seen[:, None], times, max_speed, 100.0)[:, 0]
        bad_frames |= _trend_gate(middle[:, None], seen[:, None] & ~bad_frames[:, None], window,
                                  settings)[:, 0]  # fmt: skip
    report.frame = int(bad_frames.sum())
    valid = valid & ~bad_frames[:, None]
    middle = _centre(poses, valid, names, window, state)[0]  # again, without the bad frames
    seen = finite3(middle)
    relative = poses - np.where(seen[:, None], middle, 0.0)[:, None]
    valid = valid & seen[:, None]

    swapped = np.zeros(len(poses), bool)
    if settings.fix_swaps:
        relative, valid, swapped = fix_swaps(relative, valid, names, window, settings.swap_ratio)
        report.swapped_frames = np.flatnonzero(swapped).tolist()
        poses = relative + np.where(seen[:, None], middle, 0.0)[:, None]

    bone = _bone_gate(relative, valid, parents, settings.bone_tolerance)
    report.bone = int(bone.sum())
    valid = valid & ~bone
    speed = _speed_gate(relative, valid, times, max_limb_speed, settings.speed_slack_mm)
    report.speed = int(speed.sum())
    valid = valid & ~speed
    trend = _trend_gate(relative, valid, window, settings)
    report.trend = int(trend.sum())
    valid = valid & ~trend
    return poses, valid, swapped, report
