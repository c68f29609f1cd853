"""Foot contact modes and grounding (retarget/solve/grounding.py): feet never below the floor,
the leg re-solved, the rest of the take untouched. Pure numpy, synthetic ground truth."""

import dataclasses

import numpy as np
import pytest

from inference.training.synth.motion import FOOT_CHANNELS, SKELETON
from retarget import RetargetError, solve
from retarget.frames import FOOT_JOINTS
from retarget.solve import grounding, rigmaps
from retarget.solve.rig import rest_joints
from tests.test_solve_rigs import generated_like, mixamo_like, world_motion

SUNK = slice(30, 51)  # frames where the whole body is 3 cm too low


def _sunk_walk():
    motion = world_motion("walk", 3.0, seed=21)
    joints = motion.joints.copy()
    joints[SUNK, :, 2] -= 0.03
    return motion, joints


def _solve(spec, joints, params, floor=None, contacts=None):
    rig = spec.target_rig()
    mapping, _ = rigmaps.resolve_rig_map("auto", rig.names, rig.parents, rig.heads)
    return solve.retarget(joints, SKELETON, rig, mapping, params, contacts, floor=floor)


def test_feet_never_sink_below_the_floor_of_a_rig_on_the_clips_floor():
    motion, joints = _sunk_walk()
    rest = rest_joints(SKELETON, motion.joints)
    spec = generated_like({n: rest[j] for j, n in enumerate(SKELETON.joint_names)})
    floor = dict(zip(FOOT_CHANNELS, motion.clearance.tolist(), strict=True))
    free = solve.RetargetParams(root_motion="camera", reground=False)
    plain = _solve(spec, joints, free)
    grounded = _solve(spec, joints, dataclasses.replace(free, grounded=True), floor)
    depth = {n: floor[n] - plain.joints[n][:, 2] for n in FOOT_JOINTS}
    assert max(d[SUNK].max() for d in depth.values()) > 0.02  # it did sink
    for name in FOOT_JOINTS:
        assert grounded.joints[name][:, 2].min() >= floor[name] - 1e-6, name
    # Frames well away from any sinking are untouched (the lift eases over 7 frames).
    below = np.any([d > 0 for d in depth.values()], axis=0)
    near = np.convolve(below, np.ones(9), mode="same") > 0
    for name in ("lank", "rank", "ltoe", "rtoe", "lkne", "rkne", "head", "lwri"):
        np.testing.assert_allclose(grounded.joints[name][~near], plain.joints[name][~near],
                                   atol=1e-9)  # fmt: skip
    # The legs keep their lengths and the feet their orientation; the pelvis does not move.
    for side in "lr":
        for a, b in (("hip", "kne"), ("kne", "ank"), ("ank", "toe")):
            length = np.linalg.norm(grounded.joints[side + b] - grounded.joints[side + a], axis=-1)
            assert np.ptp(length) < 1e-9
        foot = grounded.joints[side + "toe"] - grounded.joints[side + "ank"]
        before = plain.joints[side + "toe"] - plain.joints[side + "ank"]
        np.testing.assert_allclose(foot, before, atol=1e-9)
    np.testing.assert_allclose(grounded.joints["pelv"], plain.joints["pelv"], atol=1e-12)


def test_a_target_rig_stands_where_its_motion_stands():
    """On a re-grounded target each foot joint's floor is where the feet stand in the take
    (``floor_heights``: both feet pooled): the 3 cm dip is lifted, the stance stays where it was
    (the rig's rest pose is not the floor)."""
    motion = world_motion("walk", 3.0, seed=21)
    joints = motion.joints.copy()
    dip = slice(40, 43)  # 3 of 90 frames: below the 5th percentile
    joints[dip, :, 2] -= 0.03
    spec = mixamo_like({n: v * 1.1 for n, v in _rest(motion).items()})
    plain = _solve(spec, joints, solve.RetargetParams())
    result = _solve(spec, joints, solve.RetargetParams(grounded=True))
    dips = []
    floors = grounding.floor_heights(plain.joints)
    for name in FOOT_JOINTS:
        floor = floors[name]
        dips.append(floor - plain.joints[name][dip, 2].min())
        assert result.joints[name][:, 2].min() >= floor - 1e-6
        high = plain.joints[name][:, 2] > floor + 0.05  # swinging: far above, untouched
        np.testing.assert_allclose(result.joints[name][high], plain.joints[name][high], atol=0.02)
    assert max(dips) > 0.025


def _rest(motion):
    rest = rest_joints(SKELETON, motion.joints)
    return {n: rest[j] for j, n in enumerate(SKELETON.joint_names)}


def test_modes_choose_what_the_solve_locks():
    detected = np.zeros((5, 4), bool)
    detected[1:3, 0] = True
    assert grounding.mode_contacts("auto", detected, 5) is detected
    assert grounding.mode_contacts("auto", None, 5) is None
    np.testing.assert_array_equal(grounding.mode_contacts("always", detected, 5), np.ones((5, 4)))
    assert grounding.mode_contacts("always", None, 5, channels=2).shape == (5, 2)
    assert grounding.mode_contacts("never", detected, 5) is None
    assert grounding.mode_contacts("grounded", detected, 5) is None
    assert [grounding.holds_feet(m) for m in grounding.CONTACT_MODES] == [True, True, False, False]
    assert [grounding.keeps_above_floor(m) for m in grounding.CONTACT_MODES] == [
        True, True, False, True,
    ]  # fmt: skip
    with pytest.raises(RetargetError, match="auto, always, never, grounded"):
        grounding.check_mode("sometimes")


def test_floor_heights_from_the_cleaning_or_where_the_feet_stand():
    extras = {"contact_clearance": np.array([[0.08, 0.09, 0.02, 0.021], [0.07, 0.07, 0.02, 0.02]]),
              "contact_channels": np.array(FOOT_JOINTS)}  # fmt: skip
    assert grounding.floor_from_extras(extras, 1) == {"lank": 0.07, "rank": 0.07, "ltoe": 0.02,
                                                      "rtoe": 0.02}  # fmt: skip
    assert grounding.floor_from_extras({}, 0) is None
    with pytest.raises(RetargetError, match="contact_clearance"):
        grounding.floor_from_extras(extras, 2)
    heights = np.linspace(0.0, 0.99, 100)
    joints = {n: np.stack([np.zeros(100), np.zeros(100), heights + k], 1)
              for k, n in enumerate(FOOT_JOINTS)}  # fmt: skip
    # lank/rank (+0, +1) and ltoe/rtoe (+2, +3) pooled: the 5th percentile of 200 heights
    pooled = {
        n: float(np.percentile(np.r_[heights + a, heights + b], 5))
        for n, a, b in (("lank", 0, 1), ("rank", 0, 1), ("ltoe", 2, 3), ("rtoe", 2, 3))
    }
    assert grounding.floor_heights(joints) == pytest.approx(pooled)
    assert pooled["lank"] == pytest.approx(0.0995)
    given = grounding.floor_heights(joints, clearance={"lank": 0.075})
    assert given["lank"] == 0.075 and given["rtoe"] == pytest.approx(pooled["rtoe"])
    del joints["ltoe"]
    assert grounding.floor_heights(joints)["rtoe"] == pytest.approx(3.0495)  # on its own
    assert set(grounding.floor_heights(joints)) == {"lank", "rank", "rtoe"}


def test_a_foot_down_in_few_frames_shares_the_other_feet_floor():
    """A one-legged stand: the right foot is up (30 cm) but for 3 of 100 frames. Its own 5th
    percentile would be a floor in the air; pooled with the standing foot it is the floor."""
    frames = 100
    right = np.full(frames, 0.30)
    right[:3] = 0.0
    joints = {"lank": np.zeros((frames, 3)), "rank": np.stack([np.zeros(frames)] * 2 + [right], 1)}
    assert np.percentile(right, 5) == pytest.approx(0.30)  # the per-foot floor it would get
    assert grounding.floor_heights(joints) == {"lank": 0.0, "rank": 0.0}
    low = grounding.low_feet(joints)
    assert low[:, 0].all() and low[:, 1].tolist() == [True] * 3 + [False] * 97


def test_low_feet_are_those_near_their_floor():
    z = np.array([0.10, 0.05, 0.02, 0.04, 0.20] * 4)  # the floor (5th percentile): 0.02
    joints = {"lank": np.stack([np.zeros(20), np.zeros(20), z], 1),
              "rank": np.stack([np.zeros(20), np.zeros(20), z[::-1] + 0.01], 1)}  # fmt: skip
    low = grounding.low_feet(joints, margin_m=0.03)
    np.testing.assert_array_equal(low[:5, 0], [False, True, True, True, False])
    np.testing.assert_array_equal(low[:5, 1], [False, True, True, False, False])


def test_grounding_needs_the_floor_the_cleaning_fitted():
    cleaned = {"world_from_camera": np.eye(4), "contact_clearance": np.zeros((1, 4)),
               "contact_channels": np.array(FOOT_JOINTS)}  # fmt: skip
    assert grounding.has_floor(cleaned)
    assert not grounding.has_floor({"world_from_camera": np.eye(4)})
    assert not grounding.has_floor({})
