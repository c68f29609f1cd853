"""The bone-map editor's data: each slot of the body (``hips``, ``spine`` ..., ``upper_arm.L`` ...)
and the target bone that plays it, stored in the scene (``Scene.metrabs.bone_map``), filled by the
automatic mapper or a preset, edited in the panel, saved and loaded as named presets.

A preset is a rig-map JSON file (``docs/rigmaps.md``, written by
``retarget.solve.rigmaps.save_rig_map``, atomically) in the extension's user folder
``rig_maps/``; the import uses the edited map with Rig Map *Bone Map*, and a script may name a
saved preset as its ``rig_map`` (:func:`user_rig_map`). The maths of a map stays in
``retarget.solve.rigmaps``; this module turns it into rows and back. Its property groups are
registered before ``properties`` (which points at them); the panel and buttons are
``bone_map_ui``.
"""

import json
import re
from pathlib import Path

import bpy

from ..retarget.solve import rigmaps
from .errors import MocapError

PRESET_FOLDER = "rig_maps"
_SLOT_LABELS = {
    "hips": "Hips", "spine": "Spine", "neck": "Neck", "head": "Head", "shoulder": "Shoulder",
    "upper_arm": "Upper Arm", "forearm": "Forearm", "hand": "Hand", "thigh": "Thigh",
    "shin": "Shin", "foot": "Foot", "toe": "Toe",
}  # fmt: skip


def slot_label(slot: str) -> str:
    """``upper_arm.L`` -> ``Upper Arm L``."""
    base, _, side = slot.partition(".")
    return f"{_SLOT_LABELS[base]} {side}".strip()


class METRABS_PG_bone_slot(bpy.types.PropertyGroup):
    """One row of the bone map: a slot and the target bone that plays it (chains: one row per
    bone, hips side first)."""

    slot: bpy.props.StringProperty(name="Slot", description="The part of the body")
    bone: bpy.props.StringProperty(
        name="Bone", description="The target bone keyed for this part (empty: left untouched)"
    )


class METRABS_PG_bone_map(bpy.types.PropertyGroup):
    """The editor's map: rows, the root bone, and what a preset brings beyond the keyed bones
    (joint bones such as Rigify's ORG bones, IK/FK switches, IK controls), kept as JSON."""

    rows: bpy.props.CollectionProperty(type=METRABS_PG_bone_slot)
    active_row: bpy.props.IntProperty(name="Active Row")
    root: bpy.props.StringProperty(
        name="Root", description="The bone that carries the root motion (empty: the hips bone)"
    )
    extras: bpy.props.StringProperty(
        name="Joint Bones, Switches and IK",
        description="The map's joint bones, properties and IK controls, as JSON",
    )
    source: bpy.props.StringProperty(name="Filled From", description="How the map was filled")
    preset_name: bpy.props.StringProperty(
        name="Preset Name", description="Name to save the bone map under", default="My Rig"
    )


CLASSES = (METRABS_PG_bone_slot, METRABS_PG_bone_map)


# ------------------------------------------------------------------------------------------------
# Rows <-> RigMap


def set_rows(bone_map, rig_map: "rigmaps.RigMap", source: str) -> None:
    """Fill the editor from ``rig_map``: every slot gets a row (a slot keying several bones, as
    chains do, one row per bone; an empty slot one empty row), in the canonical order."""
    bone_map.rows.clear()
    for slot in rigmaps.ALL_SLOTS:
        for bone in rig_map.bones.get(slot, ("",)):
            row = bone_map.rows.add()
            row.name, row.slot, row.bone = slot, slot, bone
    bone_map.root = rig_map.root or ""
    data = rig_map.to_json()
    extras = {key: data[key] for key in ("anchors", "properties", "ik") if key in data}
    bone_map.extras = json.dumps(extras) if extras else ""
    bone_map.source = source
    bone_map.active_row = 0


def rig_map_from_rows(bone_map, name: str = "bone map") -> "rigmaps.RigMap":
    """The edited map as a :class:`~retarget.solve.rigmaps.RigMap` (rows without a bone are
    left out; a slot's rows in their order)."""
    bones: dict[str, list[str]] = {}
    for row in bone_map.rows:
        if row.slot not in rigmaps.ALL_SLOTS:
            raise MocapError(f"bone map row {row.slot!r} is not a slot; fill the map again")
        if row.bone:
            bones.setdefault(row.slot, []).append(row.bone)
    extras = json.loads(bone_map.extras) if bone_map.extras else {}
    # joint bones of slots that still key a bone
    extras["anchors"] = {s: a for s, a in extras.get("anchors", {}).items() if s in bones}
    data = {"format": rigmaps.JSON_FORMAT, "name": name, "bones": bones, **extras}
    if bone_map.root:
        data["root"] = bone_map.root
    try:
        return rigmaps.rig_map_from_dict(data, source=name)
    except rigmaps.RigMapError as error:
        raise MocapError(str(error)) from None


def edit_row(bone_map, action: str) -> None:
    """``"ADD"``: a new row for the active row's part just below it (a chain's next bone);
    ``"REMOVE"``: the active row removed (the last row of a part is emptied instead, so every
    part keeps its row)."""
    index = bone_map.active_row
    if not 0 <= index < len(bone_map.rows):
        raise MocapError("Select a row of the bone map first (Fill it if it is empty)")
    slot = bone_map.rows[index].slot
    if action == "ADD":
        row = bone_map.rows.add()
        row.name = row.slot = slot
        bone_map.rows.move(len(bone_map.rows) - 1, index + 1)
        bone_map.active_row = index + 1
    elif action == "REMOVE":
        if sum(r.slot == slot for r in bone_map.rows) > 1:
            bone_map.rows.remove(index)
            bone_map.active_row = min(index, len(bone_map.rows) - 1)
        else:
            bone_map.rows[index].bone = ""
    else:
        raise MocapError(f"unknown bone map edit {action!r}: ADD or REMOVE")


def fill(bone_map, armature: "bpy.types.Object", spec="auto") -> "rigmaps.MatchReport":
    """Fill the editor for ``armature`` from ``spec`` (``"auto"``, a preset, a user preset's
    name, a JSON file or a RigMap), resolved as an import would resolve it."""
    from .scene import bone_hierarchy

    if armature is None or armature.type != "ARMATURE":
        raise MocapError("Choose the target armature first: the bone map lists its bones")
    names, parents, heads = bone_hierarchy(armature)
    rig_map, report = rigmaps.resolve_rig_map(user_rig_map(spec), names, parents, heads)
    set_rows(bone_map, rig_map, report.method)
    return report


# ------------------------------------------------------------------------------------------------
# Presets in the extension's user folder


def preset_dir() -> Path:
    """The folder of saved bone maps (created): ``<extension user folder>/rig_maps``."""
    from .paths import extension_user_dir

    return Path(extension_user_dir(PRESET_FOLDER))


def _file_name(name: str) -> str:
    cleaned = re.sub(r"[^\w\- ]+", "_", name.strip()).strip(" ._")
    if not cleaned:
        raise MocapError("Give the bone map a name to save it under (letters, digits, - or _)")
    return cleaned + ".json"


def preset_path(name: str) -> Path:
    return preset_dir() / _file_name(name)


def list_presets() -> list[str]:
    """The names of the saved bone maps, sorted."""
    folder = preset_dir()
    return sorted((path.stem for path in folder.glob("*.json")), key=str.lower)


def save_preset(name: str, rig_map: "rigmaps.RigMap") -> Path:
    """Write ``rig_map`` as the preset ``name`` (replacing one of that name), atomically."""
    path = preset_path(name)
    named = rigmaps.RigMap(name, rig_map.bones, rig_map.anchors, rig_map.root,
                           rig_map.properties, rig_map.ik)  # fmt: skip
    return rigmaps.save_rig_map(named, path)


def load_preset(name: str) -> "rigmaps.RigMap":
    path = preset_path(name)
    if not path.is_file():
        saved = ", ".join(list_presets()) or "none yet"
        raise MocapError(f"No saved bone map {name!r} (saved: {saved})")
    try:
        return rigmaps.load_rig_map(path)
    except rigmaps.RigMapError as error:
        raise MocapError(str(error)) from None


def delete_preset(name: str) -> None:
    path = preset_path(name)
    if not path.is_file():
        raise MocapError(f"No saved bone map {name!r}")
    path.unlink()


def user_rig_map(spec):
    """``spec`` with a saved bone map's name replaced by its map; anything else as it is
    ("auto", a built-in preset, a JSON path, a RigMap)."""
    if isinstance(spec, str) and spec != "auto" and spec not in rigmaps.PRESETS:
        if not spec.lower().endswith(".json"):
            try:
                saved = preset_path(spec).is_file()
            except MocapError:  # not a name a preset can have
                saved = False
            if saved:
                return load_preset(spec)
    return spec
