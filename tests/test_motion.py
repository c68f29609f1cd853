"""The ground-truth motion generator and the error model: the properties the cleaning metrics rely on."""

import numpy as np
import pytest

from inference.training.synth.motion import FOOT_CHANNELS, KINDS, SKELETON, Motion, generate_motion
from inference.training.synth.noise import NO_ERRORS, ErrorModel, corrupt, make_scenario

PARENTS = np.array(SKELETON.parents)
FEET = [SKELETON.index(name) for name in FOOT_CHANNELS]


def _bone_lengths(joints: np.ndarray) -> np.ndarray:
    return np.linalg.norm(joints[:, 1:] - joints[:, PARENTS[1:]], axis=-1)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fps", [25.0, 30.0, 60.0])
def test_motion_is_a_rigid_skeleton_with_planted_feet(kind, fps):
    motion = generate_motion(kind, 5.0, fps, seed=3, height_m=1.68)
    joints = motion.joints
    assert joints.shape == (int(round(5.0 * fps)), SKELETON.num_joints, 3)
    lengths = _bone_lengths(joints)
    np.testing.assert_allclose(lengths, lengths[:1].repeat(len(lengths), 0), atol=1e-9)
    feet = joints[:, FEET]
    planted = motion.channel_contacts[1:] & motion.channel_contacts[:-1]
    assert planted.any(axis=0).all(), "every heel and toe touches the floor at some point"
    steps = np.linalg.norm(np.diff(feet, axis=0), axis=-1)
    assert steps[planted].max() < 1e-9, "a planted heel or toe never moves"
    np.testing.assert_allclose(feet[motion.channel_contacts][:, 2],
                               np.broadcast_to(motion.clearance, feet.shape[:2])[motion.channel_contacts])  # fmt: skip
    assert (feet[..., 2] >= motion.clearance - 1e-9).all(), "nothing goes through the floor"
    speed = np.linalg.norm(np.diff(joints, axis=0), axis=-1) * fps
    assert speed.max() < 9.5, "a person, not a projectile (and below the 10 m/s speed gate)"
    np.testing.assert_array_equal(motion.contacts, motion.channel_contacts[:, :2])


def test_each_kind_does_what_its_name_says():
    def motion(kind, **kwargs):
        return generate_motion(kind, 6.0, 60.0, seed=1, **kwargs)

    walk, run, jump = motion("walk"), motion("run"), motion("jump")
    flight = {m.kind: np.mean(~m.channel_contacts.any(axis=1)) for m in (walk, run, jump)}
    assert flight["walk"] == 0.0 and flight["run"] > 0.15 and flight["jump"] > 0.1
    speed = {
        m.kind: np.linalg.norm(m.joints[-1, 0, :2] - m.joints[0, 0, :2]) / 6.0 for m in (walk, run)
    }
    assert 1.0 < speed["walk"] < 1.7 and 2.4 < speed["run"] < 3.5
    pelvis_height = jump.joints[:, 0, 2]
    assert pelvis_height.max() - np.median(pelvis_height) > 0.15  # it really leaves the ground
    sit = motion("sit")
    assert sit.joints[:, 0, 2].min() < 0.6 and sit.joints[:, 0, 2].max() > 0.9
    assert sit.channel_contacts.all(), "feet stay planted while sitting down and standing up"
    dance = motion("dance")
    wrists = [SKELETON.index("lwri"), SKELETON.index("rwri")]
    wrist_speed = np.linalg.norm(np.diff(dance.joints[:, wrists], axis=0), axis=-1) * 60.0
    assert wrist_speed.max() > 3.0, "fast arm swings"
    assert (
        dance.joints[:, SKELETON.index("lwri"), 2].max()
        > dance.joints[:, SKELETON.index("head"), 2].max()
    )
    turn = motion("turn", heading_deg=0.0)
    forward = np.diff(turn.joints[:, 0, 1])
    assert forward[:60].mean() > 0 > forward[-60:].mean(), "walks away, turns, walks back"


@pytest.mark.parametrize("heading", [0.0, 90.0, 180.0, -90.0])
def test_heading_sets_the_direction_of_travel(heading):
    motion = generate_motion("walk", 4.0, 30.0, seed=2, heading_deg=heading)
    travel = motion.joints[-1, 0, :2] - motion.joints[0, 0, :2]
    expected = np.array([-np.sin(np.radians(heading)), np.cos(np.radians(heading))])
    assert travel @ expected / np.linalg.norm(travel) > 0.97


def test_motion_is_continuous_in_time_for_variable_frame_rates(rng):
    """Sampling at irregular times gives the same poses as regular sampling at those times."""
    regular = generate_motion("run", 3.0, 60.0, seed=5)
    chosen = np.sort(rng.choice(len(regular.frame_times), 90, replace=False))
    irregular = generate_motion("run", 3.0, seed=5, frame_times=regular.frame_times[chosen])
    np.testing.assert_allclose(irregular.joints, regular.joints[chosen], atol=1e-9)
    np.testing.assert_array_equal(irregular.channel_contacts, regular.channel_contacts[chosen])


def test_backwards_compatible_call_and_fields():
    motion = generate_motion("walk", 3.0, 30.0, seed=2)
    assert isinstance(motion, Motion) and motion.kind == "walk"
    assert motion.contacts.shape == (90, 2) and motion.frame_times.shape == (90,)
    again = generate_motion("walk", 3.0, 30.0, seed=2)
    np.testing.assert_array_equal(motion.joints, again.joints)
    with pytest.raises(ValueError, match="unknown motion kind"):
        generate_motion("swim")


@pytest.mark.filterwarnings("ignore:All-NaN slice")
def test_error_model_has_the_documented_ingredients():
    scenario = make_scenario("walk", 30.0, seed=4, duration_s=20.0, direction="towards")
    truth = scenario.truth.poses3d[:, 0].astype(float)
    raw = scenario.raw.poses3d[:, 0].astype(float)
    present = np.isfinite(raw).all(axis=-1)
    assert 0.8 < present.mean() < 0.99, "dropped frames and joints"
    error = raw - truth
    relative = error - np.nanmedian(error, axis=1, keepdims=True)  # without the global depth error
    big = np.linalg.norm(relative, axis=-1) > 150
    assert 0.005 < big[present].mean() < 0.05, "about 1 % large errors"
    relative = error - error[:, :1]
    depth, across = np.nanstd(relative[..., 2]), np.nanstd(relative[..., 0])
    assert depth > 2.0 * across, "depth is the noisiest axis"
    clean = corrupt(scenario.truth, NO_ERRORS, seed=0)
    np.testing.assert_allclose(clean.poses3d, scenario.truth.poses3d)
    quiet = corrupt(
        scenario.truth, ErrorModel(outlier_rate=0.0, swap_rate=0.0, frame_outlier_rate=0.0), 1
    )
    step = np.diff(quiet.poses3d[:, 0].astype(float) - truth, 2, axis=0)
    relative_step = step - step[:, :1]
    accel = np.nanmean(np.linalg.norm(relative_step[:, 1:], axis=-1))
    assert 15.0 < accel < 40.0, "per-frame jitter like published per-frame estimators (mm/frame²)"
