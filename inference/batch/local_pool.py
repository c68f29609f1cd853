"""Local mode: one worker process per GPU or per group of CPU cores, each loading the analyser once
and analysing one clip at a time; a worker that dies is replaced and its clip retried or
failed."""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .analyzer import AnalyzerSpec, Throttled, load_analyzer
from .clip import ClipRecord, process_clip
from .discovery import ClipJob
from .driver import BatchDriver
from .errors import BatchError, error_message
from .logs import log_to_stderr

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSlot:
    """Where one worker process runs: a GPU (``CUDA_VISIBLE_DEVICES``) or CPU threads."""

    index: int
    gpu: str | None  # CUDA device id given to the worker, None for CPU
    threads: int  # intra-op threads (torch, OpenCV) of the worker

    @property
    def name(self) -> str:
        return f"local-{self.index}" + (f"-gpu{self.gpu}" if self.gpu is not None else "")


def visible_gpus() -> list[str]:
    """CUDA device ids this process may use: from ``CUDA_VISIBLE_DEVICES`` when set, else one per
    GPU of the NVIDIA driver (``/proc/driver/nvidia/gpus`` on Linux, where no driver means no GPU;
    elsewhere counted by torch, slow to import)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [item.strip() for item in listed.split(",") if item.strip() and item.strip() != "-1"]
    if sys.platform.startswith("linux"):
        driver = Path("/proc/driver/nvidia/gpus")
        count = len(list(driver.iterdir())) if driver.is_dir() else 0
        return [str(index) for index in range(count)]
    try:
        import torch
    except ImportError:
        return []
    return [str(index) for index in range(torch.cuda.device_count())]


def cpu_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def plan_slots(
    workers: int | None, gpus: Sequence[str] | None = None, cores: int | None = None
) -> list[WorkerSlot]:
    """Worker slots: one per GPU by default (more workers share GPUs round-robin); without GPUs,
    one per CPU core up to 8 by default, the cores split evenly between the workers."""
    gpus = visible_gpus() if gpus is None else list(gpus)
    cores = cores or cpu_cores()
    if gpus:
        count = workers or len(gpus)
        threads = max(1, cores // count)
        return [WorkerSlot(i, gpus[i % len(gpus)], threads) for i in range(count)]
    count = workers or max(1, min(cores, 8))
    return [WorkerSlot(i, None, max(1, cores // count)) for i in range(count)]


def _worker_environment(slot: WorkerSlot) -> None:
    """Set before the analyser (and torch) is imported in the worker process."""
    if slot.gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = slot.gpu
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[variable] = str(slot.threads)


def _watch_stop(stop: threading.Event, shared_stop: Any, parent: Any) -> None:
    """Set the worker's ``stop`` when the driver asks or dies (no orphan keeps running)."""
    while not stop.is_set():
        if shared_stop.is_set() or (parent is not None and not parent.is_alive()):
            stop.set()
        time.sleep(0.1)


def _local_worker(
    slot: WorkerSlot, spec: AnalyzerSpec, inbox: Any, outbox: Any, shared_stop: Any, level: int
) -> None:
    """Entry point of a local worker process: load the model once, then analyse jobs from
    ``inbox`` until ``None``; messages to the driver go to ``outbox``."""
    stop = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the driver, which stops us
    signal.signal(
        signal.SIGTERM, lambda _signum, _frame: stop.set()
    )  # the clip in flight stops too
    log_to_stderr(level, f"%(levelname)s {slot.name} %(name)s: %(message)s")
    _worker_environment(slot)
    try:
        analyzer = load_analyzer(spec)
    except Exception as error:  # reported to the driver, which decides whether the batch can run
        logger.exception("cannot load the analyser")
        outbox.put(("fatal", slot.index, error_message(error)))
        return
    except SystemExit as error:  # argparse rejected the analysis options (message on stderr)
        outbox.put(("fatal", slot.index, f"the analysis options were rejected (exit {error.code})"))
        return
    outbox.put(("ready", slot.index, analyzer.model_id))
    parent = multiprocessing.parent_process()
    threading.Thread(target=_watch_stop, args=(stop, shared_stop, parent), daemon=True).start()
    while not stop.is_set():
        try:
            job = inbox.get(timeout=0.2)
        except queue.Empty:
            continue
        if job is None:
            break
        outbox.put(("started", slot.index, job.name))
        progress = Throttled(
            lambda done, total, name=job.name: outbox.put(
                ("progress", slot.index, name, done, total)
            )
        )
        record = process_clip(analyzer, job, progress, stop, worker=slot.name)
        outbox.put(("result", slot.index, record))
    stop.set()


def _drain(outbox: Any) -> list[tuple]:
    """Every message waiting in ``outbox``, without blocking."""
    messages = []
    try:
        while True:
            messages.append(outbox.get_nowait())
    except queue.Empty:
        return messages


class LocalPool:
    """Worker processes (spawned, so CUDA and torch start fresh in each), one job at a time each.

    :class:`_LocalRun` replaces a worker that dies and retries or fails its clip.
    """

    def __init__(self, slots: Sequence[WorkerSlot], spec: AnalyzerSpec) -> None:
        self.slots = list(slots)
        self.spec = spec
        self._context = multiprocessing.get_context("spawn")
        self._stop = self._context.Event()
        self._processes: dict[int, Any] = {}
        self._inboxes: dict[int, Any] = {}
        # One outbox per worker: a multiprocessing.Queue's write lock is shared by its writers, and
        # a worker that dies while its feeder thread holds it would block every other worker.
        self._outboxes: dict[int, Any] = {}

    def start(self, slot: WorkerSlot) -> None:
        inbox, outbox = self._context.Queue(), self._context.Queue()
        process = self._context.Process(
            target=_local_worker,
            args=(slot, self.spec, inbox, outbox, self._stop, logger.getEffectiveLevel()),
            name=f"metrabs-batch-{slot.name}",
            daemon=True,
        )
        process.start()
        self._processes[slot.index], self._inboxes[slot.index] = process, inbox
        self._outboxes[slot.index] = outbox

    def assign(self, index: int, job: ClipJob) -> None:
        self._inboxes[index].put(job)

    def messages(self, timeout: float) -> list[tuple]:
        """Messages from the workers (waits up to ``timeout`` for the first), then a ``died``
        message for every worker process that exited."""
        deadline = time.monotonic() + timeout
        while True:
            found = [message for outbox in self._outboxes.values() for message in _drain(outbox)]
            if found or time.monotonic() >= deadline:
                break
            time.sleep(0.01)
        for index, process in list(self._processes.items()):
            if not process.is_alive():
                process.join()
                found.extend(_drain(self._outboxes.pop(index)))  # what it sent before dying
                del self._processes[index]
                found.append(("died", index, process.exitcode))
        return found

    def request_stop(self) -> None:
        self._stop.set()

    def close(self, timeout: float = 30.0) -> None:
        """Ask every worker to finish, wait, and terminate stragglers."""
        for inbox in self._inboxes.values():
            inbox.put(None)
        deadline = time.monotonic() + timeout
        for process in self._processes.values():
            process.join(max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                logger.warning("worker %s did not stop; killing it", process.name)
                process.kill()
                process.join(5)
        self._processes.clear()


class _LocalRun:
    """The driver loop of one local batch: one clip in flight per worker process."""

    def __init__(
        self,
        jobs: Sequence[ClipJob],
        driver: BatchDriver,
        slots: Sequence[WorkerSlot],
        spec: AnalyzerSpec,
        retries: int,
    ) -> None:
        self.driver = driver
        self.pool = LocalPool(slots, spec)
        self.slots = {slot.index: slot for slot in slots}
        self.retries = retries
        self.pending: deque[ClipJob] = deque(jobs)
        self.busy: dict[int, ClipJob] = {}
        self.idle: deque[int] = deque()
        self.loading: set[int] = set()
        self.retired: set[int] = set()  # workers that could not load the analyser
        self.load_errors: list[str] = []
        self.crashes: dict[str, int] = {}  # clip -> worker deaths while analysing it
        self.cancelled = False

    def _start(self, index: int) -> None:
        self.pool.start(self.slots[index])
        self.loading.add(index)

    def _on_ready(self, index: int, _model_id: str) -> None:
        self.loading.discard(index)
        self.idle.append(index)

    def _on_fatal(self, index: int, message: str) -> None:
        self.loading.discard(index)
        self.retired.add(index)
        self.load_errors.append(message)
        self.driver.sink.emit("warning", message=f"worker {self.slots[index].name}: {message}")

    def _on_started(self, index: int, name: str) -> None:
        self.driver.started(name, self.slots[index].name)

    def _on_progress(self, index: int, name: str, done: int, total: int | None) -> None:
        self.driver.progress(name, self.slots[index].name, done, total)

    def _on_result(self, index: int, record: ClipRecord) -> None:
        record.attempts += self.crashes.get(record.clip, 0)
        self.busy.pop(index, None)
        self.driver.finished(record)
        self.idle.append(index)

    def _on_died(self, index: int, exit_code: int | None) -> None:
        job = self.busy.pop(index, None)
        if index in self.idle:  # died between clips: it takes no clip until it is back
            self.idle.remove(index)
        if index in self.loading:  # crashed while loading the model: do not try again
            self._on_fatal(index, f"worker process exited with code {exit_code} while loading")
            return
        if index in self.retired:
            return
        if job is not None:
            self._clip_crashed(job, self.slots[index], exit_code)
        if not self.cancelled:
            self._start(index)

    def _clip_crashed(self, job: ClipJob, slot: WorkerSlot, exit_code: int | None) -> None:
        self.crashes[job.name] = self.crashes.get(job.name, 0) + 1
        message = f"worker {slot.name} died (exit code {exit_code}) while analysing this clip"
        if self.cancelled:  # no retry after a cancel: the clip waits for the next run
            self.driver.finished(ClipRecord(clip=job.name, status="cancelled", error=message,
                                            input=job.video, worker=slot.name))  # fmt: skip
            return
        if self.crashes[job.name] <= self.retries:
            logger.warning("%s: %s; retrying", job.name, message)
            self.pending.appendleft(job)
            return
        self.driver.finished(
            ClipRecord(
                clip=job.name,
                status="failed",
                error=message + "; the video may be corrupt (a decoder crash) or memory ran out",
                input=job.video,
                worker=slot.name,
                attempts=self.crashes[job.name],
            )
        )

    def _dispatch(self) -> None:
        while self.idle and self.pending and not self.cancelled:
            index, job = self.idle.popleft(), self.pending.popleft()
            self.busy[index] = job
            self.pool.assign(index, job)

    def run(self, stop: threading.Event) -> bool:
        handlers = {
            "ready": self._on_ready,
            "fatal": self._on_fatal,
            "started": self._on_started,
            "progress": self._on_progress,
            "result": self._on_result,
            "died": self._on_died,
        }
        for index in self.slots:
            self._start(index)
        try:
            while self.pending or self.busy:
                if stop.is_set() and not self.cancelled:
                    self.cancelled = True
                    self.pool.request_stop()
                    self.pending.clear()
                for kind, index, *payload in self.pool.messages(timeout=0.2):
                    handlers[kind](index, *payload)
                if self.pending and not (self.loading or self.idle or self.busy):
                    raise BatchError(
                        "no worker could load the analyser: "
                        + "; ".join(dict.fromkeys(self.load_errors))
                    )
                self._dispatch()
        finally:
            self.pool.close()
        return self.cancelled


def run_local(
    jobs: Sequence[ClipJob],
    driver: BatchDriver,
    slots: Sequence[WorkerSlot],
    spec: AnalyzerSpec,
    stop: threading.Event,
    retries: int = 1,
) -> bool:
    """Run ``jobs`` on local worker processes; returns True when cancelled through ``stop``."""
    return _LocalRun(jobs, driver, slots, spec, retries).run(stop)
