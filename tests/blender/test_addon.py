"""The add-on workflow in real Blender, through the installed extension: analysis through a worker
subprocess (with cancel), results list, import with camera match, overlay and review markers."""

import importlib
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import bpy
import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

from inference.camera import look_at
from retarget import frames
from retarget.contract import read_trajectory, write_trajectory
from retarget.solve.rig import BONE_NAMES
from tests.protocol_worker import GAP, UNCERTAIN, tilted_scene

MODULE = "bl_ext.user_default.metrabs_mocap"
REPO = Path(__file__).resolve().parents[2]
PROTOCOL_WORKER = (str(REPO / "tests" / "protocol_worker.py"),)


@pytest.fixture
def addon(extension):
    names = ("api", "backend", "camera", "jobs", "review", "operators")
    return SimpleNamespace(
        **{name: importlib.import_module(f"{MODULE}.metrabs_blender.{name}") for name in names}
    )


def pixels(scene, camera, points_world: np.ndarray) -> np.ndarray:
    """Blender's own projection of world points to pixel coordinates (OpenCV convention: pixel
    centres at integers, y down) through the scene camera and render resolution."""
    width, height = scene.render.resolution_x, scene.render.resolution_y
    result = []
    for point in points_world:
        ndc = world_to_camera_view(scene, camera, Vector(point))
        result.append((ndc.x * width - 0.5, (1.0 - ndc.y) * height - 0.5))
    return np.array(result)


def raw_joint_overlay_error(addon, scene, camera, trajectory) -> float:
    """Largest pixel distance between person 0's raw-joint empties seen through ``camera`` and
    their 2D joints in the trajectory, over three frames."""
    collection = addon.api.add_raw_joints(trajectory)
    errors = []
    for index in (0, 45, 89):
        scene.frame_set(scene.frame_start + index)
        for j, joint in enumerate(trajectory.joint_names):
            empty = collection.objects[f"MeTRAbs raw joints P0 {joint}"]
            projected = pixels(scene, camera, [np.array(empty.matrix_world.translation)])
            errors.append(np.abs(projected[0] - trajectory.poses2d[index, 0, j]).max())
    return max(errors)


def seen_through(trajectory, intrinsics):
    """The trajectory with other intrinsics and the 2D joints they give."""
    poses3d = trajectory.poses3d
    poses2d = poses3d[..., :2] / poses3d[..., 2:] * np.diag(intrinsics)[:2] + intrinsics[:2, 2]
    return trajectory.replace(intrinsics=intrinsics, poses2d=poses2d.astype(np.float32))


def test_analyze_video_runs_the_worker_to_completion(addon, tmp_path, footage):
    events = []
    result = addon.api.analyze_video(
        footage, tmp_path / "out" / "clip.npz", python=sys.executable, max_people=2,
        on_event=lambda event, state: events.append(event["event"]), worker=PROTOCOL_WORKER,
    )  # fmt: skip
    assert result.path == tmp_path / "out" / "clip.npz" and not result.partial
    assert events[0] == "start" and events[-1] == "done" and events.count("progress") == 90
    first, second = result.people
    assert (first.track_id, first.frames_visible, first.first_frame, first.last_frame) == (
        0, 90, 0, 89
    )  # fmt: skip
    assert (second.frames_visible, second.first_frame) == (90 - (GAP[1] - GAP[0]), 0)
    assert first.mean_score == pytest.approx(0.9, abs=1e-6)
    expected_uncertainty = 150.0 * (UNCERTAIN[1] - UNCERTAIN[0]) / 90
    assert first.mean_uncertainty_mm == pytest.approx(expected_uncertainty, rel=1e-5)


def test_cancel_mid_run_keeps_the_partial_result_and_ends_the_worker(addon, tmp_path, footage):
    request = addon.backend.AnalyzeRequest(
        str(footage), str(tmp_path / "clip.npz"), extra_args=("--frame-delay", "0.05")
    )
    process = addon.api.start_analysis(request, python=sys.executable, worker=PROTOCOL_WORKER)
    job = addon.jobs.WorkerJob(process)  # what the modal operator's timer polls
    while not job.poll():
        if job.state.frames_done >= 5 and not process.cancel_requested:
            job.cancel()  # the Cancel button
        time.sleep(0.02)
    result = addon.api.finish_analysis(job.outcome)
    assert result.partial and job.outcome.cancelled and job.outcome.returncode == 143
    kept = read_trajectory(result.path)
    assert 5 <= kept.num_frames < 90 and kept.num_frames == job.state.frames_done
    np.testing.assert_array_equal(kept.poses3d, tilted_scene().poses3d[: kept.num_frames])
    with pytest.raises(ProcessLookupError):
        os.kill(process.pid, 0)


def test_worker_failure_is_one_plain_message(addon, tmp_path, footage):
    missing = tmp_path / "gone.mp4"
    with pytest.raises(addon.api.MocapError, match="Footage not found"):
        addon.api.analyze_video(missing, tmp_path / "o.npz", python=sys.executable)
    with pytest.raises(
        addon.backend.BackendError, match="stopped with exit code 2: .*unrecognized"
    ):
        addon.api.analyze_video(
            footage, tmp_path / "o.npz", python=sys.executable, worker=PROTOCOL_WORKER,
            extra_args=("--no-such-option",),
        )  # fmt: skip


def test_import_overlays_the_footage_through_the_matched_camera(addon, tmp_path, footage):
    """The analysis' camera and rigs: every bone head projects within 2 px of the 2D joints."""
    path = write_trajectory(tmp_path / "walk.npz", tilted_scene())
    scene = bpy.context.scene
    settings = scene.metrabs
    addon.api.load_results(path, scene)
    settings.footage_source = "FILE"
    settings.footage_path = str(footage)
    settings.clean_preset = "OFF"  # the exact poses as they are
    assert bpy.ops.metrabs.import_results() == {"FINISHED"}
    assert settings.cleaned_path == str(path)
    trajectory = read_trajectory(path)
    camera = scene.camera
    fx, width = trajectory.intrinsics[0, 0], trajectory.image_size[0]
    assert camera.data.lens == pytest.approx(fx / width * 36.0, rel=1e-6)
    assert camera.data.sensor_fit == "HORIZONTAL"
    assert (scene.render.resolution_x, scene.render.resolution_y) == (1280, 720)
    background = camera.data.background_images[0]
    assert background.source == "MOVIE_CLIP" and Path(background.clip.filepath) == footage
    errors = []
    for index in (0, 22, 37, 59, 75, 89):  # outside person 1's gap
        scene.frame_set(scene.frame_start + index)
        for person in range(2):
            armature = bpy.data.objects[f"MeTRAbs walk P{person}"]
            names = [joint for joint in BONE_NAMES if joint in trajectory.joint_names]
            heads = np.array(
                [armature.matrix_world @ armature.pose.bones[BONE_NAMES[j]].head for j in names]
            )
            expected = trajectory.poses2d[
                index, person, [trajectory.joint_names.index(j) for j in names]
            ]
            errors.append(np.abs(pixels(scene, camera, heads) - expected).max())
    assert max(errors) < 2.0


def test_floor_fit_pose_gives_the_tilted_camera(addon, tmp_path):
    """With the cleaning's ``world_from_camera`` (here the true one), the Blender camera stands
    where the real one stood, tilted down, and the raw joints overlay their 2D positions."""
    trajectory = tilted_scene()
    eye, target = np.array([0.0, -5.0, 2.6]), np.array([0.0, 0.0, 0.9])
    trajectory.extras["world_from_camera"] = look_at(eye, target)
    scene = bpy.context.scene
    camera = addon.api.setup_camera(trajectory)
    assert np.allclose(camera.matrix_world.translation, eye, atol=1e-6)
    forward = np.array(camera.matrix_world.to_3x3() @ Vector((0, 0, -1)))
    assert np.degrees(np.arcsin(-forward[2])) == pytest.approx(np.degrees(np.arctan2(1.7, 5.0)))
    assert raw_joint_overlay_error(addon, scene, camera, trajectory) < 0.01


def test_review_markers_mark_the_gap_and_the_uncertain_span(addon, tmp_path):
    path = write_trajectory(tmp_path / "walk.npz", tilted_scene())
    scene = bpy.context.scene
    scene.frame_start = 10
    scene.render.fps, scene.render.fps_base = 30, 1.0
    scene.timeline_markers.new("my own marker", frame=3)
    markers = addon.api.add_review_markers(path, uncertainty_mm=100.0)
    names = sorted(marker.name for marker in markers)
    assert names == [
        f"MeTRAbs P0 low confidence {10 + UNCERTAIN[0]}-{10 + UNCERTAIN[1] - 1}",
        f"MeTRAbs P1 gap {10 + GAP[0]}-{10 + GAP[1] - 1}",
    ]
    assert {marker.frame for marker in markers} == {10 + UNCERTAIN[0], 10 + GAP[0]}
    addon.api.add_review_markers(path, uncertainty_mm=200.0)  # replaces its own markers only
    assert sorted(m.name for m in scene.timeline_markers) == [
        f"MeTRAbs P1 gap {10 + GAP[0]}-{10 + GAP[1] - 1}",
        "my own marker",
    ]


def test_filled_spans_from_the_cleaning_are_marked(addon, tmp_path):
    """The cleaning's ``filled`` codes: 1-3 are made-up joints, 0 measured, 4 absent."""
    trajectory = tilted_scene()
    filled = np.zeros(trajectory.poses3d.shape[:3], np.uint8)
    filled[5:9, 0, 3] = 1  # interpolated
    filled[20, 0, 7] = 2  # bridged
    filled[GAP[0] : GAP[1], 1] = 4  # absent: already a gap, not "filled"
    trajectory.extras["filled"] = filled
    spans = addon.review.review_spans(trajectory, uncertainty_mm=1e9)
    assert [(s.track_id, s.kind, s.start, s.end) for s in spans] == [
        (0, "filled", 5, 8),
        (0, "filled", 20, 20),
        (1, "gap", GAP[0], GAP[1] - 1),
    ]


def test_raw_joint_empties_follow_the_trajectory(addon, extension, tmp_path):
    path = write_trajectory(tmp_path / "walk.npz", tilted_scene())
    trajectory = read_trajectory(path)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    collection = addon.api.add_raw_joints(path, track_ids=[1])
    assert len(collection.objects) == trajectory.num_joints
    pose = addon.camera.world_from_camera(trajectory)
    world = frames.camera_to_world(trajectory.poses3d.astype(np.float64), pose)
    head = collection.objects["MeTRAbs raw joints P1 head"]
    j = trajectory.joint_names.index("head")
    for index in (0, 30, 89):
        scene.frame_set(scene.frame_start + index)
        assert np.allclose(head.matrix_world.translation, world[index, 1, j], atol=1e-5)
    fcurve = extension.metrabs_blender.keyframes.action_fcurves(head.animation_data.action)[0]
    keyed = np.array([point.co[0] for point in fcurve.keyframe_points])
    assert len(keyed) == 90 - (GAP[1] - GAP[0])  # the gap is not keyed


def test_raw_joints_of_a_cleaned_trajectory_are_the_raw_ones(addon, tmp_path):
    trajectory = tilted_scene()
    raw = trajectory.poses3d.copy()
    raw[..., 0] += 40.0  # the estimator's poses, 4 cm to the right of the cleaned ones
    trajectory.extras["raw_poses3d"] = raw
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    collection = addon.api.add_raw_joints(trajectory, track_ids=[0])
    pose = addon.camera.world_from_camera(trajectory)
    empty = collection.objects["MeTRAbs raw joints P0 lwri"]
    j = trajectory.joint_names.index("lwri")
    scene.frame_set(scene.frame_start + 12)
    expected = frames.camera_to_world(raw[12, 0, j].astype(float), pose)
    assert np.allclose(empty.matrix_world.translation, expected, atol=1e-5)


def test_camera_intrinsics_and_footage_timing(addon, tmp_path, footage):
    """Off-centre principal point and a clip that starts at footage frame 10."""
    trajectory = tilted_scene()
    intrinsics = trajectory.intrinsics.copy()
    intrinsics[0, 2] += 37.0
    intrinsics[1, 2] -= 21.0
    shifted = seen_through(trajectory, intrinsics)
    shifted = shifted.replace(frame_times=trajectory.frame_times + 10 / 30.0)
    clip = addon.api.load_footage(footage)
    scene = bpy.context.scene
    scene.frame_start = 5
    camera = addon.api.setup_camera(shifted, clip=clip)
    shown = camera.data.background_images[0].clip
    assert shown.frame_start == 5 - 10  # footage frame 10 (0-based) plays at the start frame
    assert clip.frame_start == 1  # the loaded clip, maybe used elsewhere, keeps its timing
    assert np.degrees(camera.data.angle_x) == pytest.approx(55.0, abs=1e-4)  # Blender's own FOV
    pose = addon.camera.world_from_camera(shifted)
    world = frames.camera_to_world(shifted.poses3d[::10, 0].reshape(-1, 3).astype(float), pose)
    projected = pixels(scene, camera, world)
    expected = shifted.poses2d[::10, 0].reshape(-1, 2)
    assert np.abs(projected - expected).max() < 0.01
    assert scene.render.fps == 30 and scene.frame_end == 5 + 89


def test_people_list_and_partial_import(addon, tmp_path):
    path = write_trajectory(tmp_path / "walk.npz", tilted_scene())
    scene = bpy.context.scene
    scene.metrabs.trajectory_path = str(path)
    assert bpy.ops.metrabs.load_results() == {"FINISHED"}
    people = scene.metrabs.people
    assert [(p.name, p.frames_visible, p.first_frame, p.last_frame) for p in people] == [
        ("P0", 90, 1, 90),
        ("P1", 80, 1, 90),
    ]
    people[0].use_import = False
    scene.metrabs.use_camera = False
    assert bpy.ops.metrabs.import_results() == {"FINISHED"}
    assert "MeTRAbs walk P1" in bpy.data.objects and "MeTRAbs walk P0" not in bpy.data.objects
    assert tuple(bpy.data.objects["MeTRAbs walk P1"].color[:3]) == pytest.approx(people[1].colour)
    people[1].use_import = False
    with pytest.raises(RuntimeError, match="Tick at least one person"):
        bpy.ops.metrabs.import_results()


def test_analyze_operator_reports_what_to_fix(addon):
    settings = bpy.context.scene.metrabs
    with pytest.raises(RuntimeError, match="Choose a movie clip to analyse"):
        bpy.ops.metrabs.analyze_footage()
    settings.footage_source = "FILE"
    settings.footage_path = "/nonexistent/clip.mp4"
    with pytest.raises(RuntimeError, match="Footage not found: /nonexistent/clip.mp4"):
        bpy.ops.metrabs.analyze_footage()


def test_import_onto_a_target_armature(addon, extension, tmp_path):
    """One ticked person onto the user's armature (here a rig an earlier import made), with the
    panel's retarget options; more than one ticked person is refused before anything changes."""
    path = write_trajectory(tmp_path / "walk.npz", tilted_scene())
    scene = bpy.context.scene
    settings = scene.metrabs
    addon.api.load_results(path, scene)
    settings.clean_preset, settings.use_camera, settings.use_review_markers = "OFF", False, False
    settings.people[1].use_import = False
    assert bpy.ops.metrabs.import_results() == {"FINISHED"}
    character = bpy.data.objects["MeTRAbs walk P0"]
    first_take = character.animation_data.action
    settings.target, settings.rig_map, settings.root_motion = character, "metrabs", "camera"
    settings.use_nla = True
    settings.people[0].use_import, settings.people[1].use_import = True, True
    objects = set(bpy.data.objects)
    with pytest.raises(RuntimeError, match="Tick one person to put onto MeTRAbs walk P0"):
        bpy.ops.metrabs.import_results()
    assert set(bpy.data.objects) == objects
    settings.people[0].use_import = False  # P1, the runner, onto the walker's rig
    assert bpy.ops.metrabs.import_results() == {"FINISHED"}
    track = character.animation_data.nla_tracks[-1]  # pushed down as an NLA track
    take = track.strips[0].action
    assert take != first_take and "P1" in take.name and set(bpy.data.objects) == objects
    assert len(extension.metrabs_blender.keyframes.action_fcurves(take)) > 0
    assert character.color[:] == pytest.approx((*settings.people[0].colour, 1.0))  # kept
    settings.rig_map = "JSON"
    with pytest.raises(RuntimeError, match="Choose a rig map file"):
        bpy.ops.metrabs.import_results()


@pytest.mark.parametrize("fy_over_fx", [1.003, 0.9])
def test_non_square_pixels_and_an_off_centre_principal_point_overlay(addon, fy_over_fx):
    """Calibrated intrinsics (fx != fy, principal point off the centre) give the render a pixel
    aspect and the camera a shift under which the raw joints land on their 2D positions."""
    trajectory = tilted_scene()
    intrinsics = trajectory.intrinsics.copy()
    intrinsics[1, 1] *= fy_over_fx
    intrinsics[:2, 2] += (31.0, -17.0)
    trajectory = seen_through(trajectory, intrinsics)
    trajectory.extras["world_from_camera"] = look_at(
        np.array([0.0, -5.0, 2.6]), np.array([0.0, 0.0, 0.9])
    )
    scene = bpy.context.scene
    camera = addon.api.setup_camera(trajectory)
    render = scene.render
    assert render.pixel_aspect_x / render.pixel_aspect_y == pytest.approx(fy_over_fx, rel=1e-6)
    assert raw_joint_overlay_error(addon, scene, camera, trajectory) < 0.01


def test_an_import_whose_camera_blender_cannot_take_creates_nothing(addon, tmp_path):
    trajectory = tilted_scene()
    intrinsics = trajectory.intrinsics.copy()
    intrinsics[1, 1] *= 500.0
    path = write_trajectory(tmp_path / "odd.npz", trajectory.replace(intrinsics=intrinsics))
    objects, actions = set(bpy.data.objects), set(bpy.data.actions)
    fps = bpy.context.scene.render.fps
    with pytest.raises(addon.api.MocapError, match="focal lengths"):
        addon.api.import_analysis(path, camera=True)
    assert set(bpy.data.objects) == objects and set(bpy.data.actions) == actions
    assert bpy.context.scene.render.fps == fps


def test_loading_other_results_forgets_the_earlier_ones_cleaning_and_partial_flag(addon, tmp_path):
    partial = tilted_scene()
    partial.extras["partial"] = np.array(True)
    first = write_trajectory(tmp_path / "first.npz", partial)
    second = write_trajectory(tmp_path / "second.npz", tilted_scene())
    settings = bpy.context.scene.metrabs
    addon.api.load_results(first)
    assert settings.analysis_partial
    settings.cleaned_path = str(tmp_path / "cleaned" / "first.npz")  # as Import leaves it
    addon.api.load_results(second)
    assert settings.trajectory_path == str(second)
    assert settings.cleaned_path == "" and not settings.analysis_partial


def test_import_file_lists_the_people_of_the_file_it_imported(addon, tmp_path):
    path = write_trajectory(tmp_path / "walk.npz", tilted_scene())
    settings = bpy.context.scene.metrabs
    settings.people.add().name = "P9"  # left from another file
    assert bpy.ops.metrabs.import_trajectory(filepath=str(path)) == {"FINISHED"}
    assert settings.trajectory_path == str(path)
    assert [person.name for person in settings.people] == ["P0", "P1"]


def test_footage_that_would_drift_from_the_motion_is_refused(addon, tmp_path, footage):
    """Scene timing not matched, the scene at 24 fps, the footage at 30: refused before anything
    is made."""
    path = write_trajectory(tmp_path / "walk.npz", tilted_scene())
    clip = addon.api.load_footage(footage)
    bpy.context.scene.render.fps = 24
    objects = set(bpy.data.objects)
    with pytest.raises(addon.api.MocapError, match="would drift"):
        addon.api.import_analysis(path, match_scene=False, clip=clip, clean_preset=None)
    assert set(bpy.data.objects) == objects
    created = addon.api.import_analysis(path, match_scene=False, clean_preset=None)  # no footage
    assert created.camera is not None
