"""Rig maps: presets found under any prefix, the automatic mapper on rigs no preset knows, JSON
user maps, and refusals that say what was expected (pure Python)."""

import json

import numpy as np
import pytest

from retarget.solve import rigmaps
from retarget.solve.automap import auto_map, name_tokens
from retarget.solve.rigmaps import RigMap, RigMapError, resolve_rig_map
from tests.test_solve_rigs import (
    autorigpro_like,
    canonical_rest,
    generated_like,
    metarig_like,
    mixamo_like,
    rigify_like,
    unreal_like,
)

REST = canonical_rest()


def resolve(spec, how="auto"):
    rig = spec.target_rig()
    return resolve_rig_map(how, rig.names, rig.parents, rig.heads)


def renamed(spec, names: dict[str, str], prefix: str = ""):
    """The same rig with its bones renamed (unlisted bones keep their names)."""
    rename = {old: prefix + names.get(old, old) for old in spec.names}
    bones = [(rename[n], rename[p] if p else None, h, t, r) for n, p, h, t, r in spec.bones]
    return type(spec)(spec.name, bones, joints=spec.joints)


# The generated rig renamed to SMPL / SMPL-X conventions (bones named after their head joints).
SMPL = {
    "pelvis": "Pelvis", "spine": "Spine1", "spine.001": "Spine2", "chest": "Spine3",
    "neck": "Neck", "head": "Head",
}  # fmt: skip
SMPLX = {k: v.lower() for k, v in SMPL.items()}
for _side, _smpl, _smplx in (("L", "L_", "left_"), ("R", "R_", "right_")):
    for _bone, _joint in (("shoulder", "Collar"), ("upper_arm", "Shoulder"), ("forearm", "Elbow"),
                          ("hand", "Wrist"), ("fingers", "Hand"), ("thigh", "Hip"),
                          ("shin", "Knee"), ("foot", "Ankle"), ("toe", "Foot")):  # fmt: skip
        SMPL[f"{_bone}.{_side}"] = _smpl + _joint
        SMPLX[f"{_bone}.{_side}"] = _smplx + _joint.lower()


@pytest.mark.parametrize(
    "spec, preset",
    [
        (generated_like(REST), "metrabs"),
        (mixamo_like(REST), "mixamo"),
        (mixamo_like(REST, prefix="mixamorig1:"), "mixamo"),
        (mixamo_like(REST, prefix=""), "mixamo"),
        (renamed(generated_like(REST), SMPL, "m_avg_"), "smpl"),
        (renamed(generated_like(REST), SMPLX), "smplx"),
        (metarig_like(REST), "metarig"),
        (rigify_like(REST), "rigify"),
        (autorigpro_like(REST), "autorigpro"),
        (autorigpro_like(REST, spine_count=2), "autorigpro"),
    ],
    ids=[
        "metrabs",
        "mixamorig",
        "mixamorig1",
        "mixamo-bare",
        "smpl",
        "smplx",
        "metarig",
        "rigify",
        "autorigpro",
        "autorigpro-2-spine",
    ],  # fmt: skip
)
def test_auto_finds_the_preset_under_any_prefix(spec, preset):
    rig_map, report = resolve(spec)
    assert report.method == f"preset {preset}"
    expected = set(rigmaps.ALL_SLOTS)
    assert set(rig_map.bones) == expected, expected - set(rig_map.bones)
    assert not report.missing
    assert rig_map.root_bone in spec.names


def test_rigify_preset_keys_fk_controls_and_switches_to_fk():
    rig_map, _ = resolve(rigify_like(REST))
    assert rig_map.bones["upper_arm.L"] == ("upper_arm_fk.L",)
    assert rig_map.bones["hips"] == ("torso", "hips", "chest") and rig_map.root_bone == "torso"
    assert rig_map.bones["spine"] == ("spine_fk.002", "spine_fk.003")
    assert rig_map.anchor("thigh.R") == ("ORG-thigh.R",)
    assert rig_map.properties["thigh_parent.L"] == {"IK_FK": 1.0}
    assert rig_map.properties["torso"] == {"neck_follow": 1.0, "head_follow": 1.0}
    assert not any(name.startswith(("DEF-", "ORG-", "MCH-")) for name in rig_map.keyed_bones())


def test_automatic_mapper_reads_names_and_hierarchy():
    """An Unreal-like rig (no preset): 5 spine bones from the hierarchy between pelvis and the
    clavicles' parent, twist and root bones left alone."""
    spec = unreal_like(REST, spine_count=5)
    rig_map, report = resolve(spec)
    assert report.method.startswith("automatic")
    assert rig_map.bones["spine"] == tuple(f"spine_0{k}" for k in range(1, 6))
    assert rig_map.bones["hips"] == ("pelvis",) and rig_map.bones["neck"] == ("neck_01",)
    for side in "lr":
        s = side.upper()
        assert rig_map.bones[f"shoulder.{s}"] == (f"clavicle_{side}",)
        assert rig_map.bones[f"upper_arm.{s}"] == (f"upperarm_{side}",)
        assert rig_map.bones[f"forearm.{s}"] == (f"lowerarm_{side}",)
        assert rig_map.bones[f"shin.{s}"] == (f"calf_{side}",)
        assert rig_map.bones[f"toe.{s}"] == (f"ball_{side}",)
    keyed = set(rig_map.keyed_bones())
    assert "upperarm_twist_01_l" not in keyed and "root" not in keyed
    text = str(report)
    assert "spine" in text and "spine_05" in text and "not keyed" in text


@pytest.mark.parametrize("builder", [generated_like, mixamo_like, metarig_like])
def test_automatic_mapper_agrees_with_the_presets_it_can_see(builder):
    """Where names carry sides and hands/feet are named, hierarchy alone rebuilds the preset
    (the metarig has no bone named 'head', so its neck and head stay unmapped)."""
    spec = builder(REST)
    rig = spec.target_rig()
    preset, _ = resolve(spec)
    automatic, notes = auto_map(rig.names, rig.parents, rig.heads)
    for slot, bones in automatic.bones.items():
        assert preset.bones[slot] == bones, slot
    if builder is metarig_like:
        assert "head" not in automatic.bones and notes
    else:
        assert set(automatic.bones) == set(preset.bones)


def test_autorigpro_preset_keys_fk_controls_and_switches_to_fk():
    rig_map, report = resolve(autorigpro_like(REST))
    assert rig_map.bones["hand.L"] == ("c_hand_fk.l",) and rig_map.bones["shin.R"] == (
        "c_leg_fk.r",
    )
    assert rig_map.bones["toe.L"] == ("c_toes_fk.l",)
    assert rig_map.bones["hips"] == ("c_root_master.x", "c_root.x")
    assert rig_map.root_bone == "c_root_master.x"
    assert rig_map.bones["spine"] == ("c_spine_01.x", "c_spine_02.x", "c_spine_03.x")
    assert rig_map.properties["c_foot_ik.r"] == {"ik_fk_switch": 1.0}  # 1 = FK
    assert not {"hand.l", "arm_stretch.l", "root.x"} & set(rig_map.keyed_bones())  # deform bones


def test_automatic_mapper_reads_autorigpro_controls():
    """The automatic mapper alone (no preset) reads ``c_hand_fk.l`` as the left hand and
    ``c_head.x`` as the head, and keys the controls rather than the deforming bones of the same
    names (``hand.l``, ``head.x``) that follow them through constraints."""
    spec = autorigpro_like(REST)
    rig = spec.target_rig()
    automatic, _notes = auto_map(rig.names, rig.parents, rig.heads)
    preset = rigmaps.PRESETS["autorigpro"]
    assert set(automatic.bones) == set(rigmaps.ALL_SLOTS)
    for slot in rigmaps.ALL_SLOTS:
        if slot != "hips":  # the automatic map keys the hips' topmost bone only
            assert automatic.bones[slot] == preset.bones[slot], slot
    assert automatic.bones["hips"] == ("c_root_master.x",)


def test_name_tokens():
    assert name_tokens("c_hand_fk.l") == ("L", "hand")
    assert name_tokens("c_head.x") == (None, "head")
    assert name_tokens("c_toes_fk.r") == ("R", "toes")
    assert name_tokens("mixamorig:LeftUpLeg") == ("L", "upleg")
    assert name_tokens("thigh.L") == ("L", "thigh")
    assert name_tokens("upperarm_twist_01_l") == ("L", "upperarmtwist")
    assert name_tokens("Bip01 R Hand") == ("R", "hand")
    assert name_tokens("J_Bip_L_UpperArm") == ("L", "upperarm")
    assert name_tokens("DEF-spine.003") == (None, "spine")
    assert name_tokens("RightHandIndex1") == ("R", "handindex")


def test_sides_come_from_positions_when_names_have_none():
    spec = mixamo_like(REST, prefix="")
    # Hands named like Blender's duplicates ("Hand", "Hand.001"): the side comes from x only.
    names = {"LeftHand": "Hand", "RightHand": "Hand.001"}
    rig_map, report = resolve(renamed(spec, names))
    assert report.method.startswith("automatic")
    assert rig_map.bones["hand.L"] == ("Hand",) and rig_map.bones["hand.R"] == ("Hand.001",)
    assert rig_map.bones["forearm.L"] == ("LeftForeArm",)


def test_json_user_map_round_trip(tmp_path):
    spec = unreal_like(REST)
    rig_map, _ = resolve(spec)
    custom = RigMap("my rig", rig_map.bones, root="pelvis", properties={"root": {"flag": 1.0}})
    path = rigmaps.save_rig_map(custom, tmp_path / "my_rig.json")
    data = json.loads(path.read_text())
    assert data["format"] == "metrabs-rigmap" and data["bones"]["hips"] == "pelvis"
    assert data["bones"]["neck"] == ["neck_01"]  # chains stay lists
    loaded = rigmaps.load_rig_map(path)
    assert loaded == custom
    rig = spec.target_rig()
    used, report = resolve_rig_map(path, rig.names, rig.parents, rig.heads)
    assert used == custom and report.method == "user map my_rig.json"
    used, report = resolve_rig_map(str(path), rig.names, rig.parents, rig.heads)
    assert used == custom


def test_bad_maps_are_refused_with_what_to_do(tmp_path):
    spec = unreal_like(REST)
    rig = spec.target_rig()
    args = (rig.names, rig.parents, rig.heads)
    with pytest.raises(RigMapError, match="unknown slot"):
        RigMap("x", {"elbow.L": "lowerarm_l"})
    with pytest.raises(RigMapError, match="does not have: \\['LeftArm'\\]"):
        resolve_rig_map(RigMap("x", {**resolve(spec)[0].bones, "upper_arm.L": "LeftArm"}), *args)
    with pytest.raises(RigMapError, match="required slot"):
        resolve_rig_map(RigMap("x", {"hips": "pelvis"}), *args)
    with pytest.raises(RigMapError, match="unknown rig map 'daz'"):
        resolve_rig_map("daz", *args)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(RigMapError, match="bad.json is not a JSON rig map"):
        resolve_rig_map(tmp_path / "bad.json", *args)
    (tmp_path / "other.json").write_text('{"bones": {}}')
    with pytest.raises(RigMapError, match="not a rig map"):
        resolve_rig_map(tmp_path / "other.json", *args)
    (tmp_path / "new.json").write_text('{"format": "metrabs-rigmap", "version": 9, "bones": {}}')
    with pytest.raises(RigMapError, match="newer than this add-on"):
        resolve_rig_map(tmp_path / "new.json", *args)
    with pytest.raises(RigMapError, match="not found"):
        rigmaps.load_rig_map(tmp_path / "missing.json")


def test_no_humanoid_bones_lists_what_was_expected():
    names = ["Bone", "Bone.001", "Bone.002", "tail.003"]
    heads = np.zeros((4, 3))
    with pytest.raises(RigMapError) as error:
        resolve_rig_map("auto", names, [-1, 0, 1, 2], heads)
    message = str(error.value)
    for expected in ("hips", "thigh.L", "upper_arm.R", "Bone.001", "mixamo", "JSON rig map"):
        assert expected in message


def test_the_documented_json_example_is_a_valid_map():
    """docs/rigmaps.md's example reads as the map it describes, and survives a round trip."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "rigmaps.md").read_text()
    example = json.loads(text.split("```json\n")[1].split("```")[0])
    rig_map = rigmaps.rig_map_from_dict(example)
    assert rig_map.name == "Robot" and rig_map.bones["spine"] == (
        "spine_01",
        "spine_02",
        "spine_03",
    )
    assert rig_map.anchor("hips") == ("DEF-pelvis",) and rig_map.root_bone == "pelvis"
    leg = rig_map.ik["leg.L"]
    assert leg.controls == {"foot_ik_l": "foot.L"} and leg.poles == {"knee_pole_l": "thigh.L"}
    assert leg.settings == {"calf_l": {"ik_stretch": 0.0}}
    assert rigmaps.rig_map_from_dict(rig_map.to_json()) == rig_map
    for preset in rigmaps.PRESETS.values():  # every preset writes out and reads back the same
        assert rigmaps.rig_map_from_dict(json.loads(json.dumps(preset.to_json()))) == preset


def test_ik_limbs_are_checked():
    bones = rigmaps.PRESETS["mixamo"].bones
    with pytest.raises(RigMapError, match="IK limb 'tail.L' is not one of"):
        RigMap("x", bones, ik={"tail.L": {"controls": {"a": "hand.L"}}})
    with pytest.raises(RigMapError, match="unknown slot"):
        RigMap("x", bones, ik={"arm.L": {"controls": {"a": "paw.L"}}})
    with pytest.raises(RigMapError, match='needs a "controls" object'):
        RigMap("x", bones, ik={"arm.L": {"poles": {}}})
    spec = unreal_like(REST)
    rig = spec.target_rig()
    mapped = resolve(spec)[0]
    with_ik = RigMap("x", mapped.bones, ik={"arm.L": {"controls": {"hand_ik_l": "hand.L"}}})
    with pytest.raises(RigMapError, match="does not have: \\['hand_ik_l'\\]"):
        resolve_rig_map(with_ik, rig.names, rig.parents, rig.heads)
