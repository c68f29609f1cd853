"""The hand solve (retarget/solve/hands.py) on synthetic ground truth: a walk whose hands roll by
known angles (the thumb side turned about the hand's axis) and open and close by known amounts.
Pure numpy; the official model's hand points are not used (the test model's are copies)."""

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from retarget import solve
from retarget.rotations import normalize, quaternion_to_matrix
from retarget.skeletons import SMPL_HEAD_30, SMPL_HEAD_HANDS_34
from retarget.solve import hands, rigmaps
from retarget.solve.rig import generated_rig, rest_joints
from retarget.solve.target import TargetRig, build_plan
from tests.test_solve_rigs import (
    FORWARD,
    RigSpec,
    _with_rolls,
    canonical_rest,
    mixamo_like,
    world_motion,
)

ROLL_DEG = 75.0  # amplitude of the hands' roll about their axes
THUMB = (0.045, 0.035)  # the thumb point: along the hand, across it (m)
HAND_END = 0.19  # wrist -> hand end (m), open


def _axis_turn(axis: np.ndarray, angle: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """``vector`` ``(T, 3)`` turned about unit ``axis`` ``(T, 3)`` by ``angle`` ``(T,)``."""
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    return (
        c * vector
        + s * np.cross(axis, vector)
        + (1 - c) * np.sum(axis * vector, -1)[:, None] * axis
    )


def with_hands(joints: np.ndarray, roll: np.ndarray | None = None, curl: np.ndarray | None = None):
    """The smpl+head_30 motion ``(T, 30, 3)`` with hand points ``(T, 34, 3)`` and the true thumb
    side per hand ``{"l": (T, 3), "r": (T, 3)}``: the thumb side starts across the hand facing the
    way the body faces and turns by ``roll`` (radians, ``(T,)``, the same for both hands); the
    hand end comes in towards the wrist by 40 % of its length at ``curl`` 1."""
    num = len(joints)
    roll = np.zeros(num) if roll is None else roll
    curl = np.zeros(num) if curl is None else curl
    get = {n: joints[:, i] for i, n in enumerate(SMPL_HEAD_30.joint_names)}
    facing = normalize(np.cross(np.array([0.0, 0.0, 1.0]), get["lhip"] - get["rhip"]))
    points, sides = {}, {}
    for p in "lr":
        wrist = get[p + "wri"]
        axis = normalize(get[p + "han"] - wrist)
        reference = normalize(facing - np.sum(facing * axis, -1, keepdims=True) * axis)
        side = _axis_turn(axis, roll, reference)
        sides[p] = side
        thumb = wrist + THUMB[0] * axis + THUMB[1] * side
        end = wrist + HAND_END * (1.0 - 0.4 * curl)[:, None] * axis
        points[p + "thu"], points[p + "fin"] = thumb, end
    extra = np.stack([points[n] for n in ("lthu", "lfin", "rthu", "rfin")], axis=1)
    return np.concatenate([joints, extra], axis=1), sides


def generated_spec(joints: np.ndarray) -> tuple[TargetRig, rigmaps.RigMap, np.ndarray]:
    rest = rest_joints(SMPL_HEAD_HANDS_34, joints)
    bones = generated_rig(SMPL_HEAD_HANDS_34, rest)
    rig = TargetRig.from_bones([b.name for b in bones], [b.parent for b in bones],
                               np.array([b.head for b in bones]), np.array([b.tail for b in bones]))  # fmt: skip
    mapping = rigmaps.restrict(rigmaps.PRESETS["metrabs"], set(rig.names))[0]
    return rig, mapping, rest


def full_hands(spec: RigSpec, prefix: str = "mixamorig:", rng=None) -> RigSpec:
    """``spec`` (Mixamo-like) with a thumb and four three-bone fingers per hand, palms down and
    thumbs forward (the T-pose's -Y), on random rolls."""
    j = spec.joints
    bones = [(n, p, h, t) for n, p, h, t, _ in spec.bones if "HandIndex1" not in n]
    for side, s in (("Left", "l"), ("Right", "r")):
        wrist, hand = j[s + "wri"], j[s + "han"]
        along = normalize(hand - wrist)
        thumb_side = FORWARD - np.dot(FORWARD, along) * along
        thumb_side = thumb_side / np.linalg.norm(thumb_side)
        start = wrist + 0.025 * along + 0.02 * thumb_side
        direction = normalize(along + thumb_side)
        parent = f"{prefix}{side}Hand"
        for k in range(1, 4):
            name = f"{prefix}{side}HandThumb{k}"
            bones.append((name, parent, start, start + 0.03 * direction))
            start, parent = start + 0.03 * direction, name
        for f, finger in enumerate(("Index", "Middle", "Ring", "Pinky")):
            start = hand + (0.015 - 0.01 * f) * thumb_side
            parent = f"{prefix}{side}Hand"
            for k in range(1, 4):
                name = f"{prefix}{side}Hand{finger}{k}"
                bones.append((name, parent, start, start + 0.025 * along))
                start, parent = start + 0.025 * along, name
    return dataclasses.replace(spec, bones=_with_rolls(bones, rng))


def _roll():
    motion = world_motion("walk", 4.0, seed=31)
    t = motion.frame_times
    return motion.joints, np.radians(ROLL_DEG) * np.sin(2 * np.pi * 0.4 * t)


def _thumb_side_errors(result, rest_thumb, rest_wrist, sides, bone_suffix="") -> np.ndarray:
    """Angle (degrees, per frame and hand) between the posed rig's thumb side and the truth's."""
    errors = []
    for p, side in (("l", "L"), ("r", "R")):
        delta = result.deltas[f"{bone_suffix}{side}"] if bone_suffix else None
        wrist, hand = result.joints[p + "wri"], result.joints[p + "han"]
        axis = normalize(hand - wrist)
        thumb = np.einsum("tij,j->ti", delta, rest_thumb[p] - rest_wrist[p])
        across = normalize(thumb - np.sum(thumb * axis, -1, keepdims=True) * axis)
        errors.append(np.degrees(np.arccos(np.clip(np.sum(across * sides[p], -1), -1, 1))))
    return np.concatenate(errors)


def test_the_generated_rigs_hands_roll_with_the_thumb():
    body, roll = _roll()
    joints, sides = with_hands(body, roll)
    rig, mapping, rest = generated_spec(joints)
    assert {"thumb.L", "thumb.R"} <= set(rig.names)
    params = solve.RetargetParams(root_motion="camera", reground=False)
    result = solve.retarget(joints, SMPL_HEAD_HANDS_34, rig, mapping, params)
    index = SMPL_HEAD_HANDS_34.index
    rest_thumb = {p: rest[index(p + "thu")] for p in "lr"}
    rest_wrist = {p: rest[index(p + "wri")] for p in "lr"}
    errors = _thumb_side_errors(result, rest_thumb, rest_wrist, sides, "hand.")
    assert errors.max() < 0.5  # degrees: the roll is the truth's
    # Without the hand points the hand only swings: the roll is lost.
    plain = solve.retarget(body, SMPL_HEAD_30, rig, mapping, params)
    lost = _thumb_side_errors(plain, rest_thumb, rest_wrist, sides, "hand.")
    assert np.percentile(lost, 90) > 40.0


def test_a_mixamo_rig_of_other_proportions_rolls_its_hands_by_its_thumb_bones():
    body, roll = _roll()
    joints, sides = with_hands(body, roll)
    spec = full_hands(mixamo_like(canonical_rest(1.9, arms=1.1)), rng=np.random.default_rng(4))
    rig = spec.target_rig()
    mapping, _ = rigmaps.resolve_rig_map("auto", rig.names, rig.parents, rig.heads)
    result = solve.retarget(joints, SMPL_HEAD_HANDS_34, rig, mapping)
    plan = build_plan(rig, mapping)
    for p, side in (("l", "Left"), ("r", "Right")):
        delta = result.deltas[f"mixamorig:{side}Hand"]
        direction = normalize(plan.joints[p + "han"] - plan.joints[p + "wri"])
        rest_side = hands.rest_thumb_side(plan, side[0], direction)
        np.testing.assert_allclose(rest_side, normalize(FORWARD - np.dot(FORWARD, direction)
                                                        * direction), atol=1e-9)  # fmt: skip
        posed = np.einsum("tij,j->ti", delta, rest_side)
        error = np.degrees(np.arccos(np.clip(np.sum(posed * sides[p], -1), -1, 1)))
        assert error.max() < 0.5, side
    # No curl: the hand end does not come in, the fingers are not keyed.
    assert not any("Index" in name for name in result.bone_names)


def test_a_thumb_on_the_hands_axis_keeps_the_swing():
    """A model that predicts the thumb at the hand joint (the test model's copies) tells no roll:
    the hands are solved as without the hand points."""
    body, _ = _roll()
    joints, _ = with_hands(body)
    hand = {p: SMPL_HEAD_30.index(p + "han") for p in "lr"}
    for p, offset in (("l", 30), ("r", 32)):
        joints[:, offset] = joints[:, hand[p]]
    rig, mapping, _ = generated_spec(joints)
    params = solve.RetargetParams(root_motion="camera", reground=False)
    with_points = solve.retarget(joints, SMPL_HEAD_HANDS_34, rig, mapping, params)
    without = solve.retarget(body, SMPL_HEAD_30, rig, mapping, params)
    for name in ("hand.L", "hand.R"):
        np.testing.assert_allclose(with_points.deltas[name], without.deltas[name], atol=1e-9)


def test_the_roll_is_the_hands_own_twist_in_its_local_key():
    """The thumb changes the hand's local key by a turn about the hand bone's own axis only (its
    direction is the swing's), and that twist sweeps with the truth's roll."""
    body, roll = _roll()
    joints, _ = with_hands(body, roll)
    rig, mapping, _ = generated_spec(joints)
    params = solve.RetargetParams(root_motion="camera", reground=False)
    result = solve.retarget(joints, SMPL_HEAD_HANDS_34, rig, mapping, params)
    plain = solve.retarget(body, SMPL_HEAD_30, rig, mapping, params)
    for name in ("hand.L", "hand.R"):
        k = result.bone_names.index(name)
        swing = quaternion_to_matrix(plain.rotations[:, k])
        relative = swing.swapaxes(-1, -2) @ quaternion_to_matrix(result.rotations[:, k])
        np.testing.assert_allclose(relative[:, :, 1], np.tile([0.0, 1.0, 0.0], (len(roll), 1)),
                                   atol=1e-9)  # fmt: skip
        twist = np.unwrap(np.arctan2(relative[:, 0, 2] - relative[:, 2, 0],
                                     relative[:, 0, 0] + relative[:, 2, 2]))  # fmt: skip
        assert np.degrees(np.ptp(twist)) > 1.6 * ROLL_DEG
        assert abs(np.corrcoef(twist, roll)[0, 1]) > 0.9


def test_a_measurable_opening_curls_the_fingers_towards_the_palm():
    body, roll = _roll()
    t = np.linspace(0.0, 1.0, len(body))
    curl = np.clip(1.5 * np.sin(2 * np.pi * t) ** 2 - 0.25, 0.0, 1.0)  # open a while, fist a while
    joints, _ = with_hands(body, roll, curl)
    measured = hands.opening_curl(joints[:, SMPL_HEAD_30.index("lwri")], joints[:, 31])
    np.testing.assert_allclose(measured, curl, atol=1e-9)
    spec = full_hands(mixamo_like(canonical_rest()), rng=np.random.default_rng(6))
    rig = spec.target_rig()
    mapping, _ = rigmaps.resolve_rig_map("auto", rig.names, rig.parents, rig.heads)
    result = solve.retarget(joints, SMPL_HEAD_HANDS_34, rig, mapping)
    fingers = [n for n in result.bone_names if "Hand" in n and n[-1].isdigit() and "Thumb" not in n]
    assert len(fingers) == 2 * 4 * 3  # every finger bone of both hands, no thumb
    for name in fingers:
        q = result.rotations[:, result.bone_names.index(name)]
        angle = 2 * np.degrees(np.arccos(np.clip(np.abs(q[:, 0]), -1, 1)))
        place = int(name[-1]) - 1
        np.testing.assert_allclose(angle, hands.CURL_DEG[place] * curl, atol=1e-6)
    # At rest the palm faces down: a curled first index bone points down (towards the palm).
    b = rig.index("mixamorig:LeftHandIndex1")
    q = result.rotations[:, result.bone_names.index("mixamorig:LeftHandIndex1")]
    turn = rig.rotations[b] @ quaternion_to_matrix(q) @ rig.rotations[b].T
    rest_direction = normalize(rig.tails[b] - rig.heads[b])
    curled = np.einsum("tij,j->ti", turn, rest_direction)
    fist = curl > 0.9
    assert np.all(curled[fist, 2] < -0.7)  # z: down
    # The official model's hand end is rigid (and the cleaning keeps bone lengths): no curl.
    rigid, _ = with_hands(body, roll)
    assert hands.opening_curl(rigid[:, SMPL_HEAD_30.index("lwri")], rigid[:, 31]) is None
    stiff = solve.retarget(rigid, SMPL_HEAD_HANDS_34, rig, mapping)
    assert not any(n in stiff.bone_names for n in fingers)


@pytest.mark.parametrize("rig_name", ["rigify", "metarig", "smplx"])
def test_finger_chains_are_found_by_name(rig_name):
    """Rigify's FK finger controls (not their ORG/DEF/MCH copies or master controls), the
    metarig's and SMPL-X's fingers: three bones each, from the hand outwards."""
    hand, chain, others = {
        "rigify": ("hand_fk.L", ["f_index.01.L", "f_index.02.L", "f_index.03.L"],
                   ["ORG-f_index.01.L", "DEF-f_index.01.L", "MCH-f_index.01.L",
                    "f_index.01_master.L", "thumb.01.L"]),
        "metarig": ("hand.L", ["f_index.01.L", "f_index.02.L", "f_index.03.L"], ["thumb.01.L"]),
        "smplx": ("left_wrist", ["left_index1", "left_index2", "left_index3"], ["left_thumb1"]),
    }[rig_name]  # fmt: skip
    x = np.array([1.0, 0.0, 0.0])
    bones = [("forearm", None, np.zeros(3), 0.2 * x), (hand, "forearm", 0.2 * x, 0.3 * x)]
    parent = hand
    for k, name in enumerate(chain):
        bones.append((name, parent, (0.3 + 0.02 * k) * x, (0.32 + 0.02 * k) * x))
        parent = name
    bones += [(name, hand, 0.3 * x, 0.32 * x) for name in others]
    rig = TargetRig.from_bones([b[0] for b in bones], [b[1] for b in bones],
                               np.array([b[2] for b in bones]), np.array([b[3] for b in bones]))  # fmt: skip
    plan = SimpleNamespace(rig=rig, rig_map=rigmaps.RigMap("test", {"hand.L": (hand,)}))
    chains = hands.finger_chains(plan, "L")
    assert [[rig.names[b] for b in found] for found in chains] == [chain]
