"""Batch processing in local mode: real worker processes analysing small synthetic clips with the
pixel-based analyser of ``tests/batchclips.py`` (ground truth: what the clips were drawn with)."""

import csv
import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from inference.batch import (
    EXIT_CANCELLED,
    EXIT_CLIPS_FAILED,
    EXIT_OK,
    AnalyzerSpec,
    BatchError,
    BatchOptions,
    NoClipsError,
    clip_names,
    find_clips,
    plan_slots,
    run_batch,
    visible_gpus,
)
from retarget.contract import read_trajectory
from tests.batchclips import read_log, run_batch_within, truth_boxes, write_clip


class Recorder:
    """Collects protocol events; ``on_event`` may react to them (e.g. cancel the batch)."""

    def __init__(self, on_event=None):
        self.events = []
        self.on_event = on_event

    def emit(self, event, **fields):
        json.dumps(fields)  # every event must be JSON-serialisable
        self.events.append({"event": event, **fields})
        if self.on_event:
            self.on_event(self.events[-1])

    def of(self, kind):
        return [e for e in self.events if e["event"] == kind]

    def finished(self):
        return [e for e in self.of("progress") if "clip_status" in e]


def options(out, logs, workers=1, extra=(), **kw):
    args = ["--load-log", str(logs / "load.log"), "--done-log", str(logs / "done.log")]
    args += ["--resume-log", str(logs / "resume.log"), *extra]
    spec = AnalyzerSpec("tests.batchclips:make_analyzer", tuple(args))
    return BatchOptions(out_dir=out, workers=workers, analyzer=spec, **kw)


def manifest(out: Path) -> dict:
    document = json.loads((out / "batch_manifest.json").read_text(encoding="utf-8"))
    return {row["clip"]: row for row in document["clips"]}


def test_find_clips_expands_folders_and_patterns_and_names_are_unique(tmp_path):
    for name in ("b.mp4", "a.MOV", "notes.txt", ".hidden.mp4", "sub/c.avi", "other/a.mkv",
                 ".Trash-1000/d.mp4"):  # fmt: skip
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    clips, warnings = find_clips(
        [str(tmp_path), str(tmp_path / "sub" / "*.avi"), str(tmp_path / "b.mp4"), "nothing/*.mp4"]
    )
    assert [p.relative_to(tmp_path).as_posix() for p in clips] == ["a.MOV", "b.mp4", "sub/c.avi"]
    assert warnings == ["input 'nothing/*.mp4' matched no video file"]
    recursive, _ = find_clips([str(tmp_path)], recursive=True)
    assert len(recursive) == 4
    names = clip_names(recursive)
    assert len(set(names)) == 4 and "b" in names and "c" in names
    assert sum(n.startswith("a-") for n in names) == 2  # a.MOV and other/a.mkv
    # a missing explicit file stays in the list: it fails as its own clip, not the whole batch
    assert find_clips([str(tmp_path / "missing.mp4")])[0] == [tmp_path / "missing.mp4"]


def test_clip_names_never_share_a_result_file(tmp_path):
    """Two suffixes of one name in one folder, and a name whose result in the output folder came
    from another input (an earlier run of another folder), get their own names."""
    for name in ("day1/take.avi", "day1/take.mkv", "day2/take.mp4"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    same_folder = clip_names([tmp_path / "day1/take.avi", tmp_path / "day1/take.mkv"])
    assert len(set(same_folder)) == 2 and all(n.startswith("take-") for n in same_folder)
    out = tmp_path / "results"
    (out / ".batch").mkdir(parents=True)
    earlier = {"input": str((tmp_path / "day1/take.avi").resolve())}
    (out / ".batch" / "take.json").write_text(json.dumps(earlier))
    assert clip_names([tmp_path / "day1/take.avi"], out) == ["take"]  # its own result: reused
    (later,) = clip_names([tmp_path / "day2/take.mp4"], out)
    assert later.startswith("take-")


def test_plan_slots_one_worker_per_gpu_else_cpu_cores():
    slots = plan_slots(None, gpus=["0", "1"], cores=16)
    assert [(s.gpu, s.threads) for s in slots] == [("0", 8), ("1", 8)]
    assert [s.gpu for s in plan_slots(3, gpus=["0", "1"], cores=6)] == ["0", "1", "0"]
    assert [(s.gpu, s.threads) for s in plan_slots(None, gpus=[], cores=2)] == [(None, 1)] * 2
    assert [(s.gpu, s.threads) for s in plan_slots(1, gpus=[], cores=2)] == [(None, 2)]
    assert len(plan_slots(None, gpus=[], cores=64)) == 8


def test_no_clip_is_a_usage_error(tmp_path):
    with pytest.raises(NoClipsError, match="no video found"):
        run_batch([str(tmp_path / "*.mp4")], options(tmp_path / "out", tmp_path), Recorder())


@pytest.fixture
def shoot(tmp_path):
    """Four good clips (one with a name clash), a text file named .mp4 and an empty .mp4."""
    folder = tmp_path / "shoot"
    (folder / "day2").mkdir(parents=True)
    clips = {"a": (1, 12), "b": (2, 16), "c": (1, 10), "day2/a": (2, 14)}
    for name, (people, frames) in clips.items():
        write_clip(folder / f"{name}.avi", people, frames)
    (folder / "broken.mp4").write_text("this is not a video", encoding="utf-8")
    (folder / "empty.mp4").write_bytes(b"")
    return folder, clips


@pytest.mark.slow
def test_local_batch_two_workers(shoot, tmp_path):
    folder, clips = shoot
    out, recorder = tmp_path / "out", Recorder()
    inputs = [str(folder), str(folder / "day2" / "*.avi")]
    summary = run_batch(inputs, options(out, tmp_path, workers=2), recorder)

    assert summary.exit_code == EXIT_CLIPS_FAILED
    rows = manifest(out)
    assert len(rows) == 6
    assert {rows[n]["status"] for n in ("broken", "empty")} == {"failed"}
    assert "cannot be opened" in rows["broken"]["error"]
    good = {n: r for n, r in rows.items() if n not in ("broken", "empty")}
    assert {r["status"] for r in good.values()} == {"done"}
    by_input = {
        Path(r["input"]).relative_to(folder).with_suffix("").as_posix(): r for r in good.values()
    }
    for name, (people, frames) in clips.items():
        row = by_input[name]
        assert (row["frames"], row["people"]) == (frames, people)
        trajectory = read_trajectory(out / row["output"])
        assert trajectory.num_frames == frames and trajectory.model == "test-blob-people@1"
        error = np.abs(trajectory.boxes[..., :4] - truth_boxes(people, frames))
        assert error.max() <= 2.0, name  # MJPEG edges blur by a pixel or so

    # the model is loaded once per worker process, not once per clip
    assert len(set(read_log(tmp_path / "load.log"))) == 2
    assert sorted(read_log(tmp_path / "done.log")) == sorted(Path(n).name for n in clips)

    with open(out / "batch_manifest.csv", encoding="utf-8", newline="") as stream:
        table = {row["clip"]: row for row in csv.DictReader(stream)}
    assert list(next(iter(table.values())))[:6] == [
        "clip", "status", "frames", "people", "seconds", "error"
    ]  # fmt: skip
    assert {n: (t["status"], t["frames"]) for n, t in table.items()} == {
        n: (r["status"], str(r["frames"] or "")) for n, r in rows.items()
    }

    events = recorder.events
    assert events[0]["event"] == "start" and events[0]["clips_total"] == 6
    assert events[-1]["event"] == "done"
    assert (events[-1]["done"], events[-1]["failed"], events[-1]["frames"]) == (4, 2, 52)
    finished = recorder.finished()
    assert sorted(e["clip"] for e in finished) == sorted(rows)  # one per clip
    assert [e["clips_done"] for e in finished] == list(range(1, 7))
    warnings = sorted(e["message"] for e in recorder.of("warning"))
    assert [w.split(":")[0] for w in warnings] == ["clip broken failed", "clip empty failed"]


@pytest.mark.slow
def test_rerun_skips_unchanged_clips_and_redoes_changed_ones(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    write_clip(folder / "one.avi", 1, 8)
    write_clip(folder / "two.avi", 2, 8)
    out = tmp_path / "out"
    assert run_batch([str(folder)], options(out, tmp_path), Recorder()).exit_code == EXIT_OK

    (out / "batch_manifest.json").unlink()  # the per-clip records alone decide reuse
    again = run_batch([str(folder)], options(out, tmp_path), Recorder())
    assert {r.status for r in again.records.values()} == {"skipped"}
    assert (manifest(out)["two"]["frames"], manifest(out)["two"]["people"]) == (8, 2)
    assert sorted(read_log(tmp_path / "done.log")) == ["one", "two"]  # nothing analysed again

    write_clip(folder / "two.avi", 2, 11)  # new content under the same name
    (out / "one.npz").write_bytes((out / "one.npz").read_bytes()[:-10])  # damaged output
    changed = run_batch([str(folder)], options(out, tmp_path), Recorder())
    assert {n: r.status for n, r in changed.records.items()} == {"one": "done", "two": "done"}
    assert manifest(out)["two"]["frames"] == 11

    def statuses(*extra):
        summary = run_batch([str(folder)], options(out, tmp_path, extra=extra), Recorder())
        return {record.status for record in summary.records.values()}

    assert statuses("--model-id", "test-blob-people@2") == {"done"}  # another model
    assert read_trajectory(out / "one.npz").model == "test-blob-people@2"
    assert statuses("--model-id", "test-blob-people@2", "--min-area", "50") == {"done"}  # setting
    # a setting that changes only the speed does not invalidate the results
    speed_only = ("--model-id", "test-blob-people@2", "--min-area", "50", "--frame-delay", "0")
    assert statuses(*speed_only) == {"skipped"}


@pytest.mark.slow
def test_a_clip_that_kills_its_worker_fails_alone(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("a", "crash_me", "b"):
        write_clip(folder / f"{name}.avi", 1, 6)
    out = tmp_path / "out"
    recorder = Recorder()
    summary = run_batch(
        [str(folder)], options(out, tmp_path, extra=["--crash-on", "crash"]), recorder
    )
    rows = manifest(out)
    assert {n: r["status"] for n, r in rows.items()} == {
        "a": "done", "b": "done", "crash_me": "failed"
    }  # fmt: skip
    assert "died" in rows["crash_me"]["error"] and rows["crash_me"]["attempts"] == 2  # 1 retry
    assert summary.exit_code == EXIT_CLIPS_FAILED
    assert len(read_log(tmp_path / "load.log")) == 3  # first worker + one replacement per crash


@pytest.mark.slow
def test_a_file_name_that_is_not_utf8_does_not_stop_the_batch(tmp_path):
    """Linux file names are bytes: one that is not UTF-8 (from an old camera or archive) is kept
    in the manifest and the table as escapes, and the other clips are analysed."""
    folder = tmp_path / "clips"
    folder.mkdir()
    write_clip(folder / "plain.avi", 1, 5)
    write_clip(folder / "odd.avi", 1, 5)
    odd = os.fsencode(folder / "odd.avi").replace(b"odd", b"caf\xe9")
    os.rename(os.fsencode(folder / "odd.avi"), odd)
    out = tmp_path / "out"
    summary = run_batch([str(folder)], options(out, tmp_path), Recorder())
    rows = manifest(out)
    assert rows["plain"]["status"] == "done" and len(rows) == 2
    (odd_name,) = set(rows) - {"plain"}
    assert os.fsencode(rows[odd_name]["input"]) == odd  # the name's bytes, round-tripped
    assert "caf\\udce9" in (out / "batch_manifest.csv").read_text(encoding="utf-8")
    assert summary.exit_code in (EXIT_OK, EXIT_CLIPS_FAILED)


@pytest.mark.slow
def test_a_worker_crashing_after_a_cancel_ends_the_batch(tmp_path):
    """Cancelled while a clip is running, then its worker crashes: the clip is not queued again
    (nothing would take it, and the batch would wait for ever); it is recorded as cancelled."""
    folder = tmp_path / "clips"
    folder.mkdir()
    write_clip(folder / "a_long.avi", 1, 40)
    write_clip(folder / "next.avi", 1, 6)
    out, stop = tmp_path / "out", threading.Event()

    def cancel_when_it_starts(event):
        if event["event"] == "progress" and event.get("clip") == "a_long":
            stop.set()

    crashing = options(out, tmp_path, extra=["--crash-on-stop", "--frame-delay", "0.03"])
    summary = run_batch_within(60, [str(folder)], crashing, Recorder(cancel_when_it_starts), stop)
    assert summary.exit_code == EXIT_CANCELLED
    rows = manifest(out)
    assert (rows["a_long"]["status"], rows["next"]["status"]) == ("cancelled", "pending")
    assert "died" in rows["a_long"]["error"]


@pytest.mark.slow
def test_cancel_keeps_partial_results_and_the_next_run_resumes(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    write_clip(folder / "long.avi", 1, 40)
    write_clip(folder / "next.avi", 1, 5)
    out, stop = tmp_path / "out", threading.Event()

    def cancel_mid_clip(event):
        if event["event"] == "progress" and (event["clip_frames_done"] or 0) >= 5:
            stop.set()

    slow = options(out, tmp_path, extra=["--frame-delay", "0.03"])
    summary = run_batch([str(folder)], slow, Recorder(cancel_mid_clip), stop)
    assert summary.exit_code == EXIT_CANCELLED
    rows = manifest(out)
    assert (rows["long"]["status"], rows["next"]["status"]) == ("cancelled", "pending")
    partial = read_trajectory(out / "long.npz")
    assert bool(partial.extras["partial"]) and 5 <= partial.num_frames < 40

    resumed = run_batch([str(folder)], options(out, tmp_path), Recorder())
    assert resumed.exit_code == EXIT_OK
    assert read_log(tmp_path / "resume.log") == ["long", str(partial.num_frames)]
    final = read_trajectory(out / "long.npz")
    assert final.num_frames == 40 and not bool(final.extras["partial"])
    assert np.abs(final.boxes[..., :4] - truth_boxes(1, 40)).max() <= 2.0


@pytest.mark.slow
def test_workers_get_their_gpu_and_thread_share(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    for i in range(3):
        write_clip(folder / f"c{i}.avi", 1, 4)
    # two "GPUs" by id: each worker process sees only its own (the analyser here needs none)
    gpus = options(tmp_path / "out", tmp_path, workers=None, gpus=("7", "9"))
    assert run_batch([str(folder)], gpus, Recorder()).exit_code == EXIT_OK
    loads = [line.split(",") for line in read_log(tmp_path / "load.log")]
    assert sorted(cuda for _, cuda, _ in loads) == ["7", "9"]
    assert {threads for _, _, threads in loads} == {str(max(1, len(os.sched_getaffinity(0)) // 2))}


@pytest.mark.slow
def test_a_batch_whose_workers_cannot_load_the_analyser_stops_with_the_reason(tmp_path):
    write_clip(tmp_path / "c.avi", 1, 4)
    broken = BatchOptions(
        tmp_path / "out", workers=2, analyzer=AnalyzerSpec("tests.batchclips:no_such_factory")
    )
    recorder = Recorder()
    with pytest.raises(BatchError, match="no worker could load the analyser.*no_such_factory"):
        run_batch([str(tmp_path / "c.avi")], broken, recorder)
    assert len(recorder.of("warning")) == 1  # one worker: never more workers than clips
    assert manifest(tmp_path / "out")["c"]["status"] == "pending"


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 3")
    assert visible_gpus() == ["2", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert visible_gpus() == []


def test_start_and_stop_choose_every_clips_frames_as_analyze_does(capsys):
    """``batch --start/--stop`` reach every clip's analysis as its ``--start/--stop`` (checked by
    the analysis' own parser); a range that ends before it starts, or also given in
    --analyze-options, is a bad command line."""
    from inference.__main__ import build_parser
    from inference.analysis import settings_from_options
    from inference.batch.cli import options_from_args
    from inference.batch.errors import BatchUsageError

    def options(*args):
        parsed = build_parser("batch").parse_args(["batch", "clips/", "-o", "out", *args])
        return options_from_args(parsed).analyzer.args

    given = options("--start", "12", "--stop", "480", "--analyze-options", "--fov 60")
    assert given == ("--fov", "60", "--start", "12", "--stop", "480")
    settings = settings_from_options(list(given))
    assert (settings.start, settings.stop) == (12, 480)
    assert options("--stop", "30") == ("--stop", "30")
    assert options() == ()
    with pytest.raises(BatchUsageError, match="--stop 12 must come after --start 12"):
        options("--start", "12", "--stop", "12")
    with pytest.raises(BatchUsageError, match="--start given twice"):
        options("--start", "3", "--analyze-options", "--start 4")
    for bad in (["--start", "-1"], ["--stop", "0"], ["--start", "x"]):
        with pytest.raises(SystemExit):
            build_parser("batch").parse_args(["batch", "clips/", "-o", "out", *bad])
        assert "--st" in capsys.readouterr().err
