"""Write bone animation into a new Blender action, fast.

Keys go in with ``keyframe_points.add`` + ``foreach_set`` (one call per F-curve instead of one RNA
lookup per key). A take is keyed densely (a linear key on every frame) or reduced
(``retarget.keys``: few Bezier keys with Aligned handles, within a tolerance of the dense take on
every frame, the error measured on the channels written). Takes can also be stacked as NLA
tracks. Blender 4.4 introduced layered actions (action -> layer -> strip -> channelbag per slot)
and 5.0 removed ``Action.fcurves``; the API is feature-detected, never version-compared.
"""

from collections.abc import Mapping
from dataclasses import dataclass

import bpy
import numpy as np

from ..retarget import keys as key_reduction
from ..retarget.rotations import quaternion_to_axis_angle, quaternion_to_euler


@dataclass(frozen=True)
class WrittenTake:
    """A take written: the action, the keys a dense take has and those written (all channels),
    and the largest error of the reduced keys on any frame (0 for a dense take): rotation
    degrees per bone, root location in pose-bone units (metres on an unscaled rig)."""

    action: "bpy.types.Action"
    keys_dense: int
    keys_kept: int
    max_rotation_error_deg: float = 0.0
    max_location_error: float = 0.0


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


def _enum_value(prop: str, item: str) -> int:
    return bpy.types.Keyframe.bl_rna.properties[prop].enum_items[item].value


def _linear_interpolation() -> int:
    return _enum_value("interpolation", "LINEAR")


def _fill(fcurve: "bpy.types.FCurve", frames: np.ndarray, values: np.ndarray, linear: int) -> None:
    count = len(frames)
    fcurve.keyframe_points.add(count)
    coordinates = np.empty(2 * count, np.float32)
    coordinates[0::2], coordinates[1::2] = frames, values
    fcurve.keyframe_points.foreach_set("co", coordinates)
    # Dense mocap keys: linear interpolation avoids Bezier overshoot between samples.
    fcurve.keyframe_points.foreach_set("interpolation", np.full(count, linear, np.int32))
    fcurve.update()


def _fill_bezier(fcurve: "bpy.types.FCurve", keys: key_reduction.BezierKeys, channel: int) -> None:
    """Reduced keys of one channel: Bezier interpolation, Aligned handles a third of the way to
    the neighbouring keys (what ``retarget.keys.evaluate`` computes), written in bulk."""
    count = len(keys.frames)
    fcurve.keyframe_points.add(count)
    points = fcurve.keyframe_points
    coordinates = np.empty((count, 2), np.float32)
    coordinates[:, 0], coordinates[:, 1] = keys.frames, keys.values[:, channel]
    left, right = keys.handles()
    # Types before positions: setting a handle type may recompute the handles.
    bezier = np.full(count, _enum_value("interpolation", "BEZIER"), np.int32)
    points.foreach_set("interpolation", bezier)
    aligned = np.full(count, _enum_value("handle_left_type", "ALIGNED"), np.int32)
    points.foreach_set("handle_left_type", aligned)
    points.foreach_set("handle_right_type", aligned)
    points.foreach_set("co", coordinates.ravel())
    points.foreach_set("handle_left", left[:, channel].astype(np.float32).ravel())
    points.foreach_set("handle_right", right[:, channel].astype(np.float32).ravel())
    fcurve.update()


def _bone_path(bone_name: str) -> str:
    return f'pose.bones["{bpy.utils.escape_identifier(bone_name)}"]'


def _rotation_channels(pose_bone, quaternions: np.ndarray) -> tuple[str, str, np.ndarray]:
    """Data path, rotation mode and values ``(T, 3|4)`` in the bone's own rotation mode (never
    changed)."""
    path = _bone_path(pose_bone.name)
    mode = pose_bone.rotation_mode
    if mode == "QUATERNION":
        return path + ".rotation_quaternion", mode, quaternions
    if mode == "AXIS_ANGLE":
        return path + ".rotation_axis_angle", mode, quaternion_to_axis_angle(quaternions)
    return path + ".rotation_euler", mode, quaternion_to_euler(quaternions, mode)


def write_take(
    armature: "bpy.types.Object",
    action_name: str,
    frames: np.ndarray,
    rotations: Mapping[str, np.ndarray],
    locations: Mapping[str, np.ndarray] | None = None,
    assign: bool = True,
    properties: Mapping[str, Mapping[str, float]] | None = None,
    settings: Mapping[str, Mapping[str, float]] | None = None,
    reduction: "key_reduction.KeyTolerance | None" = None,
    scales: Mapping[str, np.ndarray] | None = None,
) -> WrittenTake:
    """Key bones of ``armature`` into a new action named ``action_name``.

    ``frames`` ``(T,)`` scene frame numbers (float allowed, increasing); ``rotations`` bone name
    -> ``(T, 4)`` quaternions (w, x, y, z); ``locations`` bone name -> ``(T, 3)`` pose-bone
    locations; ``properties`` bone name -> {custom property: value}, each keyed once (constant
    for the take, e.g. Rigify's IK/FK switch); ``settings`` bone name -> {pose-bone setting:
    value}, keyed once the same way (e.g. ``ik_stretch``). Rotations are keyed in each bone's own
    rotation mode (quaternion, axis-angle or Euler of any order), which is never changed, so the
    user's other actions keep working. ``reduction`` None keys every frame (linear); a
    ``retarget.keys.KeyTolerance`` keys few Bezier keys per bone (shared by its channels) whose
    pose stays within the tolerance of the dense one on every frame; ``scales`` bone name ->
    ``(T,)`` factors on its tolerance per frame (``retarget.keys.planted_scales``: tighter while
    a foot is planted). The user's existing actions are never modified; a previously assigned
    action gets a fake user so it is not lost when the file is saved.
    """
    frames = np.asarray(frames, np.float64)
    action = bpy.data.actions.new(action_name)
    new_fcurve = _new_fcurve_factory(action, armature)
    linear = _linear_interpolation()
    counts = {"dense": 0, "kept": 0, "rotation": 0.0, "location": 0.0}
    ones = np.ones(len(frames))

    def scale(bone_name: str) -> np.ndarray:
        return np.asarray((scales or {}).get(bone_name, ones), np.float64)

    def key(path: str, bone_name: str, values: np.ndarray, reduced) -> None:
        counts["dense"] += values.size
        if reduced is None:
            for axis in range(values.shape[1]):
                _fill(new_fcurve(path, axis, bone_name), frames, values[:, axis], linear)
            counts["kept"] += values.size
            return
        for axis in range(values.shape[1]):
            _fill_bezier(new_fcurve(path, axis, bone_name), reduced.keys, axis)
        counts["kept"] += reduced.keys.values.size

    channels = {
        bone_name: _rotation_channels(armature.pose.bones[bone_name], quaternions)
        for bone_name, quaternions in rotations.items()
    }
    reduced_rotations: dict[str, key_reduction.ReducedChannels | None] = dict.fromkeys(channels)
    if reduction is not None:  # every bone of one rotation mode reduced in one pass
        for mode in {mode for _, mode, _ in channels.values()}:
            names = [name for name, (_, m, _) in channels.items() if m == mode]
            stacked = np.stack([channels[name][2] for name in names])
            bounds = reduction.rotation_deg * np.stack([scale(name) for name in names])
            reduced = key_reduction.reduce_rotations(frames, stacked, mode, bounds)
            reduced_rotations.update(zip(names, reduced, strict=True))
            counts["rotation"] = max([counts["rotation"]] + [r.max_error for r in reduced])
    for bone_name, (path, _, values) in channels.items():
        key(path, bone_name, values, reduced_rotations[bone_name])
    for bone_name, values in (locations or {}).items():
        values = np.asarray(values, np.float64)
        reduced = None
        if reduction is not None:
            bound = reduction.location_m * scale(bone_name)
            reduced = key_reduction.reduce_location(frames, values, bound)
            counts["location"] = max(counts["location"], reduced.max_error)
        key(_bone_path(bone_name) + ".location", bone_name, values, reduced)
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
    return WrittenTake(
        action, counts["dense"], counts["kept"], counts["rotation"], counts["location"]
    )


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
