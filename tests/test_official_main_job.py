"""The main job with the official release as a new user gets it: ``weights download`` of the
official model from a server (here a local one on 127.0.0.1 serving a bundle laid out exactly as
the release is, tests/official_layout.py) also installs the YOLOX-S person detector; then the
headless main job ``python -m metrabs_blender clip.mp4 --out scene.blend --clean default`` with the
Automatic model, and the batch command, analyse with it (flip test-time augmentation on), clean
and import. The poses equal, joint for joint, those of this project's own layout of the same
weights; the rigs land in the .blend."""

import json
import os
import shutil
import subprocess
import sys

import bpy
import numpy as np
import pytest

from inference.weights import DEFAULT_POSE_MODEL
from retarget.contract import read_trajectory
from retarget.skeletons import SMPL_HEAD_HANDS_34
from tests.official_layout import (
    REPO,
    official_layout_bundle,
    own_layout_bundle,
    render_short_clip,
)
from tests.official_names import OFFICIAL_SMPL_HEAD_30
from tests.test_download import LocalServer
from tests.workerrun import analyze

HANDS = ("lthu_h36m", "lfin_h36m", "rthu_h36m", "rfin_h36m")  # the release's hand points

pytestmark = pytest.mark.slow  # every test starts worker, batch or CLI processes

DETECTOR = REPO / "models" / "yolox_synth" / "yolox_synth.pth"
SETTINGS = ("--tta", "5", "--max-people", "2")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A model cache where `weights download` put the official model and, with it, YOLOX-S (the
    bundled synthetic detector's weights stand in for YOLOX-S's: the clip is synthetic)."""
    folder = tmp_path_factory.mktemp("official main job")
    server = LocalServer().start()
    archive = official_layout_bundle(folder / "release", archive=True)
    server.files[archive.name] = archive.read_bytes()
    server.files["yolox_s.pth"] = DETECTOR.read_bytes()
    registry = folder / "registry.json"
    registry.write_text(json.dumps({"models": [
        {"name": DEFAULT_POSE_MODEL, "url": server.url(archive.name)},
        {"name": "yolox_s", "url": server.url("yolox_s.pth")},
    ]}))  # fmt: skip
    env = {**os.environ, "METRABS_MOCAP_CACHE": str(folder / "cache"),
           "METRABS_MOCAP_REGISTRY": str(registry), "PYTHONPATH": str(REPO)}  # fmt: skip
    try:
        download = subprocess.run(
            [sys.executable, "-m", "inference", "weights", "download", DEFAULT_POSE_MODEL],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        server.stop()
    assert download.returncode == 0, download.stderr[-3000:]
    events = [json.loads(line) for line in download.stdout.splitlines()]
    assert [e["name"] for e in events if e["event"] == "installed"] == [
        DEFAULT_POSE_MODEL,
        "yolox_s",
    ]
    video, _ = render_short_clip(folder)
    return folder, env, video


@pytest.fixture(scope="module")
def own_layout_result(installed):
    folder, _, video = installed
    bundle = own_layout_bundle(folder / "own")
    output = folder / "own.npz"
    run = analyze(video, "-o", output, "--model", bundle, "--detector", DETECTOR, *SETTINGS,
                  real=True, timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    return read_trajectory(output)


def _same_poses(result, reference):
    np.testing.assert_array_equal(result.track_ids, reference.track_ids)
    assert np.isfinite(reference.poses3d).all(axis=(2, 3)).mean() >= 0.8
    np.testing.assert_allclose(result.poses3d, reference.poses3d, atol=1e-3, rtol=0)
    np.testing.assert_allclose(result.poses2d, reference.poses2d, atol=1e-3, rtol=0)


def test_the_main_job_runs_the_downloaded_release_to_a_blend(installed, own_layout_result):
    folder, env, video = installed
    work = folder / "work"  # the user's own folder, not the repository
    work.mkdir()
    shutil.copy(video, work / "clip.mp4")
    command = [sys.executable, "-m", "metrabs_blender", "clip.mp4", "--out", "scene.blend",
               "--clean", "default", "--python", sys.executable, "--device", "cpu", *SETTINGS]  # fmt: skip
    finished = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True,
                              timeout=900)  # fmt: skip
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "No official MeTRAbs model is installed" not in finished.stderr

    raw = read_trajectory(work / "scene.npz")
    assert raw.model.startswith(f"{DEFAULT_POSE_MODEL} sha256:")
    assert str(raw.extras["detector"]) == "yolox:yolox_s.pth"
    assert raw.joint_names == SMPL_HEAD_HANDS_34.joint_names  # the release has the hand points
    assert sorted(raw.extras["source_joint_names"]) == sorted(OFFICIAL_SMPL_HEAD_30 + HANDS)
    _same_poses(raw, own_layout_result)

    bpy.ops.wm.open_mainfile(filepath=str(work / "scene.blend"))
    try:
        rigs = [o for o in bpy.data.objects if o.type == "ARMATURE"]
        assert sorted(o.name for o in rigs) == [f"MeTRAbs scene P{i}" for i in raw.track_ids]
        for rig in rigs:
            action = rig.animation_data.action
            assert action is not None and action.frame_range[1] - action.frame_range[0] >= 20
        assert bpy.context.scene.camera.name.startswith("MeTRAbs camera")
    finally:
        bpy.ops.wm.read_homefile(app_template="")


def test_the_batch_command_runs_the_downloaded_release(installed, own_layout_result):
    folder, env, video = installed
    clips = folder / "clips"
    clips.mkdir()
    shutil.copy(video, clips / "clip.mp4")
    command = [sys.executable, "-m", "inference", "batch", str(clips), "-o", str(folder / "out"),
               "--workers", "1", "--analyze-options", " ".join(SETTINGS + ("--device", "cpu"))]  # fmt: skip
    finished = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=900)  # fmt: skip
    assert finished.returncode == 0, finished.stderr[-3000:]
    result = read_trajectory(folder / "out" / "clip.npz")
    assert result.model.startswith(f"{DEFAULT_POSE_MODEL} sha256:")
    assert result.joint_names == SMPL_HEAD_HANDS_34.joint_names
    _same_poses(result, own_layout_result)
