"""Scene building blocks: armatures from bone lists, rest matrices, scene timing."""

from collections.abc import Sequence

import bpy
import numpy as np


def ensure_object_mode(context: "bpy.types.Context") -> None:
    if context.object is not None and context.object.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")


def create_armature(context: "bpy.types.Context", name: str, bones: Sequence) -> "bpy.types.Object":
    """A new armature object linked to the scene's collection, with ``bones`` (objects with
    ``name``, ``parent``, ``head``, ``tail`` in metres) and roll 0. The active object and the
    selection are restored afterwards; selected armatures are not taken into Edit Mode with it."""
    ensure_object_mode(context)
    armature = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, armature)
    context.scene.collection.objects.link(obj)
    view_layer = context.view_layer
    previous_active = view_layer.objects.active
    selected = [o for o in view_layer.objects if o.select_get()]
    for other in selected:  # Edit Mode takes in every selected armature
        other.select_set(False)
    view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        for bone in bones:
            edit_bone = armature.edit_bones.new(bone.name)
            edit_bone.head, edit_bone.tail, edit_bone.roll = bone.head, bone.tail, 0.0
            if bone.parent is not None:
                edit_bone.parent = armature.edit_bones[bone.parent]
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")  # edit bones die here; data goes to armature.bones
        view_layer.objects.active = previous_active
        for other in selected:
            other.select_set(True)
    return obj


def rest_rotations(armature: "bpy.types.Object", bone_names: Sequence[str]) -> np.ndarray:
    """Rest rotations ``(B, 3, 3)`` of bones in armature space (``bone.matrix_local``, roll included)."""
    return np.array(
        [np.array(armature.data.bones[name].matrix_local)[:3, :3] for name in bone_names]
    )


def rest_heads(armature: "bpy.types.Object", bone_names: Sequence[str]) -> np.ndarray:
    """Rest head positions ``(B, 3)`` in armature space."""
    return np.array([np.array(armature.data.bones[name].head_local) for name in bone_names])


def match_scene_timing(scene: "bpy.types.Scene", fps: float, duration_s: float) -> None:
    """Set the scene frame rate to ``fps`` (fractional rates through ``fps_base``) and the end frame
    so the whole clip plays from the current start frame."""
    rounded = max(1, round(fps))
    scene.render.fps = rounded
    scene.render.fps_base = rounded / fps
    scene.frame_end = scene.frame_start + int(np.ceil(duration_s * fps - 1e-6))


def scene_fps(scene: "bpy.types.Scene") -> float:
    return scene.render.fps / scene.render.fps_base


# ---------------------------------------------------------------------------------------------
# Target armatures


def check_target(obj: "bpy.types.Object") -> None:
    """Refuse targets the retarget cannot key safely; raises :class:`MocapError` saying why."""
    from ..retarget.solve import transforms
    from .errors import MocapError

    if obj is None:
        raise MocapError("No target object given; select the character's armature")
    if obj.type != "ARMATURE":
        raise MocapError(
            f"{obj.name!r} is a {obj.type.lower()}, not an armature; pick the character's rig "
            "(its armature object), not its mesh"
        )
    if obj.library is not None:
        raise MocapError(
            f"{obj.name!r} is linked from the library {obj.library.filepath!r} and cannot be "
            "animated here; make it local or add a library override first"
        )
    # Any rotation, one positive scale and any parent are fine (the solve runs in the world
    # frame); a zero, negative or non-uniform scale is refused here, before anything changes.
    try:
        transforms.from_matrix(np.array(obj.matrix_world), obj.name)
    except transforms.TransformError as error:
        raise MocapError(str(error)) from None
    if not len(obj.data.bones):
        raise MocapError(f"the armature {obj.name!r} has no bones")
    if obj.animation_data is not None and obj.animation_data.use_tweak_mode:
        raise MocapError(
            f"{obj.name!r} is in NLA tweak mode (a strip is being edited); leave it (Tab in the "
            "NLA editor) and import again"
        )


def bone_hierarchy(obj: "bpy.types.Object") -> tuple[list[str], list[int], np.ndarray]:
    """Bone names, parent indices (-1 root) and rest heads ``(B, 3)`` in armature space."""
    bones = obj.data.bones
    names = [bone.name for bone in bones]
    index = {name: b for b, name in enumerate(names)}
    parents = [index[bone.parent.name] if bone.parent else -1 for bone in bones]
    heads = np.array([tuple(bone.head_local) for bone in bones], np.float64).reshape(-1, 3)
    return names, parents, heads


_FOLLOW_TYPES = {"COPY_TRANSFORMS", "COPY_ROTATION"}


def _full_copy(constraint, obj: "bpy.types.Object", index: dict[str, int]) -> bool:
    """A constraint that replaces the bone's world rotation by another bone's of the same rig."""
    if constraint.type not in _FOLLOW_TYPES or not constraint.enabled:
        return False
    target = constraint.target
    if target is None or target.name != obj.name or constraint.subtarget not in index:
        return False
    if constraint.owner_space != "WORLD" or constraint.target_space != "WORLD":
        return False
    if getattr(constraint, "mix_mode", "REPLACE") != "REPLACE":
        return False
    if constraint.type == "COPY_ROTATION":
        axes = (constraint.use_x, constraint.use_y, constraint.use_z)
        inverted = (constraint.invert_x, constraint.invert_y, constraint.invert_z)
        if not all(axes) or any(inverted):
            return False
    return constraint.influence > 0.999


def read_target_rig(
    context: "bpy.types.Context",
    obj: "bpy.types.Object",
    properties: dict[str, dict[str, float]] | None = None,
):
    """The rest pose of ``obj`` as a :class:`retarget.solve.TargetRig`.

    Bones whose pose comes from another bone through a full Copy Transforms / Copy Rotation
    constraint (Rigify's ORG bones) are recorded as following it. Constraint influences are read
    after evaluating the rig with ``properties`` (bone -> {custom property: value}) applied, since
    drivers on them (Rigify's IK/FK switch) decide which chain the bones follow; the properties
    are put back afterwards.
    """
    from ..retarget.solve import TargetRig

    names, parents, heads = bone_hierarchy(obj)
    bones = obj.data.bones
    index = {name: b for b, name in enumerate(names)}
    tails = np.array([tuple(bone.tail_local) for bone in bones], np.float64).reshape(-1, 3)
    rotations = np.array([np.array(bone.matrix_local)[:3, :3] for bone in bones]).reshape(-1, 3, 3)
    follow, follow_location = [-1] * len(names), [False] * len(names)
    with _temporary_properties(context, obj, properties or {}):
        evaluated = obj.evaluated_get(context.evaluated_depsgraph_get())
        for pose_bone in evaluated.pose.bones:
            b = index[pose_bone.name]
            for constraint in pose_bone.constraints:
                if _full_copy(constraint, obj, index):
                    follow[b] = index[constraint.subtarget]  # the last full copy wins
                    follow_location[b] = constraint.type == "COPY_TRANSFORMS"
    return TargetRig(
        tuple(names),
        tuple(parents),
        heads,
        tails,
        rotations,
        tuple(follow),
        tuple(follow_location),
        tuple(bool(bone.use_local_location) for bone in bones),
        tuple(bool(bone.use_connect) for bone in bones),
    )


class _temporary_properties:
    """Set pose-bone custom properties and re-evaluate; restore the old values on exit."""

    def __init__(self, context, obj, properties: dict[str, dict[str, float]]) -> None:
        self.context, self.obj, self.properties = context, obj, properties
        self.saved: list[tuple[str, str, object]] = []

    def __enter__(self):
        missing = object()
        for bone, values in self.properties.items():
            pose_bone = self.obj.pose.bones[bone]
            for name, value in values.items():
                self.saved.append((bone, name, pose_bone.get(name, missing)))
                pose_bone[name] = typed_value(pose_bone.get(name), value)
        self._missing = missing
        # Custom-property edits from Python do not tag the object: without this the drivers that
        # read them (constraint influences) are not re-evaluated.
        self.obj.update_tag()
        self.context.view_layer.update()
        return self

    def __exit__(self, *exc) -> None:
        for bone, name, old in reversed(self.saved):
            pose_bone = self.obj.pose.bones[bone]
            if old is self._missing:
                del pose_bone[name]
            else:
                pose_bone[name] = old
        if self.saved:
            self.obj.update_tag()
            self.context.view_layer.update()


def typed_value(old, value: float):
    """``value`` as the type of the property it replaces: a rig's UI draws a bool or int property
    (Rigify's ``pole_vector``, ``IK_parent``) as a toggle or menu, which a float would break."""
    if isinstance(old, bool):
        return bool(value)
    if isinstance(old, int):
        return int(round(value))
    return float(value)


def set_pose_properties(obj: "bpy.types.Object", properties: dict[str, dict[str, float]]) -> None:
    """Set pose-bone custom properties (the values the take also keys), keeping their types."""
    for bone, values in properties.items():
        pose_bone = obj.pose.bones[bone]
        for name, value in values.items():
            pose_bone[name] = typed_value(pose_bone.get(name), value)
    if properties:
        obj.update_tag()


def unique_action_name(base: str) -> str:
    """``base take N`` with the smallest N >= 1 not used by an existing action."""
    number = 1
    while f"{base} take {number}" in bpy.data.actions:
        number += 1
    return f"{base} take {number}"
