"""The analyser seam: what analyses a clip in a batch worker (:class:`ClipAnalyzer`, built once
per worker process or Ray actor from an :class:`AnalyzerSpec`), and the default one over the
single-clip analysis, :class:`WorkerAnalyzer`."""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .. import InferenceError
from .errors import BatchError
from .files import file_sha256

if TYPE_CHECKING:
    from ..analysis import Finished, Started

logger = logging.getLogger(__name__)


DEFAULT_ANALYZER = "inference.batch:worker_analyzer"

ProgressCallback = Callable[[int, "int | None"], None]  # (frames_done, frames_total or None)


@dataclass(frozen=True)
class ClipOutcome:
    """What one analysis produced: frame and person counts of the written file."""

    frames: int  # frames in the written trajectory
    people: int  # people (tracks) in the written trajectory
    partial: bool = False  # True when stopped early (the file is a valid partial result)


class ClipAnalyzer(Protocol):
    """Analyses clips one after the other with a model loaded once, at construction.

    ``model_id`` names the model and its weights hash exactly as written into each output's
    ``model`` key; ``config_id`` names every other setting that changes the result (camera, frame
    range, test-time augmentation, ...), not those that only change the speed. Together with the
    input's hash they decide whether an earlier result can be reused or resumed.
    """

    model_id: str
    config_id: str

    def analyze(
        self,
        video: Path,
        output: Path,
        *,
        progress: ProgressCallback,
        stop: threading.Event,
        resume: bool,
    ) -> ClipOutcome:
        """Write the trajectory of ``video`` to ``output`` atomically. When ``stop`` is set, finish
        the current step, write a partial result and return it with ``partial=True``. With
        ``resume``, continue from the partial result already at ``output``. Raises
        :class:`InferenceError` (or a subclass) for a clip that cannot be analysed."""
        ...


@dataclass(frozen=True)
class AnalyzerSpec:
    """How a worker builds its :class:`ClipAnalyzer`: ``factory`` is ``"module:callable"``, called
    once per worker process with ``args`` (command-line style strings, e.g. the ``analyze``
    options given after ``--``)."""

    factory: str = DEFAULT_ANALYZER  # module:callable returning a ClipAnalyzer
    args: tuple[str, ...] = ()  # arguments handed to the factory


def load_analyzer(spec: AnalyzerSpec) -> ClipAnalyzer:
    """Import ``spec.factory`` and call it once: this is where the model is loaded."""
    module_name, _, attribute = spec.factory.partition(":")
    if not module_name or not attribute:
        raise BatchError(f"analyzer {spec.factory!r} must be given as module:callable")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise BatchError(f"cannot load analyzer {spec.factory!r}: {error}") from error
    return factory(list(spec.args))


class ClipError(InferenceError):
    """The analysis of one clip failed; the message is the worker's message for humans."""


_LOAD = object()  # "load it from the settings" (a detector may legitimately be None)


class WorkerAnalyzer:
    """:class:`ClipAnalyzer` over the single-clip analysis (``inference.analysis.analyze``) in this
    process, with its pose estimator and detector loaded once, here, for every clip.

    ``args`` are ``python -m inference analyze`` options (``--model``, ``--fov``, ``--tta`` ...);
    ``estimator``/``detector`` replace the models those options name (tests, benchmarks). The
    ``stop`` of :meth:`analyze` reaches the analysis in whatever thread it runs (a local worker
    process, a Ray actor): it finishes its batch and keeps a partial result.
    """

    def __init__(self, args: Sequence[str], estimator: Any = _LOAD, detector: Any = _LOAD) -> None:
        from .. import analysis

        self.settings = analysis.settings_from_options(args)
        loader = analysis.ModelLoader(
            analysis.load_pose_estimator if estimator is _LOAD else lambda _s, _d: estimator,
            analysis.load_detector if detector is _LOAD else lambda _s, _d, _e: detector,
        )
        device = analysis.resolve_device(self.settings.device)
        self.models = loader(self.settings, device, _ClipEvents())
        # as the analysis names the model in its output's `model` key
        self.model_id = analysis.model_id(self.models.estimator, self.settings)
        result_settings = {
            key: value
            for key, value in dataclasses.asdict(self.settings).items()
            if key not in _SPEED_ONLY_SETTINGS
        }
        intrinsics = self.settings.intrinsics
        if intrinsics and os.path.isfile(intrinsics):  # its content matters too
            result_settings["intrinsics_sha256"] = file_sha256(intrinsics)
        self.config_id = json.dumps(result_settings, sort_keys=True)

    def analyze(
        self,
        video: Path,
        output: Path,
        *,
        progress: ProgressCallback,
        stop: threading.Event,
        resume: bool,
    ) -> ClipOutcome:
        from .. import analysis

        # The batch's records decide which results in its folder may be replaced (another input's
        # result keeps its name, see clip_names); a partial result still never replaces a
        # complete one (the analysis writes it beside it).
        settings = dataclasses.replace(
            self.settings, video=str(video), output=str(output), resume=resume, overwrite=True
        )
        try:
            result = analysis.analyze(
                settings, self.models, _ClipEvents(video.name, progress), stop
            )
        except Exception as error:
            raise ClipError(analysis.describe_failure(error)[1]) from error
        trajectory = result.trajectory
        return ClipOutcome(trajectory.num_frames, trajectory.num_people, result.partial)


# worker settings that do not change the result (or change per clip)
_SPEED_ONLY_SETTINGS = frozenset(
    {"video", "output", "resume", "overwrite", "device", "batch_size", "checkpoint_every_s"}
)


class _ClipEvents:
    """The analysis events of one clip (``inference.analysis.AnalysisEvents``): progress goes to
    the batch's callback, warnings to the log (the driver reports a clip by its record)."""

    def __init__(self, clip: str = "", progress: ProgressCallback | None = None) -> None:
        self._clip, self._progress = clip, progress

    def start(self, started: Started) -> None:
        pass

    def progress(
        self,
        frames_done: int,
        frames_total: int | None,
        fps: float,
        people: int,
        force: bool = False,
    ) -> None:
        if self._progress is not None:
            self._progress(frames_done, frames_total)

    def warning(self, message: str) -> None:
        if self._clip:
            logger.warning("%s: %s", self._clip, message)
        else:
            logger.warning("%s", message)

    def done(self, finished: Finished) -> None:
        pass


def worker_analyzer(args: Sequence[str]) -> ClipAnalyzer:
    """Default factory: the single-clip worker with the models its options name (see
    :class:`WorkerAnalyzer`)."""
    try:
        return WorkerAnalyzer(args)
    except ImportError as error:
        raise BatchError(
            f"the single-clip worker cannot be imported ({error}); install the complete "
            f"inference package"
        ) from error


class Throttled:
    """A :data:`ProgressCallback` passing at most one update per ``interval_s`` to ``send``."""

    def __init__(self, send: ProgressCallback, interval_s: float = 0.2) -> None:
        self._send = send
        self._interval_s = interval_s
        self._last = -float("inf")

    def __call__(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - self._last >= self._interval_s:
            self._last = now
            self._send(done, total)
