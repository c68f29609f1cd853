"""The motion-capture ground truth (inference/training/synth/mocap.py): rigid bones, no jumps, feet on the
recorded floor, contacts, the dash's speed ramp, and cameras/errors like the synthetic scenarios."""

import numpy as np
import pytest

from inference.training.synth import mocap
from inference.training.synth.motion import SKELETON

CLIPS = ("dance_a", "dance_b", "jump", "kick", "punch", "run", "spinkick", "walk", "walk_turn_left")


def _accel(joints: np.ndarray) -> np.ndarray:
    """Root-relative acceleration per frame and joint (mm/frame²)."""
    relative = 1000.0 * (joints - joints[:, :1])
    return np.linalg.norm(np.diff(relative, 2, axis=0), axis=-1)


def test_the_stored_clips():
    assert mocap.clip_names() == CLIPS
    with pytest.raises(ValueError, match="unknown mocap clip"):
        mocap.mocap_motion("moonwalk")


@pytest.mark.parametrize("case", mocap.MOCAP_CASES, ids=lambda case: case.name)
def test_cases_are_rigid_smooth_and_planted(case):
    motion = mocap.mocap_motion(
        case.clip, 30.0, cycles=case.cycles, duration_s=case.duration_s,
        rate=mocap._dash_rate if case.dash else None,
    )  # fmt: skip
    joints = motion.joints
    assert joints.shape[1:] == (SKELETON.num_joints, 3) and np.all(np.isfinite(joints))
    assert np.allclose(np.diff(motion.frame_times), 1 / 30)
    edges = SKELETON.edges
    lengths = np.linalg.norm(joints[:, edges[:, 1]] - joints[:, edges[:, 0]], axis=-1)
    assert np.ptp(lengths, axis=0).max() < 1e-9, "rigid bones (forward kinematics)"
    # Loop seams and the run's and walk's mirror seams are bridged: no frame jumps far above
    # the clip's own fast frames (the run's mirror seam was a 101 mm/frame² head spike).
    accel = _accel(joints)
    assert accel.max() < 2.5 * np.percentile(accel.max(axis=1), 90)  # measured 1.0-1.9
    head = SKELETON.index("htop")
    if case.clip == "run":
        assert accel[:, head].max() < 40.0
    # The recorded floor: planted toes a couple of centimetres up, nothing far below it.
    feet = [SKELETON.index(name) for name in ("lank", "rank", "ltoe", "rtoe")]
    assert joints[:, feet, 2].min() > -0.03
    assert motion.channel_contacts.shape == (len(joints), 4)
    assert motion.channel_contacts.any(axis=0).sum() >= 2, "contacts of both feet"
    assert np.all((motion.clearance > 0.0) & (motion.clearance < 0.1))
    # Planted channels barely move (real capture slides a few millimetres).
    steps = np.linalg.norm(np.diff(joints[:, feet, :2], axis=0), axis=-1)
    held = motion.channel_contacts[1:] & motion.channel_contacts[:-1]
    assert 1000 * steps[held].mean() < 6.0


def test_dash_accelerates_from_a_jog_into_a_sprint():
    case = mocap.mocap_case("dash")
    motion = mocap.mocap_motion(
        case.clip, 30.0, cycles=case.cycles, rate=mocap._dash_rate, duration_s=case.duration_s
    )
    speed = 30.0 * np.linalg.norm(np.diff(motion.joints[:, 0, :2], axis=0), axis=-1)
    assert speed[:15].mean() < 2.6 and speed[-15:].mean() > 4.5


def test_direction_of_travel_and_cyclic_repetition():
    one = mocap.mocap_motion("walk_turn_left", cycles=1)
    three = mocap.mocap_motion("walk_turn_left", cycles=3)
    assert len(three.joints) == 3 * (len(one.joints) - 1) + 1
    run = mocap.mocap_motion("run", cycles=4, heading_deg=90.0)  # 90° = towards -X
    travel = run.joints[-1, 0, :2] - run.joints[0, 0, :2]
    assert travel[0] < -5.0 and abs(travel[1]) < 0.1 * abs(travel[0])
    assert np.allclose(run.joints[0, 0, :2], 0.0)


def test_scenario_is_seen_and_corrupted_like_the_synthetic_ones():
    scenario = mocap.make_mocap_scenario("kick", seed=3)
    truth = scenario.truth.poses3d[:, 0]
    raw = scenario.raw.poses3d[:, 0]
    assert truth.shape == raw.shape and np.all(truth[..., 2] > 3000.0)  # mm, in front
    error = np.linalg.norm(raw - truth, axis=-1)
    assert 0.0 < np.isnan(error).mean() < 0.2, "missing frames and joints"
    assert 20.0 < np.nanmedian(error) < 400.0
    again = mocap.make_mocap_scenario("kick", seed=3)
    np.testing.assert_array_equal(again.raw.poses3d, scenario.raw.poses3d)
