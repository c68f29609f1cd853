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
    selection are restored afterwards."""
    ensure_object_mode(context)
    armature = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, armature)
    context.scene.collection.objects.link(obj)
    view_layer = context.view_layer
    previous_active = view_layer.objects.active
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
