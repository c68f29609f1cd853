"""Run the ``analyze`` command as a real subprocess and read its JSON-lines protocol (test helper)."""

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HARNESS = [sys.executable, "-m", "tests.worker_harness"]  # the test pose model and detector
REAL_CLI = [sys.executable, "-m", "inference", "analyze"]  # the installed models


@dataclass
class Run:
    returncode: int
    events: list[dict]
    stderr: str

    def of(self, kind: str) -> list[dict]:
        return [event for event in self.events if event["event"] == kind]

    @property
    def last(self) -> dict:
        return self.events[-1]


def parse_events(stdout: str) -> list[dict]:
    """Every stdout line must be one JSON object with an ``event``."""
    events = []
    for line in stdout.splitlines():
        event = json.loads(line)
        assert isinstance(event, dict) and "event" in event and "time" in event, line
        events.append(event)
    return events


def analyze(
    *args: str,
    real: bool = False,
    frame_model: bool = False,
    env: dict | None = None,
    timeout: float = 180,
) -> Run:
    """Run the harness (``real``: the real CLI); ``frame_model``: the frame-level test model
    instead of ``PoseEstimator`` + crop model (faster: no torch in the subprocess)."""
    harness = HARNESS + (["--frame-model"] if frame_model else [])
    command = (REAL_CLI if real else harness) + [str(a) for a in args]
    if "--device" not in args:
        command += ["--device", "cpu"]
    process = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )
    run = Run(process.returncode, parse_events(process.stdout), process.stderr)
    assert "Traceback" not in process.stderr or run.returncode == 1, process.stderr[-3000:]
    return run


def start(*args: str) -> subprocess.Popen:
    """Start the harness in the background (for signal tests)."""
    return subprocess.Popen(
        HARNESS + [str(a) for a in args] + ["--device", "cpu"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
