"""The import path end to end inside real Blender, through the installed extension."""

import subprocess
import sys
import zipfile
from pathlib import Path

import bpy
import numpy as np
import pytest

from inference.weights import BUNDLE_FILES
from retarget import frames
from retarget.contract import write_trajectory
from retarget.solve import ROOT_MOTIONS
from retarget.solve.rig import BONE_NAMES

REPO = Path(__file__).resolve().parents[2]


def expected_world_joints(trajectory):
    pose = frames.level_camera_pose(trajectory.poses3d, trajectory.joint_names)
    return frames.camera_to_world(trajectory.poses3d.astype(np.float64), pose)


def test_zip_holds_only_what_runs_in_blender(extension_zip):
    names = zipfile.ZipFile(extension_zip).namelist()
    assert "blender_manifest.toml" in names and "metrabs_blender/api.py" in names
    assert "inference/__main__.py" in names and "retarget/contract.py" in names
    forbidden = ("tests/", "benchmarks/", "tools/", "demo/", "inference/training/", ".ci/")
    assert not [n for n in names if n.startswith(forbidden)]
    # The offline default models ship (the Analyze button works without a download), nothing else
    # of weights or data does.
    bundled = {f"models/metrabs_small_synth/{name}" for name in BUNDLE_FILES} | {
        "models/yolox_synth/yolox_synth.pth"
    }
    assert bundled <= set(names)
    assert {n for n in names if n.startswith("models/")} == bundled | {
        "models/metrabs_small_synth/TRAINING.md",
        "models/yolox_synth/TRAINING.md",
    }
    assert not [n for n in names if n.endswith((".npz", ".npy", ".pt", ".pth", ".pkl"))
                and not n.startswith("models/")]  # fmt: skip


def test_register_unregister_round_trip(extension):
    assert hasattr(bpy.types.Scene, "metrabs") and hasattr(bpy.ops.metrabs, "import_trajectory")
    extension.unregister()
    assert not hasattr(bpy.types.Scene, "metrabs")
    assert not hasattr(bpy.types, "VIEW3D_PT_metrabs_import")
    extension.register()
    assert hasattr(bpy.types.Scene, "metrabs") and hasattr(bpy.types, "VIEW3D_PT_metrabs_import")


def test_the_panel_offers_the_solves_root_motions(extension):
    """The Root Motion menu is the solve's one list of root motions, after Auto."""
    items = extension.metrabs_blender.properties.ROOT_MOTION_ITEMS
    assert items[0][0] == "AUTO"
    assert sorted(item[0] for item in items[1:]) == sorted(ROOT_MOTIONS)


def test_operator_keys_the_motion(extension, tmp_path, two_person_trajectory):
    """Keys on every frame (the panel's Keys: Every Frame) put every bone on its joint."""
    path = write_trajectory(tmp_path / "walk.npz", two_person_trajectory)
    bpy.context.scene.metrabs.key_reduction = "DENSE"
    assert bpy.ops.metrabs.import_trajectory(filepath=str(path)) == {"FINISHED"}
    scene = bpy.context.scene
    assert scene.render.fps == 30 and scene.frame_end == scene.frame_start + 89
    expected = expected_world_joints(two_person_trajectory)
    errors = []
    for person in range(2):
        armature = bpy.data.objects[f"MeTRAbs walk P{person}"]
        action = armature.animation_data.action
        fcurves = extension.metrabs_blender.keyframes.action_fcurves(action)
        assert len(fcurves) == 4 * len(BONE_NAMES) + 3
        assert {len(fc.keyframe_points) for fc in fcurves} == {90}
        for frame in (1, 23, 60, 90):
            scene.frame_set(frame)
            for joint, bone in BONE_NAMES.items():
                head = np.array(armature.matrix_world @ armature.pose.bones[bone].head)
                errors.append(
                    np.linalg.norm(
                        head
                        - expected[
                            frame - 1, person, two_person_trajectory.joint_names.index(joint)
                        ]
                    )
                )
    assert max(errors) < 0.001  # metres: every bone head within 1 mm of its joint


def test_bad_file_reports_and_creates_nothing(extension, tmp_path):
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"not a trajectory")
    objects_before, actions_before = set(bpy.data.objects), set(bpy.data.actions)
    with pytest.raises(RuntimeError, match="broken.npz is not a trajectory .npz file"):
        bpy.ops.metrabs.import_trajectory(filepath=str(bad))
    assert set(bpy.data.objects) == objects_before and set(bpy.data.actions) == actions_before


def test_reimport_makes_a_new_take_and_keeps_user_actions(api, tmp_path, two_person_trajectory):
    path = write_trajectory(tmp_path / "clip.npz", two_person_trajectory)
    first = api.import_trajectory(path)
    second = api.import_trajectory(path)
    assert {r.action.name for r in first}.isdisjoint({r.action.name for r in second})
    assert all(r.action.name in bpy.data.actions for r in first + second)
    # an action the user had on the armature survives being replaced
    armature = first[0].armature
    user_action = bpy.data.actions.new("user take")
    armature.animation_data.action = user_action
    api.import_trajectory(path)  # new armatures; user's stays assigned
    assert armature.animation_data.action == user_action


def test_headless_cli_writes_a_blend(tmp_path, two_person_trajectory):
    path = write_trajectory(tmp_path / "clip.npz", two_person_trajectory)
    out = tmp_path / "scene.blend"
    command = [sys.executable, "-m", "metrabs_blender", str(path), "--out", str(out)]
    subprocess.run(command, cwd=REPO, check=True, capture_output=True)
    assert out.stat().st_size > 0
    refused = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert refused.returncode == 1 and "exists" in refused.stderr
    bpy.ops.wm.open_mainfile(filepath=str(out))
    assert {"MeTRAbs clip P0", "MeTRAbs clip P1"} <= set(bpy.data.objects.keys())
    camera = bpy.context.scene.camera  # the matched camera, as in the panel's Import
    assert camera.name.startswith("MeTRAbs camera") and camera.data.lens > 0


def test_headless_cli_imports_a_folder_of_results(tmp_path, two_person_trajectory):
    """A batch output folder (here without a manifest: every .npz) becomes one take per clip and
    person, as the panel's Import Folder does."""
    folder = tmp_path / "results"
    for clip in ("take one", "take two"):
        write_trajectory(folder / f"{clip}.npz", two_person_trajectory)
    out = tmp_path / "takes.blend"
    command = [sys.executable, "-m", "metrabs_blender", str(folder), "--out", str(out)]
    finished = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-2000:]
    bpy.ops.wm.open_mainfile(filepath=str(out))
    expected = {f"MeTRAbs {clip} P{i}" for clip in ("take one", "take two") for i in (0, 1)}
    assert expected <= {o.name for o in bpy.data.objects if o.type == "ARMATURE"}
    refused = subprocess.run(command + ["--overwrite", "--clean", "default"], cwd=REPO,
                             capture_output=True, text=True)  # fmt: skip
    assert refused.returncode == 1 and "batch with --clean" in refused.stderr


def test_module_is_the_installed_one(extension):
    assert extension.__name__ == "bl_ext.user_default.metrabs_mocap"
    assert (
        "extensions" in Path(extension.__file__).parts
        and REPO not in Path(extension.__file__).parents
    )


def test_headless_cli_analyses_a_video_through_the_worker(tmp_path):
    """A video input runs the real worker subprocess; with no pose model installed the job ends
    with the worker's own instructions and writes no .blend."""
    backend = REPO / ".venv" / "bin" / "python"  # the test venv with torch (`make test` builds it)
    assert backend.exists(), "run through `make test`, which creates .venv"
    video = tmp_path / "clip with spaces.avi"
    write_video = (  # 10 grey frames, written by the backend (this bpy venv may lack OpenCV)
        "import sys, cv2, numpy as np\n"
        "w = cv2.VideoWriter(sys.argv[1], cv2.VideoWriter_fourcc(*'MJPG'), 25, (320, 240))\n"
        "[w.write(np.full((240, 320, 3), 20 * i, np.uint8)) for i in range(10)]\n"
        "w.release()\n"
    )
    subprocess.run([str(backend), "-c", write_video, str(video)], check=True)
    out = tmp_path / "scene.blend"
    command = [sys.executable, "-m", "metrabs_blender", str(video), "--out", str(out)]
    command += ["--python", str(backend), "--model", str(tmp_path / "no_model_here")]
    finished = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 1
    assert "no_model_here" in finished.stderr and not out.exists()
