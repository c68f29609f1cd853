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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from ..retarget import RetargetError, contract, solve
from ..retarget.keys import KeyTolerance, planted_scales
from ..retarget.skeletons import get_rig_skeleton
from ..retarget.solve import grounding, ik_controls, people, rigmaps, transforms
from . import bone_map
from . import camera as camera_tools
from . import scene as scene_tools
from .errors import MocapError
from .keyframes import write_take


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
    keys_dense: int = 0  # keys a key on every frame of every channel would be
    keys_kept: int = 0  # keys written (all channels); fewer with key reduction
    max_key_error_deg: float = 0.0  # reduced keys: largest rotation error of a bone on any frame
    max_key_error_m: float = 0.0  # reduced keys: largest location error (root, IK controls), metres
    generated: bool = False  # a new MeTRAbs rig (not the user's armature)


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


def contact_mode(foot_contacts: str, foot_lock: bool = True) -> str:
    """The foot contact mode of an import (``foot_lock=False``, the older spelling, is "never");
    an unknown or contradicting one raises :class:`MocapError`."""
    try:
        mode = grounding.check_mode(foot_contacts)
    except RetargetError as error:
        raise MocapError(str(error)) from None
    if not foot_lock and mode not in ("auto", "never"):
        raise MocapError(f"foot_lock=False contradicts foot_contacts={mode!r}")
    return mode if foot_lock else "never"


def key_tolerance(key_reduction: "KeyTolerance | str | None") -> KeyTolerance | None:
    """The tolerance of ``key_reduction`` ("reduced": the default bounds, "dense" or None: a key
    on every frame, or a :class:`KeyTolerance`); anything else raises :class:`MocapError`."""
    if key_reduction is None or key_reduction == "dense":
        return None
    if key_reduction == "reduced":
        return KeyTolerance()
    if hasattr(key_reduction, "rotation_deg") and hasattr(key_reduction, "location_m"):
        # possibly a KeyTolerance of another copy of the retarget package (a script's own)
        return KeyTolerance(float(key_reduction.rotation_deg), float(key_reduction.location_m))
    raise MocapError(
        f"key_reduction must be 'reduced', 'dense', None or a KeyTolerance, not {key_reduction!r}"
    )


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


def _leg_bones(mapping: "solve.RigMap", side: str) -> set[str]:
    """The bones that move one leg's foot: its FK chain and, where the map has them, its IK
    controls and pole."""
    bones = {
        b
        for slot in ("thigh", "shin", "foot", "toe")
        for b in mapping.bones.get(f"{slot}.{side}", ())
    }
    limb = mapping.ik.get(f"leg.{side}")
    if limb is not None:
        bones |= {*limb.controls, *limb.poles}
    return bones


def _key_take(
    armature, mapping, result, keyed_frames, name, use_nla, all_bones, reduction, ik=None
):
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
    legs = tuple(_leg_bones(mapping, side) for side in ("L", "R"))
    body = {*mapping.bones.get("hips", ()), result.root_bone}
    # feet held or on the floor: tighter, so they stay planted and above it. "On the floor" is
    # near where the feet stand in the take; the cleaning's flat-foot heights (on the generated
    # rig) marked fewer frames and measured looser (bench_contacts, Auto: skate 4.2 vs 3.2 %).
    planted = result.locked | grounding.low_feet(result.joints)
    scale = result.transform.scale  # pose-bone locations are in armature units, not metres
    if reduction is not None:
        reduction = KeyTolerance(reduction.rotation_deg, reduction.location_m / scale)
    written = write_take(
        armature,
        scene_tools.unique_action_name(name),
        keyed_frames,
        rotations,
        locations,
        assign=not use_nla,  # an NLA take leaves the active action alone
        properties=properties,
        settings=settings,
        reduction=reduction,
        scales=planted_scales([*rotations, *locations], planted, legs, body),
    )
    scene_tools.set_pose_properties(armature, properties)
    if use_nla:
        push_to_nla(armature, written.action, written.action.name, float(keyed_frames[0]))
    return dataclasses.replace(written, max_location_error=scale * written.max_location_error)


def _with_ik_note(report: str, ik: "ik_controls.IkKeys") -> str:
    """The rig map's report with what is animated in IK."""
    if ik.limbs:
        report += f"\n  IK: {', '.join(ik.limbs)} (IK controls and poles keyed, switched to IK)"
    if ik.missing:
        report += f"\n  note: no IK controls for {', '.join(ik.missing)} in this rig map: FK"
    return report


def _assignments(target, person, targets, context) -> "dict | None":
    """Who goes where: track id (None: the person seen longest) -> the armature to key, or None
    for a new rig; None when everyone gets a new rig. One rig takes one person per import."""
    if targets is None:
        if target is None and person is None:
            return None
        return {person: target}
    if target is not None or person is not None:
        raise MocapError("Give either target (and person) or targets, not both")
    chosen: dict[int, object] = {}
    for track_id, rig in targets.items():
        chosen[int(track_id)] = None if rig is None else resolve_target(rig, context)
    used: dict[str, int] = {}
    for track_id, rig in chosen.items():
        if rig is None:
            continue
        if rig.name in used:
            raise MocapError(
                f"{rig.name} is the target of people {used[rig.name]} and {track_id}: one rig "
                "takes one person per import (pick another rig, or import again)"
            )
        used[rig.name] = track_id
    return chosen


def _solve_on_target(context, target, motion, skeleton, rig_map, params, contacts, limb_ik):
    """Check ``target``, map its bones and solve ``motion`` onto it; nothing in the scene
    changes. Returns (rig map, solved take, IK control keys, report)."""
    scene_tools.check_target(target)
    names, parents, heads = scene_tools.bone_hierarchy(target)
    spec = bone_map.user_rig_map(rig_map)  # a saved bone map's name -> its map
    mapping, report = rigmaps.resolve_rig_map(spec, names, parents, heads)
    rig_data = scene_tools.read_target_rig(context, target, dict(mapping.properties))
    # any rotation, one positive scale, parents: the solve runs in the world frame
    transform = transforms.from_matrix(np.array(target.matrix_world), target.name)
    result = solve.retarget(
        motion.joints, skeleton, rig_data, mapping, params, contacts, transform=transform
    )
    ik = ik_controls.ik_control_keys(rig_data, mapping, result, limb_ik)
    return mapping, result, ik, _with_ik_note(str(report), ik)


def _solve_on_new_rig(context, name, motion, skeleton, params, contacts, floor):
    """A new armature of ``motion``'s proportions (named ``name``) and the motion solved onto it
    (standing on the clip's own ``floor``); the armature is removed again if the solve fails.
    Returns (armature, rig map, solved take)."""
    armature = scene_tools.create_armature(context, name, motion.bones)
    bone_names = {bone.name for bone in motion.bones}
    mapping = rigmaps.restrict(rigmaps.PRESETS["metrabs"], bone_names)[0]
    try:
        rig_data = scene_tools.read_target_rig(context, armature)
        result = solve.retarget(
            motion.joints, skeleton, rig_data, mapping, params, contacts, floor=floor
        )
    except Exception:
        data = armature.data
        bpy.data.objects.remove(armature)
        bpy.data.armatures.remove(data)
        raise
    return armature, mapping, result


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
    targets: "Mapping[int, bpy.types.Object | str | None] | None" = None,
    key_reduction: "KeyTolerance | str | None" = "reduced",
    foot_contacts: str = "auto",
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
    ``targets`` puts several people onto several rigs in one import: track id -> armature (or
    its name; None: a new rig for that person), each with its own take, ``rig_map`` resolved
    for each rig; only the people named are imported, and one rig takes one person.

    ``root_motion`` is "relative" (default for targets: the path starts where the rig stands),
    "camera" (default without target) or "in_place"; it is scaled by the target/source leg
    length and re-grounded on the rig's own feet. ``foot_contacts``: "auto" holds the feet during
    the contacts the cleaning stored in the file (``contacts`` extras) and keeps them above the
    floor, "always" holds them for the whole take, "grounded" only keeps them above the floor,
    "never" leaves the motion as solved (``retarget.solve.grounding``); ``foot_lock=False`` is
    "never". ``use_nla`` also stacks the take as an NLA track; ``joint_limits`` clamps rotations
    to ``retarget.solve.JOINT_LIMITS_DEG``.
    ``limb_ik`` picks the limbs a target animates in IK where its rig map has IK controls
    (Rigify): "legs" (default: IK legs, FK arms), "arms", "all" or "fk" (none). Their IK controls
    (hand/foot, toe, pole targets) are keyed from the solved pose on top of the FK controls and
    their IK/FK switches keyed to IK, so the IK chain lands on the solved limb and switching
    back to FK shows the same motion (``retarget.solve.ik_controls``).
    ``key_reduction`` "reduced" (default) writes few Bezier keys per bone within 0.5° of the solved
    rotation and 5 mm of the root location on every frame, a ``retarget.keys.KeyTolerance`` sets
    other bounds, "dense" (or None) a linear key on every frame.

    With ``match_scene`` the scene frame rate and end frame follow the clip. Keys land on scene
    frames ``frame_start + time * fps`` (sub-frame times are kept, so variable frame rates and
    clips whose rate differs from the scene's stay in sync). Everything is checked before the
    scene changes: a refused target (not an armature, linked without an override, a zero,
    negative or non-uniform scale, no humanoid bones) raises :class:`MocapError` or
    ``RetargetError`` and leaves the file as it was; the target may have any object rotation,
    uniform scale and parent (an FBX import's 90° and 0.01 included). Re-importing
    makes a new take and never edits earlier ones or the user's actions.
    """
    context = context or bpy.context
    reduction = key_tolerance(key_reduction)
    mode = contact_mode(foot_contacts, foot_lock)
    if limb_ik not in ik_controls.LIMB_MODES:
        raise MocapError(
            f"limb_ik must be one of {', '.join(ik_controls.LIMB_MODES)}, not {limb_ik!r}"
        )
    target = resolve_target(target, context)
    wanted = _assignments(target, person, targets, context)
    source = read_source(trajectory, name)
    with refusals():
        trajectory = people.people_in_front(source.trajectory, source.label)
        skeleton = get_rig_skeleton(trajectory.skeleton)
        motions = people.person_motions(trajectory)
        if wanted is None:
            picked = [(motion, None) for motion in motions]
        else:
            picked = [(people.pick_person(motions, t), rig) for t, rig in wanted.items()]
        # only against the floor the cleaning fitted: a raw file's level floor may be tilted
        has_floor = grounding.has_floor(trajectory.extras)

        def params(rig):
            return solve.RetargetParams(
                root_motion=root_motion or ("relative" if rig is not None else "camera"),
                reground=rig is not None,  # the generated rig stands on the clip's own floor
                joint_limits=solve.JOINT_LIMITS_DEG if joint_limits else None,
                foot_lock=grounding.holds_feet(mode),
                grounded=grounding.keeps_above_floor(mode) and has_floor,
            )

        for _motion, rig in picked:
            params(rig)  # a bad root motion is refused before anything changes
    contacts = {
        m.person: grounding.mode_contacts(
            mode,
            people.motion_contacts(trajectory, m) if grounding.holds_feet(mode) else None,
            len(m.joints),
        )
        for m, _ in picked
    }
    solved = {}
    if any(rig is not None for _motion, rig in picked):
        scene_tools.ensure_object_mode(context)
    for motion, rig in picked:
        if rig is not None:  # each target checked and solved before anything changes
            solved[motion.person] = _solve_on_target(
                context, rig, motion, skeleton, rig_map, params(rig), contacts[motion.person],
                limb_ik,
            )  # fmt: skip

    # Everything is validated: from here on the scene changes.
    scene = context.scene
    if match_scene:
        duration = float(trajectory.frame_times[-1] - trajectory.frame_times[0])
        scene_tools.match_scene_timing(scene, trajectory.fps, duration)
    results = []
    for motion, rig in picked:
        keyed_frames = scene.frame_start + (
            motion.times - trajectory.frame_times[0]
        ) * scene_tools.scene_fps(scene)
        ik = None
        if rig is None:
            name = f"MeTRAbs {source.name} P{motion.track_id}"
            floor = grounding.floor_from_extras(trajectory.extras, motion.person)
            armature, mapping, result = _solve_on_new_rig(
                context, name, motion, skeleton, params(None), contacts[motion.person], floor
            )
            report = f"generated rig {armature.name}"
        else:
            armature = rig
            mapping, result, ik, report = solved[motion.person]
            name = f"{rig.name} {source.name} P{motion.track_id}"
        written = _key_take(
            armature, mapping, result, keyed_frames, name, use_nla, rig is None, reduction, ik
        )
        results.append(
            ImportResult(
                motion.track_id,
                armature,
                written.action,
                keyed_frames,
                str(report),
                float(result.hip_ratio),
                int(result.locked.any(axis=1).sum()),
                written.keys_dense,
                written.keys_kept,
                written.max_rotation_error_deg,
                written.max_location_error,
                generated=rig is None,
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
    targets: "Mapping[int, bpy.types.Object | str | None] | None" = None,
    **options,
) -> list[ImportResult]:
    """:func:`import_trajectory` restricted to the people ``track_ids`` (default everyone).

    With a ``target`` armature exactly one person goes onto it (``track_ids`` names one, or None
    for the person seen longest). ``targets`` (track id -> armature) puts people onto rigs of
    their own (the panel's per-person Rig): the people of ``track_ids`` (default: those of
    ``targets``) with a rig there go onto it, one without goes onto ``target`` if given (then
    only one may be without), the others get new rigs; all in one import, each its own take.
    ``options`` are :func:`import_trajectory`'s (``rig_map``, ``root_motion``, ``foot_lock``,
    ``use_nla``, ``joint_limits``, ``limb_ik``). People imported separately are solved in the
    whole clip's world frame, so they still stand where they stood together and the camera match
    fits them all.
    """
    target = resolve_target(target, context)
    source = read_source(trajectory, name)
    if targets:
        ids = list(targets) if track_ids is None else [int(t) for t in track_ids]
        without = [t for t in ids if t not in targets]
        if target is not None and len(without) != 1:
            raise MocapError(
                f"Tick one person without a rig of their own to put onto {target.name} "
                f"(ticked without a rig: {len(without)})"
            )
        chosen = {t: targets[t] if t in targets else target for t in ids}
        return import_trajectory(
            source, targets=chosen, context=context, match_scene=match_scene, **options
        )
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
