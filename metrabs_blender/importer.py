"""Trajectories into the scene: new rigs, or one person onto the user's armature, each keyed as a
new action (a "take"). ``api.import_trajectory`` and ``api.import_people`` are this module's.

A file is read once, at the edge (:func:`read_source`); below it the :class:`Source` (the
trajectory, its clip name and its file) is passed down, so the panel's Import, a folder import and
the headless main job each read a trajectory once. Who is imported and each person's world-frame
motion are numpy (``retarget.solve.people``), the rotations too (``retarget.solve``); this module checks
the target, creates the armatures and writes the keys.
"""

import contextlib
import dataclasses
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from ..retarget import contract, solve
from ..retarget.skeletons import get_rig_skeleton
from ..retarget.solve import ik_controls, people, transforms
from . import bone_map
from . import camera as camera_tools
from . import scene as scene_tools
from .errors import MocapError
from .keyframes import write_bone_action


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


@dataclass(frozen=True)
class Source:
    """A trajectory read (and checked) once, and what the import calls it."""

    trajectory: contract.Trajectory
    name: str  # the clip's name in the new rigs' and actions' names
    path: Path | None = None  # the file it was read from; None for a Trajectory object

    @property
    def label(self) -> str:
        """How messages name it: the file's name, else the clip's name."""
        return self.path.name if self.path is not None else self.name


def read_source(
    trajectory: "str | os.PathLike | contract.Trajectory | Source", name: str | None = None
) -> Source:
    """A path read once (:func:`contract.read_trajectory`; its stem names the clip unless ``name``
    does), a Trajectory object checked as a file would be (``name`` default "clip"), or a
    :class:`Source` as it is. A bad file or object raises ``ContractError``."""
    if isinstance(trajectory, Source):
        return trajectory
    if isinstance(trajectory, str | os.PathLike):
        path = Path(trajectory)
        return Source(contract.read_trajectory(path), name or path.stem, path)
    # possibly a Trajectory of another copy of the retarget package (a script's own)
    contract.validate(trajectory)
    return Source(trajectory, name or "clip")


@contextlib.contextmanager
def refusals() -> Iterator[None]:
    """``retarget.solve.people``'s refusals (an unknown track id, nobody who can be imported) raised as
    :class:`MocapError`, the error this API raises for them and scripts catch."""
    try:
        yield
    except people.PeopleError as error:
        raise MocapError(str(error)) from None


def resolve_target(
    target: "bpy.types.Object | str | None", context: "bpy.types.Context | None" = None
) -> "bpy.types.Object | None":
    """The target object of an import: an object, or the name of one in this file; its
    ``matrix_world`` brought up to date first (a script that just scaled or moved the rig has not
    had the depsgraph re-evaluate it, and the scale check would read the old matrix)."""
    if target is None:
        return None
    if isinstance(target, str):
        found = bpy.data.objects.get(target)
        if found is None:
            armatures = sorted(o.name for o in bpy.data.objects if o.type == "ARMATURE")
            raise MocapError(
                f"No object named {target!r} in this file; its armatures: "
                f"{', '.join(armatures) or 'none'}"
            )
        target = found
    elif not isinstance(target, bpy.types.Object):
        raise MocapError(
            f"target must be an armature object or its name, not a {type(target).__name__}"
        )
    (context or bpy.context).view_layer.update()
    return target


def _key_take(armature, mapping, result, keyed_frames, name, use_nla, all_bones, ik=None):
    from .keyframes import push_to_nla

    rotations = {bone: result.rotations[:, k] for k, bone in enumerate(result.bone_names)}
    locations = {result.root_bone: result.root_location}
    properties = {bone: dict(values) for bone, values in mapping.properties.items()}
    settings = {}
    if all_bones:  # the generated rig: every bone keyed, unmapped ones at rest
        rest = np.tile([1.0, 0.0, 0.0, 0.0], (len(keyed_frames), 1))
        for pose_bone in armature.pose.bones:
            rotations.setdefault(pose_bone.name, rest)
    if ik is not None:  # the limbs in IK: their controls, and their switches to IK
        rotations.update(ik.rotations)
        locations.update(ik.locations)
        for bone, values in ik.properties.items():
            properties.setdefault(bone, {}).update(values)
        settings = ik.settings
    action = write_bone_action(
        armature,
        scene_tools.unique_action_name(name),
        keyed_frames,
        rotations,
        locations,
        assign=not use_nla,  # an NLA take leaves the active action alone
        properties=properties,
        settings=settings,
    )
    scene_tools.set_pose_properties(armature, properties)
    if use_nla:
        push_to_nla(armature, action, action.name, float(keyed_frames[0]))
    return action


def _with_ik_note(report: str, ik: "ik_controls.IkKeys") -> str:
    """The rig map's report with what is animated in IK."""
    if ik.limbs:
        report += f"\n  IK: {', '.join(ik.limbs)} (IK controls and poles keyed, switched to IK)"
    if ik.missing:
        report += f"\n  note: no IK controls for {', '.join(ik.missing)} in this rig map: FK"
    return report


def import_trajectory(
    trajectory: "str | os.PathLike | contract.Trajectory | Source",
    *,
    name: str | None = None,
    target: "bpy.types.Object | str | None" = None,
    rig_map: "str | os.PathLike | object" = "auto",
    root_motion: str | None = None,
    foot_lock: bool = True,
    use_nla: bool = False,
    joint_limits: bool = False,
    person: int | None = None,
    context: "bpy.types.Context | None" = None,
    match_scene: bool = True,
    limb_ik: str = "legs",
) -> list[ImportResult]:
    """Import a trajectory (a ``.npz`` path, read once, or a ``Trajectory``) as keyframes, in one
    new action per person (a "take").

    With no ``target`` every person gets a new MeTRAbs rig with the clip's own proportions, placed
    where the camera saw them, named ``MeTRAbs <name> P<id>`` (``name``: default the file's stem,
    "clip" for a Trajectory object). With a ``target`` armature (the object or its name), one
    person (``person`` = track id, else the one seen longest) is retargeted onto it: ``rig_map``
    is "auto", a preset name
    (``retarget.solve.rigmaps.PRESETS``), the name of a bone map saved from the Bone Map panel
    (``api.save_bone_map``), a JSON map file or a ``RigMap``; only mapped bones are keyed.

    ``root_motion`` is "relative" (default for targets: the path starts where the rig stands),
    "camera" (default without target) or "in_place"; it is scaled by the target/source leg
    length and re-grounded on the rig's own feet. ``foot_lock`` holds feet during the contacts the
    cleaning stage stored in the file (``contacts`` extras); ``use_nla`` also stacks the take as an
    NLA track; ``joint_limits`` clamps rotations to ``retarget.solve.JOINT_LIMITS_DEG``.
    ``limb_ik`` picks the limbs a target animates in IK where its rig map has IK controls
    (Rigify): "legs" (default: IK legs, FK arms), "arms", "all" or "fk" (none). Their IK controls
    (hand/foot, toe, pole targets) are keyed from the solved pose on top of the FK controls and
    their IK/FK switches keyed to IK, so the IK chain lands on the solved limb and switching
    back to FK shows the same motion (``retarget.solve.ik_controls``).

    With ``match_scene`` the scene frame rate and end frame follow the clip. Keys land on scene
    frames ``frame_start + time * fps`` (sub-frame times are kept, so variable frame rates and
    clips whose rate differs from the scene's stay in sync). Everything is checked before the
    scene changes: a refused target (not an armature, linked without an override, a zero,
    negative or non-uniform scale, no humanoid bones) raises :class:`MocapError` or
    ``RetargetError`` and leaves the file as it was; the target may have any object rotation,
    uniform scale and parent (an FBX import's 90° and 0.01 included). Re-importing
    makes a new take and never edits earlier ones or the user's actions.
    """
    from ..retarget.solve import rigmaps

    context = context or bpy.context
    if limb_ik not in ik_controls.LIMB_MODES:
        raise MocapError(
            f"limb_ik must be one of {', '.join(ik_controls.LIMB_MODES)}, not {limb_ik!r}"
        )
    target = resolve_target(target, context)
    source = read_source(trajectory, name)
    with refusals():
        trajectory = people.people_in_front(source.trajectory, source.label)
        skeleton = get_rig_skeleton(trajectory.skeleton)
        motions = people.person_motions(trajectory)
        params = solve.RetargetParams(
            root_motion=root_motion or ("relative" if target is not None else "camera"),
            reground=target is not None,  # the generated rig stands on the clip's own floor
            joint_limits=solve.JOINT_LIMITS_DEG if joint_limits else None,
            foot_lock=foot_lock,
        )
        if target is not None or person is not None:
            motions = [people.pick_person(motions, person)]
    contacts = {
        m.person: people.motion_contacts(trajectory, m) if foot_lock else None for m in motions
    }
    solved = {}
    if target is not None:
        scene_tools.check_target(target)
        scene_tools.ensure_object_mode(context)
        names, parents, heads = scene_tools.bone_hierarchy(target)
        spec = bone_map.user_rig_map(rig_map)  # a saved bone map's name -> its map
        mapping, report = rigmaps.resolve_rig_map(spec, names, parents, heads)
        rig_data = scene_tools.read_target_rig(context, target, dict(mapping.properties))
        # any rotation, one positive scale, parents: the solve runs in the world frame
        transform = transforms.from_matrix(np.array(target.matrix_world), target.name)
        motion = motions[0]
        solved[motion.person] = solve.retarget(
            motion.joints, skeleton, rig_data, mapping, params, contacts[motion.person],
            transform=transform,
        )  # fmt: skip
        ik = ik_controls.ik_control_keys(rig_data, mapping, solved[motion.person], limb_ik)
        report = _with_ik_note(str(report), ik)

    # Everything is validated: from here on the scene changes.
    scene = context.scene
    if match_scene:
        duration = float(trajectory.frame_times[-1] - trajectory.frame_times[0])
        scene_tools.match_scene_timing(scene, trajectory.fps, duration)
    results = []
    for motion in motions:
        keyed_frames = scene.frame_start + (
            motion.times - trajectory.frame_times[0]
        ) * scene_tools.scene_fps(scene)
        if target is None:
            name = f"MeTRAbs {source.name} P{motion.track_id}"
            armature = scene_tools.create_armature(context, name, motion.bones)
            bone_names = {bone.name for bone in motion.bones}
            mapping = rigmaps.restrict(rigmaps.PRESETS["metrabs"], bone_names)[0]
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
            name = f"{target.name} {source.name} P{motion.track_id}"
        action = _key_take(armature, mapping, result, keyed_frames, name, use_nla, target is None,
                           ik if target is not None else None)  # fmt: skip
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


def import_people(
    trajectory: "str | os.PathLike | contract.Trajectory | Source",
    track_ids: Sequence[int] | None = None,
    *,
    name: str | None = None,
    context: "bpy.types.Context | None" = None,
    match_scene: bool = True,
    target: "bpy.types.Object | str | None" = None,
    **options,
) -> list[ImportResult]:
    """:func:`import_trajectory` restricted to the people ``track_ids`` (default everyone).

    With a ``target`` armature exactly one person goes onto it (``track_ids`` names one, or None
    for the person seen longest). ``options`` are :func:`import_trajectory`'s (``rig_map``,
    ``root_motion``, ``foot_lock``, ``use_nla``, ``joint_limits``). People imported separately
    are solved in the whole clip's world frame, so they still stand where they stood together and
    the camera match fits them all.
    """
    target = resolve_target(target, context)
    source = read_source(trajectory, name)
    if target is not None:
        if track_ids is not None and len(track_ids) != 1:
            raise MocapError(
                f"Tick one person to put onto {target.name} (ticked: {len(track_ids)})"
            )
        person = None if track_ids is None else int(track_ids[0])
        return import_trajectory(
            source, target=target, person=person, context=context, match_scene=match_scene,
            **options,
        )  # fmt: skip
    everyone = source.trajectory
    if track_ids is None or sorted(track_ids) == sorted(int(t) for t in everyone.track_ids):
        return import_trajectory(source, context=context, match_scene=match_scene, **options)
    with refusals():
        subset = people.select_people(everyone, track_ids)
    # keep the whole clip's world frame (the floor under everyone), not the subset's own
    subset.extras.setdefault("world_from_camera", camera_tools.world_from_camera(everyone))
    contract.validate(subset)
    return import_trajectory(
        dataclasses.replace(source, trajectory=subset),
        context=context,
        match_scene=match_scene,
        **options,
    )
