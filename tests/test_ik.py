"""Foot locking: contact intervals, planted goals, analytic two-bone IK, and the locked result on
a rig with other proportions driven by noisy ground-truth motion (pure numpy)."""

import numpy as np
import pytest

from inference.training.synth.motion import SKELETON
from retarget import RetargetError, ik, metrics
from retarget.frames import FOOT_JOINTS
from retarget.solve import footlock
from tests.test_solve import direction_errors, solve_on
from tests.test_solve_rigs import canonical_rest, metarig_like, mixamo_like, noisy, world_motion


def test_contact_intervals_and_minimum_length():
    contacts = np.array([0, 1, 1, 1, 0, 0, 1, 0, 1, 1, 1, 1], bool)
    assert footlock.contact_intervals(contacts) == [(1, 4), (6, 7), (8, 12)]
    assert footlock.contact_intervals(contacts, min_frames=3) == [(1, 4), (8, 12)]
    assert footlock.contact_intervals(np.zeros(5, bool)) == []


def test_lock_targets_plant_inside_and_fade_the_correction_outside():
    rng = np.random.default_rng(0)
    positions = np.cumsum(rng.normal(scale=0.01, size=(60, 3)), axis=0)
    contacts = np.zeros(60, bool)
    contacts[20:35] = True
    params = footlock.FootLockParams(ease_frames=5)
    goals, weights = footlock.lock_targets(positions, contacts, params)
    planted = positions[20:35, :2].mean(axis=0)
    np.testing.assert_allclose(goals[20:35, :2], np.tile(planted, (15, 1)), atol=1e-12)
    np.testing.assert_allclose(goals[:, 2], positions[:, 2])  # heights untouched (foot roll)
    assert np.all(weights[20:35] == 1.0) and np.all(weights[:14] == 0) and np.all(weights[41:] == 0)
    assert np.all(np.diff(weights[14:21]) > 0) and np.all(np.diff(weights[34:41]) < 0)
    # Outside, the correction at the boundary frame fades; the free motion itself is kept.
    correction = goals[15:20, :2] - positions[15:20, :2]
    boundary = planted - positions[20, :2]
    np.testing.assert_allclose(correction, weights[15:20, None] * boundary, atol=1e-12)
    np.testing.assert_array_equal(goals[:14], positions[:14])


@pytest.mark.parametrize("seed", range(3))
def test_two_bone_ik_reaches_reachable_targets_exactly(seed):
    rng = np.random.default_rng(seed)
    count, upper, lower = 500, 0.45, 0.42
    hip = rng.normal(size=(count, 3))
    direction = rng.normal(size=(count, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    target = hip + direction * rng.uniform(0.1, 0.8, (count, 1))  # within 0.97 * 0.87
    pole = hip + rng.normal(size=(count, 3))
    knee, ankle = ik.two_bone_ik(hip, pole, target, upper, lower, soft_reach=0.03)
    np.testing.assert_allclose(ankle, target, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(knee - hip, axis=1), upper, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(ankle - knee, axis=1), lower, atol=1e-9)
    # The knee lies in the plane of hip, target and pole, on the pole's side.
    normal = np.cross(target - hip, pole - hip)
    assert np.abs(np.sum((knee - hip) * normal, axis=1)).max() < 1e-9
    axis = (target - hip) / np.linalg.norm(target - hip, axis=1, keepdims=True)
    side = lambda p: (p - hip) - np.sum((p - hip) * axis, 1, keepdims=True) * axis  # noqa: E731
    assert np.all(np.sum(side(knee) * side(pole), axis=1) > 0)


def test_two_bone_ik_gives_back_the_free_pose_and_straightens_softly():
    upper, lower = 0.45, 0.42
    hip = np.zeros((1, 3))
    ankle = np.array([[0.0, 0.0, -0.865]])
    along = (upper**2 - lower**2 + 0.865**2) / (2 * 0.865)  # law of cosines: a bent free leg
    knee = np.array([[0.0, -np.sqrt(upper**2 - along**2), -along]])
    free = np.linalg.norm(ankle - hip, axis=1)
    new_knee, new_ankle = ik.two_bone_ik(hip, knee, ankle, upper, lower, 0.03, free)
    np.testing.assert_allclose(new_knee, knee, atol=1e-12)
    np.testing.assert_allclose(new_ankle, ankle, atol=1e-12)
    # Pull a target straight away from the hip through full length: no snap, never past full.
    distances = np.linspace(0.70, 1.10, 400)
    targets = np.stack([np.zeros(400), np.zeros(400), -distances], axis=1)
    knees, ankles = ik.two_bone_ik(
        np.zeros((400, 3)), np.tile([0.0, -0.1, -0.4], (400, 1)), targets, upper, lower, 0.03
    )
    reach = np.linalg.norm(ankles, axis=1)
    assert reach.max() < upper + lower and np.all(np.diff(reach) >= -1e-12)
    bend = np.degrees(np.arccos(np.sum(knees * (ankles - knees), 1) / (upper * lower)))
    assert np.abs(np.diff(bend)).max() < 1.5  # degrees per 1 mm of target travel


def test_required_drop_brings_targets_into_reach():
    hip = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    target = np.array([[0.3, 0.0, 0.0], [0.0, 0.0, 0.5]])
    drop = footlock.required_drop(hip, target, 0.9)
    assert drop[1] == 0.0
    lowered = hip[0] - np.array([0.0, 0.0, drop[0]])
    assert np.linalg.norm(target[0] - lowered) == pytest.approx(0.9)
    smoothed = footlock.smooth_drop(np.r_[np.zeros(10), 0.05, np.zeros(10)], 5)
    assert smoothed.max() <= 0.05 and smoothed[10] > 0 and smoothed[7] > 0  # eases in early


def test_contacts_from_extras_layouts():
    frames, people = 8, 2
    pair = np.zeros((frames, people, 2), bool)
    pair[2:5, 1, 0] = True
    np.testing.assert_array_equal(
        footlock.contacts_from_extras({"contacts": pair}, 1, frames), pair[:, 1]
    )
    assert footlock.contacts_from_extras({}, 0, frames) is None
    # The cleaning stage's layout: named heel/toe channels, in any order and subset.
    three = np.zeros((frames, people, 3), bool)
    three[3, 0, 0] = True  # rtoe
    three[4, 0, 2] = True  # lank
    names = np.array(["rtoe", "ltoe", "lank"])
    got = footlock.contacts_from_extras({"contacts": three, "contact_channels": names}, 0, frames)
    assert got.shape == (frames, 4) and got.sum() == 2
    assert got[3].tolist() == [False, False, False, True] and got[4, 0]
    with pytest.raises(RetargetError, match="no 'contact_channels'"):
        footlock.contacts_from_extras({"contacts": three}, 0, frames)
    with pytest.raises(RetargetError, match="unknown contact channels \\['lheel'\\]"):
        bad = np.array(["lheel", "ltoe", "lank"])
        footlock.contacts_from_extras({"contacts": three, "contact_channels": bad}, 0, frames)
    with pytest.raises(RetargetError, match="expected \\(T, P, channels\\)"):
        footlock.contacts_from_extras({"contacts": pair[:4]}, 0, frames)


def channel_slides(result, contacts) -> np.ndarray:
    """Slide (m/frame) of each heel/toe joint while its channel is planted."""
    return 0.001 * np.concatenate(
        [
            metrics.foot_slide(result.joints[name], contacts[:, c])
            for c, name in enumerate(FOOT_JOINTS)
        ]
    )


@pytest.mark.parametrize("kind", ["walk", "run"])
def test_locked_feet_do_not_slide_on_another_body(kind):
    """Noisy estimator-like motion on a rig with other proportions, heel/toe contact channels as
    the cleaning stage gives them: unlocked feet slide by centimetres, locked heels and toes by at
    most 5 mm/frame; only the legs change."""
    motion = world_motion(kind, 4.0, seed=5, turn_deg_per_s=20.0)
    joints = noisy(motion.joints, np.random.default_rng(1))
    contacts = motion.channel_contacts
    rest = canonical_rest(1.9, arms=1.1, legs=0.85, torso=1.1)
    spec = mixamo_like(rest, rng=np.random.default_rng(2))
    free = solve_on(spec, joints)[0]
    locked = solve_on(spec, joints, contacts=contacts)[0]
    assert channel_slides(free, contacts).mean() > 0.005  # the noise makes unlocked feet skate
    assert channel_slides(locked, contacts).max() <= 0.005  # 5 mm/frame
    expected = np.zeros((len(joints), 4), bool)
    for c in range(4):  # contacts shorter than min_contact_frames stay free
        for start, stop in footlock.contact_intervals(contacts[:, c], 2):
            expected[start:stop, c] = True
    np.testing.assert_array_equal(locked.locked, expected[:, :2] | expected[:, 2:])
    errors = direction_errors(locked, joints)
    assert np.median(errors) <= 2.0 and np.percentile(errors, 95) <= 8.0
    for a, b in (("lsho", "lelb"), ("relb", "rwri"), ("neck", "head")):  # upper body untouched
        np.testing.assert_allclose(locked.joints[b] - locked.joints[a],
                                   free.joints[b] - free.joints[a], atol=1e-9)  # fmt: skip
    assert metrics.sign_flips(locked.rotations) == 0 and metrics.twist_jumps(locked.rotations) == 0


def test_ground_truth_channels_of_the_generator_do_not_move():
    """The generator's planted heels and toes are exactly still: the slide metric reads 0 on the
    source, and a same-proportion retarget keeps it (the lock then changes nothing)."""
    motion = world_motion("walk", 3.0, seed=8)
    source = {n: motion.joints[:, SKELETON.index(n)] for n in FOOT_JOINTS}
    for c, name in enumerate(FOOT_JOINTS):
        slide = 0.001 * metrics.foot_slide(source[name], motion.channel_contacts[:, c])
        assert slide.max() < 1e-9


def test_toe_only_contact_holds_the_toe_and_lets_the_ankle_lift():
    """Push-off: the heel is up, the toe planted. The goal moves the ankle by the toe's slide, so
    the toe stays put while the ankle keeps rising."""
    frames = 30
    t = np.linspace(0.0, 1.0, frames)
    toe = np.stack([0.01 * t, np.zeros(frames), np.full(frames, 0.02)], axis=1)  # slides 1 cm
    ankle = toe + np.stack([-0.12 * np.cos(t), np.zeros(frames), 0.06 + 0.1 * t], axis=1)
    heel = np.zeros(frames, bool)
    toes = np.zeros(frames, bool)
    toes[5:25] = True
    goals = footlock.foot_goals(ankle, toe, heel, toes, footlock.FootLockParams())
    goal, held = goals.ankle, goals.held
    assert not goals.orient.any()  # the heel is up: the foot keeps turning about the toe
    toe_after = toe + (goal - ankle)
    assert np.abs(np.diff(toe_after[5:25, :2], axis=0)).max() < 1e-12  # the toe is held
    np.testing.assert_allclose(goal[:, 2], ankle[:, 2])  # the ankle still lifts
    np.testing.assert_array_equal(held, toes)


def test_heel_and_toe_channels_lock_like_foot_contacts():
    motion = world_motion("walk", 3.0, seed=7)
    joints = noisy(motion.joints, np.random.default_rng(3))
    spec = mixamo_like(canonical_rest(1.8, legs=0.9), rng=np.random.default_rng(4))
    feet = solve_on(spec, joints, contacts=motion.contacts)[0]
    channels = np.concatenate([motion.contacts, np.zeros_like(motion.contacts)], axis=1)
    heels = solve_on(spec, joints, contacts=channels)[0]
    np.testing.assert_allclose(heels.rotations, feet.rotations, atol=1e-12)
    with_toes = solve_on(spec, joints, contacts=np.concatenate([motion.contacts] * 2, axis=1))[0]
    for k, s in enumerate("lr"):  # flat feet: heel and toe planted, the ankle is what is held
        slide = 0.001 * metrics.foot_slide(with_toes.joints[s + "ank"], motion.contacts[:, k])
        assert slide.max() < 1e-9


def test_locking_without_contacts_changes_nothing():
    motion = world_motion("walk", 2.0, seed=6)
    spec = metarig_like(canonical_rest(1.7, a_pose_deg=40.0))
    free = solve_on(spec, motion.joints)[0]
    none = solve_on(spec, motion.joints, contacts=np.zeros_like(motion.contacts))[0]
    np.testing.assert_allclose(none.rotations, free.rotations, atol=1e-12)
    np.testing.assert_allclose(none.root_location, free.root_location, atol=1e-12)
    with pytest.raises(RetargetError, match="contacts must be \\(T, 2\\) per foot"):
        solve_on(spec, motion.joints, contacts=motion.contacts[:5])
    assert SKELETON.num_joints == motion.joints.shape[1]
