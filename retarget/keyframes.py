"""Write bone animation into a new Blender action, fast (the one module of ``retarget`` using bpy).

Keys go in with ``keyframe_points.add`` + ``foreach_set`` (one call per F-curve instead of one RNA
lookup per key). Blender 4.4 introduced layered actions (action -> layer -> strip -> channelbag per
slot) and 5.0 removed ``Action.fcurves``; the API is feature-detected, never version-compared.
"""

from collections.abc import Mapping

import bpy
import numpy as np


def _is_layered(action: "bpy.types.Action") -> bool:
    return hasattr(action, "layers") and hasattr(action, "slots")


def _new_fcurve_factory(action: "bpy.types.Action", target: "bpy.types.ID"):
    """Return ``new(data_path, index, group) -> FCurve`` for an empty ``action`` keyed on ``target``."""
    if not _is_layered(action):
        return lambda path, index, group: action.fcurves.new(path, index=index, action_group=group)
    slot = action.slots.new(id_type="OBJECT", name=target.name)
    layer = action.layers.new("Layer")
    strip = layer.strips.new(type="KEYFRAME")
    channelbag = strip.channelbag(slot, ensure=True)
    groups: dict[str, bpy.types.ActionGroup] = {}

    def new(path: str, index: int, group: str) -> "bpy.types.FCurve":
        fcurve = channelbag.fcurves.new(path, index=index)
        if group not in groups:
            groups[group] = channelbag.groups.new(group)
        fcurve.group = groups[group]
        return fcurve

    new.slot = slot  # type: ignore[attr-defined]
    return new


def _linear_interpolation() -> int:
    return bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value


def _fill(fcurve: "bpy.types.FCurve", frames: np.ndarray, values: np.ndarray, linear: int) -> None:
    count = len(frames)
    fcurve.keyframe_points.add(count)
    coordinates = np.empty(2 * count, np.float32)
    coordinates[0::2], coordinates[1::2] = frames, values
    fcurve.keyframe_points.foreach_set("co", coordinates)
    # Dense mocap keys: linear interpolation avoids Bezier overshoot between samples.
    fcurve.keyframe_points.foreach_set("interpolation", np.full(count, linear, np.int32))
    fcurve.update()


def write_bone_action(
    armature: "bpy.types.Object",
    action_name: str,
    frames: np.ndarray,
    rotations: Mapping[str, np.ndarray],
    locations: Mapping[str, np.ndarray] | None = None,
    assign: bool = True,
) -> "bpy.types.Action":
    """Key bones of ``armature`` into a new action named ``action_name``.

    ``frames`` ``(T,)`` scene frame numbers (float allowed); ``rotations`` bone name -> ``(T, 4)``
    quaternions (w, x, y, z); ``locations`` bone name -> ``(T, 3)`` pose-bone locations. The user's
    existing actions are never modified; a previously assigned action gets a fake user so it is
    not lost when the file is saved. Bones are switched to quaternion rotation mode.
    """
    frames = np.asarray(frames, np.float64)
    action = bpy.data.actions.new(action_name)
    new_fcurve = _new_fcurve_factory(action, armature)
    linear = _linear_interpolation()
    for bone_name, quaternions in rotations.items():
        armature.pose.bones[bone_name].rotation_mode = "QUATERNION"
        path = f'pose.bones["{bone_name}"].rotation_quaternion'
        for axis in range(4):
            _fill(new_fcurve(path, axis, bone_name), frames, quaternions[:, axis], linear)
    for bone_name, values in (locations or {}).items():
        path = f'pose.bones["{bone_name}"].location'
        for axis in range(3):
            _fill(new_fcurve(path, axis, bone_name), frames, values[:, axis], linear)
    if assign:
        assign_action(armature, action, getattr(new_fcurve, "slot", None))
    return action


def assign_action(target: "bpy.types.Object", action: "bpy.types.Action", slot=None) -> None:
    """Make ``action`` the active action of ``target`` (and its slot, on layered actions)."""
    animation_data = target.animation_data or target.animation_data_create()
    previous = animation_data.action
    if previous is not None and previous != action:
        previous.use_fake_user = True  # keep the user's take alive in the saved file
    animation_data.action = action
    if slot is not None and hasattr(animation_data, "action_slot"):
        animation_data.action_slot = slot


def action_fcurves(action: "bpy.types.Action") -> list["bpy.types.FCurve"]:
    """All F-curves of an action, legacy or layered."""
    if not _is_layered(action):
        return list(action.fcurves)
    return [
        fcurve
        for layer in action.layers
        for strip in layer.strips
        for channelbag in strip.channelbags
        for fcurve in channelbag.fcurves
    ]
