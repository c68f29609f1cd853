"""The add-on's Model = Automatic with the official release installed (a bundle laid out exactly as
the release is, tests/official_layout.py, installed by the weights manager into the cache the
preferences name, with a YOLOX-S beside it): Analyze runs it, the results list its people, Import
builds their rigs."""

import os
import subprocess
from pathlib import Path

import bpy
import pytest

from retarget.contract import read_trajectory
from retarget.skeletons import SMPL_HEAD_HANDS_34
from tests.official_names import OFFICIAL_SMPL_HEAD_30

HANDS = ("lthu_h36m", "lfin_h36m", "rthu_h36m", "rfin_h36m")  # the release's hand points

MODULE = "bl_ext.user_default.metrabs_mocap"
REPO = Path(__file__).resolve().parents[2]
TORCH_PYTHON = str(REPO / ".venv" / "bin" / "python")  # torch and OpenCV (the 4.2 venv has neither)
OFFICIAL = "metrabs_eff2l_384px_800k_28ds_pytorch"
PREPARE = (
    "import sys; from pathlib import Path; "
    "from tests.official_layout import official_layout_bundle, render_short_clip; "
    "folder = Path(sys.argv[1]); render_short_clip(folder); "
    "print(official_layout_bundle(folder / 'release'))"
)


def _backend(*args: str, env: dict | None = None) -> str:
    finished = subprocess.run(
        [TORCH_PYTHON, *args], cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )  # fmt: skip
    assert finished.returncode == 0, finished.stderr[-3000:]
    return finished.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("official in the add-on")
    bundle = _backend("-c", PREPARE, str(folder)).strip().splitlines()[-1]
    detector = folder / "yolox_s.pth"  # the bundled synthetic detector's weights as YOLOX-S's
    detector.write_bytes((REPO / "models" / "yolox_synth" / "yolox_synth.pth").read_bytes())
    cache = {"METRABS_MOCAP_CACHE": str(folder / "cache")}
    _backend("-m", "inference", "weights", "download", OFFICIAL, "--model", bundle, env=cache)
    _backend(
        "-m", "inference", "weights", "download", "yolox_s", "--model", str(detector), env=cache
    )
    return folder


def test_automatic_model_analyses_and_imports_with_the_official_release(installed, extension):
    settings = bpy.context.scene.metrabs
    settings.footage_source, settings.footage_path = "FILE", str(installed / "clip.mp4")
    settings.output_dir = str(installed / "results")
    settings.max_people = 2
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.python_path, prefs.model, prefs.device = TORCH_PYTHON, "AUTO", "cpu"
    prefs.cache_dir = str(installed / "cache")
    try:
        assert bpy.ops.metrabs.analyze_footage() == {"FINISHED"}
    finally:
        prefs.python_path, prefs.device, prefs.cache_dir = "", "auto", ""
    output = read_trajectory(settings.trajectory_path)
    assert output.model.startswith(f"{OFFICIAL} sha256:")
    assert str(output.extras["detector"]) == "yolox:yolox_s.pth"
    assert output.joint_names == SMPL_HEAD_HANDS_34.joint_names
    assert sorted(output.extras["source_joint_names"]) == sorted(OFFICIAL_SMPL_HEAD_30 + HANDS)
    assert [person.track_id for person in settings.people] == list(output.track_ids)
    assert len(settings.people) == 2
    assert bpy.ops.metrabs.import_results() == {"FINISHED"}
    rigs = [o for o in bpy.data.objects if o.type == "ARMATURE"]
    assert len(rigs) == 2 and all(rig.animation_data.action for rig in rigs)
