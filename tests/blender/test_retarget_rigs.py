"""The rigs users have, as they come (issue 19), in real Blender through the installed extension:
a Mixamo armature as an FBX import leaves it (turned 90° about X, scale 0.01, bones in
centimetres with Y up), with and without a parent object; a library override of such a rig
linked from another file; a rig named like Auto-Rig Pro's (FK controls, deforming bones behind
IK/FK switches).

For each: the imported motion's limb directions match the source joints (median <= 2°, 95th
percentile <= 8°), the keyed quaternions never flip sign, and the user's rig is exactly as it
was: rest pose, object transforms (its own and its parent's) and the actions it already had.
"""

import bpy
import numpy as np
import pytest

from retarget import metrics
from tests.blender.test_retarget import (
    _Posed,
    build_armature,
    direction_errors,
    read_back,
    rig_map_of,
    write_clip,
)
from tests.test_solve_rigs import (
    RigSpec,
    autorigpro_like,
    canonical_rest,
    mixamo_like,
    world_motion,
)

FBX_ROTATION = (np.pi / 2, 0.0, 0.0)  # what Blender's FBX importer leaves on the armature object
FBX_SCALE = 0.01
MEASURED: dict[str, dict] = {}  # rig type -> the numbers the issue asks for (printed at the end)


def _euler_x(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def fbx_like(spec: RigSpec) -> RigSpec:
    """``spec`` (world metres, Z up) as an FBX import stores its bones: armature space in
    centimetres with Y up, so that the object's 90° X rotation and 0.01 scale put it back."""
    to_armature = _euler_x(FBX_ROTATION[0]).T / FBX_SCALE
    bones = [(n, p, to_armature @ h, to_armature @ t, r) for n, p, h, t, r in spec.bones]
    return RigSpec(spec.name, bones, spec.constraints, spec.properties, spec.joints)


def user_rig_state(obj) -> dict:
    """Everything of the user's rig an import must leave as it was."""
    state = {
        "rest": [(b.name, tuple(b.head_local), tuple(b.tail_local),
                  tuple(tuple(row) for row in b.matrix_local)) for b in obj.data.bones],
        "object": (tuple(obj.location), tuple(obj.rotation_euler), tuple(obj.scale),
                   obj.parent.name if obj.parent else None),
        "matrix_world": tuple(tuple(row) for row in obj.matrix_world),
        "rotation_modes": [b.rotation_mode for b in obj.pose.bones],
    }  # fmt: skip
    if obj.parent is not None:
        parent = obj.parent
        state["parent"] = (tuple(parent.location), tuple(parent.rotation_euler),
                           tuple(parent.scale))  # fmt: skip
    for action in bpy.data.actions:
        if action.name.startswith("my "):
            state[f"action {action.name}"] = _keys(action)
    return state


def _keys(action) -> list:
    from tests.blender.test_operators_api import _fcurves

    return sorted((fc.data_path, fc.array_index, [tuple(k.co) for k in fc.keyframe_points])
                  for fc in _fcurves(action))  # fmt: skip


def give_user_animation(obj) -> "bpy.types.Action":
    """The user's own action on the rig (a few keys on the hips), as an animator's file has."""
    obj.animation_data_create()
    action = bpy.data.actions.new("my idle")
    obj.animation_data.action = action
    bone = obj.pose.bones[0]
    for frame, angle in ((1, 0.0), (10, 0.3)):
        bone.rotation_quaternion = (np.cos(angle / 2), np.sin(angle / 2), 0.0, 0.0)
        bone.keyframe_insert("rotation_quaternion", frame=frame)
    bone.rotation_quaternion = (1.0, 0.0, 0.0, 0.0)
    return action


def check_take(api, extension, obj, tmp_path, rig_type: str, **options):
    """Import a walk onto ``obj``; assert the issue's accuracy and that the user's rig is
    untouched; returns the result, the read-back joints and the motion's world joints."""
    motion = world_motion("walk", 2.0, seed=31, turn_deg_per_s=20.0)
    path, world = write_clip(tmp_path, motion, contacts=False)
    user_action = give_user_animation(obj)
    bpy.context.view_layer.update()
    before = user_rig_state(obj)
    (result,) = api.import_trajectory(path, target=obj, **options)
    assert user_rig_state(obj) == before, rig_type
    assert result.action != user_action and user_action.use_fake_user
    mapping = rig_map_of(extension, obj)
    joints, quaternions = read_back(obj, mapping, len(world), extension)
    errors = direction_errors(joints, world)
    MEASURED[rig_type] = {
        "median": float(np.median(errors)),
        "p95": float(np.percentile(errors, 95)),
        "sign_flips": metrics.sign_flips(quaternions),
    }
    print(rig_type, MEASURED[rig_type])
    assert np.median(errors) <= 2.0 and np.percentile(errors, 95) <= 8.0, MEASURED[rig_type]
    assert metrics.sign_flips(quaternions) == 0
    return result, joints, mapping


@pytest.mark.parametrize("parented", [False, True], ids=["fbx", "fbx+parent"])
def test_mixamo_as_an_fbx_import_leaves_it(api, extension, tmp_path, parented):
    spec = fbx_like(mixamo_like(canonical_rest(1.75, legs=0.95), rng=np.random.default_rng(31)))
    obj = build_armature(spec, "Armature")
    obj.rotation_euler, obj.scale = FBX_ROTATION, (FBX_SCALE,) * 3
    if parented:  # the character's empty, turned, scaled uniformly and moved
        parent = bpy.data.objects.new("Character", None)
        bpy.context.scene.collection.objects.link(parent)
        parent.location, parent.rotation_euler, parent.scale = (
            (1.0, -2.0, 0.3),
            (0, 0, 0.7),
            (1.3,) * 3,
        )
        obj.parent = parent
    bpy.context.view_layer.update()
    rig_type = "mixamo fbx" + (" + parent" if parented else "")
    result, joints, mapping = check_take(api, extension, obj, tmp_path, rig_type)
    assert "preset mixamo" in result.report
    # Relative root motion: the take starts where the rig stands in the world.
    rest = extension.retarget.solve.target.target_rest_joints(_Posed(*_world_rest(obj)), mapping)
    np.testing.assert_allclose(joints["pelv"][0, :2], rest["pelv"][:2], atol=1e-3)
    # The feet stand on the rig's own floor (its rest pose's lowest foot joint, in the world).
    feet = np.minimum.reduce([joints[n][:, 2] for n in ("lank", "rank", "ltoe", "rtoe")])
    floor = min(rest[n][2] for n in ("lank", "rank", "ltoe", "rtoe"))
    assert np.percentile(feet, 5) == pytest.approx(floor, abs=2e-3)


def _world_rest(obj):
    """Bone names and rest heads and tails ``(B, 3)`` in the world."""
    matrix = np.array(obj.matrix_world)

    def world(points):
        return np.array([tuple(p) for p in points]) @ matrix[:3, :3].T + matrix[:3, 3]

    bones = obj.data.bones
    return (
        [b.name for b in bones],
        world(b.head_local for b in bones),
        world(b.tail_local for b in bones),
    )


def _link_override(tmp_path, spec: RigSpec, name: str) -> "bpy.types.Object":
    """``spec`` saved as an FBX-like armature in a library file's collection, then linked into a
    new file and made a library override, as an animator brings a character into a shot."""
    collection_name = f"{name} collection"
    collection = bpy.data.collections.new(collection_name)
    bpy.context.scene.collection.children.link(collection)
    obj = build_armature(fbx_like(spec), name)
    obj.rotation_euler, obj.scale = FBX_ROTATION, (FBX_SCALE,) * 3
    bpy.context.scene.collection.objects.unlink(obj)
    collection.objects.link(obj)
    library = tmp_path / "character library.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(library))
    bpy.ops.wm.read_homefile(app_template="")
    with bpy.data.libraries.load(str(library), link=True) as (_source, linked):
        linked.collections = [collection_name]
    collection = linked.collections[0]
    scene, view_layer = bpy.context.scene, bpy.context.view_layer
    collection.override_hierarchy_create(scene, view_layer, do_fully_editable=True)
    (overridden,) = [o for o in bpy.data.objects if o.type == "ARMATURE" and o.override_library]
    assert overridden.library is None and overridden.data.library is not None
    return overridden


def test_a_library_override_of_a_linked_rig(api, extension, tmp_path):
    spec = mixamo_like(canonical_rest(1.7, arms=1.05), rng=np.random.default_rng(32))
    obj = _link_override(tmp_path, spec, "Hero")
    bpy.context.view_layer.update()
    result, _joints, _mapping = check_take(api, extension, obj, tmp_path, "library override")
    take = result.action.name
    # The take is the override's own: it survives saving and opening the shot again.
    shot = tmp_path / "shot.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(shot))
    bpy.ops.wm.open_mainfile(filepath=str(shot))
    assert bpy.data.objects["Hero"].animation_data.action.name == take


# The deforming bones of the Auto-Rig Pro-named test rig, per slot: they follow the FK controls
# only while the IK/FK switches say FK, so reading the motion back from them checks the switches.
ARP_DEFORM = {
    "hips": "root.x", "spine": ("spine_01.x", "spine_02.x", "spine_03.x"), "neck": "neck.x",
    "head": "head.x",
    **{f"{slot}.{s.upper()}": f"{bone}.{s}" for s in "lr" for slot, bone in (
        ("shoulder", "shoulder"), ("upper_arm", "arm_stretch"), ("forearm", "forearm_stretch"),
        ("hand", "hand"), ("thigh", "thigh_stretch"), ("shin", "leg_stretch"), ("foot", "foot"),
        ("toe", "toes_01"))},
}  # fmt: skip


def test_an_auto_rig_pro_rig(api, extension, tmp_path, monkeypatch):
    import tests.blender.test_retarget_rigs as this

    spec = autorigpro_like(canonical_rest(1.65, arms=0.95), rng=np.random.default_rng(33))
    obj = build_armature(spec, "rig")
    rigmaps = extension.retarget.solve.rigmaps
    switches = [f"c_{end}_ik.{s}" for end in ("hand", "foot") for s in "lr"]
    assert [obj.pose.bones[b]["ik_fk_switch"] for b in switches] == [0.0] * 4  # IK, as made

    def read_deform(extension, obj, how="auto"):
        mapping = rigmaps.resolve_rig_map(
            how, *extension.metrabs_blender.scene.bone_hierarchy(obj)
        )[0]
        return rigmaps.RigMap("deform", mapping.bones, anchors=ARP_DEFORM)

    monkeypatch.setattr(this, "rig_map_of", read_deform)
    result, _joints, _mapping = check_take(api, extension, obj, tmp_path, "auto-rig pro")
    assert "preset autorigpro" in result.report
    assert [obj.pose.bones[b]["ik_fk_switch"] for b in switches] == [1.0] * 4  # FK
    keyed = {
        fc.data_path for fc in extension.metrabs_blender.keyframes.action_fcurves(result.action)
    }
    assert 'pose.bones["c_foot_ik.l"]["ik_fk_switch"]' in keyed
    assert 'pose.bones["c_arm_fk.l"].rotation_quaternion' in keyed
    deform = {name for names in ARP_DEFORM.values() for name in np.atleast_1d(names)}
    assert not [p for p in keyed if any(f'"{name}"' in p for name in deform)]
