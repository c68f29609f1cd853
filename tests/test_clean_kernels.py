"""The vectorised kernels of the cleaning stage against their plain definitions (a sort, np.interp,
np.nanmedian, a loop over joints or frames): the fast versions must give the same numbers."""

import itertools
import warnings

import numpy as np
import pytest

from inference.training.synth.motion import SKELETON
from retarget.clean import outliers, robust
from retarget.clean.bones import fit_bone_lengths, topological_order
from retarget.clean.contacts import ContactSettings, detect_contacts
from retarget.clean.gaps import BRIDGED, HELD, INTERPOLATED, gap_codes
from retarget.clean.vectors import finite3, norm3

PARENTS = np.array(SKELETON.parents)


def _with_ties(rng, shape):
    values = rng.normal(size=shape)
    values[rng.random(shape) < 0.3] = 0.5  # many equal values
    return values


def test_selection_networks_sort_every_zero_one_input():
    for lines in (2, 4, 8, 16):
        bits = np.array(list(itertools.product([0, 1], repeat=lines)), np.int8).T.copy()
        for i, j, _, _ in robust.selection_network(lines, tuple(range(lines))):
            bits[i], bits[j] = np.minimum(bits[i], bits[j]), np.maximum(bits[i], bits[j])
        assert (np.diff(bits, axis=0) >= 0).all()


@pytest.mark.parametrize("window", [1, 3, 5, 9, 11, 21, 31])
@pytest.mark.parametrize("shape", [(1, 3), (2, 2), (7, 2), (300, 6, 3)])
def test_running_median_is_the_middle_of_each_sorted_window(rng, window, shape):
    values = _with_ties(rng, shape)
    half = window // 2
    padded = np.concatenate([values[:1].repeat(half, 0), values, values[-1:].repeat(half, 0)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, window, axis=0)
    expected = np.sort(windows, axis=-1)[..., half]
    np.testing.assert_array_equal(robust.running_median(values, np.int64(window)), expected)
    rows = rng.random(shape[0]) < 0.4
    np.testing.assert_array_equal(robust.running_median(values, window, rows), expected[rows])


@pytest.mark.parametrize("shape", [(5,), (6, 40, 3), (24, 300, 3), (300, 24, 3), (1800, 4)])
@pytest.mark.parametrize("missing", [0.0, 0.1, 0.9, 1.0])
def test_masked_medians_and_mad_equal_nanmedian(rng, shape, missing):
    values = _with_ties(rng, shape)
    mask = rng.random(shape[:2]) >= missing
    mask = np.broadcast_to(mask.reshape(mask.shape + (1,) * (len(shape) - mask.ndim)), shape)
    hidden = np.where(mask, values, np.nan)
    with warnings.catch_warnings():  # columns without a sample: NaN, with a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        median = np.nanmedian(hidden, axis=0)
        mad = np.nanmedian(np.abs(hidden - median), axis=0)
    np.testing.assert_array_equal(robust.masked_median(values, mask), median)
    centre, sigma = robust.median_and_sigma(values, mask)
    np.testing.assert_array_equal(centre, median)
    np.testing.assert_array_equal(sigma, robust.MAD_TO_SIGMA * mad)
    np.testing.assert_array_equal(robust.robust_sigma(values, mask), sigma)


def test_fill_linear_equals_np_interp_per_column(rng):
    values = rng.normal(size=(80, 6, 3))
    valid = rng.random((80, 6)) > 0.4
    valid[:, 0] = False  # never seen: 0
    valid[:, 1] = False
    valid[40, 1] = True  # one sample: held everywhere
    out = robust.fill_linear(np.where(valid[..., None], values, np.nan), valid)
    index = np.arange(80)
    for joint in range(6):
        known = np.flatnonzero(valid[:, joint])
        for axis in range(3):
            expected = np.interp(index, known, values[known, joint, axis]) if known.size else 0.0
            np.testing.assert_array_equal(out[:, joint, axis], expected)


def test_speed_gate_equals_a_loop_over_joints(rng):
    relative = np.cumsum(rng.normal(0, 40, (120, 5, 3)), axis=0)
    relative[rng.random((120, 5)) < 0.05] += 800.0  # spikes
    valid = rng.random((120, 5)) > 0.2
    times = np.cumsum(rng.uniform(0.02, 0.05, 120))
    expected = np.zeros(valid.shape, bool)
    for joint in range(5):
        known = np.flatnonzero(valid[:, joint])
        steps = np.linalg.norm(np.diff(relative[known, joint], axis=0), axis=-1)
        fast = steps > 10000.0 * np.diff(times[known]) + 60.0
        expected[known[1:-1][fast[:-1] & fast[1:]], joint] = True
    assert expected.any()
    np.testing.assert_array_equal(
        outliers._speed_gate(relative, valid, times, 10000.0, 60.0), expected
    )


def test_vector_helpers_equal_numpy(rng):
    vectors = rng.normal(size=(50, 7, 3)) * rng.choice([1e-3, 1.0, 1e3], size=(50, 7, 3))
    np.testing.assert_array_equal(norm3(vectors), np.linalg.norm(vectors, axis=-1))
    vectors[rng.random(vectors.shape) < 0.1] = np.inf
    vectors[rng.random(vectors.shape) < 0.1] = np.nan
    np.testing.assert_array_equal(finite3(vectors), np.isfinite(vectors).all(axis=-1))


def test_bone_fit_equals_plain_gauss_seidel_sweeps(rng):
    joints = np.cumsum(rng.normal(0, 50, (40, len(PARENTS), 3)), axis=1)
    joints[3, 5] = joints[3, PARENTS[5]]  # a zero-length bone keeps its child on the parent
    lengths = np.where(PARENTS >= 0, rng.uniform(50, 400, len(PARENTS)), 0.0)
    out = joints.copy()
    order = [j for j in topological_order(PARENTS) if PARENTS[j] >= 0]
    for _ in range(4):
        for j in order:
            bone = out[:, j] - out[:, PARENTS[j]]
            norm = np.linalg.norm(bone, axis=-1, keepdims=True)
            unit = np.divide(bone, norm, out=np.zeros_like(bone), where=norm > 1e-9)
            out[:, j] -= 0.5 * (norm - lengths[j]) * unit
            out[:, PARENTS[j]] += 0.5 * (norm - lengths[j]) * unit
    placed = out.copy()
    for j in order:
        direction = out[:, j] - out[:, PARENTS[j]]
        norm = np.linalg.norm(direction, axis=-1, keepdims=True)
        unit = np.divide(direction, norm, out=np.zeros_like(direction), where=norm > 1e-9)
        placed[:, j] = placed[:, PARENTS[j]] + lengths[j] * unit
    np.testing.assert_allclose(fit_bone_lengths(joints, PARENTS, lengths), placed, atol=1e-9)


def test_contact_detection_equals_a_loop_over_stretches(rng):
    settings = ContactSettings()
    heights = np.abs(np.cumsum(rng.normal(0, 0.01, (400, 4)), axis=0)) % 0.08
    speed = np.abs(np.cumsum(rng.normal(0, 0.08, (400, 4)), axis=0)) % 0.8
    expected = np.zeros(heights.shape, bool)
    stay = (heights <= settings.exit_height_m) & (speed <= settings.exit_speed_m_s)
    enter = (heights < settings.enter_height_m) & (speed < settings.enter_speed_m_s)
    for c in range(4):
        edges = np.flatnonzero(np.diff(np.concatenate([[0], stay[:, c].astype(int), [0]])))
        for start, stop in zip(edges[::2], edges[1::2], strict=True):
            entries = np.flatnonzero(enter[start:stop, c])
            if entries.size:
                low = np.flatnonzero(heights[start : start + entries[0] + 1, c] < 0.03)
                if stop - (start + low[0]) >= 3:
                    expected[start + low[0] : stop, c] = True
    assert expected.any()
    np.testing.assert_array_equal(detect_contacts(heights, speed, settings, 30.0), expected)


def test_gap_codes_follow_their_definition(rng):
    valid = rng.random((100, 5)) > 0.3
    valid[30:60, 2] = False
    valid[:, 4] = False
    times = np.cumsum(rng.uniform(0.02, 0.05, 100))
    codes = gap_codes(valid, times, 0.2)
    for joint in range(4):
        known = np.flatnonzero(valid[:, joint])
        assert (codes[: known[0], joint] == HELD).all() and (
            codes[known[-1] + 1 :, joint] == HELD
        ).all()
        for t in np.flatnonzero(~valid[known[0] : known[-1], joint]) + known[0]:
            before, after = known[known < t][-1], known[known > t][0]
            short = times[after] - times[before] <= 0.2
            assert codes[t, joint] == (INTERPOLATED if short else BRIDGED)
    assert (codes[:, 4] == 4).all()
