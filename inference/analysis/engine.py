"""``analyze()``: one clip from the video to the written trajectory, the library entry that the
command line (``inference.analysis.cli``), the batch and its Ray actors call."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import outputs
from .errors import InputError
from .events import AnalysisEvents, Finished, Started
from .models import Models, ModelSource, joint_info, model_id, resolve_device, tuned_batch_size
from .outputs import OutputError, OutputPlan
from .pipeline import Pipeline, RunState, process_stream
from .results import initial_state, load_resume, result_trajectory, source_fingerprint, write_result
from .settings import Settings

if TYPE_CHECKING:
    from retarget.contract import Trajectory

logger = logging.getLogger(__name__)


Stop = Callable[[], bool] | threading.Event
"""Asks an analysis to stop: read after every batch; once true, the run writes its partial result
and returns it. A caller that must stop at once raises KeyboardInterrupt in the analysing thread
(the second Ctrl-C): the completed batches are still kept. A stop condition with a ``writing()``
context manager (the command line's :class:`Interrupt`) is told while the result is written, so
that it holds such a stop back until the file is complete."""


@dataclass(frozen=True)
class AnalysisResult:
    """What :func:`analyze` wrote."""

    trajectory: Trajectory
    path: Path  # OUTPUT, or its partial name while OUTPUT keeps a complete result
    partial: bool  # stopped early: a valid partial result that --resume continues


def analyze(
    settings: Settings,
    models: ModelSource,
    events: AnalysisEvents,
    stop: Stop,
) -> AnalysisResult:
    """Analyse ``settings.video`` into ``settings.output`` (see ``inference.analysis``): the
    library entry that the command line, the batch and its Ray actors call.

    ``models`` are loaded models, or a loader (:class:`ModelLoader`) called with the resolved
    device once the input and the output are known to be usable. Raises :class:`InputError`,
    :class:`OutputError`, :class:`ModelUnavailableError` and the input's own errors
    (:func:`describe_failure` turns them into exit codes and messages); rows analysed before an
    error are saved as a partial result first.
    """
    stopped = stop.is_set if isinstance(stop, threading.Event) else stop
    guard = getattr(stop, "writing", contextlib.nullcontext)
    opened = _open_input(settings)
    with outputs.exclusive(settings.output):
        plan = outputs.plan_output(settings.output, settings.overwrite, settings.resume)
        return _analyse(settings, plan, opened, models, events, stopped, guard)


def _check_paths(settings: Settings) -> None:
    from retarget.contract import output_problem

    output = Path(settings.output)
    if output.suffix.lower() != ".npz":
        raise InputError(f"the output must be a .npz file, got {settings.output!r}")
    if output.exists() and output.is_dir():
        raise OutputError(f"the output {settings.output} is a folder; give a file name")
    problem = output_problem(output)  # found out now, not after the whole analysis
    if problem is not None:
        raise OutputError(f"cannot write the output: {problem}")
    video = Path(settings.video)
    if video.exists() and output.exists() and os.path.samefile(video, output):
        raise InputError("the output would overwrite the input video; choose another -o path")


def _open_input(settings: Settings) -> tuple[Any, np.ndarray, str]:
    """Check the paths, open the video for its facts, resolve the camera, check ``--box``:
    ``(video info, intrinsics (3, 3), camera description)``."""
    from ..camera import resolve_intrinsics
    from ..video import FrameRange, open_video

    _check_paths(settings)
    source = open_video(settings.video, FrameRange(settings.start, settings.stop, settings.stride),
                        settings.sequence_fps)  # fmt: skip
    info = source.info
    source.close()
    intrinsics, camera_text = resolve_intrinsics(
        (info.width, info.height), settings.fov, settings.focal_mm, settings.sensor_width,
        settings.intrinsics,
    )  # fmt: skip
    logger.info("camera: %s", camera_text)
    if settings.box is not None:
        x, y, w, h = settings.box
        if x >= info.width or y >= info.height or x + w <= 0 or y + h <= 0:
            raise InputError(
                f"--box {x:g},{y:g},{w:g},{h:g} lies outside the {info.width}x{info.height} frame"
            )
    return info, intrinsics, camera_text


def _analyse(
    settings: Settings,
    plan: OutputPlan,
    opened: tuple[Any, np.ndarray, str],
    models: ModelSource,
    events: AnalysisEvents,
    stopped: Callable[[], bool],
    guard: Callable[[], contextlib.AbstractContextManager],
) -> AnalysisResult:
    """The analysis of an opened input into the files of ``plan``."""
    from ..track import TrackerParams
    from ..video import FrameRange, open_video

    started = time.monotonic()
    info, intrinsics, camera_text = opened
    source = source_fingerprint(settings.video)
    resumed = load_resume(settings, plan.resume_from, source, intrinsics)
    if resumed is None and settings.resume:
        events.warning(f"--resume: {settings.output} does not exist yet; starting afresh")
    if resumed is not None and resumed[1]:
        previous = resumed[0]
        events.done(Finished(str(plan.final), previous.num_frames, previous.num_people,
                             partial=False, crops=None, elapsed_s=0.0,
                             message="already complete; nothing to resume"))  # fmt: skip
        return AnalysisResult(previous, plan.final, partial=False)

    if not isinstance(models, Models):
        models = models(settings, resolve_device(settings.device), events)
    estimator, detector = models.estimator, models.detector
    joints = joint_info(estimator)
    name = model_id(estimator, settings)
    detector_name = "none" if detector is None else str(getattr(detector, "name", "detector"))
    params = TrackerParams(new_tracks=settings.box is None)
    if detector is None or settings.box is not None:
        # the user's box is followed by its poses alone: nothing is there to confirm the track
        params = replace(params, max_unconfirmed_s=None)
    state, frame_range = initial_state(settings, None if resumed is None else resumed[0], params)
    total = FrameRange(settings.start, settings.stop, settings.stride).count(info.frame_count)
    batch_size = tuned_batch_size(estimator, settings, (info.width, info.height))
    recorded = replace(settings, batch_size=batch_size)  # worker_settings hold the size used
    pipeline = Pipeline(settings, estimator, detector, intrinsics, (info.width, info.height),
                        len(joints[0]), state, batch_size)  # fmt: skip

    def result(partial: bool) -> Trajectory:
        return result_trajectory(state, recorded, info, intrinsics, joints, source, name,
                                 detector_name, partial)  # fmt: skip

    def save(trajectory: Trajectory, partial: bool) -> Path:
        """Write a partial or the complete result where ``plan`` puts it; the path written."""
        path = plan.partial if partial else plan.final
        with guard():
            write_result(str(path), trajectory)
            if not partial:
                outputs.finished(plan)
        return path

    def done(trajectory: Trajectory, partial: bool) -> AnalysisResult:
        path = save(trajectory, partial)
        if partial and path != plan.final:
            events.warning(f"{plan.final} keeps its complete result; this run's partial result "
                           f"is {path.name} (--resume continues it)")  # fmt: skip
        events.done(Finished(str(path), trajectory.num_frames, trajectory.num_people, partial,
                             crops=pipeline.crops,
                             elapsed_s=round(time.monotonic() - started, 3)))  # fmt: skip
        return AnalysisResult(trajectory, path, partial)

    events.start(Started(
        str(settings.video), str(settings.output), frames_total=total, fps=info.fps,
        width=info.width, height=info.height, rotation_deg=info.rotation_deg, model=name,
        detector=detector_name, batch_size=batch_size, camera=camera_text,
        resumed_frames=state.num_rows,
    ))  # fmt: skip
    done_at_start = state.num_rows
    try:
        if frame_range is not None and (total is None or state.num_rows < total):
            stream = open_video(settings.video, frame_range, settings.sequence_fps)
            process_stream(pipeline, stream, stopped, events, total, done_at_start,
                           checkpoint=lambda: save(result(True), True))  # fmt: skip
    except KeyboardInterrupt:  # a hard stop (a second signal): keep the completed batches
        return done(result(True), True)
    except Exception:
        if state.num_rows > done_at_start:
            path = save(result(True), True)
            events.warning(
                f"partial result with {state.num_rows} frames saved to {path}; "
                f"continue it with --resume once the problem is fixed"
            )
        raise

    partial = stopped()
    trajectory = result(partial)
    if not partial:
        _warn_if_truncated(events, info, settings, state)
        if trajectory.num_people == 0:
            events.warning(_no_person_message(state))
    return done(trajectory, partial)


def _no_person_message(state: RunState) -> str:
    first, last = (
        (state.source_frames[0], state.source_frames[-1]) if state.source_frames else (0, 0)
    )
    return (
        f"No person found in frames {first}-{last}; lower --detection-threshold, try another "
        f"--detector, or give the person's box with --box x,y,w,h"
    )


def _warn_if_truncated(
    events: AnalysisEvents, info: Any, settings: Settings, state: RunState
) -> None:
    """A warning when decoding ended well before the frame count the container reported."""
    if info.is_sequence or info.frame_count is None:
        return
    end = info.frame_count if settings.stop is None else min(settings.stop, info.frame_count)
    last = state.source_frames[-1] if state.source_frames else settings.start - 1
    missing = end - 1 - last
    if missing >= settings.stride + max(2, int(0.01 * info.frame_count)):
        events.warning(
            f"decoding stopped at frame {last} of {info.frame_count}: the file is truncated or "
            f"damaged; the result covers frames {settings.start}-{last}"
        )
