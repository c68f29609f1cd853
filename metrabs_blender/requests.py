"""The panel's settings (``Scene.metrabs``) and the add-on preferences as the requests and options
of ``api`` and ``backend`` functions: what an operator passes to the one function it calls, and
what a script passes for the same result.

Each function refuses with :class:`MocapError` a setting that cannot work (no footage chosen,
a frame range backwards, nobody ticked), before anything is started or created.
"""

import os
import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import bpy

from ..retarget.keys import KeyTolerance
from . import jobs
from .errors import MocapError


def _prefs(context):
    from . import preferences

    return preferences.get(context)


# ------------------------------------------------------------------------------------------------
# Footage and camera


def footage_path(settings) -> str:
    """Absolute path of the footage the settings point at; for a movie clip of numbered images,
    the pattern of all of them (``frame_%04d.png``), not its first file."""
    if settings.footage_source == "CLIP":
        if settings.clip is None:
            raise MocapError("Choose a movie clip to analyse (or switch Footage to File)")
        path = bpy.path.abspath(settings.clip.filepath, library=settings.clip.library)
        return sequence_pattern(path) if settings.clip.source == "SEQUENCE" else path
    if not settings.footage_path:
        raise MocapError("Choose a video file to analyse")
    path = bpy.path.abspath(settings.footage_path)
    if not Path(path).exists():
        raise MocapError(f"Footage not found: {path}; choose a movie clip or a file")
    return path


def sequence_pattern(first_image: str) -> str:
    """``/shots/frame_0001.png`` -> ``/shots/frame_%04d.png`` (the last number in the name);
    a name without a number stays as it is."""
    folder, name = os.path.split(first_image)
    numbers = list(re.finditer(r"\d+", name))
    if not numbers:
        return first_image
    last = numbers[-1]
    return os.path.join(folder, f"{name[: last.start()]}%0{len(last.group())}d{name[last.end() :]}")


def footage_clip(settings) -> "bpy.types.MovieClip | None":
    """The movie clip to show behind the matched camera: the chosen clip, else the footage file
    loaded as one (``api.load_footage``), else None."""
    from . import api

    clip = settings.clip if settings.footage_source == "CLIP" else None
    if clip is None and settings.footage_path:
        clip = api.load_footage(bpy.path.abspath(settings.footage_path))
    return clip


def camera_options(settings) -> dict:
    """The camera of the panel's settings as analysis options (``fov_deg`` or ``focal_mm`` +
    ``sensor_mm``; none for the default 55°; a movie clip's camera as the field of view it
    gives)."""
    camera = {}
    if settings.camera_model == "FOV":
        camera = {"fov_deg": settings.fov}
    elif settings.camera_model == "FOCAL":
        camera = {"focal_mm": settings.focal_length, "sensor_mm": settings.sensor_width}
    elif settings.camera_model == "CLIP":
        if settings.footage_source != "CLIP" or settings.clip is None:
            raise MocapError("Clip Camera needs a movie clip as footage")
        from . import camera as camera_tools

        camera = {"fov_deg": camera_tools.clip_field_of_view(settings.clip)}
    return camera


# ------------------------------------------------------------------------------------------------
# Analysis and import of one clip


def analysis_request(context, resume: bool = False):
    """The worker request for the panel's settings and the add-on preferences: a new result file
    (earlier ones are kept), or with ``resume`` the partial result of the cancelled run that the
    panel holds (refused when there is none)."""
    from . import backend, paths

    settings = context.scene.metrabs
    prefs = _prefs(context)
    video = footage_path(settings)
    camera = camera_options(settings)
    timing = {}
    if settings.use_frame_range:
        if settings.frame_last < settings.frame_first:
            raise MocapError("The last frame of the range is before the first; fix the range")
        timing = {"frame_start": settings.frame_first - 1, "frame_stop": settings.frame_last}
    if settings.footage_source == "CLIP" and settings.clip.source == "SEQUENCE":
        render = context.scene.render  # Blender plays image sequences at the scene's rate
        timing["sequence_fps"] = render.fps / render.fps_base
    request = backend.AnalyzeRequest(
        video=video,
        output=bpy.path.abspath(settings.trajectory_path)
        if resume
        else str(paths.unused_output_path(video, settings.output_dir)),
        max_people=settings.max_people,
        device=prefs.device if prefs else "auto",
        model=prefs.model_spec() if prefs else None,
        resume=resume,
        **camera,
        **timing,
    )
    if resume and not Path(request.output).is_file():
        raise MocapError(f"No partial result to resume at {request.output}; press Analyze")
    return request


def retarget_options(settings) -> dict:
    """:func:`api.import_trajectory` options from the panel's import settings."""
    rig_map = settings.rig_map
    if rig_map == "JSON":
        if not settings.rig_map_path:
            raise MocapError("Choose a rig map file, or another Rig Map")
        rig_map = bpy.path.abspath(settings.rig_map_path)
    elif rig_map == "EDITOR":
        from .bone_map import rig_map_from_rows

        if not len(settings.bone_map.rows):
            raise MocapError("The bone map is empty: Fill it in the Bone Map panel")
        rig_map = rig_map_from_rows(settings.bone_map, settings.bone_map.preset_name)
    return {
        "target": settings.target,
        "rig_map": rig_map,
        "root_motion": None if settings.root_motion == "AUTO" else settings.root_motion,
        "limb_ik": settings.limb_ik,
        "foot_contacts": settings.foot_contacts.lower(),
        "use_nla": settings.use_nla,
        "joint_limits": settings.use_joint_limits,
        "key_reduction": key_reduction(settings),
    }


def key_reduction(settings) -> "KeyTolerance | str":
    """:func:`api.import_trajectory`'s ``key_reduction`` from the panel's Keys and tolerances."""
    if settings.key_reduction == "DENSE":
        return "dense"
    return KeyTolerance.from_mm(settings.key_tolerance_deg, settings.key_tolerance_mm)


def import_options(context, retarget: bool = False) -> dict:
    """:func:`api.import_analysis` arguments for the panel's Import: the results' trajectory and
    ticked people, cleaned with the chosen preset; with ``retarget`` the file cleaned last time,
    not cleaned again."""
    settings = context.scene.metrabs
    track_ids = [person.track_id for person in settings.people if person.use_import]
    if not track_ids:
        raise MocapError("Tick at least one person in the results list")
    source = bpy.path.abspath(settings.trajectory_path)
    preset = None if settings.clean_preset == "OFF" else settings.clean_preset
    if retarget:
        if not settings.cleaned_path:
            raise MocapError("Nothing cleaned yet: press Import first")
        source, preset = bpy.path.abspath(settings.cleaned_path), None
    # people with a rig of their own (the rest: the Target, or new rigs)
    targets = {p.track_id: p.target for p in settings.people if p.use_import and p.target}
    return {
        "trajectory": source,
        "track_ids": track_ids,
        **({"targets": targets} if targets else {}),
        "clean_preset": preset,
        "match_scene": settings.match_scene,
        "camera": settings.use_camera,
        "clip": footage_clip(settings) if settings.use_camera else None,
        "sensor_width_mm": settings.sensor_width,
        "review_markers": settings.use_review_markers,
        "uncertainty_mm": settings.uncertainty_threshold,
        "raw_joints": settings.use_raw_joints,
        **retarget_options(settings),
    }


# ------------------------------------------------------------------------------------------------
# A folder of clips: the batch command


def folder_request(context):
    """The batch request for the panel's folder settings: every clip analysed with the single
    clip's camera, max people, device and model (the frame range applies to one clip only)."""
    from . import batch_import

    settings = context.scene.metrabs
    prefs = _prefs(context)
    if not settings.batch_input_dir:
        raise MocapError("Choose a Videos Folder to analyse")
    videos = bpy.path.abspath(settings.batch_input_dir)
    if not Path(videos).is_dir():
        raise MocapError(f"Videos Folder not found: {videos}; choose a folder of video files")
    if settings.batch_output_dir:
        output = Path(bpy.path.abspath(settings.batch_output_dir))
    else:
        output = batch_import.default_batch_output(videos, settings.output_dir)
    extra = split_options(settings.batch_options, "Extra Options")
    clip_options = batch_import.analysis_options(
        device=prefs.device if prefs else "auto",
        model=prefs.model_spec() if prefs else None,
        max_people=settings.max_people,
        **camera_options(settings),
    )
    clean = settings.batch_clean_preset
    return batch_import.BatchRequest(
        inputs=(videos,),
        output=str(output),
        workers=settings.batch_workers or None,
        clean_preset=None if clean == "OFF" else clean,
        recursive=settings.use_batch_recursive,
        analyze_args=clip_options,
        extra_args=extra,
    )


def results_folder(settings) -> str:
    """The batch results folder the panel imports (the last batch's, or one chosen)."""
    if not settings.batch_result_dir:
        raise MocapError("Press Analyze Folder first, or choose a batch Results folder")
    return bpy.path.abspath(settings.batch_result_dir)


# ------------------------------------------------------------------------------------------------
# The backend (preferences)


def backend_python(context) -> str:
    """The backend interpreter: the preference, else auto-detected."""
    from . import backend, paths

    prefs = _prefs(context)
    chosen = bpy.path.abspath(prefs.python_path) if prefs and prefs.python_path else None
    return backend.find_backend_python(chosen, venv_dir=paths.backend_venv_dir()).python


def cache_dir(context) -> str | None:
    """The model cache of the preferences (None: the backend's default)."""
    prefs = _prefs(context)
    return bpy.path.abspath(prefs.cache_dir) if prefs and prefs.cache_dir else None


def split_options(text: str, field: str) -> tuple[str, ...]:
    """Command-line options typed into ``field``, split as a shell would (without running one)."""
    try:
        return tuple(shlex.split(text))
    except ValueError as error:
        raise MocapError(f"{field}: {error}; check the quotes") from None


def local_packages_only(pip_command: Sequence[str]) -> bool:
    """Whether a pip command reads packages from local folders only (``--no-index`` and no URL
    among its options, as ``--find-links https://...``): what may run with online access off."""
    urls = [arg for arg in pip_command if "://" in arg and not arg.startswith("file://")]
    return "--no-index" in pip_command and not urls


def setup_commands(context) -> list[list[str]]:
    """The set-up commands for the current preferences."""
    from . import backend, paths

    prefs = _prefs(context)
    base = bpy.path.abspath(prefs.base_python) if prefs and prefs.base_python else sys.executable
    return backend.setup_commands(
        base,
        paths.backend_venv_dir(),
        torch_variant=prefs.torch_variant if prefs else "default",
        pip_args=split_options(prefs.pip_options, "Pip Options") if prefs else (),
    )


def setup_command_text(context) -> str:
    """:func:`setup_commands` as the lines to run in a terminal."""

    return jobs.command_text(setup_commands(context))


def download_command(context) -> list[str]:
    """The command that downloads the model chosen in the preferences (``python -m inference
    weights download NAME``); refused with online access off (the message gives the command)."""
    from . import backend

    prefs = _prefs(context)
    name = prefs.registry_name() if prefs else None
    if name is None:
        raise MocapError("Choose a model to download in the add-on preferences")
    if not bpy.app.online_access:
        shown = bpy.path.abspath(prefs.python_path) if prefs.python_path else "python"
        command = backend.weights_command(shown, "download", name, cache_dir(context))
        raise MocapError(
            "Online access is off (Preferences > System > Network); allow it, or run in a "
            f"terminal: {jobs.command_text([command])}"
        )
    return backend.weights_command(backend_python(context), "download", name, cache_dir(context))
