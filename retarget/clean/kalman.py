"""Constant-velocity Kalman filter with Rauch–Tung–Striebel smoothing, per channel, on irregular
frame times and with missing measurements.

Each channel (a coordinate of a trajectory) is an independent state ``[position, velocity]``
driven by white acceleration noise of spectral density ``q`` (units² / s³). Measurements carry
their own variance per frame (units²), so a confident frame pulls harder than a doubtful one, and a
NaN measurement is simply skipped: the smoother bridges it with the model's prediction (a cubic
Hermite-like curve between the neighbouring states).

The recursions are sequential in time. Only the forward pass (and the smoothed variance, when
asked for) runs frame by frame; the smoother gains depend on the stored covariances alone and are
computed for all frames at once. Few channels run as plain Python floats (numpy calls on a
handful of numbers would cost more than the arithmetic), many channels as one numpy step per frame
over all of them; :func:`rts_smooth_segments` runs several independent clips in one such pass.
"""

from dataclasses import dataclass

import numpy as np

from .. import RetargetError
from .filters import lowpass
from .robust import moving_average, robust_sigma

# Above this many channels the per-frame numpy version beats the per-channel float loop.
_VECTORISE_ABOVE = 8
# Channels smoothed together by rts_smooth_segments (more would leave the CPU cache).
_BATCH_CHANNELS = 512


class KalmanError(RetargetError):
    """Bad inputs to the smoother; the message says what to change."""


@dataclass(frozen=True)
class SmoothedTrack:
    """RTS output, all ``(T, C)``: positions, velocities (units / s), position variance (units²;
    None when not asked for)."""

    position: np.ndarray
    velocity: np.ndarray
    variance: np.ndarray | None


def _as_channels(value, shape: tuple[int, int], name: str) -> np.ndarray:
    array = np.broadcast_to(np.asarray(value, float), shape)
    if not np.all(np.isfinite(array)) or np.any(array <= 0):
        raise KalmanError(f"{name} must be positive and finite")
    return array


def _check(times: np.ndarray, z: np.ndarray) -> None:
    if z.ndim != 2 or z.shape[0] != times.shape[0]:
        raise KalmanError(f"measurements must be (T, C) with T = {len(times)}, got {z.shape}")
    if z.shape[0] > 1 and not np.all(np.diff(times) > 0):
        raise KalmanError("frame times must be strictly increasing")


def rts_smooth(
    frame_times: np.ndarray,
    measurements: np.ndarray,
    measurement_variance,
    accel_density,
    variance: bool = True,
) -> SmoothedTrack:
    """Smooth ``measurements`` (T, C) taken at ``frame_times`` (T,) s (strictly increasing).

    ``measurement_variance`` and ``accel_density`` broadcast to (T, C); NaN measurements are
    missing. Channels without a single finite measurement come back as NaN. ``variance=False``
    skips the smoothed variance (the track's ``variance`` is then None)."""
    times = np.asarray(frame_times, float)
    z = np.asarray(measurements, float)
    _check(times, z)
    r = _as_channels(measurement_variance, z.shape, "measurement variance")
    q = _as_channels(accel_density, z.shape, "acceleration noise density")
    position = np.full(z.shape, np.nan)
    velocity = np.full(z.shape, np.nan)
    spread = np.full(z.shape, np.nan) if variance else None
    dts = np.diff(times, prepend=times[0])
    duration = times[-1] - times[0]
    active = np.flatnonzero(np.isfinite(z).any(axis=0))
    if len(active) > _VECTORISE_ABOVE:
        dt = np.broadcast_to(dts[:, None], (len(dts), len(active)))
        track = _smooth_vectorised(dt, z[:, active], r[:, active], q[:, active], duration, variance)
        position[:, active], velocity[:, active] = track[0], track[1]
        if variance:
            spread[:, active] = track[2]
    else:
        for c in active:
            track = _smooth_channel(dts, z[:, c], r[:, c], q[:, c], duration, variance)
            position[:, c], velocity[:, c] = track[0], track[1]
            if variance:
                spread[:, c] = track[2]
    return SmoothedTrack(position, velocity, None if spread is None else np.maximum(spread, 0.0))


def rts_smooth_segments(
    segments: list[tuple[np.ndarray, np.ndarray]], measurement_variance: float, accel_density: float
) -> list[np.ndarray]:
    """Smoothed positions of several independent clips ``(frame_times (T_i,), measurements
    (T_i, C_i))`` with scalar noise parameters, vectorised over clips: clips of similar length
    run together, each padded at its end with unmeasured frames, which leave its own frames
    exactly as :func:`rts_smooth` gives them. Returns the (T_i, C_i) positions; channels never
    measured are NaN."""
    r = float(measurement_variance)
    q = float(accel_density)
    if not (np.isfinite(r) and r > 0 and np.isfinite(q) and q > 0):
        raise KalmanError("measurement variance and acceleration noise density must be positive")
    segments = [(np.asarray(t, float), np.asarray(z, float)) for t, z in segments]
    for times, values in segments:
        _check(times, values)
    out: list[np.ndarray] = [np.empty(0)] * len(segments)
    batch: list[int] = []
    # Longest first; a batch holds up to _BATCH_CHANNELS channels (its arrays stay in cache).
    for i in sorted(range(len(segments)), key=lambda i: -len(segments[i][0])):
        batch.append(i)
        if sum(segments[k][1].shape[1] for k in batch) >= _BATCH_CHANNELS:
            for k, position in zip(
                batch, _smooth_batch([segments[k] for k in batch], r, q), strict=True
            ):
                out[k] = position
            batch = []
    for k, position in zip(batch, _smooth_batch([segments[k] for k in batch], r, q), strict=True):
        out[k] = position
    return out


def _smooth_batch(segments, r: float, q: float) -> list[np.ndarray]:
    """:func:`rts_smooth_segments` of one batch of segments (not empty)."""
    length = max(len(times) for times, _ in segments)
    columns, dts, durations, z = [], [], [], []
    for times, values in segments:
        num, channels = values.shape
        step = np.diff(times, prepend=times[0])
        pad = np.full(length - num, float(np.median(step[1:])) if num > 1 else 1.0)
        dts.append(np.broadcast_to(np.concatenate([step, pad])[:, None], (length, channels)))
        z.append(np.concatenate([values, np.full((length - num, channels), np.nan)]))
        durations.append(np.full(channels, times[-1] - times[0]))
        columns.append(channels)
    z = np.concatenate(z, axis=1)
    active = np.flatnonzero(np.isfinite(z).any(axis=0))
    position = np.full(z.shape, np.nan)
    if len(active):
        dt = np.concatenate(dts, axis=1)[:, active]
        duration = np.concatenate(durations)[active]
        full = np.full((length, len(active)), r), np.full((length, len(active)), q)
        position[:, active] = _smooth_vectorised(dt, z[:, active], *full, duration, False)[0]
    bounds = np.cumsum([0] + columns)
    return [
        position[: len(times), lo:hi]
        for (times, _), lo, hi in zip(segments, bounds[:-1], bounds[1:], strict=True)
    ]


def _rts_gains(a00, a01, a11, b00, b01, b11, dt):
    """Smoother gains ``C = P_f F^T P_pred^-1`` (F = [[1, dt], [0, 1]]) from filtered covariances
    at t and predicted ones at t + 1, elementwise: (c00, c01, c10, c11)."""
    m00, m10 = a00 + dt * a01, a01 + dt * a11
    det = b00 * b11 - b01 * b01
    return (
        (m00 * b11 - a01 * b01) / det,
        (a01 * b00 - m00 * b01) / det,
        (m10 * b11 - a11 * b01) / det,
        (a11 * b00 - m10 * b01) / det,
    )


def _smoothed_covariance(c00, c01, c10, c11, a00, a01, a11, b00, b01, b11, s00, s01, s11):
    """One backward step of the smoothed covariance: ``P_s = P_f + C (P_s' - P_pred') C^T``."""
    e00, e01, e11 = s00 - b00, s01 - b01, s11 - b11
    return (
        a00 + c00 * (c00 * e00 + c01 * e01) + c01 * (c00 * e01 + c01 * e11),
        a01 + c00 * (c10 * e00 + c11 * e01) + c01 * (c10 * e01 + c11 * e11),
        a11 + c10 * (c10 * e00 + c11 * e01) + c11 * (c10 * e01 + c11 * e11),
    )


def _prior(z: np.ndarray, seen: np.ndarray, q0, duration):
    """Diffuse start at the first measurement: position, and the wide position and velocity
    variances (per channel when given arrays)."""
    low = np.min(np.where(seen, z, np.inf), axis=0)
    high = np.max(np.where(seen, z, -np.inf), axis=0)
    spread = high - low + 1.0
    duration = np.maximum(duration, 1e-3)
    first = np.take_along_axis(z, np.argmax(seen, axis=0)[None], axis=0)[0]
    return first, 1e2 * spread**2, 1e2 * (spread / duration) ** 2 + q0 * duration


def _smooth_channel(
    dts: np.ndarray, z: np.ndarray, r: np.ndarray, q: np.ndarray, duration: float, variance: bool
) -> tuple[list[float], list[float], list[float] | None]:
    """Forward Kalman pass and backward RTS pass of one channel (T,) in plain floats; only the
    recursions run frame by frame (``dts[0]`` is 0: the first step predicts nothing)."""
    seen = np.isfinite(z)
    first, p00, p11 = (float(x[0]) for x in _prior(z[:, None], seen[:, None], q[0], duration))
    # Process noise of each step, Q = q [[dt³/3, dt²/2], [dt²/2, dt]].
    q3, q2, q1 = q * dts**3 / 3, q * dts**2 / 2, q * dts
    p, v, p01 = first, 0.0, 0.0
    fp, fv, f00, f01, f11 = [], [], [], [], []
    steps = zip(dts.tolist(), q3.tolist(), q2.tolist(), q1.tolist(), seen.tolist(), z.tolist(),
                r.tolist(), strict=True)  # fmt: skip
    for dt, n3, n2, n1, measured, value, noise in steps:
        p += dt * v
        p00 += dt * (2 * p01 + dt * p11) + n3
        p01 += dt * p11 + n2
        p11 += n1
        if measured:
            s = p00 + noise
            k0, k1 = p00 / s, p01 / s
            innovation = value - p
            p += k0 * innovation
            v += k1 * innovation
            p11 -= k1 * p01
            p00, p01 = (1 - k0) * p00, (1 - k0) * p01
        fp.append(p)
        fv.append(v)
        f00.append(p00)
        f01.append(p01)
        f11.append(p11)
    filtered = np.array([fp, fv, f00, f01, f11])
    # The covariance predicted for t + 1 from the filtered one at t (the same sums as above).
    dt, (a00, a01, a11) = dts[1:], filtered[2:, :-1]
    predicted = (
        a00 + (dt * (2 * a01 + dt * a11) + q3[1:]),
        a01 + (dt * a11 + q2[1:]),
        a11 + q1[1:],
    )
    gains = _rts_gains(a00, a01, a11, *predicted, dt)
    ahead = filtered[0, :-1] + dt * filtered[1, :-1]  # predicted position at t + 1
    sp, sv = fp[-1], fv[-1]
    position, velocity = [sp], [sv]
    backward = zip(*(x[::-1].tolist() for x in (ahead, filtered[0, :-1], filtered[1, :-1], *gains)),
                   strict=True)  # fmt: skip
    for guess, fpt, fvt, c00, c01, c10, c11 in backward:
        dp, dv = sp - guess, sv - fvt
        sp = fpt + c00 * dp + c01 * dv
        sv = fvt + c10 * dp + c11 * dv
        position.append(sp)
        velocity.append(sv)
    position.reverse()
    velocity.reverse()
    if not variance:
        return position, velocity, None
    s00, s01, s11 = f00[-1], f01[-1], f11[-1]
    spread = [s00]
    steps = zip(*(x[::-1].tolist() for x in (*gains, a00, a01, a11, *predicted)), strict=True)
    for gain_and_covariances in steps:  # C, filtered at t, predicted for t + 1
        s00, s01, s11 = _smoothed_covariance(*gain_and_covariances, s00, s01, s11)
        spread.append(s00)
    spread.reverse()
    return position, velocity, spread


def _smooth_vectorised(
    dts: np.ndarray,
    z: np.ndarray,
    r: np.ndarray,
    q: np.ndarray,
    duration,
    variance: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The same passes as :func:`_smooth_channel`, each frame vectorised over many channels;
    ``dts`` (T, C) per channel, ``duration`` scalar or (C,)."""
    num, channels = z.shape
    seen = np.isfinite(z)
    p, p00, p11 = _prior(z, seen, q[0], duration)
    v, p01 = np.zeros(channels), np.zeros(channels)
    observed = seen.astype(float)
    measured = np.where(seen, z, 0.0)
    q3, q2, q1 = q * dts**3 / 3, q * dts**2 / 2, q * dts
    filtered = np.empty((5, num, channels))  # p, v, p00, p01, p11
    predicted = np.empty((3, num, channels))  # p00, p01, p11
    for t in range(num):
        if t:
            dt = dts[t]
            p = p + dt * v
            p00 = p00 + dt * (2 * p01 + dt * p11) + q3[t]
            p01 = p01 + dt * p11 + q2[t]
            p11 = p11 + q1[t]
            predicted[:, t] = p00, p01, p11
        # Unmeasured channels get zero gain and zero innovation: the prediction passes unchanged.
        s = p00 + r[t]
        k0 = observed[t] * (p00 / s)
        k1 = observed[t] * (p01 / s)
        innovation = observed[t] * (measured[t] - p)
        p = p + k0 * innovation
        v = v + k1 * innovation
        p11 = p11 - k1 * p01
        p00, p01 = (1 - k0) * p00, (1 - k0) * p01
        filtered[:, t] = p, v, p00, p01, p11
    c00, c01, c10, c11 = _rts_gains(*filtered[2:, :-1], *predicted[:, 1:], dts[1:])
    ahead = filtered[0, :-1] + dts[1:] * filtered[1, :-1]
    fp, fv = filtered[0], filtered[1]
    position, velocity = np.empty((num, channels)), np.empty((num, channels))
    sp, sv = position[-1], velocity[-1] = fp[-1], fv[-1]
    for t in range(num - 2, -1, -1):
        dp, dv = sp - ahead[t], sv - fv[t]
        sp = position[t] = fp[t] + c00[t] * dp + c01[t] * dv
        sv = velocity[t] = fv[t] + c10[t] * dp + c11[t] * dv
    if not variance:
        return position, velocity, None
    spread = np.empty((num, channels))
    s00, s01, s11 = filtered[2:, -1]
    spread[-1] = s00
    for t in range(num - 2, -1, -1):
        s00, s01, s11 = _smoothed_covariance(
            c00[t], c01[t], c10[t], c11[t], *filtered[2:, t], *predicted[:, t + 1], s00, s01, s11
        )
        spread[t] = s00
    return position, velocity, spread


# --------------------------------------------------------------------------- motion-adaptive


# Leave-one-out cubic residual: x(t) minus the cubic through t-2, t-1, t+1, t+2. On white noise of
# standard deviation s its standard deviation is s * |_CUBIC_RESIDUAL|; smooth motion leaks little.
_CUBIC_RESIDUAL = np.array([1.0, -4.0, 6.0, -4.0, 1.0]) / 6.0
# The raw second derivative's power counts as motion only above this many times the noise's share
# (a window of a few noisy samples fluctuates well above its mean).
NOISE_POWER_MARGIN = 4.0
# Runs of five samples a joint's own noise needs: to count at all, and to set its measurement noise
# (the robust spread of 60 runs is within ~10 % of the truth; on fewer, a fast limb's motion that
# leaks into it makes the smoother too stiff).
MIN_NOISE_RUNS = 8
PRECISE_NOISE_RUNS = 60


def joint_noise(values: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each joint's white (frame-to-frame) noise in ``values`` (T, J, 3): the standard deviation
    (J, 3) per axis, the robust (1.4826 x MAD) spread of the leave-one-out cubic residual over the
    runs of five ``valid`` (T, J) samples, and the number of those runs (J,)."""
    num, joints = values.shape[:2]
    width = len(_CUBIC_RESIDUAL)
    if num < width:
        return np.full((joints, 3), np.nan), np.zeros(joints, int)
    residual = sum(c * values[k : num - width + 1 + k] for k, c in enumerate(_CUBIC_RESIDUAL))
    usable = np.all([valid[k : num - width + 1 + k] for k in range(width)], axis=0)
    sigma = robust_sigma(residual, np.broadcast_to(usable[..., None], residual.shape))
    return sigma / np.linalg.norm(_CUBIC_RESIDUAL), usable.sum(axis=0)


def median_noise(sigma: np.ndarray, runs: np.ndarray) -> np.ndarray:
    """Standard deviation (3,) per axis from :func:`joint_noise`'s ``sigma`` (J, 3) and ``runs``
    (J,): the median over the joints with at least :data:`MIN_NOISE_RUNS` runs (a fast limb's
    motion leaks into its residual; most joints move slowly). NaN where nothing is measured."""
    sigma = sigma[runs >= MIN_NOISE_RUNS]
    if not np.isfinite(sigma).any():
        return np.full(3, np.nan)
    return np.nanmedian(sigma, axis=0)


def _second_derivative(values: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Second derivative (T, ...) along axis 0 on irregular ``times`` (ends copy their neighbour)."""
    out = np.empty_like(values)
    if len(values) < 3:
        out[:] = 0.0
        return out
    shape = (-1,) + (1,) * (values.ndim - 1)
    h0 = np.diff(times)[:-1].reshape(shape)
    h1 = np.diff(times)[1:].reshape(shape)
    slope0 = (values[1:-1] - values[:-2]) / h0
    slope1 = (values[2:] - values[1:-1]) / h1
    out[1:-1] = 2.0 * (slope1 - slope0) / (h0 + h1)
    out[0], out[-1] = out[1], out[-2]
    return out


def _noise_gain(times: np.ndarray) -> np.ndarray:
    """Per frame (T,), the sum of squared weights :func:`_second_derivative` gives its three
    samples: white noise of variance s² leaves s² times this in the squared second derivative
    (6 / dt⁴ on a regular grid). Zero at the ends (they copy their neighbour)."""
    out = np.zeros(len(times))
    if len(times) < 3:
        return out
    h0, h1 = np.diff(times)[:-1], np.diff(times)[1:]
    out[1:-1] = (4 / (h0 + h1) ** 2) * (1 / h0**2 + (1 / h0 + 1 / h1) ** 2 + 1 / h1**2)
    return out


def _excess_power(values, times, noise, usable, frames: int, margin: float) -> np.ndarray:
    """Acceleration power (T, J) of the motion itself seen in the unfiltered ``values`` (T, J, 3):
    per axis, the squared second derivative less ``margin`` times the share the white ``noise``
    (J, 3) leaves in it, averaged over ``frames`` around each frame where its three samples are
    ``usable`` (T, J), at least 0; then the mean over the axes."""
    gain = _noise_gain(times)
    triple = np.zeros(usable.shape, bool)
    triple[1:-1] = usable[:-2] & usable[1:-1] & usable[2:]
    excess = (
        _second_derivative(values, times) ** 2 - margin * gain[:, None, None] * noise[None] ** 2
    )
    total = moving_average(np.where(triple[..., None], excess, 0.0), frames)
    count = moving_average(triple.astype(float), frames)
    power = np.where(count[..., None] > 0, total / np.maximum(count, 1e-9)[..., None], 0.0)
    return np.maximum(power, 0.0).mean(axis=-1)


def _at_least(noise: np.ndarray, own: np.ndarray, trusted: np.ndarray) -> np.ndarray:
    """Per joint (J, 3): ``noise`` (3,), or the joint's ``own`` (J, 3) where it is ``trusted`` (J,)
    and larger."""
    return np.where(trusted[:, None] & np.isfinite(own), np.maximum(own, noise), noise)


def motion_adaptive_smooth(
    times: np.ndarray,
    values: np.ndarray,
    noise: np.ndarray,
    measured: np.ndarray | None = None,
    gain: float = 0.02,
    floor: float = 1.0e5,
    window_s: float = 0.25,
    first_cutoff_hz: float = 6.0,
    filled_noise_factor: float = 3.0,
    return_density: bool = False,
    left_out: np.ndarray | None = None,
    noise_margin: float = NOISE_POWER_MARGIN,
    own_noise: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Smooth ``values`` (T, J, 3) at ``times`` (T,) s, finite, with a constant-velocity RTS
    smoother per coordinate whose acceleration noise follows the motion, per joint and frame.

    ``noise`` (3,) is the white measurement noise per axis (same unit as ``values``, e.g. from
    :func:`median_noise` of :func:`joint_noise`); a joint whose own noise (:func:`joint_noise`; ``own_noise``: as it
    gives them for these values and their measured samples, None: measured here) is larger,
    measured on at least :data:`PRECISE_NOISE_RUNS` runs, has its own (an estimator's wrists are
    noisier than its spine). Each joint's acceleration power is its local mean square over
    ``window_s`` (averaged over the axes), the larger of two estimates: from a first pass
    (zero-phase Butterworth at ``first_cutoff_hz``, up to 0.9 x Nyquist: it only measures the
    motion), which flattens brief peaks, and from the measured samples themselves less
    ``noise_margin`` times the share of their noise (the joint's own where larger, measured on at
    least :data:`MIN_NOISE_RUNS` runs), which keeps them (``noise_margin=inf``: the first pass
    alone). That power times ``gain`` (s) is the joint's acceleration noise density ``q``
    (unit²/s³, at least ``floor``): a still limb is smoothed hard, a kicking leg keeps its
    bandwidth. Samples not ``measured`` (T, J) (filled ones) count as measurements
    ``filled_noise_factor`` times noisier, except those ``left_out`` (T, J): those are no
    measurements at all, and the smoother bridges them with its own model (meant for gaps short
    enough for a curve between their edges: a smooth fill there would slow a fast limb down at
    the edges). ``return_density`` also returns ``q`` (T, J)."""
    values = np.asarray(values, float)
    times = np.asarray(times, float)
    num, joints, axes = values.shape
    if num < 3:
        return (values.copy(), np.ones((num, joints))) if return_density else values.copy()
    noise = np.maximum(np.asarray(noise, float), 1e-6)
    measured = np.ones((num, joints), bool) if measured is None else np.asarray(measured, bool)
    left_out = np.zeros((num, joints), bool) if left_out is None else np.asarray(left_out, bool)
    step = float(np.median(np.diff(times)))
    frames = 2 * max(1, int(round(0.5 * window_s / step))) + 1
    first = lowpass(values, times, first_cutoff_hz, 2, max_fraction=0.9)
    power = moving_average(_second_derivative(first, times) ** 2, frames).mean(axis=-1)
    usable = measured & ~left_out
    own, runs = joint_noise(values, usable) if own_noise is None else own_noise
    if np.isfinite(noise_margin):
        # The first pass flattens a kick's brief peak; the raw samples keep it, under their noise.
        rough = _at_least(noise, own, runs >= MIN_NOISE_RUNS)
        power = np.maximum(power, _excess_power(values, times, rough, usable, frames, noise_margin))
    q = np.maximum(gain * power, floor)  # (T, J): one density per joint
    precise = _at_least(noise, own, runs >= PRECISE_NOISE_RUNS)[None]  # (1, J, 3)
    r = np.where(measured[..., None], precise**2, (filled_noise_factor * precise) ** 2)
    measurements = np.where(left_out[..., None], np.nan, values)
    flat = measurements.reshape(num, joints * axes)
    density = np.repeat(q, axes, axis=1)
    track = rts_smooth(times, flat, r.reshape(num, -1), density, variance=False)
    smoothed = track.position.reshape(values.shape)
    return (smoothed, q) if return_density else smoothed
