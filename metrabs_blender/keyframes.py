"""Write bone animation into a new Blender action, fast.

Keys go in with ``keyframe_points.add`` + ``foreach_set`` (one call per F-curve instead of one RNA
lookup per key). Takes can also be stacked as NLA tracks. Blender 4.4 introduced layered actions
(action -> layer -> strip -> channelbag per slot) and 5.0 removed ``Action.fcurves``; the API is
feature-detected, never version-compared.
"""

from collections.abc import Mapping

import bpy
import numpy as np

from ..retarget.rotations import quaternion_to_axis_angle, quaternion_to_euler


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


def _bone_path(bone_name: str) -> str:
    return f'pose.bones["{bpy.utils.escape_identifier(bone_name)}"]'


def _rotation_channels(pose_bone, quaternions: np.ndarray) -> tuple[str, np.ndarray]:
    """Data path and values ``(T, 3|4)`` in the bone's own rotation mode (never changed)."""
    path = _bone_path(pose_bone.name)
    mode = pose_bone.rotation_mode
    if mode == "QUATERNION":
        return path + ".rotation_quaternion", quaternions
    if mode == "AXIS_ANGLE":
        return path + ".rotation_axis_angle", quaternion_to_axis_angle(quaternions)
    return path + ".rotation_euler", quaternion_to_euler(quaternions, mode)


def write_bone_action(
    armature: "bpy.types.Object",
    action_name: str,
    frames: np.ndarray,
    rotations: Mapping[str, np.ndarray],
    locations: Mapping[str, np.ndarray] | None = None,
    assign: bool = True,
    properties: Mapping[str, Mapping[str, float]] | None = None,
    settings: Mapping[str, Mapping[str, float]] | None = None,
) -> "bpy.types.Action":
    """Key bones of ``armature`` into a new action named ``action_name``.

    ``frames`` ``(T,)`` scene frame numbers (float allowed); ``rotations`` bone name -> ``(T, 4)``
    quaternions (w, x, y, z); ``locations`` bone name -> ``(T, 3)`` pose-bone locations;
    ``properties`` bone name -> {custom property: value}, each keyed once (constant for the take,
    e.g. Rigify's IK/FK switch); ``settings`` bone name -> {pose-bone setting: value}, keyed
    once the same way (e.g. ``ik_stretch``). Rotations are keyed in each bone's own rotation mode
    (quaternion, axis-angle or Euler of any order), which is never changed, so the user's other
    actions keep working. The user's existing actions are never modified; a previously assigned
    action gets a fake user so it is not lost when the file is saved.
    """
    frames = np.asarray(frames, np.float64)
    action = bpy.data.actions.new(action_name)
    new_fcurve = _new_fcurve_factory(action, armature)
    linear = _linear_interpolation()
    for bone_name, quaternions in rotations.items():
        path, values = _rotation_channels(armature.pose.bones[bone_name], quaternions)
        for axis in range(values.shape[1]):
            _fill(new_fcurve(path, axis, bone_name), frames, values[:, axis], linear)
    for bone_name, values in (locations or {}).items():
        path = _bone_path(bone_name) + ".location"
        for axis in range(3):
            _fill(new_fcurve(path, axis, bone_name), frames, values[:, axis], linear)
    for bone_name, values in (properties or {}).items():
        for name, value in values.items():
            path = f'{_bone_path(bone_name)}["{bpy.utils.escape_identifier(name)}"]'
            _fill(new_fcurve(path, 0, bone_name), frames[:1], np.array([value]), linear)
    for bone_name, values in (settings or {}).items():
        for name, value in values.items():
            path = f"{_bone_path(bone_name)}.{name}"
            _fill(new_fcurve(path, 0, bone_name), frames[:1], np.array([value]), linear)
    if assign:
        assign_action(armature, action, action_slot(action))
    return action


def action_slot(action: "bpy.types.Action"):
    """The slot an action written here animates (layered actions), else None."""
    if _is_layered(action) and len(action.slots):
        return action.slots[0]
    return None


def push_to_nla(
    target: "bpy.types.Object", action: "bpy.types.Action", name: str, start_frame: float
) -> "bpy.types.NlaStrip":
    """Put ``action`` on a new NLA track on top of ``target``'s stack (one track per take); the
    active action (the user's, being edited) and earlier tracks stay as they were."""
    animation_data = target.animation_data or target.animation_data_create()
    track = animation_data.nla_tracks.new()
    track.name = name
    strip = track.strips.new(name, int(round(start_frame)), action)
    slot = action_slot(action)
    if slot is not None and hasattr(strip, "action_slot"):
        strip.action_slot = slot
    return strip


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
