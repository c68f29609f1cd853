"""Batch processing on this machine's CPU, one run, same clips:

1. throughput of local mode with 1 and 2 worker processes (clips/min and speed-up), analysing
   synthetic walking people with the real single-clip worker and the test pose model/detector of
   ``tests/tinymodels.py`` (CPU-bound, loaded once per worker);
2. per-clip overhead of Ray mode vs local mode: with one worker, the steady-state time between
   two clip completions minus the analysis time measured inside the worker (hashing, dispatch,
   result transport, manifest), on tiny clips so that the overhead is not lost in the noise.

The cores are shared with other work, so the speed-up is a lower bound of what two free cores give.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # nothing leaves the machine

import numpy as np  # noqa: E402

from inference.batch import AnalyzerSpec, BatchOptions, run_batch  # noqa: E402
from tests import batchclips  # noqa: E402
from tests.synthvideo import walking_people, write_clip  # noqa: E402

THROUGHPUT_CLIPS = 8  # 1.2 s clips of 1 or 2 people, 640x360
OVERHEAD_CLIPS = 16  # tiny clips (12 frames, 160x120)


class Clock:
    """Event sink keeping the time of every finished clip."""

    def __init__(self):
        self.finished = []  # (monotonic time, record fields)
        self.done = None

    def emit(self, event, **fields):
        if event == "progress" and "clip_status" in fields:
            self.finished.append((time.monotonic(), fields))
        elif event == "done":
            self.done = fields


def run(inputs, out, spec, **options) -> tuple[Clock, float]:
    clock = Clock()
    started = time.monotonic()
    summary = run_batch(inputs, BatchOptions(out_dir=out, analyzer=spec, **options), clock)
    assert summary.exit_code == 0 and summary.count("done") == len(summary.records)
    return clock, time.monotonic() - started


def throughput(root: Path) -> None:
    clips = root / "walk"
    clips.mkdir()
    for i in range(THROUGHPUT_CLIPS):
        write_clip(clips / f"walk{i}.mp4", walking_people(1 + i % 2, 1.2, seed=i))
    spec = AnalyzerSpec(
        "tests.batchclips:make_worker_analyzer", ("--device", "cpu", "--detect-every", "2")
    )
    rows = []
    for workers in (1, 2):
        _, seconds = run([str(clips)], root / f"out{workers}", spec, workers=workers)
        rows.append((workers, seconds, THROUGHPUT_CLIPS / seconds * 60))
    print(f"throughput, {THROUGHPUT_CLIPS} clips (real worker, test models), wall time incl. start")
    print(f"{'workers':>8} {'seconds':>8} {'clips/min':>10} {'speed-up':>9}")
    for workers, seconds, rate in rows:
        print(f"{workers:>8} {seconds:>8.2f} {rate:>10.1f} {rate / rows[0][2]:>9.2f}")


def steady_overhead(clock: Clock) -> tuple[float, float]:
    """Mean time between consecutive completions and mean analysis time, from the 2nd clip on."""
    times = np.array([t for t, _ in clock.finished])
    analysis = np.array([fields["clip_seconds"] for _, fields in clock.finished])
    return float(np.diff(times).mean()), float(analysis[1:].mean())


def overhead(root: Path) -> None:
    import ray

    clips = root / "tiny"
    clips.mkdir()
    for i in range(OVERHEAD_CLIPS):
        batchclips.write_clip(clips / f"tiny{i}.avi", 1 + i % 2, 12)
    spec = AnalyzerSpec("tests.batchclips:make_analyzer", ())
    local, local_wall = run([str(clips)], root / "local", spec, workers=1)
    started = time.monotonic()
    ray.init(
        address="local",
        num_cpus=1,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}},
    )
    ray_start = time.monotonic() - started
    try:
        remote, ray_wall = run([str(clips)], root / "ray", spec, workers=1, ray_address="")
    finally:
        ray.shutdown()
    print(f"\nper-clip overhead, {OVERHEAD_CLIPS} tiny clips, 1 worker (steady state, 2nd clip on)")
    print(f"{'mode':>6} {'interval ms':>12} {'analysis ms':>12} {'overhead ms':>12} {'wall s':>7}")
    results = {}
    for mode, clock, wall in (("local", local, local_wall), ("ray", remote, ray_wall)):
        interval, analysis = steady_overhead(clock)
        results[mode] = interval - analysis
        print(
            f"{mode:>6} {1e3 * interval:>12.1f} {1e3 * analysis:>12.1f} "
            f"{1e3 * (interval - analysis):>12.1f} {wall:>7.2f}"
        )
    print(
        f"Ray mode costs {1e3 * (results['ray'] - results['local']):.1f} ms more per clip than "
        f"local mode ({results['ray'] / max(results['local'], 1e-6):.1f}x); starting the local "
        f"Ray instance took {ray_start:.1f} s (once per batch, not per clip)"
    )


def main() -> None:
    cores = len(os.sched_getaffinity(0))
    print(
        f"{cores} cores, load average {os.getloadavg()[0]:.1f} at the start (other work shares them)"
    )
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as folder:
        throughput(Path(folder))
        overhead(Path(folder))
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
