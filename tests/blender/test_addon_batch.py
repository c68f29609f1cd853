"""The panel's Folder of Clips through the installed extension: Analyze Folder runs the real batch
command (``python -m inference batch``) on three rendered clips, Import Folder makes one take per
clip and person, Cancel keeps the finished clips (no batch process left) and a second Analyze
Folder resumes; bad input is refused before anything starts; settings survive save/reload; a
running batch ends with the add-on.

The batch runs the real single-clip worker with the project's test models (the colour-joint
pose model and detector of ``tests/tinymodels.py``, through ``tests.batchclips``), as the other
worker tests do, since no trained MeTRAbs weights ship with the tests. Modal operators never run
headless, so the operators' ``execute`` path (the same job, run to its end) is driven, and the
cancel goes through the Cancel button's operator while the test polls the job as the modal
timer would."""

import importlib
import json
import os
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import bpy
import numpy as np
import pytest

from retarget.contract import read_trajectory
from tests.blender.test_addon_ui import RecordingLayout

MODULE = "bl_ext.user_default.metrabs_mocap"
REPO = Path(__file__).resolve().parents[2]
# The batch needs torch and OpenCV: the project's main environment has them (the 4.2 venv not).
TORCH_PYTHON = str(REPO / ".venv" / "bin" / "python")
# ``python -m inference batch`` from the source tree, where the test analysers live
ENTRY = (str(REPO / "tests" / "batch_entry.py"),)
TEST_MODELS = "--analyzer tests.batchclips:make_worker_analyzer"
# clip name -> (people, seconds at 25 fps, seed); take_b is long enough to be cancelled mid-way
CLIPS = {"take_a": (1, 0.8, 2), "take_b": (2, 3.0, 2), "take_c": (1, 0.8, 5)}
FRAMES = {name: round(seconds * 25) for name, (_, seconds, _) in CLIPS.items()}
WRITE_CLIPS = (
    "import sys; from tests.synthvideo import walking_people, write_clip; "
    f"[write_clip(f'{{sys.argv[1]}}/{{name}}.mkv', walking_people(p, s, seed=r)) "
    f"for name, (p, s, r) in {CLIPS!r}.items()]"
)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    """Three lossless clips of people walking (640x360): 1, 2 and 1 people; 20, 75, 20 frames."""
    folder = tmp_path_factory.mktemp("shoot") / "day 1"
    folder.mkdir()
    subprocess.run([TORCH_PYTHON, "-c", WRITE_CLIPS, str(folder)], cwd=REPO, check=True)
    return folder


@pytest.fixture
def addon(extension, monkeypatch):
    names = ("api", "backend", "batch_import", "jobs", "operators", "panels", "requests")
    modules = SimpleNamespace(
        **{name: importlib.import_module(f"{MODULE}.metrabs_blender.{name}") for name in names}
    )
    # the installed extension has no tests/: start the batch command from the source tree
    monkeypatch.setattr(modules.batch_import, "BATCH_ENTRY", ENTRY)
    return modules


@pytest.fixture
def prefs(extension):
    """The backend preferences the Analyze button uses: the test venv's Python, on the CPU."""
    preferences = bpy.context.preferences.addons[MODULE].preferences
    saved = {name: getattr(preferences, name) for name in ("python_path", "device", "model")}
    preferences.python_path, preferences.device = TORCH_PYTHON, "cpu"
    preferences.model = "metrabs_small_synth"
    yield preferences
    preferences = bpy.context.preferences.addons[MODULE].preferences  # new after re-register
    for name, value in saved.items():
        setattr(preferences, name, value)


@pytest.fixture
def folder_settings(addon, prefs, videos, tmp_path):
    """The panel filled in: the videos, an output folder, one worker, 60° camera, 2 people."""
    settings = bpy.context.scene.metrabs
    settings.batch_input_dir = str(videos)
    settings.batch_output_dir = str(tmp_path / "results")
    settings.batch_workers = 1
    settings.batch_options = TEST_MODELS
    settings.camera_model, settings.fov, settings.max_people = "FOV", 60.0, 2
    return settings


def manifest(folder: Path) -> dict[str, dict]:
    document = json.loads((folder / "batch_manifest.json").read_text(encoding="utf-8"))
    return {row["clip"]: row for row in document["clips"]}


def live_processes(group: int) -> list[int]:
    """Processes of a process group that still run (zombies waiting to be reaped do not)."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return []
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited while we looked
            continue
        if int(fields[2]) == group and fields[0] not in ("Z", "X"):
            alive.append(int(stat.parent.name))
    assert alive or Path("/proc/self/stat").is_file(), "cannot list processes on this system"
    return alive


def test_the_panel_settings_become_the_batch_request(addon, folder_settings, videos, tmp_path):
    request = addon.requests.folder_request(bpy.context)
    assert request == addon.api.BatchRequest(
        inputs=(str(videos),),
        output=str(tmp_path / "results"),
        workers=1,
        clean_preset="default",
        analyze_args=addon.api.analysis_options(
            device="cpu", model="metrabs_small_synth", fov_deg=60.0, max_people=2
        ),
        extra_args=tuple(TEST_MODELS.split()),
    )  # what a script passes to api.analyze_folder for the same run
    folder_settings.batch_output_dir, folder_settings.batch_workers = "", 0
    folder_settings.batch_clean_preset, folder_settings.use_batch_recursive = "OFF", True
    request = addon.requests.folder_request(bpy.context)
    assert (request.workers, request.clean_preset, request.recursive) == (None, None, True)
    # unsaved file: the Results Folder "//mocap/" means the extension's user folder
    assert request.output == str(Path(addon.api.extension_user_dir("analyses")) / "day 1")
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "shot.blend"))
    request = addon.requests.folder_request(bpy.context)
    assert request.output == str(tmp_path / "mocap" / "day 1")


def test_analyze_folder_then_import_folder(addon, folder_settings, videos, tmp_path):
    results = tmp_path / "results"
    assert bpy.ops.metrabs.analyze_folder() == {"FINISHED"}

    rows = manifest(results)
    assert {name: row["status"] for name, row in rows.items()} == dict.fromkeys(CLIPS, "done")
    assert {name: (row["frames"], row["people"]) for name, row in rows.items()} == {
        name: (FRAMES[name], people) for name, (people, _, _) in CLIPS.items()
    }
    assert all(row["cleaned_output"] == f"cleaned/{name}.npz" for name, row in rows.items())
    # the panel's camera reached every clip: 60° on the 640 px side
    fx = 320.0 / np.tan(np.radians(30.0))
    for name in CLIPS:
        assert read_trajectory(results / f"{name}.npz").intrinsics[0, 0] == pytest.approx(fx)
    assert folder_settings.batch_result_dir == str(results)
    assert folder_settings.batch_status == "3/3 clips done"

    assert bpy.ops.metrabs.import_folder() == {"FINISHED"}
    actions = sorted(action.name for action in bpy.data.actions)
    assert actions == [
        "MeTRAbs take_a P0 take 1", "MeTRAbs take_b P0 take 1", "MeTRAbs take_b P1 take 1",
        "MeTRAbs take_c P0 take 1",
    ]  # fmt: skip
    folder = bpy.data.collections["MeTRAbs results"]
    assert {c.name: sorted(o.name for o in c.objects) for c in folder.children} == {
        "take_a": ["MeTRAbs take_a P0"],
        "take_b": ["MeTRAbs take_b P0", "MeTRAbs take_b P1"],
        "take_c": ["MeTRAbs take_c P0"],
    }
    start = bpy.context.scene.frame_start
    for name, (people, _, _) in CLIPS.items():  # each take spans its person's cleaned frames
        cleaned = read_trajectory(results / "cleaned" / f"{name}.npz")
        for person in range(people):
            seen = np.flatnonzero(np.isfinite(cleaned.poses3d[:, person]).all(axis=(1, 2)))
            action = bpy.data.objects[f"MeTRAbs {name} P{person}"].animation_data.action
            assert tuple(action.frame_range) == pytest.approx((start + seen[0], start + seen[-1]))


def test_cancel_keeps_finished_clips_and_analyze_folder_resumes(addon, folder_settings, tmp_path):
    results = tmp_path / "results"
    # a slow model (30 ms a frame: take_b takes over 2 s) lets the cancel land mid-clip anywhere
    folder_settings.batch_options = "--analyzer tests.batchclips:make_slow_worker_analyzer"
    # what the modal Analyze Folder starts and follows on its timer
    request = addon.requests.folder_request(bpy.context)
    process = addon.batch_import.start_batch(request, TORCH_PYTHON, entry=ENTRY)
    job = addon.jobs.WorkerJob(process, addon.batch_import.BatchState())
    addon.operators._JOBS["batch"] = job
    texts, workers_seen = [], 0
    try:
        while not job.poll():
            texts.append(job.text())
            if job.state.clip == "take_b" and not process.cancel_requested:
                workers_seen = len(live_processes(process.pid))
                assert bpy.ops.metrabs.cancel_job(kind="batch") == {"FINISHED"}
            time.sleep(0.02)
    finally:
        addon.operators._JOBS.pop("batch", None)
        if not job.poll():
            job.stop()
    outcome = addon.batch_import.finish_batch(job)
    assert outcome.cancelled and outcome.summary() == "Cancelled: 1/3 clips done"
    assert any(text.startswith("1/3 clips done, analysing take_b (frame ") for text in texts)
    assert workers_seen >= 2  # the batch driver and its worker process, and then none:
    assert live_processes(process.pid) == []
    rows = manifest(results)
    statuses = {name: row["status"] for name, row in rows.items()}
    assert statuses == {"take_a": "done", "take_b": "cancelled", "take_c": "pending"}
    kept = read_trajectory(results / "take_b.npz")  # the frames finished before the cancel
    assert 0 < kept.num_frames < FRAMES["take_b"] and bool(kept.extras["partial"])
    finished = (results / "take_a.npz").stat().st_mtime_ns

    assert bpy.ops.metrabs.analyze_folder() == {"FINISHED"}  # again: resumes
    rows = manifest(results)
    statuses = {name: row["status"] for name, row in rows.items()}
    assert statuses == {"take_a": "skipped", "take_b": "done", "take_c": "done"}
    assert (results / "take_a.npz").stat().st_mtime_ns == finished  # kept, not redone
    assert read_trajectory(results / "take_b.npz").num_frames == FRAMES["take_b"]
    assert folder_settings.batch_status == "3/3 clips done"


def _no_videos(folder: Path) -> None:
    (folder / "notes.txt").write_text("not a video")
    (folder / ".hidden.mp4").write_bytes(b"\0")
    (folder / "deeper").mkdir()
    (folder / "deeper" / "clip.mp4").write_bytes(b"\0")  # only with Include Subfolders


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("unset", "Choose a Videos Folder to analyse"),
        ("missing", "Videos Folder not found: .*; choose a folder of video files"),
        ("no videos", r"No video found in .*\(tick Include Subfolders to look deeper\)"),
        ("output is a file", "Cannot write results to .*: .* is a file, not a folder"),
        ("no backend", "Backend Python not found: .*; choose one in the preferences"),
        ("bad options", "Extra Options: No closing quotation; check the quotes"),
    ],
)
def test_bad_input_is_reported_and_nothing_changes(
    addon, folder_settings, prefs, tmp_path, case, message
):
    empty = tmp_path / "empty"
    empty.mkdir()
    if case == "unset":
        folder_settings.batch_input_dir = ""
    elif case == "missing":
        folder_settings.batch_input_dir = str(tmp_path / "no such folder")
    elif case == "no videos":
        _no_videos(empty)
        folder_settings.batch_input_dir = str(empty)
    elif case == "output is a file":
        (tmp_path / "taken").write_text("a file")
        folder_settings.batch_output_dir = str(tmp_path / "taken" / "results")
    elif case == "no backend":
        prefs.python_path = str(tmp_path / "no-python")
    else:
        folder_settings.batch_options = "--ray 'unclosed"
    files = sorted(tmp_path.rglob("*"))
    data = {name: len(getattr(bpy.data, name)) for name in ("objects", "actions", "collections")}
    with pytest.raises(RuntimeError, match=message):
        bpy.ops.metrabs.analyze_folder()
    assert sorted(tmp_path.rglob("*")) == files  # no output folder, no probe file left
    assert data == {name: len(getattr(bpy.data, name)) for name in data}
    assert (folder_settings.batch_result_dir, folder_settings.batch_status) == ("", "")
    assert "batch" not in addon.operators._JOBS


def test_import_folder_needs_results(addon, folder_settings, tmp_path):
    with pytest.raises(RuntimeError, match="Press Analyze Folder first"):
        bpy.ops.metrabs.import_folder()
    folder_settings.batch_result_dir = str(tmp_path)
    objects = len(bpy.data.objects)
    with pytest.raises(RuntimeError, match="no finished results in"):
        bpy.ops.metrabs.import_folder()
    assert len(bpy.data.objects) == objects


class PanelLayout(RecordingLayout):
    """Also records the properties set on each operator button (``kind`` of Cancel)."""

    def _child(self, *args, **kwargs):
        return PanelLayout(self.log)

    row = column = box = split = _child

    def operator(self, idname, **kwargs):
        super().operator(idname, **kwargs)
        button = SimpleNamespace(**kwargs)
        self.log.append(("button", idname, button))
        return button


def _draw_folder_panel(addon) -> list:
    log = []
    addon.panels.VIEW3D_PT_metrabs_folder.draw(
        SimpleNamespace(layout=PanelLayout(log)), bpy.context
    )
    return log


def test_folder_panel_draws_idle_running_and_finished(addon):
    settings = bpy.context.scene.metrabs
    log = _draw_folder_panel(addon)
    assert ("operator", "metrabs.analyze_folder") in log and ("prop", "batch_input_dir") in log
    assert ("operator", "metrabs.import_folder") not in log  # nothing analysed yet

    state = addon.batch_import.BatchState()
    state.update({"event": "start", "clips_total": 3})
    state.update({"event": "progress", "clip": "take_b", "clips_done": 1, "clips_total": 3,
                  "clip_frames_done": 9, "clip_frames_total": 75})  # fmt: skip
    addon.operators._JOBS["batch"] = SimpleNamespace(fraction=state.fraction, text=state.text)
    try:
        log = _draw_folder_panel(addon)
    finally:
        del addon.operators._JOBS["batch"]
    assert ("progress", "1/3 clips done, analysing take_b (frame 9/75)") in log
    (cancel,) = [entry[2] for entry in log if entry[:2] == ("button", "metrabs.cancel_job")]
    assert cancel.kind == "batch" and ("operator", "metrabs.analyze_folder") not in log

    settings.batch_result_dir, settings.batch_status = "/shoot/results", "3/3 clips done"
    log = _draw_folder_panel(addon)
    assert ("operator", "metrabs.import_folder") in log and ("label", "3/3 clips done") in log


def test_folder_settings_survive_save_and_reload(extension, tmp_path):
    settings = bpy.context.scene.metrabs
    values = {
        "batch_input_dir": "//footage/day 1/", "use_batch_recursive": True,
        "batch_output_dir": "//mocap/day 1/", "batch_workers": 3, "batch_clean_preset": "fast",
        "batch_options": "--gpus 0,1", "batch_result_dir": "//mocap/day 1/",
        "batch_status": "Cancelled: 1/3 clips done",
    }  # fmt: skip
    for name, value in values.items():
        setattr(settings, name, value)
    path = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.read_homefile(app_template="")
    assert bpy.context.scene.metrabs.batch_workers == 1  # the default
    bpy.ops.wm.open_mainfile(filepath=str(path))
    settings = bpy.context.scene.metrabs
    assert {name: getattr(settings, name) for name in values} == values


def test_unregister_stops_a_running_batch(addon, folder_settings, tmp_path):
    """Disabling the add-on while a folder is analysed: the batch and its workers end, and no
    operator, panel or property of the folder workflow stays registered."""
    package = importlib.import_module(MODULE + ".metrabs_blender")
    request = addon.requests.folder_request(bpy.context)
    job = addon.jobs.WorkerJob(
        addon.batch_import.start_batch(request, TORCH_PYTHON, entry=ENTRY),
        addon.batch_import.BatchState(),
    )
    addon.operators._JOBS["batch"] = job  # as a running modal Analyze Folder leaves it
    while job.state.clip == "" and not job.poll():  # a worker is analysing a clip
        time.sleep(0.02)
    assert len(live_processes(job.process.pid)) >= 2
    package.unregister()
    try:
        assert not addon.operators._JOBS and live_processes(job.process.pid) == []
        assert not hasattr(bpy.types.Scene, "metrabs")
        assert not hasattr(bpy.types, "VIEW3D_PT_metrabs_folder")
        assert not [name for name in dir(bpy.ops.metrabs) if not name.startswith("_")]
    finally:
        package.register()
    assert "batch_input_dir" in bpy.context.scene.metrabs.bl_rna.properties
