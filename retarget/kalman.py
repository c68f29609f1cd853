"""Constant-velocity Kalman filter with Rauch–Tung–Striebel smoothing, per channel, on irregular
frame times and with missing measurements.

Each channel (a coordinate of a trajectory) is an independent state ``[position, velocity]``
driven by white acceleration noise of spectral density ``q`` (units² / s³). Measurements carry
their own variance per frame (units²), so a confident frame pulls harder than a doubtful one, and a
NaN measurement is simply skipped: the smoother bridges it with the model's prediction (a cubic
Hermite-like curve between the neighbouring states).
"""

from dataclasses import dataclass

import numpy as np

from . import RetargetError

# Above this many channels the per-frame numpy version beats the per-channel float loop.
_VECTORISE_ABOVE = 8


class KalmanError(RetargetError):
    """Bad inputs to the smoother; the message says what to change."""


@dataclass(frozen=True)
class SmoothedTrack:
    """RTS output, all ``(T, C)``: positions, velocities (units / s), position variance (units²)."""

    position: np.ndarray
    velocity: np.ndarray
    variance: np.ndarray


def _as_channels(value, shape: tuple[int, int], name: str) -> np.ndarray:
    array = np.broadcast_to(np.asarray(value, float), shape)
    if not np.all(np.isfinite(array)) or np.any(array <= 0):
        raise KalmanError(f"{name} must be positive and finite")
    return array


def rts_smooth(
    frame_times: np.ndarray,
    measurements: np.ndarray,
    measurement_variance,
    accel_density,
) -> SmoothedTrack:
    """Smooth ``measurements`` (T, C) taken at ``frame_times`` (T,) s (strictly increasing).

    ``measurement_variance`` and ``accel_density`` broadcast to (T, C); NaN measurements are
    missing. Channels without a single finite measurement come back as NaN.
    """
    times = np.asarray(frame_times, float)
    z = np.asarray(measurements, float)
    if z.ndim != 2 or z.shape[0] != times.shape[0]:
        raise KalmanError(f"measurements must be (T, C) with T = {len(times)}, got {z.shape}")
    num, channels = z.shape
    if num > 1 and not np.all(np.diff(times) > 0):
        raise KalmanError("frame times must be strictly increasing")
    r = _as_channels(measurement_variance, z.shape, "measurement variance")
    q = _as_channels(accel_density, z.shape, "acceleration noise density")
    observed = np.isfinite(z)

    position = np.full(z.shape, np.nan)
    velocity = np.full(z.shape, np.nan)
    variance = np.full(z.shape, np.nan)
    dts = np.diff(times, prepend=times[0])
    duration = times[-1] - times[0]
    active = np.flatnonzero(observed.any(axis=0))
    if len(active) > _VECTORISE_ABOVE:
        track = _smooth_vectorised(dts, z[:, active], r[:, active], q[:, active], duration)
        position[:, active], velocity[:, active], variance[:, active] = track
    else:
        for c in active:
            position[:, c], velocity[:, c], variance[:, c] = _smooth_channel(
                dts.tolist(), z[:, c], r[:, c], q[:, c], duration
            )
    return SmoothedTrack(position, velocity, np.maximum(variance, 0.0))


def _smooth_channel(
    dts: list[float], z: np.ndarray, r: np.ndarray, q: np.ndarray, duration: float
) -> tuple[list[float], list[float], list[float]]:
    """Forward Kalman pass and backward RTS pass of one channel in plain floats (per-frame numpy
    calls would cost more than the arithmetic)."""
    num = len(dts)
    seen = np.isfinite(z)
    values = z[seen]
    spread = float(values.max() - values.min()) + 1.0
    duration = max(float(duration), 1e-3)
    zs, rs, qs, obs = z.tolist(), r.tolist(), q.tolist(), seen.tolist()
    # Diffuse start at the first measurement with a wide position and velocity prior.
    p, v = float(values[0]), 0.0
    p00, p01 = 1e2 * spread**2, 0.0
    p11 = 1e2 * (spread / duration) ** 2 + qs[0] * duration
    filtered = [None] * num
    predicted = [None] * num
    for t in range(num):
        if t > 0:
            dt, qt = dts[t], qs[t]
            p += dt * v
            p00 += dt * (2 * p01 + dt * p11) + qt * dt**3 / 3
            p01 += dt * p11 + qt * dt**2 / 2
            p11 += qt * dt
        predicted[t] = (p, v, p00, p01, p11)
        if obs[t]:
            s = p00 + rs[t]
            k0, k1 = p00 / s, p01 / s
            innovation = zs[t] - p
            p += k0 * innovation
            v += k1 * innovation
            p11 -= k1 * p01
            p00, p01 = (1 - k0) * p00, (1 - k0) * p01
        filtered[t] = (p, v, p00, p01, p11)
    sp, sv, s00, s01, s11 = filtered[-1]
    position, velocity, variance = [0.0] * num, [0.0] * num, [0.0] * num
    position[-1], velocity[-1], variance[-1] = sp, sv, s00
    for t in range(num - 2, -1, -1):
        dt = dts[t + 1]
        fp, fv, a00, a01, a11 = filtered[t]
        b_p, b_v, b00, b01, b11 = predicted[t + 1]
        # gain C = P_f F^T P_pred^-1 with F = [[1, dt], [0, 1]]
        m00, m10 = a00 + dt * a01, a01 + dt * a11
        det = b00 * b11 - b01 * b01
        c00 = (m00 * b11 - a01 * b01) / det
        c01 = (a01 * b00 - m00 * b01) / det
        c10 = (m10 * b11 - a11 * b01) / det
        c11 = (a11 * b00 - m10 * b01) / det
        dp, dv = sp - b_p, sv - b_v
        sp = fp + c00 * dp + c01 * dv
        sv = fv + c10 * dp + c11 * dv
        e00, e01, e11 = s00 - b00, s01 - b01, s11 - b11
        s00, s01, s11 = (
            a00 + c00 * (c00 * e00 + c01 * e01) + c01 * (c00 * e01 + c01 * e11),
            a01 + c00 * (c10 * e00 + c11 * e01) + c01 * (c10 * e01 + c11 * e11),
            a11 + c10 * (c10 * e00 + c11 * e01) + c11 * (c10 * e01 + c11 * e11),
        )
        position[t], velocity[t], variance[t] = sp, sv, s00
    return position, velocity, variance


def _smooth_vectorised(
    dts: np.ndarray, z: np.ndarray, r: np.ndarray, q: np.ndarray, duration: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same passes as :func:`_smooth_channel`, each frame vectorised over many channels."""
    num, channels = z.shape
    seen = np.isfinite(z)
    low = np.nanmin(np.where(seen, z, np.nan), axis=0)
    high = np.nanmax(np.where(seen, z, np.nan), axis=0)
    spread = high - low + 1.0
    duration = max(float(duration), 1e-3)
    p = z[np.argmax(seen, axis=0), np.arange(channels)]
    v = np.zeros(channels)
    p00, p01 = 1e2 * spread**2, np.zeros(channels)
    p11 = 1e2 * (spread / duration) ** 2 + q[0] * duration
    filtered = np.empty((num, 5, channels))
    predicted = np.empty((num, 5, channels))
    for t in range(num):
        if t > 0:
            dt, qt = dts[t], q[t]
            p = p + dt * v
            p00 = p00 + dt * (2 * p01 + dt * p11) + qt * dt**3 / 3
            p01 = p01 + dt * p11 + qt * dt**2 / 2
            p11 = p11 + qt * dt
        predicted[t] = p, v, p00, p01, p11
        obs = seen[t]
        s = p00 + r[t]
        k0 = np.where(obs, p00 / s, 0.0)
        k1 = np.where(obs, p01 / s, 0.0)
        innovation = np.where(obs, z[t] - p, 0.0)
        p = p + k0 * innovation
        v = v + k1 * innovation
        p11 = p11 - k1 * p01
        p00, p01 = (1 - k0) * p00, (1 - k0) * p01
        filtered[t] = p, v, p00, p01, p11
    position, velocity, variance = (np.empty((num, channels)) for _ in range(3))
    sp, sv, s00, s01, s11 = filtered[-1]
    position[-1], velocity[-1], variance[-1] = sp, sv, s00
    for t in range(num - 2, -1, -1):
        dt = dts[t + 1]
        fp, fv, a00, a01, a11 = filtered[t]
        b_p, b_v, b00, b01, b11 = predicted[t + 1]
        m00, m10 = a00 + dt * a01, a01 + dt * a11
        det = b00 * b11 - b01 * b01
        c00 = (m00 * b11 - a01 * b01) / det
        c01 = (a01 * b00 - m00 * b01) / det
        c10 = (m10 * b11 - a11 * b01) / det
        c11 = (a11 * b00 - m10 * b01) / det
        dp, dv = sp - b_p, sv - b_v
        sp = fp + c00 * dp + c01 * dv
        sv = fv + c10 * dp + c11 * dv
        e00, e01, e11 = s00 - b00, s01 - b01, s11 - b11
        s00, s01, s11 = (
            a00 + c00 * (c00 * e00 + c01 * e01) + c01 * (c00 * e01 + c01 * e11),
            a01 + c00 * (c10 * e00 + c11 * e01) + c01 * (c10 * e01 + c11 * e11),
            a11 + c10 * (c10 * e00 + c11 * e01) + c11 * (c10 * e01 + c11 * e11),
        )
        position[t], velocity[t], variance[t] = sp, sv, s00
    return position, velocity, variance
