"""Export a take for game engines and other tools: FBX, BVH or glTF binary (.glb).

The game-skeleton path: only the rig's deform bones are exported, as a plain armature with one
key per frame on every bone and no constraints, built for the export and removed afterwards. A
Rigify rig's deform bones follow its controls through constraints; here they are evaluated once
per frame (one scene evaluation, one ``foreach_get`` of all pose matrices) instead of the
exporter re-evaluating the whole rig, which made Blender's own FBX export of a Rigify rig take
minutes. The exporters are Blender's own, with the settings engines expect (FBX: -Y forward, Z
up, no leaf bones, baked animation). Everything is checked before anything is written; the file
appears whole or not at all (written beside, then renamed); the user's scene, rig and actions
are left as they were.
"""

import os
import time
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from ..retarget.contract import output_problem
from ..retarget.files import replacing
from .errors import MocapError

FORMATS = (".fbx", ".bvh", ".glb")


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_take` wrote."""

    path: Path
    bones: int  # deform bones exported
    frames: tuple[int, int]  # first and last scene frame
    seconds: float


def deform_bones(armature: "bpy.types.Object") -> list[str]:
    """Names of the armature's deform bones, parents before children."""
    return [bone.name for bone in armature.data.bones if bone.use_deform]


def check_export(path: str | os.PathLike, armature: "bpy.types.Object") -> Path:
    """The absolute export path, or :class:`MocapError` saying why it cannot be written (checked
    before anything is written)."""
    path = Path(path).expanduser().absolute()
    if path.suffix.lower() not in FORMATS:
        raise MocapError(
            f"cannot export {path.name}: the file name must end in {', '.join(FORMATS)}"
        )
    if armature is None or armature.type != "ARMATURE":
        raise MocapError("export needs an armature object (the character's rig)")
    if not deform_bones(armature):
        raise MocapError(
            f"{armature.name!r} has no deform bones: there is no skeleton to export (a control "
            "rig without its deform bones?)"
        )
    problem = output_problem(path)  # (creates missing folders, as every output does)
    if problem is not None:
        raise MocapError(f"cannot export {path.name}: {problem}")
    return path


def export_take(
    armature: "bpy.types.Object",
    path: str | os.PathLike,
    frame_start: int,
    frame_end: int,
    context: "bpy.types.Context | None" = None,
) -> ExportResult:
    """Export the deform skeleton of ``armature`` as it moves over scene frames ``frame_start`` to
    ``frame_end`` (its active action, constraints and drivers as evaluated) to ``path``."""
    context = context or bpy.context
    path = check_export(path, armature)
    if frame_end < frame_start:
        raise MocapError(f"nothing to export: frames {frame_start} to {frame_end}")
    started = time.perf_counter()
    names = deform_bones(armature)
    frames = np.arange(int(frame_start), int(frame_end) + 1)
    scene = _export_scene(context.scene, frames)
    try:
        matrices = _posed_matrices(scene, armature, names, frames)
        # The exporters step through the frames of this scene only: the user's rig (and its
        # constraints) is not evaluated again.
        view_layer = scene.view_layers[0]
        skeleton = _skeleton_copy(scene, armature, names)
        with context.temp_override(scene=scene, view_layer=view_layer, active_object=skeleton,
                                   object=skeleton, selected_objects=[skeleton]):  # fmt: skip
            _key_skeleton(skeleton, names, matrices, frames)
            _write(path, frames)
    finally:
        _remove(scene)
    return ExportResult(path, len(names), (int(frames[0]), int(frames[-1])),
                        time.perf_counter() - started)  # fmt: skip


def _posed_matrices(scene, armature, names: list[str], frames: np.ndarray) -> np.ndarray:
    """Armature-space pose matrices ``(T, B, 4, 4)`` of bones ``names`` at each frame, evaluated
    in ``scene`` holding the armature alone (with what its constraints need, not the meshes it
    deforms or anything else of the user's scene)."""
    scene.collection.objects.link(armature)
    try:
        view_layer = scene.view_layers[0]
        with bpy.context.temp_override(scene=scene, view_layer=view_layer):
            depsgraph = bpy.context.evaluated_depsgraph_get()  # made for this scene at first use
        buffer = np.empty(len(armature.pose.bones) * 16, np.float32)
        index = np.array([armature.pose.bones.find(name) for name in names])
        matrices = np.empty((len(frames), len(names), 4, 4))
        for t, frame in enumerate(frames):
            scene.frame_set(int(frame))
            armature.evaluated_get(depsgraph).pose.bones.foreach_get("matrix", buffer)
            # foreach_get flattens each 4x4 column by column
            matrices[t] = buffer.reshape(-1, 4, 4).transpose(0, 2, 1)[index]
    finally:
        scene.collection.objects.unlink(armature)
    return matrices


def _export_scene(scene, frames: np.ndarray) -> "bpy.types.Scene":
    """An empty scene with ``scene``'s frame rate and units, spanning ``frames``."""
    export = bpy.data.scenes.new("MeTRAbs export")
    export.render.fps, export.render.fps_base = scene.render.fps, scene.render.fps_base
    export.unit_settings.system = scene.unit_settings.system
    export.unit_settings.scale_length = scene.unit_settings.scale_length
    export.frame_start, export.frame_end = int(frames[0]), int(frames[-1])
    return export


def _deform_parent(armature, name: str, keep: set[str]) -> str | None:
    """The export parent of deform bone ``name``: its nearest deform ancestor, else the deform
    counterpart of an ancestor (Rigify hangs DEF-thigh under ORG-spine, whose deform bone is
    DEF-spine), so that the game skeleton stays one tree."""
    ancestors = []
    parent = armature.data.bones[name].parent
    while parent is not None:
        if parent.name in keep:
            return parent.name
        ancestors.append(parent.name)
        parent = parent.parent
    for ancestor in ancestors:
        for prefix in ("ORG-", "MCH-"):
            counterpart = "DEF-" + ancestor[len(prefix) :]
            if ancestor.startswith(prefix) and counterpart in keep and counterpart != name:
                return counterpart
    return None


def _skeleton_copy(scene, armature, names: list[str]) -> "bpy.types.Object":
    """A new armature object in ``scene`` with the deform bones only: same rest pose and names, each parented to its nearest deform ancestor, at the
    armature's place; selected and active."""
    data = bpy.data.armatures.new(f"{armature.data.name} export")
    skeleton = bpy.data.objects.new(armature.name, data)  # the name the exporters write
    scene.collection.objects.link(skeleton)
    skeleton.matrix_world = armature.matrix_world
    view_layer = scene.view_layers[0]
    view_layer.objects.active = skeleton
    skeleton.select_set(True, view_layer=view_layer)
    with bpy.context.temp_override(scene=scene, view_layer=view_layer, active_object=skeleton,
                                   object=skeleton):  # fmt: skip
        _add_bones(armature, data, names)
    return skeleton


def _add_bones(armature, data, names: list[str]) -> None:
    """The bones ``names`` of ``armature`` into the armature ``data`` of the context's object."""
    keep = set(names)
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        for name in names:
            bone = armature.data.bones[name]
            edit = data.edit_bones.new(name)
            edit.head, edit.tail = bone.head_local, bone.tail_local
            edit.matrix = bone.matrix_local  # the roll, exactly
            parent = _deform_parent(armature, name, keep)
            if parent is not None:
                edit.parent = data.edit_bones[parent]
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")


def _rigid(matrices: np.ndarray) -> np.ndarray:
    """``matrices`` ``(..., 4, 4)`` with their 3x3 parts made the nearest rotations (polar
    decomposition): stretch and scale dropped, the bone's heads kept."""
    u, _, vt = np.linalg.svd(matrices[..., :3, :3])
    rigid = np.array(matrices)
    rigid[..., :3, :3] = u @ vt
    return rigid


def _continues(bone) -> bool:
    """Whether ``bone`` starts where its parent ends: importers connect such bones, which then
    cannot move away from the parent, so they are keyed by rotation only (a stretch of the
    parent, as Rigify's limb segments do, is not carried over: the skeleton stays rigid)."""
    parent = bone.parent
    return parent is not None and np.allclose(bone.head_local, parent.tail_local, atol=1e-5)


def _key_skeleton(skeleton, names: list[str], matrices: np.ndarray, frames: np.ndarray) -> None:
    """Key every bone of ``skeleton`` so that it turns and sits as the armature-space
    ``matrices`` say. A game skeleton is rigid: a stretching bone (Rigify's) keeps its length, its
    children their places; locations are keyed only where they change (most bones only turn)."""
    from ..retarget.rotations import make_continuous, matrix_to_quaternion
    from .keyframes import write_take

    bones = skeleton.data.bones
    rest = np.array([np.array(bones[name].matrix_local) for name in names])  # (B, 4, 4)
    posed = _rigid(matrices)
    position = {name: b for b, name in enumerate(names)}
    locations, rotations = {}, {}
    for b, name in enumerate(names):
        parent = bones[name].parent
        if parent is None:  # pose = rest @ basis
            basis = np.linalg.inv(rest[b]) @ posed[:, b]
        else:  # pose = parent pose @ parent rest^-1 @ rest @ basis
            p = position[parent.name]
            offset = np.linalg.inv(rest[p]) @ rest[b]
            basis = np.linalg.inv(offset) @ np.linalg.inv(posed[:, p]) @ posed[:, b]
        rotations[name] = make_continuous(matrix_to_quaternion(basis[:, :3, :3]))
        if np.abs(basis[:, :3, 3]).max() > 1e-6 and not _continues(bones[name]):
            locations[name] = basis[:, :3, 3]
    for bone in skeleton.pose.bones:
        bone.rotation_mode = "QUATERNION"
    write_take(skeleton, f"{skeleton.name} export", frames.astype(float), rotations, locations)


def _write(path: Path, frames: np.ndarray) -> None:
    """Run Blender's exporter for ``path``'s format (on the context's scene: the skeleton alone)
    into a temporary file beside ``path`` that then replaces it."""
    with replacing(path, suffix=path.suffix) as temporary:
        try:
            _EXPORTERS[path.suffix.lower()](str(temporary), frames)
        except RuntimeError as error:
            raise MocapError(f"cannot export {path.name}: {str(error).strip()}") from None
        if not temporary.stat().st_size:
            raise MocapError(f"the exporter wrote nothing for {path.name}")


def _fbx(filepath: str, frames: np.ndarray) -> None:
    bpy.ops.export_scene.fbx(
        filepath=filepath, use_selection=False, object_types={"ARMATURE"},
        use_armature_deform_only=True, add_leaf_bones=False, axis_forward="-Y", axis_up="Z",
        bake_anim=True, bake_anim_use_all_actions=False, bake_anim_use_nla_strips=False,
        bake_anim_force_startend_keying=True,
    )  # fmt: skip


def _bvh(filepath: str, frames: np.ndarray) -> None:
    bpy.ops.export_anim.bvh(
        filepath=filepath, frame_start=int(frames[0]), frame_end=int(frames[-1]),
        rotate_mode="NATIVE", root_transform_only=False,
    )  # fmt: skip


def _glb(filepath: str, frames: np.ndarray) -> None:
    # The export scene's own animation, sampled frame by frame: the exporter's default ("ACTIONS")
    # also writes every other action whose bones match (the user's takes, Bezier keys, reduced,
    # on another bone tree), and Blender 4.2's "ACTIVE_ACTIONS" picks such an action too.
    bpy.ops.export_scene.gltf(
        filepath=filepath, export_format="GLB", use_active_scene=True, export_animations=True,
        export_animation_mode="SCENE", export_def_bones=True,
        export_force_sampling=False, export_yup=True,
    )  # fmt: skip


_EXPORTERS = {".fbx": _fbx, ".bvh": _bvh, ".glb": _glb}


def _remove(scene: "bpy.types.Scene") -> None:
    """Delete the export scene with its skeleton, armature and action."""
    for obj in list(scene.collection.objects):
        data = obj.data
        action = obj.animation_data.action if obj.animation_data else None
        bpy.data.objects.remove(obj)
        bpy.data.armatures.remove(data)
        if action is not None:
            bpy.data.actions.remove(action)
    bpy.data.scenes.remove(scene)
