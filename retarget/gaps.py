"""Gap filling for one person's joints, with every filled sample flagged.

Short gaps (up to ``max_interpolate_s``, ≈0.5 s) are filled by shape-preserving PCHIP
interpolation, which never overshoots the neighbouring samples. Longer gaps are bridged by a
constant-velocity Kalman/RTS smoother run over the gap and one second either side, which joins the
motion before and after with a smooth, velocity-matched curve. Before a joint's first and after its
last sample (inside the person's span) the nearest value is held.
"""

import numpy as np

from .filters import pchip_interpolate
from .kalman import rts_smooth_segments

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


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index runs where ``mask`` is True."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def gap_codes(valid: np.ndarray, times: np.ndarray, max_interpolate_s: float = 0.5) -> np.ndarray:
    """The :data:`FILL_CODES` (T, J) uint8 that :func:`fill_gaps` gives each sample of ``valid``."""
    codes = np.full(valid.shape, MEASURED, np.uint8)
    for j in range(valid.shape[1]):
        known = np.flatnonzero(valid[:, j])
        if known.size == 0:
            codes[:, j] = ABSENT
            continue
        codes[: known[0], j] = HELD
        codes[known[-1] + 1 :, j] = HELD
        for start, stop in _runs(~valid[known[0] : known[-1] + 1, j]):
            start, stop = start + known[0], stop + known[0]
            short = times[stop] - times[start - 1] <= max_interpolate_s
            codes[start:stop, j] = INTERPOLATED if short else BRIDGED
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
    out = np.array(values, float, copy=True)
    codes = gap_codes(valid, times, max_interpolate_s)
    bridges: dict[tuple[int, int], list[int]] = {}
    for j in range(values.shape[1]):
        known = np.flatnonzero(valid[:, j])
        if known.size == 0:
            out[:, j] = np.nan
            continue
        first, last = known[0], known[-1]
        out[:first, j] = values[first, j]
        out[last + 1 :, j] = values[last, j]
        short = codes[:, j] == INTERPOLATED
        if short.any():
            out[short, j] = pchip_interpolate(times[known], values[known, j], times[short])
        for run in _runs(codes[:, j] == BRIDGED):
            bridges.setdefault(run, []).append(j)
    # One smoother run per gap for all joints that share it (a dropped frame burst hits them
    # all), and all gaps in one vectorised pass.
    windows, segments = [], []
    for (start, stop), joints in bridges.items():
        lo = np.searchsorted(times, times[start - 1] - _BRIDGE_CONTEXT_S)
        hi = np.searchsorted(times, times[stop] + _BRIDGE_CONTEXT_S, side="right")
        local = np.where(valid[lo:hi, joints, None], values[lo:hi, joints], np.nan)
        windows.append((start, stop, lo, joints))
        segments.append((times[lo:hi], local.reshape(hi - lo, -1)))
    tracks = rts_smooth_segments(segments, bridge_noise_mm**2, bridge_accel_density) if segments else []
    for (start, stop, lo, joints), track in zip(windows, tracks, strict=True):
        bridge = track[start - lo : stop - lo].reshape(stop - start, len(joints), 3)
        for k, j in enumerate(joints):
            if not np.all(np.isfinite(bridge[:, k])):  # unseen near the gap: interpolate instead
                known = np.flatnonzero(valid[:, j])
                bridge[:, k] = pchip_interpolate(times[known], values[known, j], times[start:stop])
        out[start:stop, joints] = bridge
    return out, codes
