"""Signal filters on stacked numpy arrays: Butterworth design and zero-phase filtering,
Savitzky–Golay, PCHIP interpolation and resampling of irregular frame times.

Every function works along axis 0 (time) and broadcasts over the trailing axes, so a ``(T, J, 3)``
pose array is filtered in one call. Inputs must be finite unless a function says otherwise (fill
gaps first). The designs reproduce ``scipy.signal.butter``, ``lfilter``, ``filtfilt``,
``savgol_coeffs``/``savgol_filter`` and ``scipy.interpolate.PchipInterpolator``; the tests compare
them against scipy, which is never imported here (Blender's Python has no scipy).
"""

from functools import lru_cache
from math import factorial

import numpy as np

from .. import RetargetError

# Frame times whose steps all lie within this fraction of the median step count as uniform.
UNIFORM_TOLERANCE = 1e-3
# Highest cut-off as a fraction of the Nyquist frequency (docs/design.md §4: <= 0.4 * Nyquist).
MAX_CUTOFF_FRACTION = 0.4


class FilterError(RetargetError):
    """Bad filter parameters or inputs; the message says which and what to use instead."""


# --------------------------------------------------------------------------- Butterworth


def butter_lowpass(order: int, cutoff_hz: float, fs_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Digital Butterworth low-pass ``(b, a)`` (same as ``scipy.signal.butter(order, cutoff_hz,
    fs=fs_hz)``): analog prototype, pre-warped bilinear transform."""
    if order < 1:
        raise FilterError(f"Butterworth order must be at least 1, got {order}")
    if not 0 < cutoff_hz < fs_hz / 2:
        raise FilterError(
            f"cut-off {cutoff_hz} Hz must lie between 0 and the Nyquist frequency {fs_hz / 2} Hz"
        )
    m = np.arange(-order + 1, order, 2)
    poles = -np.exp(1j * np.pi * m / (2 * order))  # analog prototype, cut-off 1 rad/s
    fs = 2.0  # work in normalised frequency like scipy: Nyquist = 1
    warped = 2 * fs * np.tan(np.pi * (cutoff_hz / (fs_hz / 2)) / fs)
    poles = poles * warped
    gain = warped**order
    fs2 = 2 * fs
    digital_poles = (fs2 + poles) / (fs2 - poles)
    gain = gain * np.real(1.0 / np.prod(fs2 - poles))
    b = gain * np.real(np.poly(-np.ones(order)))
    a = np.real(np.poly(digital_poles))
    return b, a


def lfilter(b: np.ndarray, a: np.ndarray, x: np.ndarray, zi: np.ndarray | None = None):
    """Direct-form II transposed IIR filter along axis 0 (``scipy.signal.lfilter``).

    ``x`` is ``(T, ...)``; ``zi`` is ``(n - 1, ...)`` initial state or None for zeros. Returns
    ``y`` (and the final state when ``zi`` is given)."""
    b = np.asarray(b, float) / a[0]
    a = np.asarray(a, float) / a[0]
    n = max(len(a), len(b))
    b = np.pad(b, (0, n - len(b)))
    a = np.pad(a, (0, n - len(a)))
    x = np.asarray(x, float)
    state = np.zeros((n - 1,) + x.shape[1:]) if zi is None else np.array(zi, float, copy=True)
    y = np.empty_like(x)
    # The recursion is sequential in time; each step is vectorised over all channels.
    for t in range(x.shape[0]):
        xt = x[t]
        yt = b[0] * xt + state[0] if n > 1 else b[0] * xt
        for k in range(n - 2):
            state[k] = b[k + 1] * xt + state[k + 1] - a[k + 1] * yt
        if n > 1:
            state[n - 2] = b[n - 1] * xt - a[n - 1] * yt
        y[t] = yt
    return y if zi is None else (y, state)


def _impulse_response(b: np.ndarray, a: np.ndarray, limit: int) -> np.ndarray | None:
    """The filter's impulse response, cut where it has decayed below 1e-14 of its peak, or None
    when it has not decayed within ``limit`` samples."""
    response = _decayed_response(tuple(np.asarray(b, float)), tuple(np.asarray(a, float)))
    return response if response is not None and len(response) < limit - 8 else None


@lru_cache(maxsize=32)
def _decayed_response(b: tuple, a: tuple) -> np.ndarray | None:
    """The impulse response up to where it decays below 1e-14 of its peak (read-only), or None
    when it does not within 2^22 samples; the filter's design is shared between calls."""
    size = 128
    while size <= 1 << 22:
        impulse = np.zeros(size)
        impulse[0] = 1.0
        response = lfilter(np.array(b), np.array(a), impulse)
        tail = np.abs(response) > 1e-14 * np.abs(response).max()
        length = int(np.flatnonzero(tail)[-1]) + 1
        if length < size - 8:
            response = response[:length].copy()
            response.flags.writeable = False
            return response
        size *= 4
    return None


@lru_cache(maxsize=32)
def _free_responses(b: tuple, a: tuple, steps: int) -> np.ndarray:
    """Responses (steps, n - 1) of :func:`lfilter` to zero input from each unit initial state
    (read-only)."""
    n = max(len(a), len(b))
    free, _ = lfilter(np.array(b), np.array(a), np.zeros((steps, n - 1)), np.eye(n - 1))
    free.flags.writeable = False
    return free


def _lfilter_fft(b, a, x: np.ndarray, zi: np.ndarray, response: np.ndarray) -> np.ndarray:
    """:func:`lfilter` along the last axis of ``x`` (C, N) (channel-major, so that every FFT runs
    over contiguous memory) with initial state ``zi`` (n - 1, C), by FFT convolution with the
    (truncated) impulse response, plus the decaying response to the initial state."""
    num = x.shape[-1]
    size = 1 << int(np.ceil(np.log2(num + len(response))))
    spectrum = np.fft.rfft(x, size, axis=-1) * np.fft.rfft(response, size)
    y = np.fft.irfft(spectrum, size, axis=-1)[:, :num]
    # Zero input from the initial state: linear in zi, one response per unit state.
    steps = min(num, len(response) + len(a))
    free = _free_responses(tuple(np.asarray(b, float)), tuple(np.asarray(a, float)), steps)
    for k in range(len(zi)):
        y[:, :steps] += zi[k][:, None] * free[:, k][None]
    return y


def lfilter_zi(b: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Steady-state initial state ``(n - 1,)`` of :func:`lfilter` for a unit step input."""
    b = np.asarray(b, float) / a[0]
    a = np.asarray(a, float) / a[0]
    n = max(len(a), len(b))
    b = np.pad(b, (0, n - len(b)))
    a = np.pad(a, (0, n - len(a)))
    companion = np.zeros((n - 1, n - 1))
    companion[0] = -a[1:]
    companion[1:, :-1] += np.eye(n - 2)
    return np.linalg.solve(np.eye(n - 1) - companion.T, b[1:] - a[1:] * b[0])


def _odd_extension(x: np.ndarray, padlen: int) -> np.ndarray:
    if padlen == 0:
        return x
    left = 2 * x[0] - x[padlen:0:-1]
    right = 2 * x[-1] - x[-2 : -(padlen + 2) : -1]
    return np.concatenate([left, x, right], axis=0)


def filtfilt(b: np.ndarray, a: np.ndarray, x: np.ndarray, padlen: int | None = None) -> np.ndarray:
    """Zero-phase forward-backward filtering along axis 0 with odd edge extension of ``padlen``
    samples (``scipy.signal.filtfilt(b, a, x, axis=0, padlen=padlen)``; default ``3 * n``).

    The padding is shortened to ``T - 1`` for short signals instead of failing."""
    x = np.asarray(x, float)
    if x.shape[0] < 2:
        return x.copy()
    n = max(len(a), len(b))
    padlen = 3 * n if padlen is None else padlen
    padlen = int(min(padlen, x.shape[0] - 1))
    extended = _odd_extension(x, padlen)
    zi = lfilter_zi(b, a).reshape((-1,) + (1,) * (x.ndim - 1))
    # The recursion costs a Python step per sample; when the impulse response dies out well
    # within the signal, FFT convolution gives the same result (to ~1e-12) much faster.
    response = _impulse_response(b, a, len(extended)) if x[0].size > 4 else None
    if response is not None:
        columns = extended.reshape(len(extended), -1).T.copy()  # (C, N)
        zi = zi.reshape(len(zi), 1)
        forward = _lfilter_fft(b, a, columns, zi * columns[:, 0], response)
        backward = _lfilter_fft(b, a, forward[:, ::-1], zi * forward[:, -1], response)
        y = np.ascontiguousarray(backward[:, ::-1].T).reshape(extended.shape)
    else:
        forward, _ = lfilter(b, a, extended, zi * extended[0])
        backward, _ = lfilter(b, a, forward[::-1], zi * forward[-1])
        y = backward[::-1]
    return np.ascontiguousarray(y[padlen : len(y) - padlen] if padlen else y)


# --------------------------------------------------------------------------- Savitzky–Golay


def savgol_coeffs(window: int, polyorder: int, deriv: int = 0, delta: float = 1.0) -> np.ndarray:
    """Centre-point Savitzky–Golay weights ``(window,)`` applied as a dot product with the window
    (``scipy.signal.savgol_coeffs(window, polyorder, deriv, delta, use="dot")``)."""
    if window % 2 != 1 or window < 1:
        raise FilterError(f"Savitzky–Golay window must be an odd positive length, got {window}")
    if polyorder >= window:
        raise FilterError(f"polyorder {polyorder} must be less than the window {window}")
    half = window // 2
    offsets = np.arange(-half, window - half, dtype=float)
    vandermonde = offsets[None, :] ** np.arange(polyorder + 1)[:, None]  # (order + 1, window)
    target = np.zeros(polyorder + 1)
    if deriv <= polyorder:
        target[deriv] = factorial(deriv) / delta**deriv
    coeffs, *_ = np.linalg.lstsq(vandermonde, target, rcond=None)
    return coeffs


@lru_cache(maxsize=16)
def _savgol_design(window: int, polyorder: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre weights (window,), the Vandermonde matrix of the window (window, order + 1) and
    its pseudo-inverse (order + 1, window), read-only (shared between calls)."""
    coeffs = savgol_coeffs(window, polyorder)
    offsets = np.arange(window, dtype=float)
    vandermonde = offsets[:, None] ** np.arange(polyorder + 1)[None, :]
    projector = np.linalg.pinv(vandermonde)
    for array in (coeffs, vandermonde, projector):
        array.flags.writeable = False
    return coeffs, vandermonde, projector


def savgol_filter(x: np.ndarray, window: int, polyorder: int) -> np.ndarray:
    """Savitzky–Golay smoothing along axis 0 with polynomial edge fits
    (``scipy.signal.savgol_filter(x, window, polyorder, axis=0, mode="interp")``).

    The window shrinks (staying odd and above ``polyorder``) for signals shorter than it; a signal
    too short for any fit is returned unchanged."""
    x = np.asarray(x, float)
    num = x.shape[0]
    window = min(window, num if num % 2 else num - 1)
    if window <= polyorder:
        return x.copy()
    coeffs, vandermonde, projector = _savgol_design(window, polyorder)
    half = window // 2
    windows = np.lib.stride_tricks.sliding_window_view(x, window, axis=0)  # (T-w+1, ..., w)
    y = np.empty_like(x)
    np.einsum("...k,k->...", windows, coeffs, out=y[half : num - half])  # no copy, no BLAS
    # Edges: evaluate the least-squares polynomial of the first/last window at the edge samples.
    head = np.tensordot(projector, x[:window], axes=(1, 0))
    tail = np.tensordot(projector, x[num - window :], axes=(1, 0))
    y[:half] = np.tensordot(vandermonde[:half], head, axes=(1, 0))
    y[num - half :] = np.tensordot(vandermonde[window - half :], tail, axes=(1, 0))
    return y


# --------------------------------------------------------------------------- PCHIP


def _pchip_interior(h0, h1, m0, m1):
    """PCHIP slopes at interior knots from the steps before/after (``h0``, ``h1``) and the secant
    slopes before/after (``m0``, ``m1``): weighted harmonic mean, 0 at a local extremum."""
    w1 = 2 * h1 + h0
    w2 = h1 + 2 * h0
    flat = (np.sign(m1) != np.sign(m0)) | (m1 == 0) | (m0 == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        harmonic = (w1 / m0 + w2 / m1) / (w1 + w2)
        return np.where(flat, 0.0, 1.0 / harmonic)


def _pchip_edge(h0, h1, m0, m1):
    """PCHIP slope at an end knot from the first two steps and secants seen from that end."""
    edge = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
    wrong_sign = np.sign(edge) != np.sign(m0)
    overshoot = (np.sign(m0) != np.sign(m1)) & (np.abs(edge) > 3 * np.abs(m0))
    return np.where(wrong_sign, 0.0, np.where(overshoot, 3 * m0, edge))


def _pchip_slopes(t: np.ndarray, y: np.ndarray) -> np.ndarray:
    h = np.diff(t).reshape((-1,) + (1,) * (y.ndim - 1))
    m = np.diff(y, axis=0) / h
    if len(t) == 2:
        return np.concatenate([m, m], axis=0)
    d = np.zeros_like(y)
    d[1:-1] = _pchip_interior(h[:-1], h[1:], m[:-1], m[1:])
    d[0] = _pchip_edge(h[0], h[1], m[0], m[1])
    d[-1] = _pchip_edge(h[-1], h[-2], m[-1], m[-2])
    return d


def _hermite(t0, t1, y0, y1, d0, d1, t_query):
    """Cubic Hermite values at ``t_query`` (N,) on intervals ``[t0, t1]`` (N,) with end values
    ``y0``, ``y1`` and slopes ``d0``, ``d1`` (N, ...)."""
    h = (t1 - t0).reshape((-1,) + (1,) * (y0.ndim - 1))
    s = ((t_query - t0).reshape(h.shape)) / h
    h00 = (1 + 2 * s) * (1 - s) ** 2
    h10 = s * (1 - s) ** 2
    h01 = s**2 * (3 - 2 * s)
    h11 = s**2 * (s - 1)
    return h00 * y0 + h10 * h * d0 + h01 * y1 + h11 * h * d1


def pchip_interpolate(t: np.ndarray, y: np.ndarray, t_query: np.ndarray) -> np.ndarray:
    """Shape-preserving piecewise cubic Hermite interpolation (``PchipInterpolator(t, y)(t_query)``).

    ``t`` (N,) strictly increasing, ``y`` (N, ...); queries outside ``[t[0], t[-1]]`` are
    extrapolated with the end cubics, as scipy does. One known sample gives a constant."""
    t = np.asarray(t, float)
    y = np.asarray(y, float)
    t_query = np.asarray(t_query, float)
    if len(t) == 1:
        return np.broadcast_to(y[0], t_query.shape + y.shape[1:]).copy()
    d = _pchip_slopes(t, y)
    k = np.clip(np.searchsorted(t, t_query, side="right") - 1, 0, len(t) - 2)
    return _hermite(t[k], t[k + 1], y[k], y[k + 1], d[k], d[k + 1], t_query)


def pchip_fill(
    frame_times: np.ndarray, values: np.ndarray, valid: np.ndarray, fill: np.ndarray
) -> np.ndarray:
    """``values`` (T, J, ...) with the samples where ``fill`` (T, J) replaced by each column's
    own :func:`pchip_interpolate` through its ``valid`` (T, J) samples, all columns at once and
    with the same arithmetic. Every column with a sample to fill needs a valid one."""
    valid = np.asarray(valid, bool)
    out = np.array(values, float, copy=True)
    fill_frame, fill_column = np.nonzero(fill)
    if fill_frame.size == 0:
        return out
    # Knots of all columns in one sequence, column by column, each in time order.
    column, frame = np.nonzero(valid.T)
    counts = valid.sum(axis=0)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])  # knot index of each column's first
    last = first + counts - 1
    # Interval of each query: its column's last knot at or before it (ends: the end cubics).
    lo, hi = first[fill_column], last[fill_column]
    k = np.clip(
        lo + np.cumsum(valid, axis=0)[fill_frame, fill_column] - 1, lo, np.maximum(hi - 1, lo)
    )
    nxt = np.minimum(k + 1, hi)
    # Slopes at the knots the queries use; steps and secants around them (knot i to i + 1).
    knots, where = np.unique(np.concatenate([k, nxt]), return_inverse=True)
    owner = column[knots]
    start, stop = first[owner], last[owner]
    shape = (-1,) + (1,) * (out.ndim - 2)

    def step(i):
        return (frame_times[frame[i + 1]] - frame_times[frame[i]]).reshape(shape)

    def secant(i):
        return (out[frame[i + 1], column[i + 1]] - out[frame[i], column[i]]) / step(i)

    d = np.zeros((len(knots),) + out.shape[2:])
    size = stop - start + 1
    inner = (knots > start) & (knots < stop)
    i = knots[inner]
    d[inner] = _pchip_interior(step(i - 1), step(i), secant(i - 1), secant(i))
    pair = size == 2
    d[pair] = secant(start[pair])
    head, tail = (knots == start) & (size > 2), (knots == stop) & (size > 2)
    i, j = knots[head], knots[tail]
    d[head] = _pchip_edge(step(i), step(i + 1), secant(i), secant(i + 1))
    d[tail] = _pchip_edge(step(j - 1), step(j - 2), secant(j - 1), secant(j - 2))
    t0, t1 = frame_times[frame[k]], frame_times[frame[nxt]]
    y0, y1 = out[frame[k], column[k]], out[frame[nxt], column[nxt]]
    with np.errstate(divide="ignore", invalid="ignore"):  # single-knot columns: h = 0, unused
        curve = _hermite(
            t0, t1, y0, y1, d[where[: len(k)]], d[where[len(k) :]], frame_times[fill_frame]
        )
    out[fill_frame, fill_column] = np.where((hi == lo).reshape(shape), y0, curve)
    return out


# --------------------------------------------------------------------------- resampling


def is_uniform(frame_times: np.ndarray, tolerance: float = UNIFORM_TOLERANCE) -> bool:
    """True when all frame steps are within ``tolerance`` (relative) of their median."""
    steps = np.diff(np.asarray(frame_times, float))
    if steps.size == 0:
        return True
    median = np.median(steps)
    return bool(np.all(np.abs(steps - median) <= tolerance * median))


MAX_STEP_FACTOR = 5.0  # a frame step this many times the median one splits the low-pass


def uniform_grid(frame_times: np.ndarray) -> np.ndarray:
    """Uniform times spanning ``frame_times`` at their median step (the nominal frame rate)."""
    step = float(np.median(np.diff(frame_times)))
    count = int(round((frame_times[-1] - frame_times[0]) / step)) + 1
    return frame_times[0] + step * np.arange(count)


def linear_resample(t: np.ndarray, y: np.ndarray, t_query: np.ndarray) -> np.ndarray:
    """Piecewise-linear values of ``y`` (N, ...) at ``t_query``, held constant past the ends."""
    t_query = np.clip(t_query, t[0], t[-1])
    k = np.clip(np.searchsorted(t, t_query, side="right") - 1, 0, max(len(t) - 2, 0))
    if len(t) == 1:
        return np.broadcast_to(y[0], t_query.shape + y.shape[1:]).copy()
    w = ((t_query - t[k]) / (t[k + 1] - t[k])).reshape((-1,) + (1,) * (y.ndim - 1))
    return (1 - w) * y[k] + w * y[k + 1]


# --------------------------------------------------------------------------- zero-phase low-pass


def effective_cutoff(
    cutoff_hz: float, fs_hz: float, max_fraction: float = MAX_CUTOFF_FRACTION
) -> float:
    """The cut-off actually used: at most ``max_fraction`` of the Nyquist frequency."""
    return float(min(cutoff_hz, max_fraction * fs_hz / 2))


def lowpass(
    values: np.ndarray,
    frame_times: np.ndarray,
    cutoff_hz: float,
    order: int = 2,
    pad_s: float = 0.5,
    max_fraction: float = MAX_CUTOFF_FRACTION,
) -> np.ndarray:
    """Zero-phase Butterworth low-pass of ``values`` (T, ...) sampled at ``frame_times`` (T,) s.

    The cut-off is capped at ``max_fraction`` (default 0.4) x Nyquist. Irregular frame times are handled by resampling to the
    median frame step, filtering, and interpolating back; where a step is over
    ``MAX_STEP_FACTOR`` times that (a pause in the recording, a broken timestamp), the runs either
    side are filtered apart (a grid across an hour-long jump would take gigabytes). Edges use
    ``pad_s`` seconds of odd (trend-preserving) extension. ``values`` must be finite; fewer than 3
    frames pass unchanged.
    """
    values = np.asarray(values, float)
    frame_times = np.asarray(frame_times, float)
    if values.shape[0] < 3:
        return values.copy()
    if not np.all(np.isfinite(values)):
        raise FilterError("lowpass needs finite values; fill gaps before smoothing")
    steps = np.diff(frame_times)
    jumps = np.flatnonzero(steps > MAX_STEP_FACTOR * np.median(steps)) + 1
    if jumps.size:
        bounds = [0, *jumps.tolist(), len(frame_times)]
        return np.concatenate([lowpass(values[a:b], frame_times[a:b], cutoff_hz, order, pad_s,
                                       max_fraction)
                               for a, b in zip(bounds[:-1], bounds[1:], strict=True)])  # fmt: skip
    uniform = is_uniform(frame_times)
    grid = frame_times if uniform else uniform_grid(frame_times)
    gridded = values if uniform else linear_resample(frame_times, values, grid)
    fs = 1.0 / float(np.median(np.diff(grid)))
    b, a = butter_lowpass(order, effective_cutoff(cutoff_hz, fs, max_fraction), fs)
    smoothed = filtfilt(b, a, gridded, padlen=max(3 * max(len(a), len(b)), int(pad_s * fs)))
    return smoothed if uniform else linear_resample(grid, smoothed, frame_times)


def baseline_butterworth(
    poses: np.ndarray,
    frame_times: np.ndarray,
    cutoff_hz: float = 7.0,
    order: int = 4,
    max_gap_frames: int = 10,
) -> np.ndarray:
    """The common open-tool baseline: linear fill of gaps up to ``max_gap_frames``, then zero-phase
    Butterworth (order 4, 7 Hz) on every finite run of each joint; no outlier handling.

    ``poses`` is ``(T, J, 3)`` with NaN for missing joints; longer gaps stay NaN."""
    poses = np.asarray(poses, float)
    out = np.full_like(poses, np.nan)
    fs = 1.0 / float(np.median(np.diff(frame_times))) if len(frame_times) > 1 else 30.0
    cutoff = min(cutoff_hz, 0.99 * fs / 2)
    b, a = butter_lowpass(order, cutoff, fs)
    index = np.arange(len(poses))
    for j in range(poses.shape[1]):
        valid = np.all(np.isfinite(poses[:, j]), axis=-1)
        if not valid.any():
            continue
        known = index[valid]
        filled = poses[:, j].copy()
        gap_after = np.diff(known) - 1
        for start, gap in zip(known[:-1], gap_after, strict=True):
            if 0 < gap <= max_gap_frames:
                span = slice(start + 1, start + gap + 1)
                w = (np.arange(1, gap + 1) / (gap + 1))[:, None]
                filled[span] = (1 - w) * poses[start, j] + w * poses[start + gap + 1, j]
        ok = np.all(np.isfinite(filled), axis=-1)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.astype(int), [0]])))
        for start, stop in zip(edges[::2], edges[1::2], strict=True):
            out[start:stop, j] = filtfilt(b, a, filled[start:stop])
    return out
