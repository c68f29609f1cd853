"""The JSON-lines progress protocol."""

import io
import json

import pytest

from inference.analysis import ProgressReporter


def lines(stream):
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_events_are_one_json_object_per_line():
    stream = io.StringIO()
    reporter = ProgressReporter(stream)
    reporter.emit("start", video="a b/ü.mp4", frames_total=None, fps=float("nan"))
    reporter.warning("careful")
    reporter.error("broken", 3)
    events = lines(stream)
    assert [e["event"] for e in events] == ["start", "warning", "error"]
    assert events[0]["video"] == "a b/ü.mp4" and events[0]["fps"] is None  # NaN is not JSON
    assert events[1]["message"] == "careful" and reporter.warnings == ["careful"]
    assert events[2] == {**events[2], "message": "broken", "exit_code": 3}
    with pytest.raises(ValueError, match="unknown progress event"):
        reporter.emit("finished")


def test_progress_is_rate_limited_and_has_an_eta():
    stream = io.StringIO()
    reporter = ProgressReporter(stream, min_interval_s=3600)
    reporter.progress(10, 100, 5.0, people=2)
    reporter.progress(20, 100, 5.0, people=2)  # too soon: dropped
    reporter.progress(100, 100, 5.0, people=1, force=True)
    reporter.progress(5, None, 0.0, people=0, force=True)
    events = lines(stream)
    assert [e["frames_done"] for e in events] == [10, 100, 5]
    assert events[0]["eta_s"] == 18.0 and events[1]["eta_s"] == 0.0 and events[2]["eta_s"] is None


def test_a_closed_stream_does_not_stop_the_work():
    stream = io.StringIO()
    stream.close()
    ProgressReporter(stream).emit("warning", message="nobody listens")
