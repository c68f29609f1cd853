"""The add-on driving the real analysis worker (``inference.analysis``) as a subprocess: a full run
on a rendered synthetic clip, cancel mid-run and resume, the overlay of the imported rigs on the
worker's 2D output (project's test models, ``tests/worker_harness.py``: the real worker with a
colour-joint pose network and detector), and the Analyze and Import buttons with the extension's
own worker and the bundled offline models on the bundled sample."""

import importlib
import os
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import bpy
import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view

from inference.camera import project
from retarget.contract import read_trajectory
from retarget.solve.rig import BONE_NAMES

MODULE = "bl_ext.user_default.metrabs_mocap"
REPO = Path(__file__).resolve().parents[2]
# The worker needs torch and OpenCV: the project's main environment has them (the 4.2 venv not).
TORCH_PYTHON = str(REPO / ".venv" / "bin" / "python")
# the root and spine: where the solve puts bone heads exactly
SPINE = ("pelv", "bell", "spin", "thor", "neck", "head")
HARNESS = (
    "-c",
    f"import sys; sys.path.insert(0, {str(REPO)!r}); from tests.worker_harness import main; "
    "sys.exit(main(sys.argv[1:]))",
)
RENDER = (
    "import sys; from retarget.contract import write_trajectory; "
    "from tests.synthvideo import walking_people, write_clip; "
    "truth = walking_people(2, 2.0); write_clip(sys.argv[1], truth); "
    "write_trajectory(sys.argv[2], truth)"
)


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> SimpleNamespace:
    """Two people walking, 50 frames at 25 fps, 640x360, rendered to an .mp4 with its truth."""
    folder = tmp_path_factory.mktemp("sample")
    video, truth = folder / "two people.mp4", folder / "truth.npz"
    subprocess.run([TORCH_PYTHON, "-c", RENDER, str(video), str(truth)], cwd=REPO, check=True)
    return SimpleNamespace(video=video, truth=read_trajectory(truth))


@pytest.fixture
def addon(extension):
    names = ("api", "backend", "jobs")
    return SimpleNamespace(
        **{name: importlib.import_module(f"{MODULE}.metrabs_blender.{name}") for name in names}
    )


@pytest.fixture(scope="module")
def analysis(sample, tmp_path_factory, extension):
    """One complete analysis of the sample through the real worker (shared by the tests)."""
    api = importlib.import_module(MODULE + ".metrabs_blender.api")
    events = []
    result = api.analyze_video(
        sample.video, tmp_path_factory.mktemp("analysis") / "two people.npz",
        python=TORCH_PYTHON, device="cpu", worker=HARNESS,
        on_event=lambda event, state: events.append(event),
    )  # fmt: skip
    return SimpleNamespace(result=result, events=events)


def test_a_full_analysis_through_the_worker(analysis, sample):
    result, events = analysis.result, analysis.events
    assert not result.partial and result.warnings == ()
    assert events[0]["event"] == "start" and events[0]["frames_total"] == 50
    assert events[-1]["event"] == "done" and events[-1]["people"] == 2
    assert [(p.frames_visible, p.first_frame, p.last_frame) for p in result.people] == [
        (50, 0, 49),
        (50, 0, 49),
    ]
    output = read_trajectory(result.path)
    assert output.num_frames == 50 and list(output.image_size) == [640, 360]


def overlay_errors(scene, output, cleaned, track_ids) -> tuple[list, list]:
    """Pixel distances, through the scene camera, of (1) every raw-joint empty to the worker's own
    2D joint (which the footage shows) in every frame and (2) the rigs' root and spine bone heads
    to the cleaned joints at sample frames (every 6th, where the cleaned trajectory has the
    person). Limbs hang from hips and collarbones at the rig's fixed offsets, so they follow only
    as far as the cleaned proportions allow (the rig's fidelity), and are not checked here."""
    camera = scene.camera
    width, height = output.image_size

    def pixel(point) -> np.ndarray:
        ndc = world_to_camera_view(scene, camera, point)
        return np.array([ndc.x * width - 0.5, (1 - ndc.y) * height - 0.5])

    cleaned2d = project(cleaned.poses3d.astype(float), cleaned.intrinsics)
    raw_errors, rig_errors = [], []
    for track_id in track_ids:
        person = list(output.track_ids).index(track_id)
        rig = next(
            o for o in bpy.data.objects if o.type == "ARMATURE" and o.name.endswith(f" P{track_id}")
        )
        for index in range(output.num_frames):
            scene.frame_set(scene.frame_start + index)
            for column, joint in enumerate(output.joint_names):
                target = output.poses2d[index, person, column]
                if np.isfinite(target).all():
                    empty = bpy.data.objects[f"MeTRAbs raw joints P{track_id} {joint}"]
                    position = empty.matrix_world.translation
                    raw_errors.append(np.linalg.norm(pixel(position) - target))
            if index % 6 == 0 and np.isfinite(cleaned.poses3d[index, person]).all():
                for joint in SPINE:
                    head = rig.matrix_world @ rig.pose.bones[BONE_NAMES[joint]].head
                    target = cleaned2d[index, person, cleaned.joint_names.index(joint)]
                    rig_errors.append(np.linalg.norm(pixel(head) - target))
    return raw_errors, rig_errors


def test_import_overlays_the_workers_2d_output(analysis, sample, addon):
    """Cleaned and imported, seen through the matched camera, the joints land on the worker's 2D
    output (see :func:`overlay_errors`)."""
    clip = addon.api.load_footage(sample.video)
    created = addon.api.import_analysis(analysis.result.path, clip=clip, raw_joints=True)
    output = read_trajectory(analysis.result.path)
    cleaned = read_trajectory(created.trajectory_path)
    scene, camera = bpy.context.scene, created.camera
    assert scene.camera == camera and camera.data.background_images[0].clip == clip
    assert camera.data.lens == pytest.approx(output.intrinsics[0, 0] / 640 * 36.0, rel=1e-6)
    assert clip.frame_start == scene.frame_start  # the analysis starts at footage frame 0
    track_ids = [imported.track_id for imported in created.people]
    raw_errors, rig_errors = overlay_errors(scene, output, cleaned, track_ids)
    assert len(raw_errors) > 2000 and max(raw_errors) < 0.01
    assert len(rig_errors) >= 2 * 8 * len(SPINE) and max(rig_errors) < 2.0


def test_cancel_mid_run_keeps_frames_and_resume_finishes(sample, addon, tmp_path):
    output = tmp_path / "run.npz"
    request = addon.backend.AnalyzeRequest(
        str(sample.video), str(output), device="cpu",
        extra_args=("--batch-size", "4", "--detect-every", "1"),
    )  # fmt: skip
    slow = (*HARNESS[:1], HARNESS[1], "--slow", "0.3", "--frame-model")
    process = addon.api.start_analysis(request, python=TORCH_PYTHON, worker=slow)
    job = addon.jobs.WorkerJob(process)  # what the modal operator polls on its timer
    while not job.poll():
        if job.state.frames_done > 0 and not process.cancel_requested:
            job.cancel()  # the Cancel button
        time.sleep(0.02)
    result = addon.api.finish_analysis(job.outcome)
    assert result.partial and job.outcome.returncode == 143  # the worker's SIGTERM exit code
    kept = read_trajectory(output)
    assert 0 < kept.num_frames < 50 and bool(kept.extras["partial"])
    with pytest.raises(ProcessLookupError):
        os.kill(process.pid, 0)  # the worker is gone
    resumed = addon.api.analyze_video(
        sample.video, output, python=TORCH_PYTHON, device="cpu", resume=True,
        worker=(*HARNESS, "--frame-model"), extra_args=("--batch-size", "4", "--detect-every", "1"),
    )  # fmt: skip
    assert not resumed.partial and read_trajectory(output).num_frames == 50


def test_analyze_and_import_buttons_on_the_bundled_sample(bundled_sample, addon, tmp_path):
    """The Analyze and Import buttons as an animator presses them, with only the extension
    installed and an empty model cache: the worker shipped in the zip runs the bundled offline
    models on frames 1-30 of the bundled sample, lists the people, and Import builds rigs and the
    matched camera whose view puts the joints on the worker's 2D output."""
    video, _ = bundled_sample
    settings = bpy.context.scene.metrabs
    settings.footage_source, settings.footage_path = "FILE", str(video)
    settings.output_dir = str(tmp_path)
    settings.use_frame_range, settings.frame_first, settings.frame_last = True, 1, 30
    settings.use_raw_joints, settings.max_people = True, 2
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.python_path, prefs.model, prefs.device = TORCH_PYTHON, "AUTO", "cpu"
    os.environ["METRABS_MOCAP_CACHE"] = str(tmp_path / "empty cache")
    try:
        assert bpy.ops.metrabs.analyze_footage() == {"FINISHED"}
    finally:
        del os.environ["METRABS_MOCAP_CACHE"]
        prefs.python_path, prefs.device = "", "auto"
    output = read_trajectory(settings.trajectory_path)
    assert output.model.startswith("metrabs_small_synth") and output.num_frames == 30
    assert [person.track_id for person in settings.people] == list(output.track_ids)
    assert len(settings.people) == 2
    assert bpy.ops.metrabs.import_results() == {"FINISHED"}
    cleaned = read_trajectory(settings.cleaned_path)
    camera = bpy.context.scene.camera
    assert camera.data.lens == pytest.approx(output.intrinsics[0, 0] / 640 * 36.0, rel=1e-6)
    raw_errors, rig_errors = overlay_errors(
        bpy.context.scene, output, cleaned, list(output.track_ids)
    )
    assert len(raw_errors) > 30 * 2 * 20 and max(raw_errors) < 0.01
    assert len(rig_errors) >= 9 * len(SPINE) and max(rig_errors) < 2.0  # 5 sample frames each
