"""Importing a folder of batch results as takes, through the installed extension."""

import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import bpy
import pytest

from inference.batch import VIDEO_SUFFIXES, ClipJob, ClipRecord, Manifest
from inference.training.synth.clip import default_camera, motions_to_trajectory
from inference.training.synth.motion import generate_motion
from retarget.contract import write_trajectory

MODULE = "bl_ext.user_default.metrabs_mocap.metrabs_blender.batch_import"
REPO = Path(__file__).resolve().parents[2]


def _trajectory(people: int, seconds: float, fps: float = 30.0):
    motions = [
        generate_motion("walk", seconds, fps, seed=p, start_xy=(1.5 * p, 0.0))
        for p in range(people)
    ]
    return motions_to_trajectory(motions, default_camera(motions))


@pytest.fixture
def batch_folder(tmp_path):
    """A batch output folder as ``inference.batch`` leaves it: a manifest with two finished clips
    (one also cleaned), one failed clip and one clip whose file is damaged; pair_b has a cleaned
    file from an earlier run (analysed again without cleaning since)."""
    out = tmp_path / "out"
    manifest = Manifest(out)
    clips = {"walk_a": _trajectory(1, 1.0), "pair_b": _trajectory(2, 2.0)}
    for name in ("walk_a", "pair_b", "broken_c", "failed_d"):
        cleaned = str(out / "cleaned" / f"{name}.npz") if name == "walk_a" else None
        job = ClipJob(name, str(tmp_path / f"{name}.mp4"), str(out / f"{name}.npz"), "", cleaned)
        status = "failed" if name == "failed_d" else "done"
        if name in clips:
            write_trajectory(job.output, clips[name])
        elif name == "broken_c":
            (out / "broken_c.npz").write_bytes(b"PK\x03\x04 truncated")
        manifest.update(job, ClipRecord(clip=name, status=status))
    manifest.flush()
    # the cleaned take of walk_a is 1.5 s long, so we can tell which file was imported
    write_trajectory(out / "cleaned" / "walk_a.npz", _trajectory(1, 1.5))
    write_trajectory(out / "cleaned" / "pair_b.npz", _trajectory(1, 0.5))  # stale: not imported
    return out


def test_import_folder_makes_one_take_per_clip_and_person(extension, batch_folder):
    batch_import = importlib.import_module(MODULE)
    result = batch_import.import_folder(batch_folder)

    assert list(result.takes) == ["walk_a", "pair_b"]  # manifest order, complete clips only
    assert list(result.errors) == ["broken_c"] and "broken_c.npz" in result.errors["broken_c"]
    actions = sorted(r.action.name for rs in result.takes.values() for r in rs)
    assert actions == [
        "MeTRAbs pair_b P0 take 1", "MeTRAbs pair_b P1 take 1", "MeTRAbs walk_a P0 take 1"
    ]  # fmt: skip
    assert len({id(r.action) for rs in result.takes.values() for r in rs}) == 3
    # the cleaned walk_a (45 frames) was preferred over the raw one (30 frames); pair_b's
    # leftover cleaned file (1 person, 15 frames) was not taken for its new analysis
    assert len(result.takes["walk_a"][0].frames) == 45
    assert [len(take.frames) for take in result.takes["pair_b"]] == [60, 60]
    clips = {c.name: sorted(o.name for o in c.objects) for c in result.collection.children}
    assert clips == {
        "walk_a": ["MeTRAbs walk_a P0"],
        "pair_b": ["MeTRAbs pair_b P0", "MeTRAbs pair_b P1"],
    }
    scene = bpy.context.scene
    assert scene.render.fps == 30 and scene.frame_end == scene.frame_start + 59  # longest: 2 s


def test_import_folder_without_results_changes_nothing(extension, tmp_path):
    batch_import = importlib.import_module(MODULE)
    before = len(bpy.data.objects), len(bpy.data.collections)
    with pytest.raises(batch_import.MocapError, match="no finished results"):
        batch_import.import_folder(tmp_path)
    assert (len(bpy.data.objects), len(bpy.data.collections)) == before


def test_import_folder_onto_one_rig_makes_one_take_per_clip(extension, batch_folder):
    batch_import = importlib.import_module(MODULE)
    rig = batch_import.import_folder(batch_folder).takes["walk_a"][0].armature
    before = set(bpy.data.objects)
    result = batch_import.import_folder(batch_folder, target=rig, use_nla=True)
    assert set(bpy.data.objects) == before and result.collection is None  # no new rigs
    assert {name: [r.armature for r in rs] for name, rs in result.takes.items()} == {
        "walk_a": [rig], "pair_b": [rig]
    }  # fmt: skip
    takes = [rs[0].action.name for rs in result.takes.values()]
    assert takes == [f"{rig.name} walk_a P0 take 1", f"{rig.name} pair_b P0 take 1"]
    assert sorted(t.name for t in rig.animation_data.nla_tracks) == sorted(takes)


def backend_python() -> str:
    """A Python with OpenCV for the batch command: this one, or the dev venv's when this is the
    bpy 4.2 venv (Blender's own Python never has it; the add-on runs a backend Python too)."""
    if importlib.util.find_spec("cv2") is not None:
        return sys.executable
    return str(REPO / ".venv" / "bin" / "python")


def test_analyze_folder_runs_the_batch_command_and_imports_the_results(extension, tmp_path):
    batch_import = importlib.import_module(MODULE)
    clips = tmp_path / "shoot"
    clips.mkdir()
    # two people the test pose model sees whole in some frames; lossless, so colours stay exact
    write_clips = (
        "import sys; from tests.synthvideo import walking_people, write_clip; "
        "truth = walking_people(2, 0.8, seed=2); "
        "[write_clip(f'{sys.argv[1]}/{name}.mkv', truth) for name in ('take_a', 'take_b')]"
    )
    subprocess.run([backend_python(), "-c", write_clips, str(clips)], cwd=REPO, check=True)
    request = batch_import.BatchRequest(
        inputs=(str(clips),),
        output=str(tmp_path / "results"),
        workers=1,
        analyze_args=("--device", "cpu", "--min-track-frames", "3"),
        extra_args=("--analyzer", "tests.batchclips:make_worker_analyzer"),
    )
    states = []
    result = batch_import.analyze_folder(
        request,
        python=backend_python(),
        entry=(str(REPO / "tests" / "batch_entry.py"),),
        on_event=lambda event, state: states.append((state.fraction, state.text())),
    )
    assert sorted(result.takes) == ["take_a", "take_b"] and not result.errors
    assert [len(result.takes[n]) for n in ("take_a", "take_b")] == [2, 2]
    assert states[-1][0] == 1.0 and states[0][1].startswith("0/2 clips done")
    assert [f for f, _ in states] == sorted(f for f, _ in states)  # progress never goes back


def test_progress_text_counts_clips_and_names_the_current_one(extension):
    batch_import = importlib.import_module(MODULE)
    state = batch_import.BatchState()
    assert state.text().startswith("Starting") and state.fraction == 0.0
    events = [
        {"event": "start", "clips_total": 3, "workers": 1},
        {"event": "progress", "clip": "take_a", "clip_frames_done": 20, "clip_frames_total": 20,
         "clips_done": 1, "clips_total": 3, "clips_failed": 0, "eta_s": 8.2,
         "clip_status": "done"},
        {"event": "progress", "clip": "take_b", "clip_frames_done": 9, "clip_frames_total": 75,
         "clips_done": 1, "clips_total": 3, "clips_failed": 0, "eta_s": 7.6},
    ]  # fmt: skip
    texts = []
    for event in events:
        state.update(event)
        texts.append(state.text())
    assert texts[1:] == [
        "1/3 clips done, 8 s left",
        "1/3 clips done, analysing take_b (frame 9/75), 8 s left",
    ]
    state.update({**events[2], "clip_status": "failed", "clips_done": 2, "clips_failed": 1})
    state.update({"event": "warning", "message": "clip take_b failed: unreadable"})
    assert state.text() == "2/3 clips done, 1 failed, 8 s left" and state.fraction == 2 / 3
    assert state.warnings == ["clip take_b failed: unreadable"]


def test_the_panel_knows_the_video_suffixes_of_the_batch_command(extension):
    """The add-on refuses a folder without videos itself (it never imports ``inference``), so
    its list must be the batch command's."""
    assert importlib.import_module(MODULE).VIDEO_SUFFIXES == VIDEO_SUFFIXES


def test_analysis_options_are_the_single_clip_options(extension):
    batch_import = importlib.import_module(MODULE)
    options = batch_import.analysis_options(
        device="cpu", model="metrabs_small_synth", fov_deg=60.0, max_people=2
    )
    assert options == (
        "--fov", "60", "--max-people", "2", "--device", "cpu", "--model", "metrabs_small_synth"
    )  # fmt: skip
    assert batch_import.analysis_options() == ()
    assert batch_import.analysis_options(focal_mm=24, sensor_mm=36) == (
        "--focal-mm", "24", "--sensor-width", "36"
    )  # fmt: skip
    with pytest.raises(batch_import.MocapError, match="either a field of view or a focal"):
        batch_import.analysis_options(fov_deg=60, focal_mm=24)
    request = batch_import.BatchRequest(("/v",), "/out", analyze_args=options)
    command = batch_import.batch_command("py", request)
    assert command[-1] == (
        "--analyze-options=--fov 60 --max-people 2 --device cpu --model metrabs_small_synth"
    )
