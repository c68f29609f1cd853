"""Sources with fewer joints than smpl+head_30 drive rigs too (pure numpy): ``smpl_24`` (no head
points: the head bone follows neck -> head) and ``h36m_17`` (no lower/upper spine split, clavicles,
toes or hand points: those bones follow their parents). Each bone whose joints the source has
follows them exactly; the others keep their rest pose relative to their parent."""

import numpy as np
import pytest

from inference.training.synth.motion import SKELETON as FULL
from retarget import RetargetError, metrics, solve
from retarget.rotations import normalize
from retarget.skeletons import H36M_17, SMPL_24, get_rig_skeleton
from retarget.solve import rig, rigmaps
from tests.test_solve import LIMB_PAIRS, MOTIONS, SPECS


def _subset(joints: np.ndarray, skeleton) -> np.ndarray:
    return joints[:, [FULL.index(name) for name in skeleton.joint_names]]


def _generated(skeleton, joints):
    bones = rig.generated_rig(skeleton, rig.rest_joints(skeleton, joints))
    target = solve.TargetRig.from_bones(
        [b.name for b in bones], [b.parent for b in bones],
        np.array([b.head for b in bones]), np.array([b.tail for b in bones]),
    )  # fmt: skip
    return target, rigmaps.restrict(rigmaps.PRESETS["metrabs"], set(target.names))[0]


def _solve(spec_name, skeleton, joints):
    if spec_name == "own generated":
        target, mapping = _generated(skeleton, joints)
    else:
        spec = SPECS[spec_name]()
        values = rigmaps.PRESETS["rigify"].properties if spec.name == "rigify" else None
        target = spec.target_rig(values)
        mapping, _ = rigmaps.resolve_rig_map("auto", target.names, target.parents, target.heads)
    return solve.retarget(joints, skeleton, target, mapping, solve.RetargetParams())


def _angle_spread(a: np.ndarray, b: np.ndarray) -> float:
    """Range (degrees) over time of the angle between directions ``a`` and ``b`` ``(T, 3)``."""
    angles = metrics.direction_errors_deg(a, b)
    return float(angles.max() - angles.min())


@pytest.mark.parametrize("motion", MOTIONS)
@pytest.mark.parametrize("spec", [*SPECS, "own generated"])
@pytest.mark.parametrize("skeleton", [SMPL_24, H36M_17], ids=lambda s: s.name)
def test_bones_follow_the_joints_the_source_has(skeleton, spec, motion):
    joints = _subset(MOTIONS[motion], skeleton)
    result = _solve(spec, skeleton, joints)
    errors = []
    for a, b in LIMB_PAIRS:
        if {a, b} <= set(skeleton.joint_names) and {a, b} <= set(result.joints):
            source = joints[:, skeleton.index(b)] - joints[:, skeleton.index(a)]
            errors.append(metrics.direction_errors_deg(result.joints[b] - result.joints[a], source))
    errors = np.concatenate(errors)
    assert len(errors) >= 10 * len(joints)  # arms and legs at least: the check covers the limbs
    assert np.median(errors) <= 2.0 and np.percentile(errors, 95) <= 8.0
    assert errors.max() < 0.01  # exact for the bones the source has
    assert metrics.sign_flips(result.rotations) == 0
    assert metrics.twist_jumps(result.rotations, 90.0) == 0


@pytest.mark.parametrize("motion", MOTIONS)
def test_without_head_points_the_head_follows_neck_to_head(motion):
    joints = _subset(MOTIONS[motion], SMPL_24)
    result = _solve("mixamo other proportions + roll", SMPL_24, joints)
    head_axis = result.joints["htop"] - result.joints["head"]  # the target head bone's own axis
    source = joints[:, SMPL_24.index("head")] - joints[:, SMPL_24.index("neck")]
    assert _angle_spread(head_axis, source) < 0.01  # carried rigidly by the neck -> head line
    truth = MOTIONS[motion]
    true_axis = truth[:, FULL.index("htop")] - truth[:, FULL.index("head")]
    # The rest pose's offset is gone: where the true head does not nod, the axis is the truth's.
    if motion != "reach":
        assert metrics.direction_errors_deg(head_axis, true_axis).max() < 1.0


@pytest.mark.parametrize("motion", MOTIONS)
def test_bones_the_source_cannot_see_keep_their_rest_pose_on_their_parent(motion):
    joints = _subset(MOTIONS[motion], H36M_17)
    result = _solve("mixamo other proportions + roll", H36M_17, joints)
    for side in "lr":
        shin = result.joints[side + "ank"] - result.joints[side + "kne"]
        foot = result.joints[side + "toe"] - result.joints[side + "ank"]
        assert _angle_spread(shin, foot) < 0.01  # no toes: the foot rides on the shin
        hand = result.joints[side + "han"] - result.joints[side + "wri"]
        forearm = result.joints[side + "wri"] - result.joints[side + "elb"]
        assert _angle_spread(forearm, hand) < 0.01
    assert np.all(np.isfinite(result.rotations))


def test_generated_rigs_of_smaller_skeletons():
    walk = MOTIONS["walk"]
    bones = {
        b.name: b
        for b in rig.generated_rig(SMPL_24, rig.rest_joints(SMPL_24, _subset(walk, SMPL_24)))
    }
    head, neck = bones["head"], bones["neck"]
    # The head bone continues the neck -> head line (no head top to aim at).
    assert metrics.direction_errors_deg(head.tail - head.head, neck.tail - neck.head) < 1e-6
    h36m = rig.rest_joints(H36M_17, _subset(walk, H36M_17))
    bones = {b.name: b for b in rig.generated_rig(H36M_17, h36m)}
    assert set(bones) == {
        "pelvis", "thigh.L", "thigh.R", "shin.L", "shin.R", "foot.L", "foot.R", "spine.001",
        "neck", "head", "upper_arm.L", "upper_arm.R", "forearm.L", "forearm.R", "hand.L",
        "hand.R",
    }  # fmt: skip
    assert bones["upper_arm.L"].parent == "neck" and bones["spine.001"].parent == "pelvis"
    foot = normalize(bones["foot.L"].tail - bones["foot.L"].head)
    np.testing.assert_allclose(foot, normalize(np.array([0.0, -1.0, -1.0])), atol=1e-9)
    # Shoulders keep their measured offset from the neck (not stacked on it).
    assert np.linalg.norm(bones["upper_arm.L"].head - bones["neck"].head) > 0.1


def test_a_skeleton_that_cannot_drive_a_rig_is_refused_naming_those_that_can():
    with pytest.raises(RetargetError, match="smpl\\+head_30, smpl_24, h36m_17"):
        get_rig_skeleton("coco_19")
