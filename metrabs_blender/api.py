"""Scripting API: what the panel does, as plain functions for ``bpy`` scripts and the headless CLI.

Inside Blender (extension installed)::

    from bl_ext.user_default.metrabs_mocap.metrabs_blender import api
    results = api.import_trajectory("/path/clip.npz")

The panel's flow, one function per step: :func:`analyze_video` (the worker subprocess, blocking),
:func:`load_results` (the people list), :func:`import_analysis` (rigs for chosen people, camera
match, review markers, raw joints), or the single steps :func:`import_people`,
:func:`setup_camera`, :func:`add_review_markers`, :func:`add_raw_joints`. The modal Analyze button
runs the same worker through :func:`start_analysis` / :func:`finish_analysis`.

Many clips: :func:`analyze_folder` (the batch command, blocking, then every clip imported as
takes) with ``BatchRequest(..., analyze_args=analysis_options(...))``, or :func:`import_folder`
for a results folder; the panel's Analyze Folder / Import Folder run the same code
(``batch_import``).

Every function validates its input before it creates anything, so a bad file leaves the scene as it
was. Each import makes new objects and new actions; nothing of the user's is modified.
"""

import dataclasses
import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from ..retarget import contract, frames, solve
from ..retarget.skeletons import get_rig_skeleton
from ..retarget.solve import rig
from . import backend, review
from . import camera as camera_tools
from . import scene as scene_tools
from .errors import MocapError
from .keyframes import write_bone_action

log = logging.getLogger(__name__)


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
    skeleton = get_rig_skeleton(trajectory.skeleton)
    if tuple(trajectory.joint_names) != skeleton.joint_names:
        raise MocapError(
            f"joint names in the file do not match the {skeleton.name!r} skeleton it declares"
        )
    # The cleaning stage stores the camera pose of its floor fit; raw files get a level camera.
    world_from_camera = trajectory.extras.get("world_from_camera")
    if world_from_camera is None or np.shape(world_from_camera) != (4, 4):
        world_from_camera = frames.level_camera_pose(trajectory.poses3d, skeleton.joint_names)
    joints_world = frames.camera_to_world(trajectory.poses3d.astype(np.float64), world_from_camera)
    body = [skeleton.index(joint) for joint in rig.BONE_NAMES if joint in skeleton.joint_names]
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


def _people_in_front(trajectory: contract.Trajectory, name: str) -> contract.Trajectory:
    """``trajectory`` without the people behind the camera (a warning names them); refused when
    nobody is left: such poses are in another frame and would import as nonsense."""
    behind = frames.behind_camera(trajectory.poses3d)
    if not behind.any():
        return trajectory
    seen = np.isfinite(trajectory.poses3d).any(axis=(0, 2, 3))
    if not (seen & ~behind).any():
        raise MocapError(
            f"Every person in {name} is behind the camera (negative depth); "
            f"{frames.BEHIND_CAMERA_ADVICE}"
        )
    dropped = ", ".join(str(int(i)) for i in trajectory.track_ids[behind])
    log.warning("%s: person %s is behind the camera and is not imported", name, dropped)
    return select_people(trajectory, [int(i) for i in trajectory.track_ids[~behind]])


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
    from ..retarget.solve import footlock

    contacts = footlock.contacts_from_extras(
        trajectory.extras, motion.person, trajectory.num_frames
    )
    return None if contacts is None else contacts[motion.complete]


def _key_take(armature, mapping, result, keyed_frames, name, use_nla, all_bones):
    from .keyframes import push_to_nla

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
        assign=not use_nla,  # an NLA take leaves the active action alone
        properties=dict(mapping.properties),
    )
    scene_tools.set_pose_properties(armature, dict(mapping.properties))
    if use_nla:
        push_to_nla(armature, action, action.name, float(keyed_frames[0]))
    return action


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


def import_trajectory(
    path: str | os.PathLike,
    *,
    target: "bpy.types.Object | str | None" = None,
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
    where the camera saw them. With a ``target`` armature (the object or its name), one person
    (``person`` = track id, else the one seen longest) is retargeted onto it: ``rig_map`` is
    "auto", a preset name
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
    from ..retarget.solve import rigmaps

    context = context or bpy.context
    target = resolve_target(target, context)
    trajectory = _people_in_front(contract.read_trajectory(path), Path(path).name)
    skeleton = get_rig_skeleton(trajectory.skeleton)
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


# ------------------------------------------------------------------------------------------------
# Analysis, camera match and review (the rest of the panel flow)


@dataclass(frozen=True)
class AnalysisResult:
    """What :func:`analyze_video` produced."""

    path: Path  # the trajectory file written by the worker
    partial: bool  # the run was cancelled; the file holds the frames finished before
    warnings: tuple[str, ...]  # the worker's warnings, for the user
    people: tuple["review.PersonSummary", ...]  # who was tracked


def default_output_path(video: str | os.PathLike, output_dir: str | os.PathLike) -> Path:
    """``output_dir/<video name>.npz``; a Blender-relative ``//`` folder is resolved against the
    saved .blend, or the extension's user folder ``analyses`` while the file is unsaved."""
    output_dir = str(output_dir)
    if output_dir.startswith("//") and not bpy.data.filepath:
        base = Path(extension_user_dir("analyses"))
    else:
        base = Path(bpy.path.abspath(output_dir or "//"))
    return base / (Path(video).stem + ".npz")


def unused_output_path(video: str | os.PathLike, output_dir: str | os.PathLike) -> Path:
    """:func:`default_output_path`, numbered (``<name>-2.npz``, ``-3`` ...) when that file exists:
    a new analysis never overwrites an earlier result."""
    path = default_output_path(video, output_dir)
    number = 2
    while path.exists():
        path = path.with_name(f"{Path(video).stem}-{number}.npz")
        number += 1
    return path


def extension_user_dir(subfolder: str = "") -> str:
    """The extension's writable user folder (created), e.g. for the backend environment."""
    package = __package__.rpartition(".")[0]
    if not package.startswith(
        "bl_ext."
    ):  # running from the source tree (python -m metrabs_blender)
        package = "bl_ext.user_default." + package.rpartition(".")[2]
    return bpy.utils.extension_path_user(package, path=subfolder, create=True)


def start_analysis(
    request: backend.AnalyzeRequest,
    python: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    worker: Sequence[str] = backend.WORKER_ENTRY,
) -> backend.BackendProcess:
    """Start the worker for ``request`` and return at once (the modal operator follows it).

    ``python`` is the backend interpreter (default: auto-detected, see
    :func:`backend.find_backend_python`); ``worker`` is how it is started after the interpreter.
    """
    if not Path(request.video).exists():
        raise MocapError(f"Footage not found: {request.video}; choose a movie clip or a file")
    if python is None:
        python = backend.find_backend_python(venv_dir=backend_venv_dir()).python
    # the worker runs in the extension's folder: the caller's relative paths would name other files
    model = request.model
    request = dataclasses.replace(
        request,
        video=backend.caller_path(request.video),
        output=backend.caller_path(request.output),
        model=backend.caller_path(model) if model and Path(model).exists() else model,
    )
    python = backend.caller_python(python)
    Path(request.output).parent.mkdir(parents=True, exist_ok=True)
    command = backend.analyze_command(python, request, entry=worker)
    log.info("analysis: %s", backend.command_text([command]))
    return backend.BackendProcess(command, env=backend.worker_environment(cache_dir))


def finish_analysis(outcome: backend.WorkerOutcome) -> AnalysisResult:
    """Check a finished worker's output and summarise it; raises :class:`MocapError` when the run
    produced nothing usable (the message is the worker's own, or says what went wrong)."""
    if outcome.output is None:
        raise backend.BackendError(outcome.error_message)
    trajectory = contract.read_trajectory(outcome.output)
    return AnalysisResult(
        path=outcome.output,
        partial=outcome.partial,
        warnings=tuple(outcome.state.warnings),
        people=tuple(review.person_summaries(trajectory)),
    )


def backend_venv_dir() -> Path:
    """Where "Set up backend" puts the backend's virtual environment."""
    return Path(extension_user_dir()) / "backend-venv"


def analyze_video(
    video: str | os.PathLike,
    output: str | os.PathLike,
    *,
    python: str | None = None,
    frame_start: int | None = None,
    frame_stop: int | None = None,
    fov_deg: float | None = None,
    focal_mm: float | None = None,
    sensor_mm: float | None = None,
    max_people: int | None = None,
    device: str = "auto",
    model: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
    on_event: "Callable[[dict, backend.WorkerState], None] | None" = None,
    should_cancel: "Callable[[], bool] | None" = None,
    worker: Sequence[str] = backend.WORKER_ENTRY,
    extra_args: Sequence[str] = (),
) -> AnalysisResult:
    """Analyse ``video`` into the trajectory ``output`` with the worker subprocess; blocks until it
    exits (the panel's Analyze runs the same worker without blocking).

    Frames ``frame_start`` (0-based, inclusive) to ``frame_stop`` (exclusive); the camera from
    ``fov_deg`` (longer side) or ``focal_mm`` + ``sensor_mm`` (default 55°). ``on_event`` sees
    every protocol event; ``should_cancel`` is polled and, once true, the worker is stopped and the
    frames it finished are returned as a partial result, which ``resume=True`` continues. ``extra_args`` go to the worker as they
    are (e.g. ``("--tta", "5")``; see ``python -m inference analyze --help``).

    An existing ``output`` is refused unless ``overwrite``; a cancelled run then writes its
    partial result beside it (``<name>.partial.npz``, the returned path) and ``output`` keeps
    its complete result until a run finishes.
    """
    request = backend.AnalyzeRequest(
        video=str(video), output=str(output), frame_start=frame_start, frame_stop=frame_stop,
        fov_deg=fov_deg, focal_mm=focal_mm, sensor_mm=sensor_mm, max_people=max_people,
        device=device, model=model, resume=resume, overwrite=overwrite,
        extra_args=tuple(extra_args),
    )  # fmt: skip
    process = start_analysis(request, python=python, cache_dir=cache_dir, worker=worker)
    outcome = backend.run_to_completion(process, on_event=on_event, should_cancel=should_cancel)
    return finish_analysis(outcome)


def _as_trajectory(source: "str | os.PathLike | contract.Trajectory") -> contract.Trajectory:
    if isinstance(source, str | os.PathLike):
        return contract.read_trajectory(source)
    return source  # a Trajectory (possibly of another copy of the retarget package)


def load_footage(path: str | os.PathLike) -> "bpy.types.MovieClip":
    """The movie clip of ``path`` (an already loaded one is reused)."""
    try:
        return bpy.data.movieclips.load(str(path), check_existing=True)
    except RuntimeError as error:
        raise MocapError(f"Blender cannot open the footage {path}: {error}") from None


def setup_camera(
    trajectory: "str | os.PathLike | contract.Trajectory",
    *,
    context: "bpy.types.Context | None" = None,
    clip: "bpy.types.MovieClip | None" = None,
    footage: str | os.PathLike | None = None,
    sensor_width_mm: float = camera_tools.DEFAULT_SENSOR_WIDTH_MM,
    match_scene: bool = True,
    name: str = "MeTRAbs camera",
) -> "bpy.types.Object":
    """A new scene camera that matches the analysis: intrinsics, pose (the frame the import uses),
    render resolution, and the footage (``clip``, or loaded from ``footage``) as its background,
    timed so the footage frame of the first pose plays at the scene's start frame. With
    ``match_scene`` the scene frame rate and range follow the clip, as the import does."""
    context = context or bpy.context
    trajectory = _as_trajectory(trajectory)
    camera_tools.check_camera(trajectory)
    if clip is None and footage is not None:
        clip = load_footage(footage)
    if clip is not None and not match_scene:
        camera_tools.check_footage_timing(context.scene, trajectory)
    if match_scene:
        camera_tools.match_scene_to_clip(context.scene, trajectory)
    camera = camera_tools.create_camera(context, trajectory, name, sensor_width_mm)
    if clip is not None:
        camera_tools.attach_footage(
            camera, clip, context.scene, camera_tools.first_source_frame(trajectory)
        )
    return camera


def add_review_markers(
    trajectory: "str | os.PathLike | contract.Trajectory",
    *,
    context: "bpy.types.Context | None" = None,
    uncertainty_mm: float = review.DEFAULT_UNCERTAINTY_MM,
) -> list["bpy.types.TimelineMarker"]:
    """Timeline markers at gaps, gap-filled spans and low-confidence spans (see
    :func:`review.review_spans`), replacing earlier MeTRAbs markers."""
    context = context or bpy.context
    trajectory = _as_trajectory(trajectory)
    return review.add_markers(
        trajectory, context.scene, review.review_spans(trajectory, uncertainty_mm)
    )


def add_raw_joints(
    trajectory: "str | os.PathLike | contract.Trajectory",
    *,
    context: "bpy.types.Context | None" = None,
    track_ids: Sequence[int] | None = None,
    name: str = "MeTRAbs raw joints",
) -> "bpy.types.Collection":
    """Animated empties at the raw joints of the given people (default all), in a new collection."""
    context = context or bpy.context
    trajectory = _as_trajectory(trajectory)
    people = None if track_ids is None else _person_indices(trajectory, track_ids)
    return review.add_joint_empties(context, trajectory, name, people)


def _person_indices(trajectory: contract.Trajectory, track_ids: Sequence[int]) -> list[int]:
    known = [int(t) for t in trajectory.track_ids]
    unknown = sorted(set(track_ids) - set(known))
    if unknown:
        raise MocapError(f"No person with track id {unknown} in this trajectory (ids: {known})")
    return [known.index(int(t)) for t in track_ids]


#: extras indexed by person along their first axis (the cleaning's), besides the (T, P, ...) ones
_PER_PERSON_EXTRAS = ("contact_clearance",)


def select_people(trajectory: contract.Trajectory, track_ids: Sequence[int]) -> contract.Trajectory:
    """The trajectory of only the people ``track_ids`` (in that order), extras included: arrays
    shaped ``(T, P, ...)`` and the per-person ones are sliced, ``contact_intervals`` re-indexed."""
    people = _person_indices(trajectory, track_ids)
    leading = trajectory.poses3d.shape[:2]
    extras = {}
    for key, value in trajectory.extras.items():
        if np.ndim(value) >= 2 and np.shape(value)[:2] == leading:
            value = np.asarray(value)[:, people]
        elif key in _PER_PERSON_EXTRAS and np.shape(value)[:1] == (trajectory.num_people,):
            value = np.asarray(value)[people]
        elif key == "contact_intervals" and np.ndim(value) == 2:
            rows = [row for row in np.asarray(value) if int(row[0]) in people]
            value = np.array(
                [(people.index(int(row[0])), *row[1:]) for row in rows], np.int32
            ).reshape(-1, np.shape(value)[1])
        extras[key] = value
    return trajectory.replace(
        poses3d=trajectory.poses3d[:, people],
        poses2d=trajectory.poses2d[:, people],
        uncertainty=trajectory.uncertainty[:, people],
        boxes=trajectory.boxes[:, people],
        track_ids=trajectory.track_ids[people],
        extras=extras,
    )


def import_people(
    path: str | os.PathLike,
    track_ids: Sequence[int] | None = None,
    *,
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
    path = Path(path)
    target = resolve_target(target, context)
    if target is not None:
        if track_ids is not None and len(track_ids) != 1:
            raise MocapError(
                f"Tick one person to put onto {target.name} (ticked: {len(track_ids)})"
            )
        person = None if track_ids is None else int(track_ids[0])
        return import_trajectory(
            path, target=target, person=person, context=context, match_scene=match_scene, **options
        )
    trajectory = contract.read_trajectory(path)
    if track_ids is None or sorted(track_ids) == sorted(int(t) for t in trajectory.track_ids):
        return import_trajectory(path, context=context, match_scene=match_scene, **options)
    subset = select_people(trajectory, track_ids)
    # keep the whole clip's world frame (the floor under everyone), not the subset's own
    subset.extras.setdefault("world_from_camera", camera_tools.world_from_camera(trajectory))
    with tempfile.TemporaryDirectory(prefix="metrabs-") as folder:
        return import_trajectory(
            contract.write_trajectory(Path(folder) / path.name, subset),
            context=context,
            match_scene=match_scene,
            **options,
        )


def load_results(
    path: "str | os.PathLike", scene: "bpy.types.Scene | None" = None
) -> list[review.PersonSummary]:
    """Fill the panel's results list (``scene.metrabs.people``) from a trajectory file and make it
    the scene's current trajectory (whether it is partial, and nothing cleaned from it yet).
    Returns the people, in file order."""
    scene = scene or bpy.context.scene
    trajectory = contract.read_trajectory(path)
    summaries = review.person_summaries(trajectory)
    settings = scene.metrabs
    settings.trajectory_path = str(path)
    settings.cleaned_path = ""  # Re-target must not reuse a file cleaned from another trajectory
    settings.analysis_partial = bool(trajectory.extras.get("partial", False))
    settings.people.clear()
    footage_frames = camera_tools.source_frames(trajectory) + 1  # 1-based, as Blender counts
    for summary in summaries:
        item = settings.people.add()
        item.name = f"P{summary.track_id}"
        item.track_id = summary.track_id
        item.frames_visible = summary.frames_visible
        if summary.frames_visible:
            item.first_frame = int(footage_frames[summary.first_frame])
            item.last_frame = int(footage_frames[summary.last_frame])
        item.mean_score = 0.0 if np.isnan(summary.mean_score) else summary.mean_score
        item.mean_uncertainty = (
            0.0 if np.isnan(summary.mean_uncertainty_mm) else summary.mean_uncertainty_mm
        )
        item.colour = summary.colour
        item.use_import = summary.frames_visible > 0
    settings.active_person = 0
    return summaries


@dataclass
class AnalysisImport:
    """What :func:`import_analysis` created."""

    people: list[ImportResult]
    camera: "bpy.types.Object | None"
    markers: list["bpy.types.TimelineMarker"]
    raw_joints: "bpy.types.Collection | None"
    trajectory_path: Path  # the file imported (the cleaned one when cleaning ran)


def import_analysis(
    path: str | os.PathLike,
    track_ids: Sequence[int] | None = None,
    *,
    context: "bpy.types.Context | None" = None,
    match_scene: bool = True,
    camera: bool = True,
    clip: "bpy.types.MovieClip | None" = None,
    sensor_width_mm: float = camera_tools.DEFAULT_SENSOR_WIDTH_MM,
    review_markers: bool = True,
    uncertainty_mm: float = review.DEFAULT_UNCERTAINTY_MM,
    raw_joints: bool = False,
    clean_preset: str | None = "default",
    target: "bpy.types.Object | None" = None,
    **options,
) -> AnalysisImport:
    """The panel's Import: the trajectory cleaned with ``clean_preset`` (see :func:`clean_file`;
    None imports it as it is, e.g. a file cleaned before), the people ``track_ids`` (default all)
    as new rigs or one person onto ``target`` (see :func:`import_people`; ``options`` go to
    :func:`import_trajectory`), then optionally the matching camera (with ``clip`` as
    background), review markers and raw-joint empties.

    Each generated rig's object colour is its person's colour in the results list.
    """
    context = context or bpy.context
    raw = contract.read_trajectory(path)
    if camera and not contract.has_camera(raw):
        log.warning("%s gives no image size or intrinsics: no camera is made", Path(path).name)
        camera = False
    if camera:  # refused before anything is created
        camera_tools.check_camera(raw)
        if clip is not None and not match_scene:
            camera_tools.check_footage_timing(context.scene, raw)
    if clean_preset is not None:
        path = clean_file(path, clean_preset)
    trajectory = contract.read_trajectory(path)
    people = import_people(
        path, track_ids, context=context, match_scene=match_scene, target=target, **options
    )
    colours = {s.track_id: s.colour for s in review.person_summaries(trajectory)}
    for result in people:
        if target is None:  # the user's own character keeps its colour
            result.armature.color = (*colours[result.track_id], 1.0)
    created = AnalysisImport(people, None, [], None, Path(path))
    if camera:
        created.camera = setup_camera(
            trajectory, context=context, clip=clip, sensor_width_mm=sensor_width_mm,
            match_scene=match_scene,
        )  # fmt: skip
    if review_markers:
        created.markers = add_review_markers(
            select_people(trajectory, [r.track_id for r in people]),
            context=context,
            uncertainty_mm=uncertainty_mm,
        )
    if raw_joints:
        created.raw_joints = add_raw_joints(
            trajectory, context=context, track_ids=[r.track_id for r in people]
        )
    return created


def clean_file(
    path: str | os.PathLike, preset: str = "default", output: str | os.PathLike | None = None
) -> Path:
    """Clean a trajectory (``retarget.clean``: outliers, gaps, smoothing, bone lengths, floor fit,
    foot contacts) with ``preset`` and write it to ``output`` (default ``cleaned/<name>`` beside
    the input, so rigs keep the clip's name). Cleaning a cleaned file starts again from its raw
    poses, so presets can be tried one after another. Returns the path written."""
    from ..retarget import clean

    path = Path(path)
    cleaned = clean.clean_trajectory(contract.read_trajectory(path), preset=preset)
    for warning in json.loads(str(cleaned.extras.get("clean_report", "{}"))).get("warnings", []):
        log.warning("cleaning %s: %s", path.name, warning)
    output = Path(output) if output is not None else path.parent / "cleaned" / path.name
    return contract.write_trajectory(output, cleaned)


# Many clips (the panel's Folder of Clips; python -m inference batch): analyze_folder runs the
# batch command and imports its results as takes, import_folder imports a results folder,
# analysis_options spells the single-clip settings for every clip. batch_import uses this module
# lazily, so it is imported last.
from .batch_import import (  # noqa: E402,F401
    BatchRequest,
    analysis_options,
    analyze_folder,
    default_batch_output,
    import_folder,
)
