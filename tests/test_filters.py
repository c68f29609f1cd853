"""The pure-numpy filters of retarget/ against scipy (the oracle) and against closed forms."""

import numpy as np
import pytest
from scipy.interpolate import PchipInterpolator
from scipy.signal import butter, filtfilt, lfilter, lfilter_zi, savgol_coeffs, savgol_filter

from retarget.clean import filters
from retarget.clean.kalman import KalmanError, rts_smooth, rts_smooth_segments


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
@pytest.mark.parametrize(("cutoff", "fs"), [(6.0, 30.0), (7.0, 25.0), (10.0, 60.0), (0.5, 30.0)])
def test_butterworth_design_matches_scipy(order, cutoff, fs):
    b, a = filters.butter_lowpass(order, cutoff, fs)
    b_ref, a_ref = butter(order, cutoff, fs=fs)
    np.testing.assert_allclose(b, b_ref, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(a, a_ref, rtol=1e-10, atol=1e-15)


def test_butterworth_rejects_impossible_cutoffs():
    with pytest.raises(filters.FilterError, match="Nyquist"):
        filters.butter_lowpass(2, 16.0, 30.0)
    with pytest.raises(filters.FilterError, match="order"):
        filters.butter_lowpass(0, 5.0, 30.0)


def test_lfilter_and_initial_state_match_scipy(rng):
    b, a = butter(3, 5.0, fs=30.0)
    x = rng.normal(size=(300, 4, 3))
    np.testing.assert_allclose(filters.lfilter(b, a, x), lfilter(b, a, x, axis=0), atol=1e-12)
    np.testing.assert_allclose(filters.lfilter_zi(b, a), lfilter_zi(b, a), atol=1e-12)
    zi = lfilter_zi(b, a)[:, None, None] * x[0]
    y, state = filters.lfilter(b, a, x, zi)
    y_ref, state_ref = lfilter(b, a, x, axis=0, zi=zi)
    np.testing.assert_allclose(y, y_ref, atol=1e-12)
    np.testing.assert_allclose(state, state_ref, atol=1e-12)


@pytest.mark.parametrize(
    ("order", "cutoff", "fs"), [(2, 6.0, 30.0), (4, 7.0, 25.0), (4, 0.5, 60.0)]
)
@pytest.mark.parametrize("padlen", [0, 9, 15, 49])
@pytest.mark.parametrize("length", [60, 1800])
def test_filtfilt_matches_scipy(rng, order, cutoff, fs, padlen, length):
    """Both code paths: the per-sample recursion (narrow input) and FFT convolution (wide)."""
    b, a = butter(order, cutoff, fs=fs)
    wide = np.cumsum(rng.normal(size=(length, 24, 3)), axis=0)
    narrow = wide[:, 0, 0]
    for x in (wide, narrow):
        expected = filtfilt(b, a, x, axis=0, padlen=padlen)
        scale = np.abs(x).max()
        np.testing.assert_allclose(
            filters.filtfilt(b, a, x, padlen=padlen), expected, atol=1e-9 * scale
        )


def test_filtfilt_shortens_padding_for_short_signals(rng):
    b, a = butter(2, 6.0, fs=30.0)
    x = rng.normal(size=(5, 3))
    np.testing.assert_allclose(
        filters.filtfilt(b, a, x, padlen=20), filtfilt(b, a, x, axis=0, padlen=4)
    )
    np.testing.assert_array_equal(filters.filtfilt(b, a, x[:1]), x[:1])


@pytest.mark.parametrize(("window", "order"), [(11, 2), (9, 2), (21, 3), (5, 0), (7, 4)])
def test_savgol_matches_scipy(rng, window, order):
    np.testing.assert_allclose(
        filters.savgol_coeffs(window, order), savgol_coeffs(window, order, use="dot"), atol=1e-12
    )
    x = np.cumsum(rng.normal(size=(200, 6, 3)), axis=0)
    np.testing.assert_allclose(
        filters.savgol_filter(x, window, order),
        savgol_filter(x, window, order, axis=0, mode="interp"),
        atol=1e-9,
    )


def test_savgol_shrinks_its_window_for_short_signals(rng):
    x = rng.normal(size=(6, 2))
    np.testing.assert_allclose(
        filters.savgol_filter(x, 11, 2), savgol_filter(x, 5, 2, axis=0, mode="interp"), atol=1e-12
    )
    np.testing.assert_array_equal(filters.savgol_filter(x[:2], 11, 2), x[:2])


@pytest.mark.parametrize("count", [2, 3, 30])
def test_pchip_matches_scipy_on_irregular_samples(rng, count):
    t = np.sort(rng.uniform(0.0, 10.0, count))
    y = np.cumsum(rng.normal(size=(count, 4)), axis=0)
    y[count // 2] = y[count // 2 - 1]  # a flat step: slopes must be zero there
    query = np.linspace(-1.0, 11.0, 400)
    np.testing.assert_allclose(
        filters.pchip_interpolate(t, y, query), PchipInterpolator(t, y, axis=0)(query), atol=1e-9
    )


def test_pchip_does_not_overshoot_monotone_data():
    t = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    y = np.array([0.0, 0.0, 1.0, 1.0, 1.0])
    values = filters.pchip_interpolate(t, y, np.linspace(0, 4, 200))
    assert values.min() >= 0.0 and values.max() <= 1.0


def test_lowpass_caps_the_cutoff_and_matches_scipy_on_uniform_times(rng):
    times = np.arange(300) / 25.0
    x = np.cumsum(rng.normal(size=(300, 3)), axis=0)
    b, a = butter(2, 0.4 * 12.5, fs=25.0)  # 6 Hz asked, 5 Hz = 0.4 x Nyquist used
    expected = filtfilt(b, a, x, axis=0, padlen=12)
    np.testing.assert_allclose(filters.lowpass(x, times, 6.0, 2, pad_s=0.5), expected, atol=1e-9)
    assert filters.effective_cutoff(6.0, 25.0) == pytest.approx(5.0)


def test_lowpass_handles_irregular_frame_times(rng):
    """A variable-frame-rate clip gives nearly the same smoothing as a regular one."""
    regular = np.arange(600) / 30.0
    jittered = regular + rng.uniform(-0.012, 0.012, 600)
    jittered[0], jittered = 0.0, np.sort(jittered)

    def signal(t):
        return np.stack([np.sin(2 * np.pi * 0.7 * t), np.cos(2 * np.pi * 1.3 * t)], axis=1)

    noise = 0.05 * rng.normal(size=(600, 2))
    smooth_regular = filters.lowpass(signal(regular) + noise, regular, 4.0)
    smooth_jittered = filters.lowpass(signal(jittered) + noise, jittered, 4.0)
    assert not filters.is_uniform(jittered)
    error_regular = np.abs(smooth_regular - signal(regular))[30:-30].mean()
    error_jittered = np.abs(smooth_jittered - signal(jittered))[30:-30].mean()
    assert error_jittered < 1.5 * error_regular + 0.005


def test_lowpass_filters_apart_the_runs_either_side_of_a_time_jump(rng):
    """An hour between two frames (a broken timestamp, a paused recording): each side is filtered
    on its own, instead of on a grid of 108,000 frames across the hour."""
    times = np.r_[np.arange(60) / 30.0, 3600.0 + np.arange(60) / 30.0]
    values = rng.normal(size=(120, 2))
    filtered = filters.lowpass(values, times, 4.0)
    np.testing.assert_array_equal(filtered[:60], filters.lowpass(values[:60], times[:60], 4.0))
    np.testing.assert_array_equal(filtered[60:], filters.lowpass(values[60:], times[60:], 4.0))


def test_lowpass_refuses_gaps_and_passes_tiny_clips():
    with pytest.raises(filters.FilterError, match="fill gaps"):
        filters.lowpass(np.array([[0.0], [np.nan], [1.0], [2.0]]), np.arange(4.0), 5.0)
    tiny = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(filters.lowpass(tiny, np.array([0.0, 0.1]), 5.0), tiny)


def test_baseline_fills_short_gaps_only_and_matches_scipy(rng):
    times = np.arange(200) / 30.0
    poses = np.cumsum(rng.normal(size=(200, 2, 3)), axis=0)
    poses[50:55, 0] = np.nan  # 5 frames: filled linearly
    poses[100:130, 0] = np.nan  # 30 frames: stays a gap
    out = filters.baseline_butterworth(poses, times)
    assert np.isfinite(out[50:55, 0]).all()
    assert np.isnan(out[100:130, 0]).all()
    b, a = butter(4, 7.0, fs=30.0)
    np.testing.assert_allclose(out[:, 1], filtfilt(b, a, poses[:, 1], axis=0), atol=1e-9)
    filled = poses[:100, 0].copy()
    w = (np.arange(1, 6) / 6.0)[:, None]
    filled[50:55] = (1 - w) * poses[49, 0] + w * poses[55, 0]
    np.testing.assert_allclose(out[:100, 0], filtfilt(b, a, filled, axis=0), atol=1e-9)


def _batch_smoother(times, z, r, q, prior_mean, prior_cov):
    """The RTS result as one dense least-squares problem over all states (the exact MAP)."""
    count = len(times)
    information = np.zeros((2 * count, 2 * count))
    vector = np.zeros(2 * count)
    prior_information = np.linalg.inv(prior_cov)
    information[:2, :2] += prior_information
    vector[:2] += prior_information @ prior_mean
    for t in range(1, count):
        dt = times[t] - times[t - 1]
        transition = np.array([[1.0, dt], [0.0, 1.0]])
        noise = q * np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])
        step = np.zeros((2, 2 * count))
        step[:, 2 * t : 2 * t + 2] = np.eye(2)
        step[:, 2 * t - 2 : 2 * t] -= transition
        information += step.T @ np.linalg.inv(noise) @ step
    for t in range(count):
        if np.isfinite(z[t]):
            information[2 * t, 2 * t] += 1.0 / r[t]
            vector[2 * t] += z[t] / r[t]
    state = np.linalg.solve(information, vector)
    covariance = np.linalg.inv(information)
    return state[0::2], state[1::2], np.diag(covariance)[0::2]


@pytest.mark.parametrize("channels", [1, 12])  # the float loop and the vectorised path
def test_rts_equals_the_dense_least_squares_solution(rng, channels):
    count = 60
    times = np.cumsum(rng.uniform(0.02, 0.05, count))
    z = np.sin(3 * times)[:, None] + rng.normal(0, 0.1, (count, channels))
    z[10:20] = np.nan
    z[0] = np.nan
    r = rng.uniform(0.005, 0.02, count)
    q = 2.0
    track = rts_smooth(times, z, r[:, None], q)
    for c in range(channels):
        values = z[:, c][np.isfinite(z[:, c])]
        spread = values.max() - values.min() + 1.0
        duration = times[-1] - times[0]
        prior_cov = np.diag([1e2 * spread**2, 1e2 * (spread / duration) ** 2 + q * duration])
        position, velocity, variance = _batch_smoother(
            times, z[:, c], r, q, np.array([values[0], 0.0]), prior_cov
        )
        np.testing.assert_allclose(track.position[:, c], position, atol=1e-9)
        np.testing.assert_allclose(track.velocity[:, c], velocity, atol=1e-8)
        np.testing.assert_allclose(track.variance[:, c], variance, atol=1e-10)


def test_rts_without_process_noise_is_a_least_squares_line(rng):
    times = np.sort(rng.uniform(0, 5, 40))
    z = 0.3 * times + 1.0 + rng.normal(0, 0.05, 40)
    track = rts_smooth(times, z[:, None], 0.01, 1e-12)
    slope, intercept = np.polyfit(times, z, 1)
    np.testing.assert_allclose(track.position[:, 0], slope * times + intercept, atol=1e-5)


def test_rts_bridges_gaps_and_flags_bad_input():
    times = np.arange(10.0)
    z = np.array([0.0, 1, 2, np.nan, np.nan, np.nan, 6, 7, 8, 9])[:, None]
    track = rts_smooth(times, np.hstack([z, np.full_like(z, np.nan)]), 1e-6, 1e-3)
    np.testing.assert_allclose(track.position[:, 0], times, atol=1e-3)  # a line stays a line
    assert np.isnan(track.position[:, 1]).all()  # never observed: NaN, not invented
    with pytest.raises(KalmanError, match="increasing"):
        rts_smooth(np.array([0.0, 1.0, 1.0]), np.zeros((3, 1)), 1.0, 1.0)
    with pytest.raises(KalmanError, match="positive"):
        rts_smooth(times, z, 0.0, 1.0)


@pytest.mark.parametrize("count", [1, 2, 3, 40])
def test_pchip_fill_equals_pchip_per_column(rng, count):
    """All columns at once (interior gaps and ends alike) give exactly each column's own PCHIP."""
    times = np.cumsum(rng.uniform(0.02, 0.05, 60))
    values = rng.normal(size=(60, 5, 3))
    valid = np.zeros((60, 5), bool)
    for column in range(5):
        valid[rng.choice(60, size=min(count + column, 60), replace=False), column] = True
    fill = ~valid
    out = filters.pchip_fill(times, values, valid, fill)
    for column in range(5):
        known = np.flatnonzero(valid[:, column])
        expected = filters.pchip_interpolate(
            times[known], values[known, column], times[fill[:, column]]
        )
        np.testing.assert_array_equal(out[fill[:, column], column], expected)
        np.testing.assert_array_equal(
            out[valid[:, column], column], values[valid[:, column], column]
        )
        if len(known) > 1:
            oracle = PchipInterpolator(times[known], values[known, column], axis=0)
            np.testing.assert_allclose(out[:, column], oracle(times), atol=1e-9)


def test_rts_segments_equal_separate_smoothing(rng):
    """Clips of different lengths smoothed together (padded with unmeasured frames) come out as
    when smoothed one by one."""
    segments = []
    for k in range(6):
        count = int(rng.integers(2, 90))
        times = 5.0 * k + np.cumsum(rng.uniform(0.02, 0.05, count))
        z = np.cumsum(rng.normal(size=(count, int(rng.integers(1, 12)))), axis=0) * 10.0
        z[rng.random(z.shape) < 0.3] = np.nan
        z[:, 0] = np.nan  # a channel never measured stays NaN
        segments.append((times, z))
    for (times, z), position in zip(
        segments, rts_smooth_segments(segments, 100.0, 4e6), strict=True
    ):
        expected = rts_smooth(times, z, 100.0, 4e6).position
        np.testing.assert_allclose(position, expected, rtol=1e-12, atol=1e-9)
        assert np.isnan(position[:, 0]).all()


def test_rts_variance_can_be_skipped(rng):
    times = np.cumsum(rng.uniform(0.02, 0.05, 50))
    z = rng.normal(size=(50, 3))
    full = rts_smooth(times, z, 0.01, 2.0)
    fast = rts_smooth(times, z, 0.01, 2.0, variance=False)
    assert fast.variance is None
    np.testing.assert_array_equal(fast.position, full.position)
