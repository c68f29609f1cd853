"""The bone-map editor in real Blender: filled by the automatic mapper or a preset, edited row by
row for a rig nothing recognises, saved and loaded as named presets in the extension's user folder
(rig-map JSON files, docs/rigmaps.md), and imported with (Rig Map *Bone Map*, or a preset's name
in a script)."""

import json
from pathlib import Path

import bpy
import numpy as np
import pytest

from retarget import metrics
from tests.blender.test_retarget import build_armature, direction_errors, read_back, write_clip
from tests.test_solve_rigs import RigSpec, canonical_rest, mixamo_like, rigify_like, world_motion


def rows(scene=None) -> list[tuple[str, str]]:
    return [(row.slot, row.bone) for row in (scene or bpy.context.scene).metrabs.bone_map.rows]


def anonymous(spec: RigSpec) -> tuple[RigSpec, dict[str, str]]:
    """``spec`` with every bone renamed ``Bone.NNN`` (no name tells a part of the body), and
    the renaming."""
    rename = {name: f"Bone.{k:03d}" for k, name in enumerate(spec.names)}
    bones = [(rename[n], rename[p] if p else None, h, t, r) for n, p, h, t, r in spec.bones]
    return RigSpec("anonymous", bones, joints=spec.joints), rename


@pytest.fixture
def presets(api):
    """The saved bone maps' folder, emptied after the test."""
    folder = Path(api.extension_user_dir("rig_maps"))
    yield folder
    for path in folder.glob("*.json"):
        path.unlink()


def test_fill_lists_every_part_with_the_bone_found(api, extension):
    obj = build_armature(mixamo_like(canonical_rest(), rng=np.random.default_rng(51)), "Hero")
    report = api.fill_bone_map(obj)
    assert report.method == "preset mixamo"
    got = rows()
    slots = extension.retarget.solve.rigmaps.ALL_SLOTS
    assert [slot for slot, _ in got] == ["hips", "spine", "spine", "spine", *slots[2:]]
    assert ("upper_arm.L", "mixamorig:LeftArm") in got and (
        "toe.R",
        "mixamorig:RightToeBase",
    ) in got
    assert bpy.context.scene.metrabs.bone_map.source == "preset mixamo"
    rig_map = api.edited_rig_map()
    assert rig_map.bones == report.matched


def test_a_preset_round_trips_through_the_editor_joint_bones_switches_and_ik_included(
    api, extension
):
    obj = build_armature(rigify_like(canonical_rest(), rng=np.random.default_rng(52)), "rig")
    rigmaps = extension.retarget.solve.rigmaps
    names, parents, heads = extension.metrabs_blender.scene.bone_hierarchy(obj)
    expected, _ = rigmaps.resolve_rig_map("rigify", names, parents, heads)
    api.fill_bone_map(obj, "rigify")
    edited = api.edited_rig_map()
    assert (edited.bones, edited.anchors, edited.root, edited.properties, edited.ik) == (
        expected.bones, expected.anchors, expected.root, expected.properties, expected.ik
    )  # fmt: skip


def test_a_rig_nothing_recognises_mapped_by_hand_saved_loaded_and_imported(
    api, extension, presets, tmp_path
):
    spec, rename = anonymous(mixamo_like(canonical_rest(1.7), rng=np.random.default_rng(53)))
    obj = build_armature(spec, "Robot")
    bpy.context.scene.metrabs.target = obj
    with pytest.raises(extension.retarget.RetargetError, match="no humanoid bones"):
        api.fill_bone_map(obj)
    # Fill from a preset whose names are not there: every part listed, no bone found; then the
    # user picks each bone (the panel's search field sets row.bone).
    with pytest.raises(extension.retarget.RetargetError):
        api.fill_bone_map(obj, "mixamo")
    reference = extension.retarget.solve.rigmaps.PRESETS["mixamo"]
    extension.metrabs_blender.bone_map.set_rows(
        bpy.context.scene.metrabs.bone_map,
        extension.retarget.solve.rigmaps.RigMap("empty", {}),
        "by hand",
    )
    editor = bpy.context.scene.metrabs.bone_map
    # the spine has three bones: two more rows for it
    editor.active_row = [row.slot for row in editor.rows].index("spine")
    api.edit_bone_map("ADD")
    api.edit_bone_map("ADD")
    spine_rows = [k for k, row in enumerate(editor.rows) if row.slot == "spine"]
    assert len(spine_rows) == 3 and spine_rows == list(range(spine_rows[0], spine_rows[0] + 3))
    for row in editor.rows:
        slot_bones = reference.bones[row.slot]
        k = spine_rows.index(list(editor.rows).index(row)) if row.slot == "spine" else 0
        row.bone = rename["mixamorig:" + slot_bones[k]]
    editor.root = rename["mixamorig:Hips"]
    path = api.save_bone_map("Robot rig")
    assert path == presets / "Robot rig.json" and api.bone_map_presets() == ["Robot rig"]
    data = json.loads(path.read_text())
    assert data["format"] == "metrabs-rigmap" and data["name"] == "Robot rig"
    assert data["bones"]["upper_arm.L"] == rename["mixamorig:LeftArm"]
    assert data["bones"]["spine"] == [
        rename[f"mixamorig:{n}"] for n in ("Spine", "Spine1", "Spine2")
    ]
    assert not list(Path(extension.__file__).parent.rglob("Robot rig.json"))  # not in the add-on

    motion = world_motion("walk", 2.0, seed=53, turn_deg_per_s=20.0)
    trajectory, world = write_clip(tmp_path, motion, contacts=False)
    (take,) = api.import_trajectory(trajectory, target=obj, rig_map=api.edited_rig_map())
    joints, quaternions = read_back(obj, api.edited_rig_map(), len(world), extension)
    errors = direction_errors(joints, world)
    assert np.median(errors) <= 2.0 and np.percentile(errors, 95) <= 8.0
    assert metrics.sign_flips(quaternions) == 0
    edited_keys = _keys(extension, take.action)

    # Another file: the preset by name, into the editor or straight into an import.
    bpy.ops.wm.read_homefile(app_template="")
    obj = build_armature(spec, "Robot")
    loaded = api.load_bone_map("Robot rig")
    assert rows() == [(slot, bone) for slot, bone in rows_of(loaded)]
    (again,) = api.import_trajectory(trajectory, target=obj, rig_map="Robot rig")
    assert _keys(extension, again.action) == edited_keys
    api.delete_bone_map("Robot rig")
    assert api.bone_map_presets() == []
    with pytest.raises(api.MocapError, match="No saved bone map 'Robot rig'"):
        api.load_bone_map("Robot rig")


def rows_of(rig_map):
    from retarget.solve.rigmaps import ALL_SLOTS

    return [(slot, bone) for slot in ALL_SLOTS for bone in rig_map.bones.get(slot, ("",))]


def _keys(extension, action) -> list:
    return sorted(
        (fc.data_path, fc.array_index, tuple(round(k.co[1], 6) for k in fc.keyframe_points))
        for fc in extension.metrabs_blender.keyframes.action_fcurves(action)
    )


def test_rows_add_and_remove(api):
    obj = build_armature(mixamo_like(canonical_rest()), "Hero")
    api.fill_bone_map(obj)
    editor = bpy.context.scene.metrabs.bone_map
    hand = [row.slot for row in editor.rows].index("hand.L")
    editor.active_row = hand
    api.edit_bone_map("REMOVE")  # the only row of its part: emptied, kept
    assert editor.rows[hand].slot == "hand.L" and editor.rows[hand].bone == ""
    assert "hand.L" not in api.edited_rig_map().bones
    editor.active_row = 1  # the first spine row
    api.edit_bone_map("REMOVE")
    assert [r.bone for r in editor.rows if r.slot == "spine"] == ["mixamorig:Spine1",
                                                                  "mixamorig:Spine2"]  # fmt: skip
    with pytest.raises(api.MocapError, match="ADD or REMOVE"):
        api.edit_bone_map("SWAP")
    editor.active_row = 99
    with pytest.raises(api.MocapError, match="Select a row"):
        api.edit_bone_map("ADD")
    with pytest.raises(api.MocapError, match="Give the bone map a name"):
        api.save_bone_map("  ")
