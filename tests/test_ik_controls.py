"""IK controls keyed from the solved pose (pure numpy): posing each control by its keys the way
Blender evaluates a pose bone (its parent at rest or carried by a slot's motion; location along
the bone's own rest axes, or along its parent's posed axes without Local Location) puts it where
the solved slot carries it, under any object transform. The real IK chain is checked on a
generated Rigify rig (tests/blender/test_retarget_rigify.py)."""

import numpy as np
import pytest

from inference.training.synth.motion import SKELETON
from retarget import RetargetError, metrics, solve
from retarget.rotations import quaternion_to_matrix
from retarget.solve import ik_controls, rigmaps
from retarget.solve.rigmaps import IkLimb, RigMap
from retarget.solve.target import TargetRig, _slot_joints, bone_rest_matrix, target_rest_joints
from retarget.solve.transforms import from_matrix, rig_in_world
from tests.test_solve_rigs import canonical_rest, mixamo_like, world_motion
from tests.test_solve_transforms import FBX, PARENT, in_armature_space

P = "mixamorig:"


def rig_with_ik_controls(rng) -> tuple[TargetRig, RigMap]:
    """A Mixamo-like rig plus IK controls: a hand control (no Local Location) and a pole under a
    turned bone at rest, a foot control, and a toe control under a bone carried by the foot."""
    joints = canonical_rest(1.8)
    spec = mixamo_like(joints, rng=rng)
    bones = [(n, p, h, t, r) for n, p, h, t, r in spec.bones]
    bones += [
        ("ik_parent", None, np.zeros(3), np.array([0.3, 0.1, 0.2]), 0.4),
        ("hand_ik.L", "ik_parent", joints["lwri"], joints["lhan"], 1.1),
        ("pole.L", "ik_parent", joints["lelb"] + [0, 0.4, 0], joints["lelb"] + [0, 0.45, 0], 0.0),
        ("foot_ik.L", None, joints["lank"], joints["lank"] + [0, -0.2, 0], -0.3),
        ("foot_roll.L", "foot_ik.L", joints["lank"], joints["ltoe"], 0.7),
        ("toe_ik.L", "foot_roll.L", joints["ltoe"], joints["ltoe"] + [0, -0.05, 0], 2.0),
    ]
    names = [b[0] for b in bones]
    index = {n: k for k, n in enumerate(names)}
    heads, tails = np.array([b[2] for b in bones]), np.array([b[3] for b in bones])
    rotations = np.array([bone_rest_matrix(b[2], b[3], b[4]) for b in bones])
    local = tuple(n not in ("hand_ik.L", "pole.L", "foot_ik.L") for n in names)
    rig = TargetRig(tuple(names), tuple(index[b[1]] if b[1] else -1 for b in bones), heads, tails,
                    rotations, local_location=local)  # fmt: skip
    preset = rigmaps.resolve_rig_map("auto", rig.names, rig.parents, rig.heads)[0]
    ik = {
        "arm.L": IkLimb({"hand_ik.L": "hand.L"}, {"pole.L": "upper_arm.L"},
                        properties={P + "LeftArm": {"IK_FK": 0.0}}),
        "leg.L": IkLimb({"foot_ik.L": "foot.L", "toe_ik.L": "toe.L"}, carriers={"toe_ik.L": "foot.L"},
                        settings={"foot_roll.L": {"ik_stretch": 0.0}}),
    }  # fmt: skip
    return rig, RigMap("with ik", preset.bones, root=preset.root, ik=ik)


def _matrix(rotation, head) -> np.ndarray:
    out = np.zeros(rotation.shape[:-2] + (4, 4))
    out[..., :3, :3], out[..., :3, 3], out[..., 3, 3] = rotation, head, 1.0
    return out


def pose_from_keys(rig, b, keys, parent_posed):
    """Blender's pose evaluation of bone ``b`` (armature space ``(T, 4, 4)``) from its keys."""
    p = rig.parents[b]
    rest = _matrix(rig.rotations[b], rig.heads[b])
    parent_rest = _matrix(rig.rotations[p], rig.heads[p]) if p >= 0 else np.eye(4)
    offset = parent_posed @ np.linalg.inv(parent_rest) @ rest  # rest relative to the posed parent
    name = rig.names[b]
    count = len(parent_posed)
    rotation = (quaternion_to_matrix(keys.rotations[name]) if name in keys.rotations
                else np.broadcast_to(np.eye(3), (count, 3, 3)))  # fmt: skip
    location = keys.locations[name]
    out = offset.copy()
    out[:, :3, :3] = offset[:, :3, :3] @ rotation
    if rig.local_location[b]:
        out[:, :3, 3] += np.einsum("tij,tj->ti", offset[:, :3, :3], location)
    else:  # along the parent's posed axes
        out[:, :3, 3] += np.einsum("tij,tj->ti", parent_posed[:, :3, :3], location)
    return out


@pytest.mark.parametrize(
    "world", [np.eye(4), FBX, PARENT @ FBX], ids=["plain", "fbx", "fbx+parent"]
)
def test_controls_posed_by_their_keys_sit_on_the_solved_slots(world):
    motion = world_motion("walk", 1.5, seed=41, turn_deg_per_s=30.0).joints
    plain, rig_map = rig_with_ik_controls(np.random.default_rng(41))
    transform = from_matrix(world)
    rig = in_armature_space(plain, world)
    rig = TargetRig(rig.names, rig.parents, rig.heads, rig.tails, rig.rotations,
                    local_location=plain.local_location)  # fmt: skip
    result = solve.retarget(motion, SKELETON, rig, rig_map, transform=transform)
    keys = ik_controls.ik_control_keys(rig, rig_map, result, "all")
    assert keys.limbs == ("arm.L", "leg.L") and keys.missing == ("arm.R", "leg.R")
    assert keys.properties == {P + "LeftArm": {"IK_FK": 0.0}}
    assert keys.settings == {"foot_roll.L": {"ik_stretch": 0.0}}
    assert set(keys.rotations) == {"hand_ik.L", "foot_ik.L", "toe_ik.L"}  # poles: location only
    assert set(keys.locations) == {"hand_ik.L", "pole.L", "foot_ik.L", "toe_ik.L"}
    count = len(motion)
    world_of = lambda m: np.einsum("ij,tjk->tik", world, m)  # noqa: E731 (armature -> world)

    rest_joints = target_rest_joints(rig_in_world(rig, transform), rig_map)  # world

    def slot_motion(slot):
        """M_S in armature space ``(T, 4, 4)``: the solved slot's rigid motion in the world
        (rotation Δ_S about its head joint), seen through the object transform."""
        delta = result.deltas[rig_map.bones[slot][-1]]
        joint = _slot_joints(slot)[0]
        moved = result.joints[joint] - np.einsum("tij,j->ti", delta, rest_joints[joint])
        return np.linalg.inv(world) @ _matrix(delta, moved) @ world

    at_rest = np.broadcast_to(np.eye(4), (count, 4, 4))
    expected = {
        "hand_ik.L": "hand.L",
        "foot_ik.L": "foot.L",
        "toe_ik.L": "toe.L",
        "pole.L": "upper_arm.L",
    }
    for control, slot in expected.items():
        b = rig.index(control)
        p = rig.parents[b]
        if control == "toe_ik.L":  # carried by the foot: its parent moves with the foot slot
            parent_posed = slot_motion("foot.L") @ _matrix(rig.rotations[p], rig.heads[p])
        elif p >= 0:
            parent_posed = at_rest @ _matrix(rig.rotations[p], rig.heads[p])
        else:
            parent_posed = at_rest
        posed = pose_from_keys(rig, b, keys, parent_posed)
        wanted = slot_motion(slot) @ _matrix(rig.rotations[b], rig.heads[b])
        np.testing.assert_allclose(posed[:, :3, 3], wanted[:, :3, 3], atol=1e-9)
        if control in keys.rotations:
            np.testing.assert_allclose(posed[:, :3, :3], wanted[:, :3, :3], atol=1e-9)
        # the heads the keys were computed for, in the world
        np.testing.assert_allclose(world_of(posed)[:, :3, 3], keys.heads[control], atol=1e-9)
    assert metrics.sign_flips(np.stack(list(keys.rotations.values()), axis=1)) == 0


def test_modes_and_limbs_without_controls():
    rig, rig_map = rig_with_ik_controls(None)
    assert ik_controls.ik_limbs(rig_map, "legs") == (("leg.L",), ("leg.R",))
    assert ik_controls.ik_limbs(rig_map, "fk") == ((), ())
    assert ik_controls.ik_limbs(rig_map, "arms") == (("arm.L",), ("arm.R",))
    with pytest.raises(RetargetError, match="limb IK mode 'hands'"):
        ik_controls.ik_limbs(rig_map, "hands")
    # Rigify-like rigs without IK targets lose their IK limbs (FK only); a real Rigify keeps them.
    names = set(rig.names)
    restricted, _ = rigmaps.restrict(rigmaps.PRESETS["rigify"], names)
    assert not restricted.ik
