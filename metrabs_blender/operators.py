"""Operators: read properties, call one function of ``api``, report.

The settings become that function's arguments in ``requests``; :func:`report_errors` turns a
typed error into the ERROR report and ``{'CANCELLED'}`` in every operator.

Long jobs (analysis, folder analysis, backend set-up, model download) run as subprocesses. Invoked
from the UI they are modal: a timer polls the job (whose reader thread fills a queue and never
touches ``bpy``) and redraws the panel's progress bar; the Cancel button stops the job, keeping
what it finished (Esc is left to Blender: it stops playback, not an hour-long analysis).
Run headless or from a script (``bpy.ops.metrabs.analyze_footage()``, i.e. ``execute``), the same
job runs to completion synchronously, since modal operators never run in ``--background``.
"""

import atexit
import functools
from collections.abc import Callable
from pathlib import Path

import bpy

from . import jobs, requests
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


def report_errors(method: Callable) -> Callable:
    """An operator's ``execute``, ``invoke`` or ``modal`` that reports a typed error (the user can
    fix it: ``MocapError``, ``RetargetError``) as an ERROR and returns ``{'CANCELLED'}``; any other
    exception is a bug and propagates with its traceback."""

    def run(self, *args):
        try:
            return method(self, *args)
        except _errors() as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}

    # Blender checks the argument count when registering: (self, context) or (self, context, event)
    if method.__code__.co_argcount == 3:

        def reporting(self, context, event):
            return run(self, context, event)

    else:

        def reporting(self, context):
            return run(self, context)

    return functools.wraps(method)(reporting)


def _not_running(kind: str) -> None:
    if running_job(kind) is not None:
        raise MocapError("Already running; wait for it or cancel it first")


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

    @report_errors
    def execute(self, context):
        _not_running(self.job_kind)
        job = self.start_job(context)
        try:
            while not job.poll():
                _sleep()
        finally:  # interrupted (Ctrl-C in a script): the process must not outlive the call
            if not job.poll():
                job.stop()
        return self.job_finished(context, job)

    @report_errors
    def invoke(self, context, event):
        _not_running(self.job_kind)
        job = self.start_job(context)
        _JOBS[self.job_kind] = job
        window_manager = context.window_manager
        self._timer = window_manager.event_timer_add(0.2, window=context.window)
        window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    @report_errors
    def modal(self, context, event):
        job = _JOBS.get(self.job_kind)
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        if job is None:  # stopped from outside (add-on disabled)
            self._stop(context)
            return {"CANCELLED"}
        try:
            finished = job.poll()
        except _errors():
            self._stop(context)  # a failed job is followed no further; the error is reported
            raise
        _redraw(context)
        if not finished:
            return {"PASS_THROUGH"}
        self._stop(context)
        return self.job_finished(context, job)

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

    @report_errors
    def execute(self, context):
        from . import api

        path = bpy.path.abspath(self.filepath)
        settings = context.scene.metrabs
        results = api.import_trajectory(
            path,
            match_scene=settings.match_scene,
            foot_contacts=settings.foot_contacts.lower(),
            key_reduction=requests.key_reduction(settings),
        )
        api.load_results(path, context.scene)  # the panel lists the people of the file imported
        names = ", ".join(result.armature.name for result in results)
        self.report({"INFO"}, f"Imported {len(results)} person(s): {names}")
        return {"FINISHED"}


class METRABS_OT_export_take(bpy.types.Operator):
    """Export the active armature's take for game engines and other tools (FBX, BVH or glTF
    binary): its deform bones as they move, over its action's frames"""

    bl_idname = "metrabs.export_take"
    bl_label = "Export Take"

    filepath: bpy.props.StringProperty(subtype="FILE_PATH", options={"SKIP_SAVE"})
    filter_glob: bpy.props.StringProperty(default="*.fbx;*.bvh;*.glb", options={"HIDDEN"})

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        return obj is not None and obj.type == "ARMATURE"

    def invoke(self, context, event):
        if not self.filepath:
            self.filepath = bpy.path.clean_name(context.active_object.name) + ".fbx"
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    @report_errors
    def execute(self, context):
        from . import api

        result = api.export_take(context.active_object, bpy.path.abspath(self.filepath))
        first, last = result.frames
        self.report({"INFO"}, f"Exported {result.bones} bones, frames {first}-{last}, to "
                              f"{result.path.name}")  # fmt: skip
        return {"FINISHED"}


# ------------------------------------------------------------------------------------------------
# Analysis


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

        process = api.start_analysis(
            requests.analysis_request(context, resume=self.resume),
            python=requests.backend_python(context),
            cache_dir=requests.cache_dir(context),
            worker=backend.WORKER_ENTRY,
        )
        return jobs.WorkerJob(process)

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

    @report_errors
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

    @report_errors
    def execute(self, context):
        from . import api

        settings = context.scene.metrabs
        people = api.load_results(bpy.path.abspath(settings.trajectory_path), context.scene)
        self.report({"INFO"}, f"{len(people)} person(s) in {Path(settings.trajectory_path).name}")
        return {"FINISHED"}


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

    @report_errors
    def execute(self, context):
        from . import api

        options = requests.import_options(context, retarget=self.retarget)
        imported = api.import_analysis(context=context, **options)
        context.scene.metrabs.cleaned_path = str(imported.trajectory_path)
        names = ", ".join(result.armature.name for result in imported.people)
        extra = f"; {len(imported.markers)} review marker(s)" if imported.markers else ""
        self.report({"INFO"}, f"Imported {names}{extra}")
        return {"FINISHED"}


class METRABS_OT_setup_camera(bpy.types.Operator):
    """Add a camera with the analysis' lens and pose and the footage as its background"""

    bl_idname = "metrabs.setup_camera"
    bl_label = "Match Camera"
    bl_options = {"REGISTER", "UNDO"}

    @report_errors
    def execute(self, context):
        from . import api

        settings = context.scene.metrabs
        camera = api.setup_camera(
            bpy.path.abspath(settings.trajectory_path),
            context=context,
            clip=requests.footage_clip(settings),
            sensor_width_mm=settings.sensor_width,
            match_scene=settings.match_scene,
        )
        self.report({"INFO"}, f"{camera.name}: {camera.data.lens:.1f} mm lens")
        return {"FINISHED"}


class METRABS_OT_review_markers(bpy.types.Operator):
    """Mark gaps and low-confidence spans of the analysis on the timeline"""

    bl_idname = "metrabs.review_markers"
    bl_label = "Mark for Review"
    bl_options = {"REGISTER", "UNDO"}

    @report_errors
    def execute(self, context):
        from . import api

        settings = context.scene.metrabs
        markers = api.add_review_markers(
            bpy.path.abspath(settings.trajectory_path),
            context=context,
            uncertainty_mm=settings.uncertainty_threshold,
        )
        self.report({"INFO"}, f"{len(markers)} span(s) marked for review")
        return {"FINISHED"}


class METRABS_OT_raw_joints(bpy.types.Operator):
    """Add animated empties at the raw joints of the ticked people"""

    bl_idname = "metrabs.raw_joints"
    bl_label = "Raw Joints"
    bl_options = {"REGISTER", "UNDO"}

    @report_errors
    def execute(self, context):
        from . import api

        settings = context.scene.metrabs
        collection = api.add_raw_joints(
            bpy.path.abspath(settings.trajectory_path),
            context=context,
            track_ids=[person.track_id for person in settings.people if person.use_import],
        )
        self.report({"INFO"}, f"{len(collection.objects)} empties in {collection.name}")
        return {"FINISHED"}


# ------------------------------------------------------------------------------------------------
# A folder of clips: the batch command


class METRABS_OT_analyze_folder(_ModalJob, bpy.types.Operator):
    """Analyse every video of a folder with the batch command (one result per clip; Cancel keeps
    the finished clips, and analysing again resumes)"""

    bl_idname = "metrabs.analyze_folder"
    bl_label = "Analyze Folder"
    job_kind = "batch"

    def start_job(self, context):
        from . import batch_import

        request = requests.folder_request(context)
        batch_import.check_request(request)  # no video or no writable output: before the backend
        process = batch_import.start_batch(
            request,
            python=requests.backend_python(context),
            cache_dir=requests.cache_dir(context),
            entry=batch_import.BATCH_ENTRY,
        )
        return jobs.WorkerJob(process, batch_import.BatchState())

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

    @report_errors
    def execute(self, context):
        from . import api

        settings = context.scene.metrabs
        imported = api.import_folder(
            requests.results_folder(settings),
            context=context,
            match_scene=settings.match_scene,
            **requests.retarget_options(settings),
        )
        for clip, problem in imported.errors.items():
            self.report({"WARNING"}, f"{clip} not imported: {problem}")
        takes = sum(len(results) for results in imported.takes.values())
        self.report({"INFO"}, f"Imported {takes} take(s) from {len(imported.takes)} clip(s)")
        return {"FINISHED"}


# ------------------------------------------------------------------------------------------------
# Backend (preferences)


class METRABS_OT_check_backend(bpy.types.Operator):
    """Find the backend Python and report torch, CUDA, GPU and model state (takes a few seconds)"""

    bl_idname = "metrabs.check_backend"
    bl_label = "Check Backend"

    @report_errors
    def execute(self, context):
        from . import backend, preferences

        try:
            python = requests.backend_python(context)
            info = backend.probe_python(python)
        except _errors() as error:
            preferences.STATUS["backend"] = str(error)  # the preferences show it, then the report
            raise
        preferences.STATUS["backend"] = info
        try:
            preferences.STATUS["models"] = backend.list_models(python, requests.cache_dir(context))
        except _errors() as error:  # the backend works: the model state is only not known
            preferences.STATUS["models"] = None
            self.report({"WARNING"}, str(error))
        prefs = preferences.get(context)
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

        commands = requests.setup_commands(context)
        if not bpy.app.online_access and not requests.local_packages_only(commands[-1]):
            raise MocapError(
                "Online access is off (Preferences > System > Network), so nothing is downloaded. "
                "Allow it, or run the commands shown in the add-on preferences in a terminal: "
                + jobs.command_text(commands).replace("\n", " && ")
            )
        return jobs.CommandSequence(commands, env=backend.worker_environment())

    def job_finished(self, context, job):
        from . import backend, paths, preferences

        if job.returncode != 0:
            last = job.lines[-1] if job.lines else ""
            raise MocapError(f"Backend set-up failed at step {job.step + 1}: {last}")
        python = backend.venv_python(paths.backend_venv_dir())
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

    @report_errors
    def execute(self, context):
        context.window_manager.clipboard = requests.setup_command_text(context)
        self.report({"INFO"}, "Set-up commands copied to the clipboard")
        return {"FINISHED"}


class METRABS_OT_download_model(_ModalJob, bpy.types.Operator):
    """Download, verify and install the chosen model into the model cache (needs online access)"""

    bl_idname = "metrabs.download_model"
    bl_label = "Download Model"
    job_kind = "download"

    def start_job(self, context):
        from . import backend

        command = requests.download_command(context)
        process = jobs.BackendProcess(
            command, env=backend.worker_environment(requests.cache_dir(context))
        )
        return jobs.WorkerJob(process, jobs.DownloadState())

    def job_finished(self, context, job):
        from . import backend, preferences

        if job.outcome.output is None:
            raise MocapError(job.outcome.error_message)
        python = job.process.command[0]
        try:
            preferences.STATUS["models"] = backend.list_models(python, requests.cache_dir(context))
        except backend.BackendError as error:
            self.report({"WARNING"}, str(error))
        self.report({"INFO"}, f"Model installed: {job.outcome.output}")
        return {"FINISHED"}


CLASSES = (
    METRABS_OT_import_trajectory,
    METRABS_OT_export_take,
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
