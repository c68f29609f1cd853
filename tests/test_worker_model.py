"""The analyze command with a real MeTRAbs model bundle (``inference.model``; deterministic weights
filled from the key names, since trained weights cannot be downloaded in tests): loading through
the weights manager, skeleton selection, model id, and the loader's errors as exit code 4."""

import json

import numpy as np
import pytest

from inference.analysis import EXIT_MODEL, EXIT_OK
from inference.model import MetrabsModel, ModelConfig, save_bundle
from inference.model.testing import deterministic_state_dict
from inference.poses import CPU_BATCH_SIZE
from inference.training.synth.motion import SKELETON
from retarget.contract import read_trajectory
from tests.synthvideo import walking_people, write_clip
from tests.workerrun import analyze

# Slow (the analysis worker runs as a process): `make test-fast` leaves it out.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    model = MetrabsModel(
        ModelConfig(backbone="efficientnetv2-b0", proc_side=128),
        SKELETON.joint_names,
        SKELETON.edges,
    )
    model.load_state_dict(deterministic_state_dict(model))
    upper = [SKELETON.index(n) for n in ("pelv", "neck", "head", "lsho", "rsho")]
    infos = {
        "smpl+head_30": {"indices": np.arange(30), "names": list(SKELETON.joint_names), "edges": SKELETON.edges},
        "upper_5": {"indices": np.array(upper), "names": ["pelv", "neck", "head", "lsho", "rsho"],
                    "edges": np.array([[0, 1], [1, 2], [1, 3], [1, 4]])},
    }  # fmt: skip
    return save_bundle(
        model, tmp_path_factory.mktemp("models") / "tiny_bundle", skeleton_infos=infos
    )


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    truth = walking_people(1, 0.24)  # 6 frames
    return write_clip(tmp_path_factory.mktemp("clip") / "one.mp4", truth), truth


def test_bundle_runs_end_to_end(bundle, clip, tmp_path):
    video, truth = clip
    x, y, w, h = truth.boxes[0, 0, :4]
    output = tmp_path / "out.npz"
    common = ["--model", bundle, "--detector", "none", "--box", f"{x:.0f},{y:.0f},{w:.0f},{h:.0f}"]
    run = analyze(video, "-o", output, *common, real=True)
    assert run.returncode == EXIT_OK, run.stderr[-3000:]
    result = read_trajectory(output)
    assert result.skeleton == "smpl+head_30" and result.joint_names == SKELETON.joint_names
    assert result.model.startswith("tiny_bundle sha256:") and result.num_people == 1
    assert np.isfinite(result.poses3d[0, 0]).all() and result.num_frames == 6
    assert run.events[0]["model"] == result.model
    # --batch-size auto (the default) on the CPU: CPU_BATCH_SIZE crops per call, on record
    assert run.events[0]["batch_size"] == CPU_BATCH_SIZE
    assert json.loads(str(result.extras["worker_settings"]))["batch_size"] == CPU_BATCH_SIZE
    assert f"batch size: {CPU_BATCH_SIZE} crops per network call (automatic)" in run.stderr

    run = analyze(video, "-o", output, *common, "--skeleton", "upper_5", "--overwrite", real=True)
    assert run.returncode == EXIT_OK, run.stderr[-3000:]
    result = read_trajectory(output)
    assert result.skeleton == "upper_5" and result.joint_names == (
        "pelv",
        "neck",
        "head",
        "lsho",
        "rsho",
    )
    assert result.poses3d.shape[2] == 5 and result.joint_edges.shape == (4, 2)


def test_model_problems_exit_with_code_4(bundle, clip, tmp_path):
    video, _ = clip
    output = tmp_path / "out.npz"
    run = analyze(video, "-o", output, "--model", "no_such_model", real=True)
    assert run.returncode == EXIT_MODEL and "neither a known model" in run.last["message"]
    broken = tmp_path / "broken_bundle"
    broken.mkdir()
    for name in (
        "config.yaml",
        "joint_info.npz",
        "joint_transform_matrix.npy",
        "skeleton_infos.pkl",
    ):
        (broken / name).write_bytes((bundle / name).read_bytes())
    run = analyze(video, "-o", output, "--model", broken, real=True)
    assert run.returncode == EXIT_MODEL and "ckpt.pt" in run.last["message"], run.last
    run = analyze(video, "-o", output, "--model", bundle, "--skeleton", "h36m_17", real=True)
    assert run.returncode == 3 and "upper_5" in run.last["message"]
    assert not output.exists()
