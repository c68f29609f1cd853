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

The functions that take a trajectory take a ``.npz`` path or a ``retarget.contract.Trajectory``:
a path is read once, where the call comes in, and the object is passed on from there. Every
function validates its input before it creates anything, so a bad file leaves the scene as it
was. Each import makes new objects and new actions; nothing of the user's is modified.
"""

import dataclasses
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from ..retarget import contract
from ..retarget.keys import KeyTolerance
from ..retarget.solve import grounding, people, rigmaps
from . import backend, bone_map, jobs, review
from . import camera as camera_tools
from . import export as exporting
from .batch_import import (
    BatchRequest,
    analysis_options,
    analyze_folder,
    default_batch_output,
    import_folder,
)
from .errors import MocapError
from .importer import (
    ImportResult,
    Source,
    contact_mode,
    import_people,
    import_trajectory,
    key_tolerance,
    read_source,
    refusals,
    resolve_target,
)
from .paths import backend_venv_dir, default_output_path, extension_user_dir, unused_output_path

__all__ = [
    "AnalysisImport",
    "AnalysisResult",
    "BatchRequest",
    "ImportResult",
    "KeyTolerance",
    "MocapError",
    "add_raw_joints",
    "add_review_markers",
    "analysis_options",
    "analyze_folder",
    "analyze_video",
    "backend_venv_dir",
    "bone_map_presets",
    "clean_file",
    "default_batch_output",
    "delete_bone_map",
    "edit_bone_map",
    "edited_rig_map",
    "default_output_path",
    "extension_user_dir",
    "fill_bone_map",
    "finish_analysis",
    "import_analysis",
    "import_folder",
    "import_people",
    "import_trajectory",
    "load_bone_map",
    "load_footage",
    "load_results",
    "resolve_target",
    "save_bone_map",
    "select_people",
    "setup_camera",
    "start_analysis",
    "unused_output_path",
]

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------
# Analysis, camera match, review and the panel's Import (the import itself: importer.py)


@dataclass(frozen=True)
class AnalysisResult:
    """What :func:`analyze_video` produced."""

    path: Path  # the trajectory file written by the worker
    partial: bool  # the run was cancelled; the file holds the frames finished before
    warnings: tuple[str, ...]  # the worker's warnings, for the user
    people: tuple["review.PersonSummary", ...]  # who was tracked


def start_analysis(
    request: backend.AnalyzeRequest,
    python: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    worker: Sequence[str] = backend.WORKER_ENTRY,
) -> jobs.BackendProcess:
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
    log.info("analysis: %s", jobs.command_text([command]))
    return jobs.BackendProcess(command, env=backend.worker_environment(cache_dir))


def finish_analysis(outcome: jobs.WorkerOutcome) -> AnalysisResult:
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
    on_event: "Callable[[dict, jobs.WorkerState], None] | None" = None,
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
    outcome = jobs.run_to_completion(process, on_event=on_event, should_cancel=should_cancel)
    return finish_analysis(outcome)


def _as_trajectory(source: "str | os.PathLike | contract.Trajectory") -> contract.Trajectory:
    """A path read; an object as it is (``import_analysis`` passes the one it has read)."""
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
    with refusals():
        indices = None if track_ids is None else people.person_indices(trajectory, track_ids)
    return review.add_joint_empties(context, trajectory, name, indices)


def select_people(trajectory: contract.Trajectory, track_ids: Sequence[int]) -> contract.Trajectory:
    """The trajectory of only the people ``track_ids`` (in that order), extras included (see
    ``retarget.solve.people.select_people``); an unknown track id raises :class:`MocapError`."""
    with refusals():
        return people.select_people(trajectory, track_ids)


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
    trajectory_path: Path | None  # the file imported (the cleaned one when cleaning ran)


def import_analysis(
    trajectory: "str | os.PathLike | contract.Trajectory",
    track_ids: Sequence[int] | None = None,
    *,
    name: str | None = None,
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
    as new rigs or one person onto ``target``, or people onto rigs of their own with
    ``targets`` (track id -> armature; see :func:`import_people`; ``name`` and ``options`` go
    to :func:`import_trajectory`), then optionally the matching camera (with
    ``clip`` as background), review markers and raw-joint empties.

    A path is read once; its cleaned trajectory is written to ``cleaned/<name>`` beside it (the
    file Re-target imports again) and imported as it is in memory. A cleaned Trajectory object is
    not written (``trajectory_path`` is None). Each generated rig's object colour is its person's
    colour in the results list.
    """
    context = context or bpy.context
    source = read_source(trajectory, name)
    raw = source.trajectory
    if camera and not contract.has_camera(raw):
        log.warning("%s gives no image size or intrinsics: no camera is made", source.label)
        camera = False
    if camera:  # refused before anything is created
        camera_tools.check_camera(raw)
        if clip is not None and not match_scene:
            camera_tools.check_footage_timing(context.scene, raw)
    # Options refused before anything is written (the cleaned file included)
    mode = contact_mode(options.get("foot_contacts", "auto"), options.get("foot_lock", True))
    key_tolerance(options.get("key_reduction", "reduced"))
    if clean_preset is not None:
        # Modes that do not hold the feet leave them free in the cleaning too (no joint-level lock).
        overrides = {} if grounding.holds_feet(mode) else {"lock_feet": False}
        source = _clean(source, clean_preset, **overrides)
    trajectory = source.trajectory
    imported = import_people(
        source, track_ids, context=context, match_scene=match_scene, target=target, **options
    )
    colours = {s.track_id: s.colour for s in review.person_summaries(trajectory)}
    for result in imported:
        if result.generated:  # the user's own characters keep their colours
            result.armature.color = (*colours[result.track_id], 1.0)
    created = AnalysisImport(imported, None, [], None, source.path)
    if camera:
        created.camera = setup_camera(
            trajectory, context=context, clip=clip, sensor_width_mm=sensor_width_mm,
            match_scene=match_scene,
        )  # fmt: skip
    if review_markers:
        created.markers = add_review_markers(
            select_people(trajectory, [r.track_id for r in imported]),
            context=context,
            uncertainty_mm=uncertainty_mm,
        )
    if raw_joints:
        created.raw_joints = add_raw_joints(
            trajectory, context=context, track_ids=[r.track_id for r in imported]
        )
    return created


def _clean(
    source: Source, preset: str, output: str | os.PathLike | None = None, **overrides
) -> Source:
    """``source`` cleaned with ``preset`` and ``overrides`` of its parameters (its warnings
    logged), written to ``output`` (default ``cleaned/<name>`` beside its file; nowhere for a
    Trajectory object without ``output``).

    The cleaned object is what a read of the file written gives back (the contract's dtypes,
    extras as arrays; tests/test_people.py checks it), so importing it is importing the file."""
    from ..retarget import clean

    cleaned = clean.clean_trajectory(source.trajectory, preset=preset, **overrides)
    for warning in json.loads(str(cleaned.extras.get("clean_report", "{}"))).get("warnings", []):
        log.warning("cleaning %s: %s", source.label, warning)
    if output is None and source.path is not None:
        output = source.path.parent / "cleaned" / source.path.name
    path = None if output is None else contract.write_trajectory(output, cleaned)
    return dataclasses.replace(source, trajectory=cleaned, path=path)


def clean_file(
    path: str | os.PathLike,
    preset: str = "default",
    output: str | os.PathLike | None = None,
    **overrides,
) -> Path:
    """Clean a trajectory (``retarget.clean``: outliers, gaps, smoothing, bone lengths, floor fit,
    foot contacts) with ``preset`` (and ``overrides`` of its parameters, e.g. ``lock_feet=False``)
    and write it to ``output`` (default ``cleaned/<name>`` beside the input, so rigs keep the
    clip's name). Cleaning a cleaned file starts again from its raw poses, so presets can be tried
    one after another. Returns the path written."""
    return _clean(read_source(path), preset, output, **overrides).path


def export_take(
    armature: "bpy.types.Object | str",
    path: str | os.PathLike,
    frame_start: int | None = None,
    frame_end: int | None = None,
    *,
    context: "bpy.types.Context | None" = None,
) -> "exporting.ExportResult":
    """Export ``armature``'s deform skeleton as it moves, for game engines and other tools: FBX,
    BVH or glTF binary by ``path``'s suffix (``metrabs_blender.export``), over scene frames
    ``frame_start`` to ``frame_end`` (default: its active action's frame range). Checked before
    anything is written; the rig and the scene are left as they were."""
    context = context or bpy.context
    if isinstance(armature, str):
        found = bpy.data.objects.get(armature)
        if found is None:
            raise MocapError(f"no object named {armature!r} to export")
        armature = found
    exporting.check_export(path, armature)
    if frame_start is None or frame_end is None:
        action = armature.animation_data.action if armature.animation_data else None
        if action is None:
            raise MocapError(f"{armature.name!r} has no active action: nothing to export")
        first, last = action.frame_range
        frame_start = int(np.ceil(first)) if frame_start is None else frame_start
        frame_end = int(np.floor(last)) if frame_end is None else frame_end
    return exporting.export_take(armature, path, frame_start, frame_end, context)


# ------------------------------------------------------------------------------------------------
# The bone-map editor (the Bone Map panel; presets in the extension's user folder)


def fill_bone_map(
    armature: "bpy.types.Object | str",
    rig_map: "str | os.PathLike | object" = "auto",
    *,
    scene: "bpy.types.Scene | None" = None,
) -> "rigmaps.MatchReport":
    """The panel's Fill: the editor's rows (``scene.metrabs.bone_map``) for ``armature`` (the
    object or its name) from ``rig_map`` ("auto", a preset name, a saved bone map's name, a JSON
    file or a ``RigMap``), resolved as an import resolves it. Returns how it was found."""
    scene = scene or bpy.context.scene
    armature = resolve_target(armature)
    if armature is None:
        raise MocapError("Choose the target armature first: the bone map lists its bones")
    return bone_map.fill(scene.metrabs.bone_map, armature, rig_map)


def edit_bone_map(action: str, *, scene: "bpy.types.Scene | None" = None) -> None:
    """The panel's +/-: ``"ADD"`` a bone to the selected row's part (a chain), ``"REMOVE"`` the
    selected row (see :func:`bone_map.edit_row`)."""
    scene = scene or bpy.context.scene
    bone_map.edit_row(scene.metrabs.bone_map, action)


def edited_rig_map(*, scene: "bpy.types.Scene | None" = None) -> "rigmaps.RigMap":
    """The editor's map as a ``RigMap``, named after its preset name (what Rig Map *Bone Map*
    imports with; any import's ``rig_map`` takes it)."""
    scene = scene or bpy.context.scene
    editor = scene.metrabs.bone_map
    return bone_map.rig_map_from_rows(editor, editor.preset_name)


def save_bone_map(name: str, *, scene: "bpy.types.Scene | None" = None) -> Path:
    """Save the editor's map as the preset ``name`` (``<user folder>/rig_maps/<name>.json``,
    a rig-map JSON file: docs/rigmaps.md), replacing a preset of that name. Returns its path."""
    scene = scene or bpy.context.scene
    scene.metrabs.bone_map.preset_name = name
    return bone_map.save_preset(name, edited_rig_map(scene=scene))


def load_bone_map(name: str, *, scene: "bpy.types.Scene | None" = None) -> "rigmaps.RigMap":
    """Load the saved bone map ``name`` into the editor; returns it."""
    scene = scene or bpy.context.scene
    rig_map = bone_map.load_preset(name)
    editor = scene.metrabs.bone_map
    bone_map.set_rows(editor, rig_map, f"saved bone map {name}")
    editor.preset_name = name
    return rig_map


def delete_bone_map(name: str) -> None:
    """Delete the saved bone map ``name``."""
    bone_map.delete_preset(name)


def bone_map_presets() -> list[str]:
    """The names of the saved bone maps."""
    return bone_map.list_presets()
