"""Retargeting onto user armatures inside real Blender, through the installed extension.

Test rigs (tests/test_solve_rigs.py) are built as real armatures (edit bones with roll,
constraints with drivers, custom properties); ground-truth motion goes in as a trajectory file;
the result is read back from the evaluated pose bones (``pose_bone.head/tail`` in world space)."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import bpy
import numpy as np
import pytest

from inference.training.synth.clip import default_camera, motions_to_trajectory
from retarget import frames as frame_tools
from retarget import metrics
from retarget.contract import write_trajectory
from retarget.skeletons import SMPL_HEAD_30 as SKELETON
from retarget.solve.rig import rest_joints
from tests.test_solve_rigs import (
    canonical_rest,
    metarig_like,
    mixamo_like,
    noisy,
    rigify_like,
    unreal_like,
    world_motion,
)

REPO = Path(__file__).resolve().parents[2]
CHANNELS = np.array(["lank", "rank", "ltoe", "rtoe"])  # heel (ankle) and toe contact channels
LIMB_PAIRS = [
    (s + a, s + b)
    for s in "lr"
    for a, b in (("cla", "sho"), ("sho", "elb"), ("elb", "wri"), ("wri", "han"),
                 ("hip", "kne"), ("kne", "ank"), ("ank", "toe"))
] + [("pelv", "bell"), ("neck", "head"), ("head", "htop")]  # fmt: skip


def build_armature(spec, name: str | None = None, location=(0.0, 0.0, 0.0)) -> bpy.types.Object:
    """A real armature from a RigSpec: bones with roll, then properties, constraints, drivers."""
    name = name or spec.name
    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    obj.location = location
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    for bone, parent, head, tail, roll in spec.bones:
        edit = data.edit_bones.new(bone)
        edit.head, edit.tail, edit.roll = head, tail, roll
        if parent:
            edit.parent = data.edit_bones[parent]
    bpy.ops.object.mode_set(mode="OBJECT")
    for bone, values in spec.properties.items():
        for key, value in values.items():
            obj.pose.bones[bone][key] = value
    for bone, kind, subtarget, driven, influence, space in spec.constraints:
        constraint = obj.pose.bones[bone].constraints.new(kind)
        constraint.target, constraint.subtarget = obj, subtarget
        constraint.owner_space = constraint.target_space = space
        constraint.influence = influence
        if driven is not None:
            driver = constraint.driver_add("influence").driver
            driver.type = "SCRIPTED"
            variable = driver.variables.new()
            variable.name, variable.type = "switch", "SINGLE_PROP"
            variable.targets[0].id = obj
            variable.targets[0].data_path = f'pose.bones["{driven[0]}"]["{driven[1]}"]'
            driver.expression = "1 - switch"
    bpy.context.view_layer.update()
    return obj


def write_clip(tmp_path, motion, name="clip", contacts=True) -> tuple[Path, np.ndarray]:
    """The motion as a trajectory file (+ its contacts as the cleaning stage stores them) and the
    world joints ``(T, J, 3)`` the importer will see."""
    trajectory = motions_to_trajectory([motion], default_camera([motion]))
    if contacts:  # as the cleaning stage stores them: named heel/toe channels
        extras = {"contacts": motion.channel_contacts[:, None, :], "contact_channels": CHANNELS}
        trajectory = trajectory.replace(extras=extras)
    path = write_trajectory(tmp_path / f"{name}.npz", trajectory)
    pose = frame_tools.level_camera_pose(trajectory.poses3d, trajectory.joint_names)
    world = frame_tools.camera_to_world(trajectory.poses3d.astype(np.float64), pose)[:, 0]
    return path, world


class _Posed:
    def __init__(self, names, heads, tails):
        self.heads, self.tails = heads, tails
        self._index = {n: b for b, n in enumerate(names)}

    def index(self, name):
        return self._index[name]


def read_back(obj, mapping, num_frames: int, extension):
    """Canonical joints ``name -> (T, 3)`` (world) from the evaluated pose bones of the rig map's
    anchors, and the keyed local quaternions ``(T, K, 4)`` read from the pose."""
    target = extension.retarget.solve.target
    scene = bpy.context.scene
    matrix = np.array(obj.matrix_world)
    names = [b.name for b in obj.pose.bones]
    joints: dict[str, list] = {}
    keyed = mapping.keyed_bones()
    quaternions = []
    for frame in range(scene.frame_start, scene.frame_start + num_frames):
        scene.frame_set(frame)
        heads = np.array([tuple(b.head) for b in obj.pose.bones]) @ matrix[:3, :3].T + matrix[:3, 3]
        tails = np.array([tuple(b.tail) for b in obj.pose.bones]) @ matrix[:3, :3].T + matrix[:3, 3]
        for name, value in target.target_rest_joints(_Posed(names, heads, tails), mapping).items():
            joints.setdefault(name, []).append(value)
        quaternions.append([tuple(obj.pose.bones[b].rotation_quaternion) for b in keyed])
    return {k: np.array(v) for k, v in joints.items()}, np.array(quaternions)


def direction_errors(joints, world) -> np.ndarray:
    errors = []
    for a, b in LIMB_PAIRS:
        if a in joints and b in joints:
            source = world[:, SKELETON.index(b)] - world[:, SKELETON.index(a)]
            errors.append(metrics.direction_errors_deg(joints[b] - joints[a], source))
    return np.concatenate(errors)


def rig_map_of(extension, obj, how="auto"):
    rigmaps, scene = extension.retarget.solve.rigmaps, extension.metrabs_blender.scene
    return rigmaps.resolve_rig_map(how, *scene.bone_hierarchy(obj))[0]


def test_rest_rotations_match_blender(extension):
    spec = mixamo_like(canonical_rest(1.8), rng=np.random.default_rng(3))
    obj = build_armature(spec)
    expected = spec.target_rig().rotations
    blender = np.array([np.array(b.matrix_local)[:3, :3] for b in obj.data.bones])
    order = [spec.names.index(b.name) for b in obj.data.bones]
    np.testing.assert_allclose(blender, expected[order], atol=1e-5)


RIGS = {
    "mixamo other proportions + roll": lambda: mixamo_like(
        canonical_rest(1.9, arms=1.1, legs=0.9, torso=1.05), rng=np.random.default_rng(1)
    ),
    "rigify FK controls": lambda: rigify_like(canonical_rest(1.7), rng=np.random.default_rng(2)),
    "metarig A-pose": lambda: metarig_like(
        canonical_rest(a_pose_deg=45.0, elbow_bend_deg=12.0, knee_bend_deg=6.0)
    ),
    "unreal 5 spine": lambda: unreal_like(canonical_rest(1.65), rng=np.random.default_rng(4)),
}


@pytest.mark.parametrize("rig_name", RIGS)
def test_retarget_onto_test_rigs(api, extension, tmp_path, rig_name):
    motion = world_motion("walk", 3.0, seed=2, turn_deg_per_s=20.0)
    path, world = write_clip(tmp_path, motion, contacts=False)
    spec = RIGS[rig_name]()
    obj = build_armature(spec, location=(0.5, -1.0, 0.0))
    (result,) = api.import_trajectory(path, target=obj)
    assert result.armature == obj and obj.animation_data.action == result.action
    mapping = rig_map_of(extension, obj)
    joints, quaternions = read_back(obj, mapping, len(world), extension)
    errors = direction_errors(joints, world)
    assert np.median(errors) <= 2.0 and np.percentile(errors, 95) <= 8.0, rig_name
    assert metrics.sign_flips(quaternions) == 0 and metrics.twist_jumps(quaternions, 90.0) == 0
    # Relative root motion: the take starts at the rig's own rest position (object at 0.5, -1).
    target = extension.retarget.solve.target
    rest_pelvis = target.target_rest_joints(_Posed(*_rest(obj)), mapping)["pelv"]
    np.testing.assert_allclose(joints["pelv"][0, :2], rest_pelvis[:2] + (0.5, -1.0), atol=1e-4)
    if rig_name.startswith("rigify"):  # switched to FK, the switch keyed in the take
        for bone in ("upper_arm_parent.L", "thigh_parent.R"):
            assert obj.pose.bones[bone]["IK_FK"] == 1.0
        paths = {
            fc.data_path for fc in extension.metrabs_blender.keyframes.action_fcurves(result.action)
        }
        assert 'pose.bones["thigh_parent.L"]["IK_FK"]' in paths
        assert not any("ORG-" in p or "MCH-" in p for p in paths)


def _rest(obj):
    names = [b.name for b in obj.data.bones]
    heads = np.array([tuple(b.head_local) for b in obj.data.bones])
    tails = np.array([tuple(b.tail_local) for b in obj.data.bones])
    return names, heads, tails


def test_end_effectors_on_a_same_proportion_rig(api, extension, tmp_path):
    motion = world_motion("run", 2.0, seed=3)
    path, world = write_clip(tmp_path, motion, contacts=False)
    rest = rest_joints(SKELETON, world)  # the clip's own proportions, T-pose
    spec = mixamo_like({n: rest[j] for j, n in enumerate(SKELETON.joint_names)},
                       rng=np.random.default_rng(5))  # fmt: skip
    obj = build_armature(spec)
    (result,) = api.import_trajectory(path, target=obj, root_motion="camera")
    assert result.hip_ratio == pytest.approx(1.0, abs=1e-6)
    joints, _ = read_back(obj, rig_map_of(extension, obj), len(world), extension)
    for name in ("lwri", "rwri", "lank", "rank", "head"):
        error = np.linalg.norm(joints[name] - world[:, SKELETON.index(name)], axis=-1)
        assert error.max() < 0.02, (name, error.max())


def test_foot_locking_with_contacts_from_the_file(api, extension, tmp_path):
    motion = world_motion("walk", 3.0, seed=4, turn_deg_per_s=15.0)
    motion = dataclasses.replace(motion, joints=noisy(motion.joints, np.random.default_rng(6)))
    path, world = write_clip(tmp_path, motion)
    spec = mixamo_like(canonical_rest(1.85, legs=0.9, torso=1.1), rng=np.random.default_rng(7))
    free, locked = build_armature(spec, "free"), build_armature(spec, "locked")
    api.import_trajectory(path, target=free, foot_lock=False)
    (result,) = api.import_trajectory(path, target=locked)
    assert result.locked_frames > 0.8 * len(world)
    slides = {}
    for obj in (free, locked):
        joints, _ = read_back(obj, rig_map_of(extension, obj), len(world), extension)
        slides[obj.name] = 0.001 * np.concatenate([  # metres
            metrics.foot_slide(joints[name], motion.channel_contacts[:, c])
            for c, name in enumerate(CHANNELS)
        ])  # fmt: skip
    assert slides["free"].mean() > 0.005
    assert slides["locked"].max() <= 0.005  # 5 mm/frame
    actions = set(bpy.data.actions.keys())
    errors = extension.metrabs_blender.errors
    with pytest.raises(errors.MocapError, match="not one of auto, always, never, grounded"):
        api.import_trajectory(path, target=free, foot_contacts="sometimes")
    with pytest.raises(errors.MocapError, match="contradicts"):
        api.import_trajectory(path, target=free, foot_lock=False, foot_contacts="always")
    assert set(bpy.data.actions.keys()) == actions  # refused before anything is written


def test_re_import_makes_a_new_take_and_nla_tracks(api, extension, tmp_path):
    motion = world_motion("walk", 2.0, seed=5)
    path, _ = write_clip(tmp_path, motion)
    obj = build_armature(unreal_like(canonical_rest()))
    user_action = bpy.data.actions.new("my animation")
    obj.animation_data_create().action = user_action
    (first,) = api.import_trajectory(path, target=obj)
    (second,) = api.import_trajectory(path, target=obj)
    assert first.action.name == "unreal clip P0 take 1"
    assert second.action.name == "unreal clip P0 take 2"
    assert obj.animation_data.action == second.action
    assert user_action.use_fake_user and first.action.use_fake_user  # kept in the saved file
    keyframes = extension.metrabs_blender.keyframes
    assert len(keyframes.action_fcurves(first.action)) == len(
        keyframes.action_fcurves(second.action)
    )
    (third,) = api.import_trajectory(path, target=obj, use_nla=True)
    tracks = obj.animation_data.nla_tracks
    assert [t.name for t in tracks] == ["unreal clip P0 take 3"]
    assert tracks[0].strips[0].action == third.action
    assert obj.animation_data.action == second.action  # the active action is left alone
    obj.animation_data.action = None  # as the user would, to see the NLA take
    if hasattr(tracks[0].strips[0], "action_slot"):  # layered actions (4.4+): explicit slot
        assert tracks[0].strips[0].action_slot == third.action.slots[0]
    bpy.context.scene.frame_set(20)  # the NLA track drives the rig
    assert obj.pose.bones["thigh_l"].rotation_quaternion[0] < 0.99999


def test_clip_fps_differs_from_scene_fps(api, extension, tmp_path):
    motion = world_motion("walk", 2.0, seed=6)  # 30 fps
    path, world = write_clip(tmp_path, motion, contacts=False)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base, scene.frame_start = 24, 1.0, 1
    obj = build_armature(unreal_like(canonical_rest()))
    (result,) = api.import_trajectory(path, target=obj, match_scene=False, key_reduction="dense")
    assert scene.render.fps == 24
    np.testing.assert_allclose(result.frames, 1 + np.arange(len(world)) / 30 * 24)
    # Scene frame 1 + 0.8 k shows clip sample k: compare sample 10 (frame 9) with sample 10 keyed.
    fcurves = extension.metrabs_blender.keyframes.action_fcurves(result.action)
    curve = next(fc for fc in fcurves if "thigh_l" in fc.data_path and fc.array_index == 1)
    keys = np.array([tuple(k.co) for k in curve.keyframe_points])
    scene.frame_set(9)
    assert obj.pose.bones["thigh_l"].rotation_quaternion[1] == pytest.approx(keys[10, 1], abs=1e-6)


def _mesh():
    mesh = bpy.data.meshes.new("body")
    obj = bpy.data.objects.new("body", mesh)
    bpy.context.scene.collection.objects.link(obj)
    return obj


def _state():
    scene = bpy.context.scene
    return (
        set(bpy.data.objects), set(bpy.data.actions), scene.render.fps, scene.frame_end,
        {o.name: o.animation_data.action if o.animation_data else None for o in bpy.data.objects},
    )  # fmt: skip


def test_refusals_change_nothing(api, extension, tmp_path):
    motion = world_motion("walk", 1.0, seed=7)
    path, _ = write_clip(tmp_path, motion)
    errors = (extension.metrabs_blender.errors.MocapError, extension.retarget.RetargetError)
    bpy.context.scene.render.fps = 24
    cases = {}
    cases["mesh"] = (_mesh(), "is a mesh, not an armature")
    # Any rotation and one positive scale are fine (tests/blender/test_retarget_rigs.py); a
    # transform without a meaning is refused, whether the object's own or its parent's.
    flat = build_armature(unreal_like(canonical_rest()), "flat")
    flat.scale = (0.01, 0.0, 0.01)
    cases["zero scale"] = (flat, "'flat' has a zero scale")
    mirrored = build_armature(mixamo_like(canonical_rest()), "mirrored")
    mirrored.scale = (-0.01, 0.01, 0.01)
    cases["negative scale"] = (mirrored, "'mirrored' is mirrored by a negative scale")
    stretched = build_armature(mixamo_like(canonical_rest()), "stretched")
    stretched.scale = (1.0, 1.0, 1.5)
    cases["non-uniform scale"] = (stretched, "'stretched' has a non-uniform scale")
    sheared = build_armature(mixamo_like(canonical_rest()), "sheared")
    holder = bpy.data.objects.new("holder", None)
    bpy.context.scene.collection.objects.link(holder)
    holder.scale = (1.0, 2.0, 1.0)
    sheared.parent, sheared.rotation_euler = holder, (0.0, 0.0, 0.6)
    cases["parent's non-uniform scale"] = (sheared, "'sheared' has a non-uniform scale")
    tweaked = build_armature(mixamo_like(canonical_rest()), "tweaked")
    animation = tweaked.animation_data_create()
    animation.nla_tracks.new().strips.new("take", 1, bpy.data.actions.new("user take"))
    animation.use_tweak_mode = True  # editing that strip in the NLA editor
    cases["tweak mode"] = (tweaked, "NLA tweak mode")
    no_humanoid = bpy.data.objects.new("tail", bpy.data.armatures.new("tail"))
    bpy.context.scene.collection.objects.link(no_humanoid)
    bpy.context.view_layer.objects.active = no_humanoid
    bpy.ops.object.mode_set(mode="EDIT")
    for k in range(3):
        bone = no_humanoid.data.edit_bones.new(f"Bone.{k:03d}")
        bone.head, bone.tail = (0, 0, k * 0.2), (0, 0, k * 0.2 + 0.2)
    bpy.ops.object.mode_set(mode="OBJECT")
    cases["no humanoid"] = (no_humanoid, "Expected bones for the slots")
    bpy.context.view_layer.update()
    for case, (target, message) in cases.items():
        before = _state()
        with pytest.raises(errors, match=message):
            api.import_trajectory(path, target=target)
        assert _state() == before, case
    with pytest.raises(errors, match="thigh.L"):  # the message lists what was expected
        api.import_trajectory(path, target=no_humanoid)


def test_linked_library_rig_is_refused(api, extension, tmp_path):
    motion = world_motion("walk", 1.0, seed=8)
    path, _ = write_clip(tmp_path, motion)
    build_armature(mixamo_like(canonical_rest()), "character")
    library = tmp_path / "library.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(library))
    bpy.ops.wm.read_homefile(app_template="")
    with bpy.data.libraries.load(str(library), link=True) as (source, target):
        target.objects = ["character"]
    linked = target.objects[0]
    bpy.context.scene.collection.objects.link(linked)
    assert linked.library is not None
    before = _state()
    with pytest.raises(
        extension.metrabs_blender.errors.MocapError, match="linked from the library"
    ):
        api.import_trajectory(path, target=linked)
    assert _state() == before


def test_making_a_rig_leaves_the_users_selected_rig_out_of_edit_mode(api, extension, tmp_path):
    """Making a rig enters Edit Mode, which takes in every selected armature (touching the user's
    rig, failing on a linked one): the user's selection is set aside meanwhile."""
    motion = world_motion("walk", 1.0, seed=9)
    path, _ = write_clip(tmp_path, motion)
    user_rig = build_armature(mixamo_like(canonical_rest()), "character")
    for obj in bpy.context.view_layer.objects:
        obj.select_set(obj == user_rig)
    modes = []

    def record(scene, depsgraph):
        modes.append(user_rig.mode)

    bpy.app.handlers.depsgraph_update_post.append(record)
    try:
        (result,) = api.import_trajectory(path)
    finally:
        bpy.app.handlers.depsgraph_update_post.remove(record)
    assert modes and set(modes) == {"OBJECT"}
    assert result.armature.mode == "OBJECT" and user_rig.select_get()


def test_operator_import_is_one_undo_step(extension, tmp_path, two_person_trajectory):
    operator = bpy.types.METRABS_OT_import_trajectory
    assert "UNDO" in operator.bl_options
    path = write_trajectory(tmp_path / "walk.npz", two_person_trajectory)
    bpy.ops.ed.undo_push(message="before import")
    objects, actions = set(bpy.data.objects.keys()), set(bpy.data.actions.keys())
    fps = bpy.context.scene.render.fps
    # Called as the UI calls it (undo=True), so Blender pushes the operator's own undo step.
    assert bpy.ops.metrabs.import_trajectory("EXEC_DEFAULT", True, filepath=str(path)) == {
        "FINISHED"
    }
    assert len(bpy.data.objects) == len(objects) + 2 and len(bpy.data.actions) == len(actions) + 2
    bpy.ops.ed.undo()
    assert set(bpy.data.objects.keys()) == objects and set(bpy.data.actions.keys()) == actions
    assert bpy.context.scene.render.fps == fps


def test_headless_cli_retargets_onto_a_rig_in_another_file(tmp_path):
    motion = world_motion("walk", 1.0, seed=9)
    path, _ = write_clip(tmp_path, motion)
    build_armature(mixamo_like(canonical_rest(), rng=np.random.default_rng(1)), "Hero")
    character = tmp_path / "character.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(character))
    out = tmp_path / "shot.blend"

    def command(target: str, out: Path) -> list[str]:
        return [sys.executable, "-m", "metrabs_blender", str(path), "--out", str(out),
                "--target", f"{character}:{target}", "--root-motion", "in_place"]  # fmt: skip

    done = subprocess.run(command("Hero", out), cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "preset mixamo" in done.stderr
    bpy.ops.wm.open_mainfile(filepath=str(out))
    hero = bpy.data.objects["Hero"]
    assert hero.animation_data.action.name == "Hero clip P0 take 1"
    # nothing of ours but the matched camera
    ours = [o.name for o in bpy.data.objects if o.name.startswith("MeTRAbs")]
    assert ours == ["MeTRAbs camera"] and bpy.context.scene.camera.name == "MeTRAbs camera"
    bad = subprocess.run(command("Villain", tmp_path / "bad.blend"), cwd=REPO,
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 1 and "no object 'Villain'" in bad.stderr
    assert not (tmp_path / "bad.blend").exists()


def test_uses_the_cleaning_stage_extras(api, extension, tmp_path):
    """A cleaned file carries its floor fit (``world_from_camera``) and heel/toe contact channels:
    the import places the motion by that camera pose and locks on those channels."""
    motion = world_motion("walk", 2.0, seed=12)
    camera = default_camera([motion])
    trajectory = motions_to_trajectory([motion], camera)
    contacts = motion.channel_contacts[:, None, :]
    trajectory = trajectory.replace(
        extras={"world_from_camera": camera, "contact_channels": CHANNELS, "contacts": contacts}
    )
    path = write_trajectory(tmp_path / "cleaned.npz", trajectory)
    (generated,) = api.import_trajectory(path, key_reduction="dense")  # exact, to 0.1 mm
    bpy.context.scene.frame_set(10)
    head = np.array(generated.armature.pose.bones["head"].head)
    np.testing.assert_allclose(head, motion.joints[9, SKELETON.index("head")], atol=1e-4)
    obj = build_armature(mixamo_like(canonical_rest(1.8, legs=0.9), rng=np.random.default_rng(2)))
    (take,) = api.import_trajectory(path, target=obj)
    assert take.locked_frames >= 0.9 * len(motion.joints)


def test_keys_go_into_each_bones_own_rotation_mode(api, extension, tmp_path):
    """Bones posed in Euler (any order) or axis-angle keep their mode (the user's other actions
    still drive them) and reach the same pose as quaternion bones."""
    motion = world_motion("run", 1.5, seed=13)
    path, world = write_clip(tmp_path, motion, contacts=False)
    spec = unreal_like(canonical_rest(), rng=np.random.default_rng(3))
    plain, mixed = build_armature(spec, "plain"), build_armature(spec, "mixed")
    modes = {"thigh_l": "XYZ", "calf_l": "ZXY", "upperarm_r": "YZX", "lowerarm_r": "AXIS_ANGLE",
             "pelvis": "ZYX", "spine_03": "XZY", "head": "YXZ"}  # fmt: skip
    for bone, mode in modes.items():
        mixed.pose.bones[bone].rotation_mode = mode
    api.import_trajectory(path, target=plain, root_motion="camera", key_reduction="dense")
    api.import_trajectory(path, target=mixed, root_motion="camera", key_reduction="dense")
    assert {b: mixed.pose.bones[b].rotation_mode for b in modes} == modes
    mapping = rig_map_of(extension, plain)
    expected, _ = read_back(plain, mapping, len(world), extension)
    got, _ = read_back(mixed, mapping, len(world), extension)
    offset = np.array(mixed.matrix_world.translation) - np.array(plain.matrix_world.translation)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name] + offset, atol=1e-4)
