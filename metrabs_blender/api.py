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
    """What one person's import created."""

    track_id: int
    armature: "bpy.types.Object"
    action: "bpy.types.Action"
    frames: np.ndarray  # scene frame numbers that were keyed


@dataclass
class _PersonMotion:
    track_id: int
    joints: np.ndarray  # (T_valid, J, 3) world metres
    times: np.ndarray  # (T_valid,) seconds
    rest: np.ndarray  # (J, 3) rest joints
    bones: list[rig.RigBone]


def _person_motions(trajectory: contract.Trajectory) -> list[_PersonMotion]:
    """World-frame motion and rig of every person seen in at least one complete frame."""
    skeleton = get_skeleton(trajectory.skeleton)
    if tuple(trajectory.joint_names) != skeleton.joint_names:
        raise MocapError(
            f"joint names in the file do not match the {skeleton.name!r} skeleton it declares"
        )
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
                int(track_id), joints[complete], trajectory.frame_times[complete], rest, bones
            )
        )
    if not motions:
        raise MocapError("No person has a complete pose in any frame of this trajectory")
    return motions


def _solve_bones(skeleton, bones: list[rig.RigBone], rest_rotations: np.ndarray):
    names = [bone.name for bone in bones]
    return [
        solve.SolveBone(
            joint=bone.joint,
            child=rig.PRIMARY_CHILD.get(bone.joint),
            parent=names.index(bone.parent) if bone.parent else -1,
            rest_rotation=rest_rotations[b],
        )
        for b, bone in enumerate(bones)
    ]


def import_trajectory(
    path: str | os.PathLike,
    *,
    context: "bpy.types.Context | None" = None,
    match_scene: bool = True,
) -> list[ImportResult]:
    """Import a trajectory ``.npz``: one new MeTRAbs rig and one new action per person.

    With ``match_scene`` the scene frame rate and end frame follow the clip. Keys land on scene
    frames ``frame_start + time * fps`` (sub-frame times are kept, so variable frame rates and
    clips whose rate differs from the scene's stay in sync).
    """
    context = context or bpy.context
    trajectory = contract.read_trajectory(path)
    skeleton = get_skeleton(trajectory.skeleton)
    motions = _person_motions(trajectory)

    scene = context.scene
    if match_scene:
        duration = float(trajectory.frame_times[-1] - trajectory.frame_times[0])
        scene_tools.match_scene_timing(scene, trajectory.fps, duration)
    clip_name = Path(path).stem
    results = []
    for motion in motions:
        name = f"MeTRAbs {clip_name} P{motion.track_id}"
        armature = scene_tools.create_armature(context, name, motion.bones)
        bone_names = [bone.name for bone in motion.bones]
        solve_bones = _solve_bones(
            skeleton, motion.bones, scene_tools.rest_rotations(armature, bone_names)
        )
        deltas = solve.armature_deltas(motion.joints, motion.rest, skeleton, solve_bones)
        rotations = solve.local_rotations(deltas, solve_bones)
        root = motion.bones[0]
        location = solve.root_location(
            motion.joints[:, skeleton.index(root.joint)], root.head, solve_bones[0].rest_rotation
        )
        keyed_frames = scene.frame_start + (
            motion.times - trajectory.frame_times[0]
        ) * scene_tools.scene_fps(scene)
        action = write_bone_action(
            armature,
            f"{name} take",
            keyed_frames,
            {bone: rotations[:, b] for b, bone in enumerate(bone_names)},
            {root.name: location},
        )
        results.append(ImportResult(motion.track_id, armature, action, keyed_frames))
    return results
