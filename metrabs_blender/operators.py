"""Operators: read properties, call one function of ``api``, report.

Long jobs (analysis, folder analysis, backend set-up, model download) run as subprocesses. Invoked from the UI they
are modal: a timer polls the job (whose reader thread fills a queue and never touches ``bpy``) and
redraws the panel's progress bar; the Cancel button stops the job, keeping what it finished (Esc
is left to Blender: it stops playback, not an hour-long analysis).
Run headless or from a script (``bpy.ops.metrabs.analyze_footage()``, i.e. ``execute``), the same
job runs to completion synchronously, since modal operators never run in ``--background``.
"""

import atexit
import os
import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import bpy

from .errors import MocapError

#: background jobs of this session, by kind ("analyze", "setup", "download"); runtime state only
_JOBS: dict[str, object] = {}
JOB_KINDS = (
    ("analyze", "Analysis", ""),
    ("batch", "Folder Analysis", ""),
    ("setup", "Backend Set-up", ""),
    ("download", "Model Download", ""),
)


def running_job(kind: str):
    """The job of ``kind`` running in this session, or None."""
    return _JOBS.get(kind)


def stop_jobs() -> None:
    """Stop every running job and wait for its process (unregister, Blender quitting): a worker
    must not outlive the add-on, holding a GPU with nobody reading its output."""
    while _JOBS:
        _kind, job = _JOBS.popitem()
        job.stop()


@bpy.app.handlers.persistent
def _stop_jobs_on_load(*_args) -> None:
    """Another file is loaded (File > Open, New, Revert): a job started for the scene being left
    stops (an analysis keeps what it finished in its partial result)."""
    stop_jobs()


def register() -> None:
    atexit.register(stop_jobs)
    bpy.app.handlers.load_pre.append(_stop_jobs_on_load)


def unregister() -> None:
    if _stop_jobs_on_load in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_stop_jobs_on_load)
    stop_jobs()
    atexit.unregister(stop_jobs)


def _errors() -> tuple[type[Exception], ...]:
    from .. import retarget

    return (MocapError, retarget.RetargetError)


def _prefs(context):
    from . import preferences

    return preferences.get(context)


def _redraw(context) -> None:
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            area.tag_redraw()


class _ModalJob:
    """Mixin: ``invoke`` starts :meth:`start_job` and follows it with a timer; ``execute`` runs the
    same job to the end (headless, scripts). Subclasses set ``job_kind`` and implement
    ``start_job(context) -> job`` (with ``poll()``, ``fraction``, ``text()``, ``cancel()``) and
    ``job_finished(context, job) -> set``."""

    job_kind = ""
    _timer = None

    def execute(self, context):
        if running_job(self.job_kind) is not None:
            self.report({"ERROR"}, "Already running; wait for it or cancel it first")
            return {"CANCELLED"}
        try:
            job = self.start_job(context)
            try:
                while not job.poll():
                    _sleep()
            finally:  # interrupted (Ctrl-C in a script): the process must not outlive the call
                if not job.poll():
                    job.stop()
            return self.job_finished(context, job)
        except _errors() as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}

    def invoke(self, context, event):
        if running_job(self.job_kind) is not None:
            self.report({"ERROR"}, "Already running; wait for it or cancel it first")
            return {"CANCELLED"}
        try:
            job = self.start_job(context)
        except _errors() as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        _JOBS[self.job_kind] = job
        window_manager = context.window_manager
        self._timer = window_manager.event_timer_add(0.2, window=context.window)
        window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        job = _JOBS.get(self.job_kind)
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        if job is None:  # stopped from outside (add-on disabled)
            self._stop(context)
            return {"CANCELLED"}
        try:
            finished = job.poll()
        except _errors() as error:
            self._stop(context)
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        _redraw(context)
        if not finished:
            return {"PASS_THROUGH"}
        self._stop(context)
        try:
            return self.job_finished(context, job)
        except _errors() as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}

    def cancel(self, context) -> None:
        """Blender dropped the handler (its window closed, another file loaded): nobody would
        follow the job any more, so it stops (an analysis keeps what it finished)."""
        job = _JOBS.pop(self.job_kind, None)
        if job is not None:
            job.stop()
        context.window_manager.event_timer_remove(self._timer)

    def _stop(self, context) -> None:
        context.window_manager.event_timer_remove(self._timer)
        _JOBS.pop(self.job_kind, None)
        _redraw(context)


def _sleep() -> None:
    import time

    time.sleep(0.05)


# ------------------------------------------------------------------------------------------------
# Import of a trajectory file


class METRABS_OT_import_trajectory(bpy.types.Operator):
    """Import a trajectory file (.npz) as animated armatures, one new action per person"""

    bl_idname = "metrabs.import_trajectory"
    bl_label = "Import Trajectory"
    bl_options = {"REGISTER", "UNDO"}

    filepath: bpy.props.StringProperty(subtype="FILE_PATH", options={"SKIP_SAVE"})
    filter_glob: bpy.props.StringProperty(default="*.npz", options={"HIDDEN"})

    def invoke(self, context, event):
        if not self.filepath and context.scene.metrabs.trajectory_path:
            self.filepath = bpy.path.abspath(context.scene.metrabs.trajectory_path)  # preselected
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        from .. import retarget
        from . import api

        settings = context.scene.metrabs
        try:
            results = api.import_trajectory(
                bpy.path.abspath(self.filepath), match_scene=settings.match_scene
            )
        except (MocapError, retarget.RetargetError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        api.load_results(bpy.path.abspath(self.filepath), context.scene)
        names = ", ".join(result.armature.name for result in results)
        self.report({"INFO"}, f"Imported {len(results)} person(s): {names}")
        return {"FINISHED"}


# ------------------------------------------------------------------------------------------------
# Analysis


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


def analysis_request(context, resume: bool = False):
    """The worker request for the panel's settings and the add-on preferences: a new result file
    (earlier ones are kept), or with ``resume`` the partial result of the cancelled run that the
    panel holds."""
    from . import api, backend

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
    return backend.AnalyzeRequest(
        video=video,
        output=bpy.path.abspath(settings.trajectory_path)
        if resume
        else str(api.unused_output_path(video, settings.output_dir)),
        max_people=settings.max_people,
        device=prefs.device if prefs else "auto",
        model=prefs.model_spec() if prefs else None,
        resume=resume,
        **camera,
        **timing,
    )


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


def backend_python(context) -> str:
    """The backend interpreter: the preference, else auto-detected."""
    from . import api, backend

    prefs = _prefs(context)
    chosen = bpy.path.abspath(prefs.python_path) if prefs and prefs.python_path else None
    return backend.find_backend_python(chosen, venv_dir=api.backend_venv_dir()).python


def cache_dir(context) -> str | None:
    prefs = _prefs(context)
    return bpy.path.abspath(prefs.cache_dir) if prefs and prefs.cache_dir else None


class METRABS_OT_analyze_footage(_ModalJob, bpy.types.Operator):
    """Estimate 3D poses of the people in the footage (runs in the backend Python; Cancel keeps
    the frames finished so far)"""

    bl_idname = "metrabs.analyze_footage"
    bl_label = "Analyze"
    job_kind = "analyze"

    resume: bpy.props.BoolProperty(
        name="Resume",
        description="Continue the partial result of a cancelled analysis of this footage",
        options={"SKIP_SAVE"},
    )

    def start_job(self, context):
        from . import api, backend

        request = analysis_request(context, resume=self.resume)
        if self.resume and not Path(request.output).is_file():
            raise MocapError(f"No partial result to resume at {request.output}; press Analyze")
        process = api.start_analysis(
            request, python=backend_python(context), cache_dir=cache_dir(context)
        )
        return backend.WorkerJob(process)

    def job_finished(self, context, job):
        from . import api

        result = api.finish_analysis(job.outcome)
        api.load_results(result.path, scene=context.scene)
        for warning in result.warnings:
            self.report({"WARNING"}, warning)
        seen = ", ".join(f"P{p.track_id} ({p.frames_visible} frames)" for p in result.people)
        if result.partial:
            frames = job.state.frames_done
            self.report({"WARNING"}, f"Cancelled: kept the first {frames} frames. People: {seen}")
        else:
            self.report({"INFO"}, f"Analysis done: {seen or 'nobody found'}")
        return {"FINISHED"}


class METRABS_OT_cancel_job(bpy.types.Operator):
    """Stop a running job; what it finished is kept"""

    bl_idname = "metrabs.cancel_job"
    bl_label = "Cancel"
    bl_options = {"INTERNAL"}

    kind: bpy.props.EnumProperty(items=JOB_KINDS, default="analyze")

    def execute(self, context):
        job = running_job(self.kind)
        if job is None:
            self.report({"WARNING"}, "Nothing is running")
            return {"CANCELLED"}
        job.cancel()
        return {"FINISHED"}


class METRABS_OT_load_results(bpy.types.Operator):
    """Read the trajectory file and list the people in it"""

    bl_idname = "metrabs.load_results"
    bl_label = "Load Results"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        from . import api

        settings = context.scene.metrabs
        try:
            people = api.load_results(bpy.path.abspath(settings.trajectory_path), context.scene)
        except _errors() as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report({"INFO"}, f"{len(people)} person(s) in {Path(settings.trajectory_path).name}")
        return {"FINISHED"}


def retarget_options(settings) -> dict:
    """:func:`api.import_trajectory` options from the panel's import settings."""
    rig_map = settings.rig_map
    if rig_map == "JSON":
        if not settings.rig_map_path:
            raise MocapError("Choose a rig map file, or another Rig Map")
        rig_map = bpy.path.abspath(settings.rig_map_path)
    return {
        "target": settings.target,
        "rig_map": rig_map,
        "root_motion": None if settings.root_motion == "AUTO" else settings.root_motion,
        "foot_lock": settings.use_foot_lock,
        "use_nla": settings.use_nla,
        "joint_limits": settings.use_joint_limits,
    }


class METRABS_OT_import_results(bpy.types.Operator):
    """Clean the analysis and import the ticked people: rigs with one new action each, and
    optionally the matching camera, review markers and raw joints (the network is not run again)"""

    bl_idname = "metrabs.import_results"
    bl_label = "Import"
    bl_options = {"REGISTER", "UNDO"}

    retarget: bpy.props.BoolProperty(
        name="Re-target",
        description="Import the trajectory cleaned last time again, without cleaning it again",
        options={"SKIP_SAVE"},
    )

    @classmethod
    def description(cls, context, properties):
        if properties.retarget:
            return "Import the motion cleaned last time again (new takes), without re-cleaning"
        return cls.__doc__

    def execute(self, context):
        from . import api

        settings = context.scene.metrabs
        track_ids = [person.track_id for person in settings.people if person.use_import]
        if not track_ids:
            self.report({"ERROR"}, "Tick at least one person in the results list")
            return {"CANCELLED"}
        source = bpy.path.abspath(settings.trajectory_path)
        preset = None if settings.clean_preset == "OFF" else settings.clean_preset
        if self.retarget:
            if not settings.cleaned_path:
                self.report({"ERROR"}, "Nothing cleaned yet: press Import first")
                return {"CANCELLED"}
            source, preset = bpy.path.abspath(settings.cleaned_path), None
        try:
            clip = None
            if settings.use_camera:
                clip = settings.clip if settings.footage_source == "CLIP" else None
                if clip is None and settings.footage_path:
                    clip = api.load_footage(bpy.path.abspath(settings.footage_path))
            imported = api.import_analysis(
                source,
                track_ids,
                clean_preset=preset,
                context=context,
                match_scene=settings.match_scene,
                camera=settings.use_camera,
                clip=clip,
                sensor_width_mm=settings.sensor_width,
                review_markers=settings.use_review_markers,
                uncertainty_mm=settings.uncertainty_threshold,
                raw_joints=settings.use_raw_joints,
                **retarget_options(settings),
            )
        except _errors() as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        settings.cleaned_path = str(imported.trajectory_path)
        names = ", ".join(result.armature.name for result in imported.people)
        extra = f"; {len(imported.markers)} review marker(s)" if imported.markers else ""
        self.report({"INFO"}, f"Imported {names}{extra}")
        return {"FINISHED"}


class METRABS_OT_setup_camera(bpy.types.Operator):
    """Add a camera with the analysis' lens and pose and the footage as its background"""

    bl_idname = "metrabs.setup_camera"
    bl_label = "Match Camera"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        from . import api

        settings = context.scene.metrabs
        try:
            clip = settings.clip if settings.footage_source == "CLIP" else None
            if clip is None and settings.footage_path:
                clip = api.load_footage(bpy.path.abspath(settings.footage_path))
            camera = api.setup_camera(
                bpy.path.abspath(settings.trajectory_path),
                context=context,
                clip=clip,
                sensor_width_mm=settings.sensor_width,
                match_scene=settings.match_scene,
            )
        except _errors() as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report({"INFO"}, f"{camera.name}: {camera.data.lens:.1f} mm lens")
        return {"FINISHED"}


class METRABS_OT_review_markers(bpy.types.Operator):
    """Mark gaps and low-confidence spans of the analysis on the timeline"""

    bl_idname = "metrabs.review_markers"
    bl_label = "Mark for Review"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        from . import api

        settings = context.scene.metrabs
        try:
            markers = api.add_review_markers(
                bpy.path.abspath(settings.trajectory_path),
                context=context,
                uncertainty_mm=settings.uncertainty_threshold,
            )
        except _errors() as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report({"INFO"}, f"{len(markers)} span(s) marked for review")
        return {"FINISHED"}


class METRABS_OT_raw_joints(bpy.types.Operator):
    """Add animated empties at the raw joints of the ticked people"""

    bl_idname = "metrabs.raw_joints"
    bl_label = "Raw Joints"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        from . import api

        settings = context.scene.metrabs
        track_ids = [person.track_id for person in settings.people if person.use_import]
        try:
            collection = api.add_raw_joints(
                bpy.path.abspath(settings.trajectory_path), context=context, track_ids=track_ids
            )
        except _errors() as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report({"INFO"}, f"{len(collection.objects)} empties in {collection.name}")
        return {"FINISHED"}


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


class METRABS_OT_analyze_folder(_ModalJob, bpy.types.Operator):
    """Analyse every video of a folder with the batch command (one result per clip; Cancel keeps
    the finished clips, and analysing again resumes)"""

    bl_idname = "metrabs.analyze_folder"
    bl_label = "Analyze Folder"
    job_kind = "batch"

    def start_job(self, context):
        from . import backend, batch_import

        request = folder_request(context)
        batch_import.check_request(request)  # no video or no writable output: before the backend
        process = batch_import.start_batch(
            request,
            python=backend_python(context),
            cache_dir=cache_dir(context),
            entry=batch_import.BATCH_ENTRY,
        )
        return backend.WorkerJob(process, batch_import.BatchState())

    def job_finished(self, context, job):
        from . import batch_import

        outcome = batch_import.finish_batch(job)
        settings = context.scene.metrabs
        settings.batch_result_dir = str(outcome.output)
        settings.batch_status = outcome.summary()
        for warning in outcome.warnings:
            self.report({"WARNING"}, warning)
        if outcome.cancelled:
            self.report(
                {"WARNING"},
                f"{outcome.summary()}, kept in {outcome.output}; "
                "press Analyze Folder again to resume",
            )
        elif outcome.failed:
            self.report({"WARNING"}, f"{outcome.summary()}; the manifest lists why")
        else:
            self.report({"INFO"}, f"{outcome.summary()} in {outcome.output}; press Import Folder")
        return {"FINISHED"}


class METRABS_OT_import_folder(bpy.types.Operator):
    """Import every finished clip of the batch results folder: one new take per clip and person
    (new rigs, or takes on the Target), with the Results panel's import settings"""

    bl_idname = "metrabs.import_folder"
    bl_label = "Import Folder"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        from . import api

        settings = context.scene.metrabs
        if not settings.batch_result_dir:
            self.report({"ERROR"}, "Press Analyze Folder first, or choose a batch Results folder")
            return {"CANCELLED"}
        try:
            imported = api.import_folder(
                bpy.path.abspath(settings.batch_result_dir),
                context=context,
                match_scene=settings.match_scene,
                **retarget_options(settings),
            )
        except _errors() as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        for clip, problem in imported.errors.items():
            self.report({"WARNING"}, f"{clip} not imported: {problem}")
        takes = sum(len(results) for results in imported.takes.values())
        self.report({"INFO"}, f"Imported {takes} take(s) from {len(imported.takes)} clip(s)")
        return {"FINISHED"}


# ------------------------------------------------------------------------------------------------
# Backend (preferences)


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
    from . import api, backend

    prefs = _prefs(context)
    base = bpy.path.abspath(prefs.base_python) if prefs and prefs.base_python else sys.executable
    return backend.setup_commands(
        base,
        api.backend_venv_dir(),
        torch_variant=prefs.torch_variant if prefs else "default",
        pip_args=split_options(prefs.pip_options, "Pip Options") if prefs else (),
    )


def setup_command_text(context) -> str:
    from . import backend

    return backend.command_text(setup_commands(context))


class METRABS_OT_check_backend(bpy.types.Operator):
    """Find the backend Python and report torch, CUDA, GPU and model state (takes a few seconds)"""

    bl_idname = "metrabs.check_backend"
    bl_label = "Check Backend"

    def execute(self, context):
        from . import backend, preferences

        try:
            python = backend_python(context)
            info = backend.probe_python(python)
        except _errors() as error:
            preferences.STATUS["backend"] = str(error)
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        preferences.STATUS["backend"] = info
        try:
            preferences.STATUS["models"] = backend.list_models(python, cache_dir(context))
        except _errors() as error:
            preferences.STATUS["models"] = None
            self.report({"WARNING"}, str(error))
        prefs = _prefs(context)
        model = next(
            (
                m
                for m in preferences.STATUS["models"] or ()
                if prefs and m["name"] == prefs.registry_name()
            ),
            None,
        )
        state = ""
        if model is not None:
            state = "; model installed" if model["installed"] else "; model not downloaded"
        self.report({"INFO"}, f"{python}: {info.summary()}{state}")
        return {"FINISHED"}


class METRABS_OT_setup_backend(_ModalJob, bpy.types.Operator):
    """Create a Python environment in the add-on's user folder and install torch and the other
    analysis packages into it (needs online access, or --no-index pip options)"""

    bl_idname = "metrabs.setup_backend"
    bl_label = "Set Up Backend"
    job_kind = "setup"

    def start_job(self, context):
        from . import backend

        commands = setup_commands(context)
        if not bpy.app.online_access and not local_packages_only(commands[-1]):
            raise MocapError(
                "Online access is off (Preferences > System > Network), so nothing is downloaded. "
                "Allow it, or run the commands shown in the add-on preferences in a terminal: "
                + backend.command_text(commands).replace("\n", " && ")
            )
        return backend.CommandSequence(commands, env=backend.worker_environment())

    def job_finished(self, context, job):
        from . import backend, preferences

        if job.returncode != 0:
            last = job.lines[-1] if job.lines else ""
            raise MocapError(f"Backend set-up failed at step {job.step + 1}: {last}")
        from . import api

        python = backend.venv_python(api.backend_venv_dir())
        try:
            preferences.STATUS["backend"] = backend.probe_python(python)
        except backend.BackendError as error:
            preferences.STATUS["backend"] = str(error)
        self.report({"INFO"}, f"Backend ready: {python}")
        return {"FINISHED"}


class METRABS_OT_copy_setup_command(bpy.types.Operator):
    """Copy the set-up commands to the clipboard, to run them in a terminal"""

    bl_idname = "metrabs.copy_setup_command"
    bl_label = "Copy Commands"

    def execute(self, context):
        try:
            context.window_manager.clipboard = setup_command_text(context)
        except MocapError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report({"INFO"}, "Set-up commands copied to the clipboard")
        return {"FINISHED"}


class METRABS_OT_download_model(_ModalJob, bpy.types.Operator):
    """Download, verify and install the chosen model into the model cache (needs online access)"""

    bl_idname = "metrabs.download_model"
    bl_label = "Download Model"
    job_kind = "download"

    def start_job(self, context):
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
                f"terminal: {backend.command_text([command])}"
            )
        python = backend_python(context)
        command = backend.weights_command(python, "download", name, cache_dir(context))
        process = backend.BackendProcess(
            command, env=backend.worker_environment(cache_dir(context))
        )
        return backend.WorkerJob(process, backend.DownloadState())

    def job_finished(self, context, job):
        from . import backend, preferences

        if job.outcome.output is None:
            raise MocapError(job.outcome.error_message)
        python = job.process.command[0]
        try:
            preferences.STATUS["models"] = backend.list_models(python, cache_dir(context))
        except backend.BackendError as error:
            self.report({"WARNING"}, str(error))
        self.report({"INFO"}, f"Model installed: {job.outcome.output}")
        return {"FINISHED"}


CLASSES = (
    METRABS_OT_import_trajectory,
    METRABS_OT_analyze_footage,
    METRABS_OT_analyze_folder,
    METRABS_OT_import_folder,
    METRABS_OT_cancel_job,
    METRABS_OT_load_results,
    METRABS_OT_import_results,
    METRABS_OT_setup_camera,
    METRABS_OT_review_markers,
    METRABS_OT_raw_joints,
    METRABS_OT_check_backend,
    METRABS_OT_setup_backend,
    METRABS_OT_copy_setup_command,
    METRABS_OT_download_model,
)
