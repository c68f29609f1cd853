"""Gap filling for one person's joints, with every filled sample flagged.

Short gaps (up to ``max_interpolate_s``, ≈0.5 s) are filled by shape-preserving PCHIP
interpolation, which never overshoots the neighbouring samples. Longer gaps are bridged by a
constant-velocity Kalman/RTS smoother run over the gap and one second either side, which joins the
motion before and after with a smooth, velocity-matched curve; over gaps longer than
``LONGEST_CURVED_BRIDGE_S`` that curve would carry the edge velocities far out (seconds unseen), so
those are joined by a straight line. Before a joint's first and after its last sample (inside the
person's span) the nearest value is held.
"""

import numpy as np

from .filters import linear_resample, pchip_fill
from .kalman import rts_smooth_segments
from .robust import valid_neighbours

# Per-sample codes of the ``filled`` flags (uint8).
MEASURED = 0  # the estimator's value (possibly smoothed)
INTERPOLATED = 1  # short gap, PCHIP
BRIDGED = 2  # long gap, Kalman/RTS prediction: least reliable, shown to the user
HELD = 3  # before the joint's first or after its last sample: nearest value held
ABSENT = 4  # outside the person's span: the output is NaN there
FILL_CODES = {
    "measured": MEASURED,
    "interpolated": INTERPOLATED,
    "bridged": BRIDGED,
    "held": HELD,
    "absent": ABSENT,
}

_BRIDGE_CONTEXT_S = 1.0  # data either side of a long gap that the bridge sees
LONGEST_CURVED_BRIDGE_S = 2.0  # longer gaps: a straight line between their edges


def straight_join(times: np.ndarray, values: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Values (stop - start, ...) on the straight line from ``values[start - 1]`` to
    ``values[stop]`` at ``times[start:stop]``."""
    edges = np.array([start - 1, stop])
    return linear_resample(times[edges], values[edges], times[start:stop])


def gap_runs(valid: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of False in ``valid`` (T,) with True on both sides."""
    before, after = valid_neighbours(np.asarray(valid, bool)[:, None])
    missing = np.flatnonzero(~np.asarray(valid, bool))
    starts = missing[(before[missing, 0] == missing - 1) & (before[missing, 0] >= 0)]
    stops = after[starts, 0]
    return [(int(a), int(b)) for a, b in zip(starts, stops, strict=True) if b < len(valid)]


def curved_gaps(valid: np.ndarray, times: np.ndarray) -> np.ndarray:
    """(T, J): the samples of the gaps in ``valid`` (T, J) that have samples on both sides and
    last at most ``LONGEST_CURVED_BRIDGE_S`` (those a curve joins; longer ones: a straight line)."""
    valid = np.asarray(valid, bool)
    num = len(valid)
    before, after = valid_neighbours(valid)
    inside = ~valid & (before >= 0) & (after < num)
    span = times[np.minimum(after, num - 1)] - times[np.maximum(before, 0)]
    return inside & (span <= LONGEST_CURVED_BRIDGE_S)


def gap_codes(valid: np.ndarray, times: np.ndarray, max_interpolate_s: float = 0.5) -> np.ndarray:
    """The :data:`FILL_CODES` (T, J) uint8 that :func:`fill_gaps` gives each sample of ``valid``."""
    valid = np.asarray(valid, bool)
    num = len(valid)
    codes = np.full(valid.shape, MEASURED, np.uint8)
    if num == 0:
        return codes
    before, after = valid_neighbours(valid)
    held = ~valid & ((before < 0) | (after >= num))
    inside = ~valid & ~held
    span = times[np.minimum(after[inside], num - 1)] - times[np.maximum(before[inside], 0)]
    codes[inside] = np.where(span <= max_interpolate_s, INTERPOLATED, BRIDGED)
    codes[held] = HELD
    codes[:, ~valid.any(axis=0)] = ABSENT
    return codes


def fill_gaps(
    values: np.ndarray,
    valid: np.ndarray,
    times: np.ndarray,
    max_interpolate_s: float = 0.5,
    bridge_accel_density: float = 4.0e6,
    bridge_noise_mm: float = 10.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Fill missing samples of ``values`` (T, J, 3) where ``valid`` (T, J) is False.

    ``times`` (T,) s. The bridge uses white acceleration noise of ``bridge_accel_density``
    (mm²/s³) and measurement noise ``bridge_noise_mm``. Returns the filled values (joints never
    seen stay NaN) and uint8 codes (T, J) (:data:`FILL_CODES`)."""
    valid = np.asarray(valid, bool)
    codes = gap_codes(valid, times, max_interpolate_s)
    out = pchip_fill(times, values, valid, codes == INTERPOLATED)
    num = len(valid)
    before, after = valid_neighbours(valid)
    column = np.broadcast_to(np.arange(valid.shape[1]), valid.shape)
    held = codes == HELD  # nearest sample: the first one before the span, the last one after
    nearest = np.where(before[held] >= 0, before[held], np.minimum(after[held], num - 1))
    out[held] = out[nearest, column[held]]
    out[:, codes[0] == ABSENT] = np.nan
    # One smoother run per gap for all joints that share it (a dropped frame burst hits them
    # all), and all gaps in one vectorised pass.
    joint, frame = np.nonzero((codes == BRIDGED).T)
    starts = frame == before[frame, joint] + 1  # first sample of each bridged run
    bridges: dict[tuple[int, int], list[int]] = {}
    for j, start, stop in zip(joint[starts].tolist(), frame[starts].tolist(),
                              after[frame[starts], joint[starts]].tolist(), strict=True):  # fmt: skip
        bridges.setdefault((start, stop), []).append(j)
    windows, segments = [], []
    for (start, stop), joints in bridges.items():
        if times[stop] - times[start - 1] > LONGEST_CURVED_BRIDGE_S:
            out[start:stop, joints] = straight_join(times, values[:, joints], start, stop)
            continue
        lo = np.searchsorted(times, times[start - 1] - _BRIDGE_CONTEXT_S)
        hi = np.searchsorted(times, times[stop] + _BRIDGE_CONTEXT_S, side="right")
        local = np.where(valid[lo:hi, joints, None], values[lo:hi, joints], np.nan)
        windows.append((start, stop, lo, joints))
        segments.append((times[lo:hi], local.reshape(hi - lo, -1)))
    tracks = (
        rts_smooth_segments(segments, bridge_noise_mm**2, bridge_accel_density) if segments else []
    )
    for (start, stop, lo, joints), track in zip(windows, tracks, strict=True):
        out[start:stop, joints] = track[start - lo : stop - lo].reshape(
            stop - start, len(joints), 3
        )
    return out, codes
