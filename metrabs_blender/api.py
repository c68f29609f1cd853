"""Scripting API: what the panel does, as plain functions for ``bpy`` scripts and the headless CLI.

Inside Blender (extension installed)::

    from bl_ext.user_default.metrabs_mocap.metrabs_blender import api
    results = api.import_trajectory("/path/clip.npz")

Every function validates its input before it creates anything, so a bad file leaves the scene as it
was. Each import makes new objects and new actions; nothing of the user's is modified.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from ..retarget import contract, frames, rig, solve
from ..retarget.keyframes import write_bone_action
from ..retarget.skeletons import get_skeleton
from . import scene as scene_tools
from .errors import MocapError


@dataclass
class ImportResult:
    """What one person's import created (or keyed, on a target armature)."""

    track_id: int
    armature: "bpy.types.Object"
    action: "bpy.types.Action"
    frames: np.ndarray  # scene frame numbers that were keyed
    report: str = ""  # how the rig map was found (slots, bones, what stays untouched)
    hip_ratio: float = 1.0  # root motion scale, target/source leg length
    locked_frames: int = 0  # frames where a foot was held by foot locking


@dataclass
class _PersonMotion:
    person: int  # index into the trajectory's people
    track_id: int
    joints: np.ndarray  # (T_valid, J, 3) world metres
    times: np.ndarray  # (T_valid,) seconds
    complete: np.ndarray  # (T,) bool: the frames kept
    rest: np.ndarray  # (J, 3) rest joints
    bones: list[rig.RigBone]


def _person_motions(trajectory: contract.Trajectory) -> list[_PersonMotion]:
    """World-frame motion and rig of every person seen in at least one complete frame."""
    skeleton = get_skeleton(trajectory.skeleton)
    if tuple(trajectory.joint_names) != skeleton.joint_names:
        raise MocapError(
            f"joint names in the file do not match the {skeleton.name!r} skeleton it declares"
        )
    # The cleaning stage stores the camera pose of its floor fit; raw files get a level camera.
    world_from_camera = trajectory.extras.get("world_from_camera")
    if world_from_camera is None or np.shape(world_from_camera) != (4, 4):
        world_from_camera = frames.level_camera_pose(trajectory.poses3d, skeleton.joint_names)
    joints_world = frames.camera_to_world(trajectory.poses3d.astype(np.float64), world_from_camera)
    body = [skeleton.index(joint) for joint in rig.BONE_NAMES]
    motions = []
    for person, track_id in enumerate(trajectory.track_ids):
        joints = joints_world[:, person]
        complete = np.isfinite(joints[:, body]).all(axis=(1, 2))
        if not complete.any():
            continue
        rest = rig.rest_joints(skeleton, joints[complete])
        bones = rig.generated_rig(skeleton, rest)
        motions.append(
            _PersonMotion(
                person,
                int(track_id),
                joints[complete],
                trajectory.frame_times[complete],
                complete,
                rest,
                bones,
            )
        )
    if not motions:
        raise MocapError("No person has a complete pose in any frame of this trajectory")
    return motions


def _pick_person(motions: list[_PersonMotion], track_id: int | None) -> _PersonMotion:
    if track_id is None:
        return max(motions, key=lambda m: len(m.times))  # the person seen longest
    for motion in motions:
        if motion.track_id == track_id:
            return motion
    raise MocapError(
        f"No person with track id {track_id} in this trajectory; "
        f"it has {', '.join(str(m.track_id) for m in motions)}"
    )


def _contacts(trajectory: contract.Trajectory, motion: _PersonMotion) -> np.ndarray | None:
    from ..retarget import ik

    contacts = ik.contacts_from_extras(trajectory.extras, motion.person, trajectory.num_frames)
    return None if contacts is None else contacts[motion.complete]


def _key_take(armature, mapping, result, keyed_frames, name, use_nla, all_bones):
    from ..retarget.keyframes import push_to_nla

    rotations = {bone: result.rotations[:, k] for k, bone in enumerate(result.bone_names)}
    if all_bones:  # the generated rig: every bone keyed, unmapped ones at rest
        rest = np.tile([1.0, 0.0, 0.0, 0.0], (len(keyed_frames), 1))
        for pose_bone in armature.pose.bones:
            rotations.setdefault(pose_bone.name, rest)
    action = write_bone_action(
        armature,
        scene_tools.unique_action_name(name),
        keyed_frames,
        rotations,
        {result.root_bone: result.root_location},
        properties=dict(mapping.properties),
    )
    scene_tools.set_pose_properties(armature, dict(mapping.properties))
    if use_nla:
        push_to_nla(armature, action, action.name, float(keyed_frames[0]))
    return action


def import_trajectory(
    path: str | os.PathLike,
    *,
    target: "bpy.types.Object | None" = None,
    rig_map: "str | os.PathLike | object" = "auto",
    root_motion: str | None = None,
    foot_lock: bool = True,
    use_nla: bool = False,
    joint_limits: bool = False,
    person: int | None = None,
    context: "bpy.types.Context | None" = None,
    match_scene: bool = True,
) -> list[ImportResult]:
    """Import a trajectory ``.npz`` as keyframes, in one new action per person (a "take").

    With no ``target`` every person gets a new MeTRAbs rig with the clip's own proportions, placed
    where the camera saw them. With a ``target`` armature, one person (``person`` = track id, else
    the one seen longest) is retargeted onto it: ``rig_map`` is "auto", a preset name
    (``retarget.rigmaps.PRESETS``), a JSON map file or a ``RigMap``; only mapped bones are keyed.
    ``root_motion`` is "relative" (default for targets: the path starts where the rig stands),
    "camera" (default without target) or "in_place"; it is scaled by the target/source leg
    length and re-grounded on the rig's own feet. ``foot_lock`` holds feet during the contacts the
    cleaning stage stored in the file (``contacts`` extras); ``use_nla`` also stacks the take as an
    NLA track; ``joint_limits`` clamps rotations to ``retarget.solve.JOINT_LIMITS_DEG``.

    With ``match_scene`` the scene frame rate and end frame follow the clip. Keys land on scene
    frames ``frame_start + time * fps`` (sub-frame times are kept, so variable frame rates and
    clips whose rate differs from the scene's stay in sync). Everything is checked before the
    scene changes: a refused target (not an armature, linked, rotated/scaled, no humanoid bones)
    raises :class:`MocapError` or ``RetargetError`` and leaves the file as it was; re-importing
    makes a new take and never edits earlier ones or the user's actions.
    """
    from ..retarget import rigmaps

    context = context or bpy.context
    trajectory = contract.read_trajectory(path)
    skeleton = get_skeleton(trajectory.skeleton)
    motions = _person_motions(trajectory)
    params = solve.RetargetParams(
        root_motion=root_motion or ("relative" if target is not None else "camera"),
        reground=target is not None,  # the generated rig stands on the clip's own floor
        joint_limits=solve.JOINT_LIMITS_DEG if joint_limits else None,
        foot_lock=foot_lock,
    )
    if target is not None or person is not None:
        motions = [_pick_person(motions, person)]
    contacts = {m.person: _contacts(trajectory, m) if foot_lock else None for m in motions}
    solved = {}
    if target is not None:
        scene_tools.check_target(target)
        scene_tools.ensure_object_mode(context)
        names, parents, heads = scene_tools.bone_hierarchy(target)
        mapping, report = rigmaps.resolve_rig_map(rig_map, names, parents, heads)
        rig_data = scene_tools.read_target_rig(context, target, dict(mapping.properties))
        origin = np.array(target.matrix_world.translation)
        motion = motions[0]
        solved[motion.person] = solve.retarget(
            motion.joints, skeleton, rig_data, mapping, params, contacts[motion.person], origin
        )

    # Everything is validated: from here on the scene changes.
    scene = context.scene
    if match_scene:
        duration = float(trajectory.frame_times[-1] - trajectory.frame_times[0])
        scene_tools.match_scene_timing(scene, trajectory.fps, duration)
    clip_name = Path(path).stem
    results = []
    for motion in motions:
        keyed_frames = scene.frame_start + (
            motion.times - trajectory.frame_times[0]
        ) * scene_tools.scene_fps(scene)
        if target is None:
            name = f"MeTRAbs {clip_name} P{motion.track_id}"
            armature = scene_tools.create_armature(context, name, motion.bones)
            mapping = rigmaps.PRESETS["metrabs"]
            try:
                rig_data = scene_tools.read_target_rig(context, armature)
                result = solve.retarget(
                    motion.joints, skeleton, rig_data, mapping, params, contacts[motion.person]
                )
            except Exception:
                data = armature.data
                bpy.data.objects.remove(armature)
                bpy.data.armatures.remove(data)
                raise
            report = f"generated rig {armature.name}"
        else:
            armature, result = target, solved[motion.person]
            name = f"{target.name} {clip_name} P{motion.track_id}"
        action = _key_take(armature, mapping, result, keyed_frames, name, use_nla, target is None)
        results.append(
            ImportResult(
                motion.track_id,
                armature,
                action,
                keyed_frames,
                str(report),
                float(result.hip_ratio),
                int(result.locked.any(axis=1).sum()),
            )
        )
    return results
