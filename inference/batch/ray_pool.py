"""Ray mode of ``python -m inference batch ... --ray [ADDRESS]`` (imported only in that mode).

One actor per GPU (``num_gpus=1``; Ray sets its ``CUDA_VISIBLE_DEVICES``) or per CPU when the
cluster has no GPU; each actor loads the analyser once in its constructor and analyses clips sent
to it as actor tasks. Actors are restarted when they die (``max_restarts``) and their clip is retried
on the restarted actor (``max_task_retries``), so a lost node or a killed worker costs the clips it
was running, not the batch; after a cancel the retry does not analyse: the clip is ``cancelled``. Results are written by the actors to the output folder, which must be
a path every node sees (a shared file system), as must the input videos; the driver keeps the
manifest and the progress events, as in local mode.

Every node needs this project importable (the same virtual environment). When this module starts
Ray itself, workers get the project folder on ``PYTHONPATH``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from .analyzer import AnalyzerSpec, Throttled, load_analyzer
from .clip import ClipRecord, process_clip
from .discovery import ClipJob
from .driver import BatchDriver
from .errors import BatchError
from .run import BatchOptions

logger = logging.getLogger(__name__)

ACTOR_RESTARTS = 3  # restarts of a dead actor (a killed worker, a lost node) before giving up
TASK_RETRIES = 2  # retries of a clip whose actor died while running it
STOP_POLL_S = 0.2  # how often actors ask the driver whether the batch was cancelled


@ray.remote(num_cpus=0)
class _Control:
    """Driver-side mailbox: actors report progress here and read the cancel flag."""

    def __init__(self) -> None:
        self._events: list[tuple] = []
        self._stopped = False
        self._begun: dict[str, int] = {}  # clip -> attempts begun on any actor

    def begin(self, clip: str) -> tuple[int, bool]:
        """Count an attempt at ``clip``; returns the attempts begun before it and the cancel flag,
        read together (this actor runs one call at a time)."""
        earlier = self._begun.get(clip, 0)
        self._begun[clip] = earlier + 1
        return earlier, self._stopped

    def report(self, event: tuple) -> None:
        self._events.append(event)

    def drain(self) -> list[tuple]:
        events, self._events = self._events, []
        return events

    def stop(self) -> None:
        self._stopped = True

    def stopped(self) -> bool:
        return self._stopped


class ClipActor:
    """Holds one loaded analyser; :meth:`process` analyses one clip (see ``process_clip``)."""

    def __init__(self, spec: AnalyzerSpec, name: str, control: str) -> None:
        self.name = name
        # by name, so a restarted actor finds it again (its constructor arguments stay plain data)
        self.control = ray.get_actor(control)
        self.analyzer = load_analyzer(spec)  # the model, once per actor (again after a restart)
        self.stop = threading.Event()
        threading.Thread(target=self._watch_stop, daemon=True).start()

    def _watch_stop(self) -> None:
        while not self.stop.is_set():
            try:
                if ray.get(self.control.stopped.remote(), timeout=10):
                    self.stop.set()
            except (ray.exceptions.RayError, TimeoutError):  # driver gone: stop working
                self.stop.set()
            time.sleep(STOP_POLL_S)

    def model_id(self) -> str:
        return self.analyzer.model_id

    def process(self, job: ClipJob) -> ClipRecord:
        # The cancel flag is read here, with the attempt counted, rather than left to the stop
        # watcher: a clip that Ray retries on this actor after a restart would otherwise begin
        # before or after the watcher's first poll, by chance, and end either as "pending" or
        # crash-looping through its retries.
        earlier, stopped = ray.get(self.control.begin.remote(job.name))
        if stopped:
            self.stop.set()
        progress = Throttled(
            lambda done, total: self.control.report.remote(
                ("progress", job.name, self.name, done, total)
            )
        )
        record = process_clip(self.analyzer, job, progress, self.stop, worker=self.name)
        if earlier and record.status == "pending":  # Ray's retry of a clip its actor died on
            # as in local mode: after a cancel such a clip is not retried; it is "cancelled"
            record.status, record.attempts = "cancelled", earlier
            record.error = "its worker died and the batch was cancelled before the retry"
        return record


@dataclass(frozen=True)
class ActorPlan:
    """How many actors and what each asks of the cluster."""

    count: int
    num_gpus: float  # per actor
    num_cpus: float  # per actor


def plan_actors(workers: int | None, resources: dict[str, float]) -> ActorPlan:
    """One actor per GPU of the cluster (``workers`` overrides the count), else one per CPU.
    More actors than GPUs (or CPUs) share them: each asks for its share, so that Ray can place
    every one (an actor asking for a whole GPU that is not there would wait for ever)."""
    gpus = int(resources.get("GPU", 0))
    cpus = max(1.0, float(resources.get("CPU", 1)))
    count = workers or (gpus if gpus else max(1, int(cpus)))
    return ActorPlan(count, min(1.0, gpus / count), min(1.0, cpus / count))


def _connect(address: str | None) -> bool:
    """Connect to (or start) Ray unless the caller already did; True when we did."""
    if ray.is_initialized():
        return False
    project = str(Path(__file__).resolve().parents[2])
    pythonpath = os.pathsep.join(p for p in (project, os.environ.get("PYTHONPATH", "")) if p)
    ray.init(
        address=address or None,
        runtime_env={"env_vars": {"PYTHONPATH": pythonpath}},
        include_dashboard=False,
    )
    return True


class _RayRun:
    """The driver loop of one Ray batch: one clip in flight per actor."""

    def __init__(
        self,
        jobs: list[ClipJob],
        driver: BatchDriver,
        options: BatchOptions,
        plan: ActorPlan,
        stop: threading.Event,
    ) -> None:
        self.driver = driver
        self.options = options
        self.stop = stop
        self.pending: deque[ClipJob] = deque(jobs)
        self.in_flight: dict[Any, tuple[int, ClipJob]] = {}
        self.failures: dict[str, int] = {}
        self.cancelled = False
        self.load_errors: list[str] = []
        self.run_id = os.urandom(4).hex()
        control = f"metrabs-batch-{self.run_id}-control"
        self.control = _Control.options(name=control).remote()
        actor_class = ray.remote(ClipActor)
        self.names = [f"metrabs-batch-{self.run_id}-{i}" for i in range(plan.count)]
        self.actors: dict[int, Any] = {
            i: actor_class.options(
                name=name,
                num_gpus=plan.num_gpus,
                num_cpus=plan.num_cpus,
                max_restarts=ACTOR_RESTARTS,
                max_task_retries=TASK_RETRIES,
            ).remote(options.analyzer, name, control)
            for i, name in enumerate(self.names)
        }

    def submit(self, index: int, job: ClipJob) -> None:
        ref = self.actors[index].process.remote(job)
        self.in_flight[ref] = (index, job)
        self.driver.started(job.name, self.names[index])

    def _forward_progress(self) -> None:
        for _kind, name, worker, done, total in ray.get(self.control.drain.remote()):
            if name in self.driver.jobs:
                self.driver.progress(name, worker, done, total)

    def _collect(self, ref: Any) -> int | None:
        """Record the result of a finished task; returns the actor index if it can take more."""
        index, job = self.in_flight.pop(ref)
        try:
            record = ray.get(ref)
        except ray.exceptions.RayActorError as error:
            return self._actor_lost(index, job, error)
        except ray.exceptions.RayTaskError as error:  # process_clip catches clip errors itself
            record = ClipRecord(
                clip=job.name,
                status="failed",
                error=str(error),
                input=job.video,
                worker=self.names[index],
            )
        self.driver.finished(record)
        return index

    def _actor_lost(self, index: int, job: ClipJob, error: Exception) -> None:
        """The actor is dead for good (constructor failed or restarts used up)."""
        logger.warning("actor %s is gone: %s", self.names[index], error)
        del self.actors[index]
        self.load_errors.append(str(error).splitlines()[0] if str(error) else type(error).__name__)
        self.failures[job.name] = self.failures.get(job.name, 0) + 1
        if self.cancelled:  # no retry after a cancel: the clip waits for the next run
            self.driver.finished(ClipRecord(clip=job.name, status="cancelled", input=job.video,
                                            error=f"worker {self.names[index]} died: {error}",
                                            worker=self.names[index]))  # fmt: skip
        elif self.failures[job.name] <= self.options.retries:
            self.pending.appendleft(job)
        else:
            self.driver.finished(
                ClipRecord(
                    clip=job.name,
                    status="failed",
                    error=f"worker {self.names[index]} died while analysing this clip: {error}",
                    input=job.video,
                    worker=self.names[index],
                )
            )
        return None

    def run(self) -> bool:
        free = deque(self.actors)
        while self.pending or self.in_flight:
            if self.stop.is_set() and not self.cancelled:
                self.cancelled = True
                self.control.stop.remote()
                self.pending.clear()
            while free and self.pending and not self.cancelled:
                index = free.popleft()
                if index in self.actors:
                    self.submit(index, self.pending.popleft())
            if not self.actors and self.pending and not self.in_flight:
                raise BatchError(
                    "no Ray worker could load the analyser: "
                    + "; ".join(dict.fromkeys(self.load_errors))
                )
            if not self.in_flight:
                continue
            ready, _ = ray.wait(list(self.in_flight), num_returns=1, timeout=0.2)
            self._forward_progress()
            for ref in ready:
                index = self._collect(ref)
                if index is not None:
                    free.append(index)
        self._forward_progress()
        return self.cancelled

    def close(self) -> None:
        for actor in self.actors.values():
            ray.kill(actor, no_restart=True)
        ray.kill(self.control, no_restart=True)


def run_ray(
    jobs: list[ClipJob], driver: BatchDriver, options: BatchOptions, stop: threading.Event
) -> bool:
    """Run ``jobs`` on Ray actors; returns True when cancelled through ``stop``."""
    started_here = _connect(options.ray_address)
    try:
        plan = plan_actors(options.workers, ray.cluster_resources())
        plan = ActorPlan(min(plan.count, max(1, len(jobs))), plan.num_gpus, plan.num_cpus)
        driver.begin("ray", plan.count)
        batch = _RayRun(list(jobs), driver, options, plan, stop)
        try:
            return batch.run()
        finally:
            batch.close()
    finally:
        if started_here:
            ray.shutdown()
