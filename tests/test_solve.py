"""The general rotation solve on test rigs (pure numpy): ground-truth motion in, posed target joints
out (the solver's own forward kinematics; the Blender tests read the same from real pose bones)."""

import numpy as np
import pytest

from inference.training.synth.motion import SKELETON
from retarget import RetargetError, frames, metrics, solve
from retarget.rotations import (
    make_continuous,
    matrix_to_quaternion,
    normalize,
    quaternion_to_axis_angle,
    quaternion_to_euler,
    quaternion_to_matrix,
)
from retarget.solve import rigmaps
from retarget.solve.target import build_plan, chain_point
from tests.test_solve_rigs import (
    autorigpro_like,
    canonical_rest,
    generated_like,
    metarig_like,
    mixamo_like,
    reach_motion,
    rigify_like,
    unreal_like,
    world_motion,
)

LIMB_PAIRS = [
    (s + a, s + b)
    for s in "lr"
    for a, b in (("cla", "sho"), ("sho", "elb"), ("elb", "wri"), ("wri", "han"),
                 ("hip", "kne"), ("kne", "ank"), ("ank", "toe"))
] + [("pelv", "bell"), ("neck", "head"), ("head", "htop")]  # fmt: skip
END_EFFECTORS = ("lwri", "rwri", "lank", "rank", "head")


def solve_on(spec, joints, params=None, contacts=None, rig_map="auto"):
    params = params or solve.RetargetParams()
    preset = rigmaps.PRESETS.get(spec.name)  # its switches, as the import sets them
    values = preset.properties if preset is not None else None
    rig = spec.target_rig(values)
    mapping, report = rigmaps.resolve_rig_map(rig_map, rig.names, rig.parents, rig.heads)
    return solve.retarget(joints, SKELETON, rig, mapping, params, contacts), mapping, rig, report


def direction_errors(result, joints) -> np.ndarray:
    errors = []
    for a, b in LIMB_PAIRS:
        if a in result.joints and b in result.joints:
            source = joints[:, SKELETON.index(b)] - joints[:, SKELETON.index(a)]
            target = result.joints[b] - result.joints[a]
            errors.append(metrics.direction_errors_deg(target, source))
    return np.concatenate(errors)


MOTIONS = {
    "walk": world_motion("walk", 3.0, seed=1, turn_deg_per_s=25.0).joints,
    "run": world_motion("run", 2.0, seed=2).joints,
    "reach": reach_motion(2.0),
}
SPECS = {
    "generated": lambda: generated_like(canonical_rest()),
    "mixamo other proportions + roll": lambda: mixamo_like(
        canonical_rest(1.9, arms=1.1, legs=0.92, torso=1.05), rng=np.random.default_rng(1)
    ),
    "unreal 5 spine + roll": lambda: unreal_like(canonical_rest(1.6), rng=np.random.default_rng(2)),
    "metarig A-pose": lambda: metarig_like(
        canonical_rest(a_pose_deg=45.0, elbow_bend_deg=12.0, knee_bend_deg=6.0)
    ),
    "rigify FK controls": lambda: rigify_like(canonical_rest(), rng=np.random.default_rng(3)),
    "auto-rig pro FK controls": lambda: autorigpro_like(
        canonical_rest(1.8, legs=1.05), rng=np.random.default_rng(4)
    ),
}


@pytest.mark.parametrize("motion", MOTIONS)
@pytest.mark.parametrize("spec", SPECS)
def test_limb_directions_follow_the_source(spec, motion):
    joints = MOTIONS[motion]
    result, _mapping, _rig, _report = solve_on(SPECS[spec](), joints)
    errors = direction_errors(result, joints)
    assert np.median(errors) <= 2.0 and np.percentile(errors, 95) <= 8.0
    assert errors.max() < 0.01  # the solve is exact for bone directions; no locking here
    assert metrics.sign_flips(result.rotations) == 0
    assert metrics.twist_jumps(result.rotations, 90.0) == 0
    np.testing.assert_allclose(np.linalg.norm(result.rotations, axis=-1), 1.0, atol=1e-9)


def same_proportion_rest(joints) -> dict:
    from retarget.solve.rig import rest_joints

    rest = rest_joints(SKELETON, joints)
    return {name: rest[j] for j, name in enumerate(SKELETON.joint_names)}


@pytest.mark.parametrize("builder", [generated_like, mixamo_like, unreal_like])
def test_end_effectors_on_a_same_proportion_rig(builder):
    joints = MOTIONS["walk"]
    rest = same_proportion_rest(joints)
    spec = (
        builder(rest) if builder is generated_like else builder(rest, rng=np.random.default_rng(7))
    )
    params = solve.RetargetParams(root_motion="camera", reground=False)
    result, *_ = solve_on(spec, joints, params)
    assert result.hip_ratio == pytest.approx(1.0, abs=1e-9)
    for name in END_EFFECTORS:
        error = np.linalg.norm(result.joints[name] - joints[:, SKELETON.index(name)], axis=-1)
        assert error.max() < 0.02, name  # 2 cm
    # The generated layout reproduces every joint, not only the ends.
    if builder is generated_like:
        for name, position in result.joints.items():
            if name in SKELETON.joint_names:  # not the toe tips the source does not have
                np.testing.assert_allclose(position, joints[:, SKELETON.index(name)], atol=1e-6)


def test_roll_does_not_change_the_pose():
    joints = MOTIONS["reach"]
    rest = canonical_rest(1.8, arms=1.05)
    plain = solve_on(mixamo_like(rest), joints)[0]
    rolled = solve_on(mixamo_like(rest, rng=np.random.default_rng(11)), joints)[0]
    for name in plain.joints:
        np.testing.assert_allclose(rolled.joints[name], plain.joints[name], atol=1e-9)
    for name in plain.deltas:  # armature-space change from rest: the same whatever the roll
        np.testing.assert_allclose(rolled.deltas[name], plain.deltas[name], atol=1e-9)
    assert not np.allclose(rolled.rotations, plain.rotations, atol=1e-3)  # keys differ, pose not


def test_twist_follows_the_limb_plane_when_bent():
    """Bent elbows and knees: the target's hinge axis (its rest hinge carried by the solved
    rotation) lies along the source limb's plane normal."""
    spec = metarig_like(canonical_rest(a_pose_deg=40.0, elbow_bend_deg=10.0, knee_bend_deg=5.0))
    checked = 0
    for motion, hinge, upper, (a, b, c) in (
        (reach_motion(2.0, elbow_flex_deg=110.0), "elbow", "upper_arm", ("sho", "elb", "wri")),
        (MOTIONS["walk"], "knee", "thigh", ("hip", "kne", "ank")),
    ):
        joints = motion
        result, mapping, rig, _ = solve_on(spec, joints)
        plan = build_plan(rig, mapping)
        for side in "lr":
            pa, pb, pc = (joints[:, SKELETON.index(side + n)] for n in (a, b, c))
            bend = np.cross(normalize(pc - pb), normalize(pb - pa))
            bent = np.linalg.norm(bend, axis=-1) > np.sin(np.radians(25.0))
            rest_axis = plan.hinge_rest[f"{side}.{hinge}"]
            bone = mapping.bones[f"{upper}.{side.upper()}"][0]
            axis = np.einsum("tij,j->ti", result.deltas[bone], rest_axis)
            angle = metrics.direction_errors_deg(axis[bent], bend[bent])
            assert bent.sum() > 10 and angle.max() < 1e-4
            checked += 1
    assert checked == 4


def test_straight_arms_raised_overhead_stay_smooth():
    """The reach motion keeps the elbows straight (no limb plane): twist comes from the swing
    fallback and must change smoothly; no flips through the overhead pose."""
    joints = MOTIONS["reach"]
    result, mapping, *_ = solve_on(
        mixamo_like(canonical_rest(), rng=np.random.default_rng(4)), joints
    )
    names = result.bone_names
    for slot in ("upper_arm.L", "forearm.L", "upper_arm.R", "forearm.R"):
        q = result.rotations[:, names.index(mapping.bones[slot][0])]
        steps = np.degrees(2 * np.arccos(np.clip(np.abs(np.sum(q[1:] * q[:-1], -1)), 0, 1)))
        assert steps.max() < 12.0, slot  # the whole motion moves < 10°/frame
    assert metrics.sign_flips(result.rotations) == 0
    assert metrics.twist_jumps(result.rotations, 90.0) == 0


@pytest.mark.parametrize("count", [3, 5])
def test_spine_chains_are_laid_along_the_source_spine(count):
    joints = MOTIONS["reach"]  # the trunk twists 35°: the chain must share it out
    rest = canonical_rest()
    spec = unreal_like(rest, spine_count=count) if count == 5 else mixamo_like(rest)
    result, mapping, rig, _ = solve_on(spec, joints)
    plan = build_plan(rig, mapping)
    chain = [u for u in plan.units if u.slot == "spine"]
    assert len(chain) == count
    points = np.stack([joints[:, SKELETON.index(n)] for n in ("bell", "spin", "thor", "neck")], 1)
    lengths = np.linalg.norm(np.diff(points[0], axis=0), axis=-1)
    fractions = np.concatenate([[0.0], np.cumsum(lengths)]) / lengths.sum()
    twists = []
    for unit in chain:
        source = chain_point(points, fractions, unit.tail) - chain_point(
            points, fractions, unit.head
        )
        bone = rig.names[unit.bones[0]]
        target = np.einsum("tij,j->ti", result.deltas[bone], unit.rest_direction)
        assert metrics.direction_errors_deg(target, source).max() < 1e-4
        lateral = np.einsum("tij,j->ti", result.deltas[bone], [1.0, 0.0, 0.0])
        twists.append(np.degrees(np.arctan2(lateral[:, 1], lateral[:, 0])))
    # Twist grows monotonically up the chain (shared out, not dumped on one bone)...
    peak = np.argmax(np.abs(twists[-1]))
    along = np.array([t[peak] for t in twists])
    assert np.all(np.diff(np.abs(along)) >= -1e-9) and abs(along[0]) < abs(along[-1])
    # ... and the top bone carries the shoulders' full twist: the shoulders land where they are.
    for side in "lr":
        target = result.joints[side + "sho"] - result.joints[side + "cla"]
        source = joints[:, SKELETON.index(side + "sho")] - joints[:, SKELETON.index(side + "cla")]
        assert metrics.direction_errors_deg(target, source).max() < 1e-4


def test_root_motion_modes_scale_by_leg_length_and_reground():
    motion = world_motion("walk", 2.0, seed=3, start_xy=(2.0, 1.0))
    joints = motion.joints
    rest = canonical_rest(1.95, legs=1.1)  # a taller rig, longer legs
    spec = mixamo_like(rest, rng=np.random.default_rng(5))
    pelvis = joints[:, SKELETON.index("pelv")]
    results = {
        mode: solve_on(spec, joints, solve.RetargetParams(root_motion=mode))[0]
        for mode in solve.ROOT_MOTIONS
    }
    ratio = results["camera"].hip_ratio
    assert ratio == pytest.approx(1.95 / 1.75 * 1.1, rel=1e-9)  # legs scaled with height, x1.1
    camera = results["camera"].joints["pelv"]
    relative = results["relative"].joints["pelv"]
    in_place = results["in_place"].joints["pelv"]
    np.testing.assert_allclose(camera[:, :2], ratio * pelvis[:, :2], atol=1e-9)
    np.testing.assert_allclose(relative[0, :2], rest["pelv"][:2], atol=1e-9)
    np.testing.assert_allclose(
        relative[:, :2] - relative[0, :2], ratio * (pelvis[:, :2] - pelvis[0, :2]), atol=1e-9
    )
    np.testing.assert_allclose(in_place[:, :2], np.tile(rest["pelv"][:2], (len(joints), 1)))
    for result in results.values():
        feet = np.min([result.joints[n][:, 2] for n in frames.FOOT_JOINTS], axis=0)
        rest_lowest = min(rest[n][2] for n in frames.FOOT_JOINTS)
        assert np.percentile(feet, 5) == pytest.approx(rest_lowest, abs=1e-9)
        assert feet.min() > rest_lowest - 0.01  # no foot sinks more than 1 cm into the floor


def test_root_location_key_moves_the_root_bone_head():
    joints = MOTIONS["run"]
    spec = unreal_like(canonical_rest(), rng=np.random.default_rng(8))
    result, mapping, rig, _ = solve_on(spec, joints, solve.RetargetParams(root_motion="camera"))
    assert result.root_bone == "pelvis" and result.bone_names[0] == "pelvis"
    b = rig.index("pelvis")
    head = rig.heads[b] + result.root_location @ rig.rotations[b].T  # bone-local -> armature
    pelvis_to_head = rig.heads[b] - canonical_rest()["pelv"]
    np.testing.assert_allclose(head, result.joints["pelv"] + pelvis_to_head, atol=1e-9)


def test_joint_limits_clamp_local_rotations():
    joints = MOTIONS["reach"]
    spec = mixamo_like(canonical_rest(), rng=np.random.default_rng(9))
    free = solve_on(spec, joints)[0]
    free_angles = np.degrees(2 * np.arccos(np.clip(np.abs(free.rotations[..., 0]), 0, 1)))
    for table in (solve.JOINT_LIMITS_DEG, {**solve.JOINT_LIMITS_DEG, "upper_arm": 60.0}):
        params = solve.RetargetParams(joint_limits=table)
        limited, mapping, *_ = solve_on(spec, joints, params)
        angles = np.degrees(2 * np.arccos(np.clip(np.abs(limited.rotations[..., 0]), 0, 1)))
        for k, name in enumerate(limited.bone_names):
            slot = next(s for s, bones in mapping.bones.items() if name in bones)
            assert angles[:, k].max() <= table[slot.split(".")[0]] + 1e-6
        assert metrics.sign_flips(limited.rotations) == 0
    np.testing.assert_allclose(  # the default table leaves this (anatomical) motion alone
        solve_on(spec, joints, solve.RetargetParams(joint_limits=solve.JOINT_LIMITS_DEG))[
            0
        ].rotations,
        free.rotations,
        atol=1e-12,
    )
    assert (free_angles > angles + 1.0).any()  # raising the arms overhead exceeds 60°
    # Children still aim at their targets from the clamped parent: forearm directions are exact.
    for side in "lr":
        target = limited.joints[side + "wri"] - limited.joints[side + "elb"]
        source = joints[:, SKELETON.index(side + "wri")] - joints[:, SKELETON.index(side + "elb")]
        assert metrics.direction_errors_deg(target, source).max() < 1e-4


def test_unmapped_bones_follow_their_parent_and_are_not_keyed():
    spec = unreal_like(canonical_rest(), rng=np.random.default_rng(10))
    result, mapping, rig, report = solve_on(spec, MOTIONS["walk"])
    assert "upperarm_twist_01_l" not in result.bone_names and "root" not in result.bone_names
    assert report.unmapped_count == len(rig.names) - len(result.bone_names)


def test_refuses_rigs_it_cannot_drive():
    spec = mixamo_like(canonical_rest())
    rig = spec.target_rig()
    mapping = rigmaps.PRESETS["mixamo"]
    with pytest.raises(RetargetError, match="root bone 'mixamorig:Spine' sits below"):
        prefixed = rigmaps._prefixed(mapping, "mixamorig:")
        moved = rigmaps.RigMap("x", prefixed.bones, root="mixamorig:Spine")
        solve.retarget(MOTIONS["walk"], SKELETON, rig, moved)
    with pytest.raises(RetargetError, match="NaN"):
        broken = MOTIONS["walk"].copy()
        broken[3, 5] = np.nan
        solve.retarget(broken, SKELETON, rig, rigmaps._prefixed(mapping, "mixamorig:"))
    with pytest.raises(RetargetError, match="root motion 'orbit'"):
        solve.RetargetParams(root_motion="orbit")


def test_rest_rotation_and_local_key_compose_to_the_armature_delta():
    """q_local = r⁻¹ Δ_parent⁻¹ Δ r: rebuilding each bone's armature matrix from the keys."""
    spec = rigify_like(canonical_rest(), rng=np.random.default_rng(12))
    result, mapping, rig, _ = solve_on(spec, MOTIONS["walk"])
    for k, name in enumerate(result.bone_names):
        b = rig.index(name)
        parent = rig.parents[b]
        parent_delta = result.deltas.get(rig.names[parent]) if parent >= 0 else None
        if parent_delta is None:
            continue  # parent not keyed (e.g. an MCH bone): checked through the joints above
        rest = rig.rotations[b]
        rebuilt = parent_delta @ rest @ quaternion_to_matrix(result.rotations[:, k]) @ rest.T
        np.testing.assert_allclose(rebuilt, result.deltas[name], atol=1e-9)


def euler_rotation(angles: np.ndarray, order: str) -> np.ndarray:
    """Rotation matrices (T, 3, 3) of Euler channels (T, 3) in X, Y, Z order, ``order``'s first
    letter applied first."""
    rebuilt = np.tile(np.eye(3), (len(angles), 1, 1))
    for axis in order:
        k = "XYZ".index(axis)
        half = 0.5 * angles[:, k]
        unit = np.zeros((len(angles), 3))
        unit[:, k] = np.sin(half)
        rebuilt = quaternion_to_matrix(np.concatenate([np.cos(half)[:, None], unit], 1)) @ rebuilt
    return rebuilt


@pytest.mark.parametrize("order", ["XYZ", "ZXY"])
def test_euler_channels_stay_continuous_through_the_middle_axis_at_90_degrees(order):
    """A bone swinging through 90° about the middle axis: the other Euler triple takes over
    smoothly instead of the channels flipping by 180° between two keys."""
    sweep = np.linspace(0.2, 2.8, 200)  # radians about the middle axis, through pi/2
    channels = np.zeros((200, 3))
    channels[:, "XYZ".index(order[0])], channels[:, "XYZ".index(order[2])] = 0.3, -0.4
    channels[:, "XYZ".index(order[1])] = sweep
    matrices = euler_rotation(channels, order)
    q = make_continuous(matrix_to_quaternion(matrices))
    angles = quaternion_to_euler(q, order)
    assert np.abs(np.diff(angles, axis=0)).max() < 0.05  # the sweep's step is 0.013
    np.testing.assert_allclose(euler_rotation(angles, order), matrices, atol=1e-9)


@pytest.mark.parametrize("order", ["XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX"])
def test_euler_channels_rebuild_the_rotation(order, rng):
    q = make_continuous(normalize(np.cumsum(rng.normal(scale=0.2, size=(400, 4)), axis=0)))
    angles = quaternion_to_euler(q, order)
    assert np.abs(np.diff(angles, axis=0)).max() < np.pi  # unwrapped: no 2π jumps
    np.testing.assert_allclose(euler_rotation(angles, order), quaternion_to_matrix(q), atol=1e-9)
    axis_angle = quaternion_to_axis_angle(q)
    back = np.concatenate(
        [np.cos(axis_angle[:, :1] / 2), np.sin(axis_angle[:, :1] / 2) * axis_angle[:, 1:]], 1
    )
    np.testing.assert_allclose(quaternion_to_matrix(back), quaternion_to_matrix(q), atol=1e-9)
