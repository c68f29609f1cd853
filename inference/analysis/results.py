"""The result of a run: the trajectory of the rows analysed so far, its atomic write, and the
partial result that ``--resume`` continues (checked to be of the same video and settings)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .outputs import OutputError
from .pipeline import RunState
from .settings import Settings

if TYPE_CHECKING:
    from retarget.contract import Trajectory

logger = logging.getLogger(__name__)


def source_fingerprint(path: str) -> str:
    """``path sha256:<hex>``: SHA-256 of the size and the first and last MiB of a file (whole
    videos are too large to hash on every run), or of the names of a sequence's images (not their
    sizes: an image fixed or replaced after a run stopped on it keeps the sequence resumable)."""
    digest = hashlib.sha256()
    target = Path(path)
    if target.is_file():
        size = target.stat().st_size
        digest.update(str(size).encode())
        with open(target, "rb") as handle:
            digest.update(handle.read(1 << 20))
            if size > 2 << 20:
                handle.seek(-(1 << 20), os.SEEK_END)
                digest.update(handle.read(1 << 20))
    else:
        from ..video import _sequence_files

        for name in _sequence_files(path) or []:
            digest.update(f"{os.path.basename(name)};".encode())
    return f"{os.path.abspath(path)} sha256:{digest.hexdigest()[:32]}"


def result_trajectory(
    state: RunState,
    settings: Settings,
    info: Any,
    intrinsics: np.ndarray,
    joints: tuple[tuple[str, ...], np.ndarray, str, tuple[str, ...] | None],
    source: str,
    model_id: str,
    detector_name: str,
    partial: bool,
) -> Trajectory:
    """The contract object of the rows so far (all tracks if ``partial``, else the selected)."""
    from retarget.contract import Trajectory

    from ..track import select_tracks, stack_tracks

    names, edges, skeleton, bundle_names = joints
    tracks = state.tracker.tracks
    if not partial:
        # The person the user boxed is kept however short their track.
        min_frames = 1 if settings.box else min(settings.min_track_frames, max(1, state.num_rows))
        tracks = select_tracks(tracks, min_frames, settings.max_people)
    arrays = stack_tracks(tracks, state.num_rows, len(names))
    worker_settings = {
        key: value for key, value in asdict(settings).items() if key not in ("resume", "overwrite")
    }
    return Trajectory(
        frame_times=np.asarray(state.frame_times, np.float64),
        fps=float(info.fps) / settings.stride,
        image_size=np.array([info.width, info.height], np.int32),
        intrinsics=intrinsics,
        joint_names=names,
        joint_edges=edges,
        skeleton=skeleton,
        source=source,
        model=model_id,
        extras={
            "partial": np.array(partial),
            "source_frames": np.asarray(state.source_frames, np.int32),
            "detector": np.array(detector_name),
            "worker_settings": np.array(json.dumps(worker_settings)),
            **({} if bundle_names is None else {"source_joint_names": np.array(bundle_names)}),
        },
        **arrays,
    )


def write_result(path: str, trajectory: Trajectory) -> None:
    from retarget.contract import ContractError, write_trajectory

    try:
        write_trajectory(path, trajectory)
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror or error}") from None
    except ContractError as error:  # a bug here, never the user's fault
        raise RuntimeError(f"the result breaks the trajectory contract: {error}") from error


# Settings that must agree between a partial result and the run resuming it (the camera is
# compared as the matrix it gives: --fov 55 and the default, or one file by two paths, agree).
_RESUME_KEYS = ("model", "skeleton", "start", "stop", "stride", "box", "tta", "sequence_fps")


def load_resume(
    settings: Settings, path: Path | None, source: str, intrinsics: np.ndarray
) -> tuple[Any, bool] | None:
    """(trajectory, complete) of the result at ``path`` to resume, or None to start afresh."""
    from retarget.contract import ContractError, read_trajectory

    if path is None:
        return None
    try:
        previous = read_trajectory(path)
    except ContractError as error:
        raise OutputError(f"--resume: {error}; delete it to start afresh") from None
    stored = json.loads(str(previous.extras.get("worker_settings", "{}")))
    current = asdict(settings)
    different = [
        key for key in _RESUME_KEYS if json.dumps(stored.get(key)) != json.dumps(current[key])
    ]
    if previous.source != source:
        different.insert(0, "video")
    if not np.allclose(previous.intrinsics, intrinsics):
        different.append("camera")
    if different:
        raise OutputError(
            f"--resume: {path.name} was made with other settings ({', '.join(different)}); "
            f"run without --resume to start afresh, or with the same settings"
        )
    return previous, not bool(previous.extras.get("partial", False))


def initial_state(
    settings: Settings, previous: Any | None, params: Any
) -> tuple[RunState, Any | None]:
    """The rows and tracks to start from (empty, or those of a partial result) and the frame
    range still to analyse (None: the partial result reaches the end of the range already)."""
    from ..track import Tracker, tracker_from_arrays
    from ..video import FrameRange

    if previous is None:
        return RunState([], [], Tracker(params)), FrameRange(settings.start, settings.stop,
                                                              settings.stride)  # fmt: skip
    keys = ("poses3d", "poses2d", "uncertainty", "boxes", "track_ids")
    tracker = tracker_from_arrays(
        {k: getattr(previous, k) for k in keys}, previous.frame_times, params
    )
    state = RunState(list(previous.frame_times),
                     [int(i) for i in previous.extras["source_frames"]], tracker)  # fmt: skip
    next_frame = (
        state.source_frames[-1] + settings.stride if state.source_frames else settings.start
    )
    if settings.stop is not None and next_frame >= settings.stop:
        return state, None  # interrupted in its last batch
    logger.info("resuming at source frame %d after %d rows", next_frame, state.num_rows)
    return state, FrameRange(next_frame, settings.stop, settings.stride)
