"""Key reduction (retarget/keys.py) against independent evaluations: scipy's cubic Hermite spline
for the curves, a cubic Bezier through Blender's handles, and scipy's rotations for the error of
every rotation mode."""

import numpy as np
import pytest
from scipy.interpolate import CubicHermiteSpline
from scipy.spatial.transform import Rotation

from retarget import RetargetError, keys
from retarget.rotations import make_continuous, quaternion_to_axis_angle, quaternion_to_euler
from tests.test_solve import SPECS, solve_on
from tests.test_solve_rigs import world_motion


def smooth_quaternions(num: int, rng, speed: float = 1.0) -> np.ndarray:
    """A wandering rotation (T, 4), continuous in sign, with some estimator-like jitter."""
    t = np.linspace(0.0, 1.0, num)[:, None]
    rotvec = speed * np.concatenate(
        [np.sin(2 * np.pi * (f * t + p)) for f, p in zip([0.7, 1.3, 0.4], rng.random(3), strict=True)],
        axis=1,
    )  # fmt: skip
    rotvec += 0.002 * rng.normal(size=rotvec.shape)
    xyzw = Rotation.from_rotvec(rotvec).as_quat()
    return make_continuous(xyzw[:, [3, 0, 1, 2]])


def test_the_curves_are_scipys_cubic_hermite_spline(rng):
    frames = np.sort(rng.choice(np.arange(1, 400), 30, replace=False)).astype(float)
    values, slopes = rng.normal(size=(30, 3)), rng.normal(size=(30, 3))
    curve = keys.BezierKeys(frames, values, slopes)
    query = np.linspace(frames[0], frames[-1], 997)
    oracle = CubicHermiteSpline(frames, values, slopes, axis=0)(query)
    np.testing.assert_allclose(keys.evaluate(curve, query), oracle, atol=1e-10)


def test_handles_at_thirds_are_the_bezier_blender_draws(rng):
    """The 2D cubic Bezier through each key and its neighbour's handles (the way Blender draws and
    evaluates a segment) is the Hermite curve: x runs linearly in the curve parameter, and both
    handles of a key lie on one line through it (Aligned)."""
    frames = np.array([1.0, 4.0, 11.0, 12.0, 30.0])
    values, slopes = rng.normal(size=(5, 2)), rng.normal(size=(5, 2))
    curve = keys.BezierKeys(frames, values, slopes)
    left, right = curve.handles()
    for c in range(2):
        assert np.allclose((left[:, c, 1] - values[:, c]) / (left[:, c, 0] - frames),
                           (right[:, c, 1] - values[:, c]) / (right[:, c, 0] - frames))  # fmt: skip
        for k in range(4):
            p = np.array([[frames[k], values[k, c]], right[k, c], left[k + 1, c],
                          [frames[k + 1], values[k + 1, c]]])  # fmt: skip
            u = np.linspace(0, 1, 50)[:, None]
            bezier = ((1 - u) ** 3 * p[0] + 3 * (1 - u) ** 2 * u * p[1] + 3 * (1 - u) * u**2 * p[2]
                      + u**3 * p[3])  # fmt: skip
            np.testing.assert_allclose(
                bezier[:, 0], frames[k] + u[:, 0] * (frames[k + 1] - frames[k])
            )
            np.testing.assert_allclose(keys.evaluate(curve, bezier[:, 0])[:, c], bezier[:, 1],
                                       atol=1e-12)  # fmt: skip


@pytest.mark.parametrize("order", keys.EULER_ORDERS)
def test_euler_channels_as_blender_composes_them(order, rng):
    angles = rng.uniform(-3, 3, size=(40, 3))
    ours = keys.euler_to_quaternion(angles, order)
    # Blender's "XYZ" applies X first: scipy's extrinsic "xyz" on the angles in that order.
    oracle = Rotation.from_euler(order.lower(), angles[:, [keys._AXES[a] for a in order]]).as_quat()
    assert np.allclose(np.abs(np.sum(ours * oracle[:, [3, 0, 1, 2]], axis=1)), 1.0)


def test_axis_angle_channels_normalise_the_axis(rng):
    values = np.concatenate([rng.uniform(-3, 3, (20, 1)), rng.normal(size=(20, 3)) * 3], axis=1)
    ours = keys.axis_angle_to_quaternion(values)
    axes = values[:, 1:] / np.linalg.norm(values[:, 1:], axis=1, keepdims=True)
    oracle = Rotation.from_rotvec(values[:, :1] * axes).as_quat()[:, [3, 0, 1, 2]]
    assert np.allclose(np.abs(np.sum(ours * oracle, axis=1)), 1.0)
    assert np.allclose(keys.axis_angle_to_quaternion(np.array([[1.0, 0, 0, 0]])), [[1, 0, 0, 0]])


def test_the_rotation_error_is_the_angle_between_the_rotations(rng):
    a = Rotation.random(50, random_state=1)
    b = Rotation.random(50, random_state=2)
    qa, qb = a.as_quat()[:, [3, 0, 1, 2]], -3.0 * b.as_quat()[:, [3, 0, 1, 2]]  # scale, sign
    ours = keys.rotation_error_deg("QUATERNION")(qa, qb)
    np.testing.assert_allclose(ours, np.degrees((a.inv() * b).magnitude()), atol=1e-9)
    tiny = Rotation.from_rotvec([[1e-7, 0, 0]]).as_quat()[:, [3, 0, 1, 2]]
    assert keys.rotation_error_deg("QUATERNION")(tiny, np.array([[1.0, 0, 0, 0]]))[0] == (
        pytest.approx(np.degrees(1e-7), rel=1e-6)
    )


def _check_within(reduced, frames, dense, mode, tolerance):
    """Every dense frame within ``tolerance``, measured with scipy's spline and rotations."""
    spline = CubicHermiteSpline(reduced.keys.frames, reduced.keys.values, reduced.keys.slopes,
                                axis=0)(frames)  # fmt: skip
    if mode is None:
        errors = np.linalg.norm(spline - dense, axis=1)
    else:
        to_rotation = {
            "QUATERNION": lambda v: Rotation.from_quat(v[:, [1, 2, 3, 0]]),
            "AXIS_ANGLE": lambda v: Rotation.from_rotvec(
                v[:, :1] * v[:, 1:] / np.linalg.norm(v[:, 1:], axis=1, keepdims=True)
            ),
        }.get(
            mode, lambda v: Rotation.from_euler(mode.lower(), v[:, [keys._AXES[a] for a in mode]])
        )
        errors = np.degrees((to_rotation(dense).inv() * to_rotation(spline)).magnitude())
    assert errors.max() <= tolerance * (1 + 1e-9)
    assert reduced.max_error == pytest.approx(errors.max(), abs=1e-6)
    assert reduced.keys.frames[0] == frames[0] and reduced.keys.frames[-1] == frames[-1]
    assert set(reduced.keys.frames) <= set(frames)
    return errors


@pytest.mark.parametrize("mode", ["QUATERNION", "AXIS_ANGLE", "XYZ", "ZXY", "YZX"])
def test_reduced_rotations_stay_within_the_tolerance_on_every_frame(mode, rng):
    frames = 1.0 + np.arange(600)
    quaternions = smooth_quaternions(600, rng)
    if mode == "QUATERNION":
        dense = quaternions
    elif mode == "AXIS_ANGLE":
        dense = quaternion_to_axis_angle(quaternions)
    else:
        dense = quaternion_to_euler(quaternions, mode)
    reduced = keys.reduce_rotation(frames, dense, mode, 0.5)
    _check_within(reduced, frames, dense, mode, 0.5)
    assert len(reduced.keys.frames) < 0.35 * len(frames)
    finer = keys.reduce_rotation(frames, dense, mode, 0.1)
    assert len(finer.keys.frames) > len(reduced.keys.frames)
    _check_within(finer, frames, dense, mode, 0.1)


def test_reduced_locations_stay_within_the_tolerance(rng):
    frames = 1.0 + np.arange(900) * 0.8  # sub-frame times: a clip slower than the scene
    t = np.arange(900) / 30.0
    path = np.stack([1.2 * t, 0.3 * np.sin(2 * t), 0.9 + 0.03 * np.sin(12 * t)], axis=1)
    path += 0.0005 * rng.normal(size=path.shape)
    reduced = keys.reduce_location(frames, path, 0.005)
    _check_within(reduced, frames, path, None, 0.005)
    assert len(reduced.keys.frames) < 0.3 * len(frames)


def test_constant_and_short_channels():
    frames = np.arange(1.0, 51.0)
    still = keys.reduce_rotation(frames, np.tile([1.0, 0, 0, 0], (50, 1)), "QUATERNION", 0.5)
    assert list(still.keys.frames) == [1.0, 50.0] and still.max_error == 0.0
    one = keys.reduce_location(np.array([3.0]), np.array([[1.0, 2.0, 3.0]]), 0.005)
    assert list(one.keys.frames) == [3.0]
    np.testing.assert_array_equal(keys.evaluate(one.keys, np.array([3.0])), [[1, 2, 3]])
    left, right = one.keys.handles()
    assert left.shape == right.shape == (1, 3, 2)


def test_a_tolerance_of_zero_keeps_every_frame_and_ends(rng):
    frames = np.arange(1.0, 41.0)
    values = rng.normal(size=(40, 3))
    reduced = keys.reduce_location(frames, values, 1e-12)
    assert len(reduced.keys.frames) == 40


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_tolerances_must_be_positive(bad):
    with pytest.raises(RetargetError, match="positive"):
        keys.KeyTolerance(rotation_deg=bad)
    with pytest.raises(RetargetError, match="positive"):
        keys.KeyTolerance(location_m=bad)


def test_a_solved_take_keeps_few_keys_within_the_default_tolerance():
    """A solved walk on a Mixamo-like rig: every bone within 0.5 deg, the root within 5 mm, on
    every frame, with a fraction of the keys (23 % here)."""
    joints = world_motion("walk", 4.0, seed=3).joints
    result, *_ = solve_on(SPECS["mixamo other proportions + roll"](), joints)
    frames = 1.0 + np.arange(len(joints))
    tolerance = keys.KeyTolerance()
    kept = 0
    for k in range(len(result.bone_names)):
        reduced = keys.reduce_rotation(frames, result.rotations[:, k], "QUATERNION",
                                       tolerance.rotation_deg)  # fmt: skip
        _check_within(reduced, frames, result.rotations[:, k], "QUATERNION", 0.5)
        kept += len(reduced.keys.frames)
    root = keys.reduce_location(frames, result.root_location, tolerance.location_m)
    _check_within(root, frames, result.root_location, None, 0.005)
    assert kept < 0.3 * len(frames) * len(result.bone_names)


def test_a_tolerance_per_frame_is_kept_on_each_frame(rng):
    frames = 1.0 + np.arange(300)
    quaternions = smooth_quaternions(300, rng)
    tolerance = np.where((frames > 100) & (frames < 200), 0.1, 0.5)
    reduced = keys.reduce_rotation(frames, quaternions, "QUATERNION", tolerance)
    errors = keys.rotation_error_deg("QUATERNION")(quaternions, keys.evaluate(reduced.keys, frames))
    assert np.all(errors <= tolerance) and errors[100:200].max() > 0.05
    loose = keys.reduce_rotation(frames, quaternions, "QUATERNION", 0.5)
    inside = (reduced.keys.frames > 100) & (reduced.keys.frames < 200)
    assert inside.sum() > ((loose.keys.frames > 100) & (loose.keys.frames < 200)).sum()
    many = keys.reduce_rotations(frames, np.stack([quaternions, quaternions]), "QUATERNION",
                                 np.stack([tolerance, np.full(300, 0.5)]))  # fmt: skip
    np.testing.assert_array_equal(many[0].keys.frames, reduced.keys.frames)
    np.testing.assert_array_equal(many[1].keys.frames, loose.keys.frames)


def test_bones_down_to_a_planted_foot_get_a_share_of_the_tolerance():
    locked = np.zeros((6, 2), bool)
    locked[1:3, 0], locked[2:5, 1] = True, True
    scales = keys.planted_scales(
        ["root", "hips", "thigh.L", "shin.R", "spine"], locked, ({"thigh.L"}, {"shin.R"}),
        {"root", "hips"}, share=0.25,
    )  # fmt: skip
    assert set(scales) == {"root", "hips", "thigh.L", "shin.R"}  # the spine keeps the tolerance
    np.testing.assert_array_equal(scales["thigh.L"], [1, 0.25, 0.25, 1, 1, 1])
    np.testing.assert_array_equal(scales["shin.R"], [1, 1, 0.25, 0.25, 0.25, 1])
    np.testing.assert_array_equal(scales["hips"], [1, 0.25, 0.25, 0.25, 0.25, 1])
    assert keys.planted_scales(["hips"], np.zeros((4, 2), bool), (set(), set()), {"hips"}) == {}
