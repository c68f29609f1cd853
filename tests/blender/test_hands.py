"""Hands in real Blender: a trajectory with the hand extension rolls the generated rig's hands
(its thumb bones show it) and a target's; a measurable opening curls a target's finger bones,
in each bone's own rotation mode; a rigid hand leaves them unkeyed."""

import bpy
import numpy as np

from retarget.contract import write_trajectory
from retarget.rotations import normalize
from tests.blender.test_retarget import build_armature
from tests.test_hand_extension import hand_trajectory
from tests.test_solve_hands import full_hands
from tests.test_solve_rigs import canonical_rest, mixamo_like


def _across(vector, axis):
    return normalize(vector - np.sum(vector * axis, -1)[:, None] * axis)


def test_the_generated_rig_rolls_its_hands_with_the_thumbs(api, extension, tmp_path):
    trajectory, world, sides, camera = hand_trajectory()
    path = write_trajectory(tmp_path / "hands.npz", trajectory.replace(extras={
        "world_from_camera": camera}))  # fmt: skip
    (take,) = api.import_trajectory(path)
    rig = take.armature
    assert {"thumb.L", "thumb.R"} <= set(rig.pose.bones.keys())
    scene = bpy.context.scene
    matrix = np.array(rig.matrix_world)
    errors = []
    for t in range(0, len(world), 3):
        scene.frame_set(scene.frame_start + t)
        for p, side in (("l", "L"), ("r", "R")):
            hand = rig.pose.bones[f"hand.{side}"]
            thumb = rig.pose.bones[f"thumb.{side}"]
            head, tail = (
                matrix[:3, :3] @ np.array(v) + matrix[:3, 3] for v in (hand.head, hand.tail)
            )
            offset = matrix[:3, :3] @ (np.array(thumb.head) - np.array(hand.head))
            posed = _across(offset[None], normalize(tail - head)[None])[0]
            errors.append(np.degrees(np.arccos(np.clip(posed @ sides[p][t], -1.0, 1.0))))
    assert max(errors) < 2.0  # degrees: reduced keys, 0.5 deg per bone down the arm


def test_a_targets_fingers_curl_when_the_hand_opens_and_closes(api, extension, tmp_path):
    trajectory, world, *_ = hand_trajectory()
    t = np.linspace(0.0, 1.0, len(world))
    curl = np.clip(1.5 * np.sin(2 * np.pi * t) ** 2 - 0.25, 0.0, 1.0)
    files = {}
    for name, amount in (("curled", curl), ("rigid", None)):
        trajectory, _, _, camera = hand_trajectory(amount)
        extras = {"world_from_camera": camera}
        files[name] = write_trajectory(tmp_path / f"{name}.npz", trajectory.replace(extras=extras))
    spec = full_hands(mixamo_like(canonical_rest()), rng=np.random.default_rng(6))
    rig = build_armature(spec, "hero")
    rig.pose.bones["mixamorig:LeftHandIndex2"].rotation_mode = "XYZ"
    (take,) = api.import_trajectory(files["curled"], target=rig, key_reduction="dense")
    fcurves = extension.metrabs_blender.keyframes.action_fcurves(take.action)
    keyed = {f.data_path.split('"')[1] for f in fcurves}
    fingers = {b.name for b in rig.pose.bones if b.name[-1].isdigit() and "Hand" in b.name
               and "Thumb" not in b.name}  # fmt: skip
    assert len(fingers) == 24 and fingers <= keyed
    assert not any("Thumb" in name for name in keyed)
    euler = [f for f in fcurves if "LeftHandIndex2" in f.data_path]
    assert {f.data_path.rsplit(".", 1)[1] for f in euler} == {"rotation_euler"}
    scene = bpy.context.scene
    fist = int(np.argmax(curl))
    scene.frame_set(scene.frame_start + fist)
    bone = rig.pose.bones["mixamorig:LeftHandIndex2"]
    angle = np.degrees(bone.matrix_basis.to_quaternion().angle)
    assert abs(angle - 90.0 * curl[fist]) < 0.5
    (stiff,) = api.import_trajectory(files["rigid"], target=rig)
    keyed = {f.data_path.split('"')[1] for f in extension.metrabs_blender.keyframes.action_fcurves(
        stiff.action)}  # fmt: skip
    assert not fingers & keyed  # no measurable opening: the fingers stay as they are
