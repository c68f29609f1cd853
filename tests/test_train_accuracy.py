"""End-to-end accuracy of the bundled small model (models/metrabs_small_synth) on synthetic data
held apart from its training data (different seeds), through the same crop path as the worker.

The bounds are the values measured for the bundled model (models/metrabs_small_synth/TRAINING.md)
with margins of about 8 % on pose errors and 15 % on absolute errors, for numeric differences
between machines: they fail when the bundle, the crop geometry, the reconstruction or the renderer
regress. The model is small and trained on 2 CPU cores (first run plus a continuation, 192 000
crops in all); the first test also checks its margin over a mean pose placed at the right root.
"""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from inference.model import load_bundle
from inference.poses import EstimatorConfig, PoseEstimator
from inference.training.datasets import render_synthetic_dataset
from inference.training.synth.render import ClipConfig, SceneConfig, render_clip
from inference.training.train import evaluate_dataset, pose_errors
from retarget.contract import read_trajectory
from retarget.skeletons import SMPL_HEAD_30

# Slow (the bundled model on rendered clips): `make test-fast` leaves it out.
pytestmark = pytest.mark.slow

BUNDLE = Path(__file__).resolve().parents[1] / "models" / "metrabs_small_synth"
HELD_APART_SEED = 20261128  # training used dataset seeds 1 (train) and 2 (validation)
CLIP_SEEDS = (31, 32)


@pytest.fixture(scope="module")
def bundle():
    torch.set_num_threads(1)
    return load_bundle(BUNDLE)


def test_bundle_is_small_and_names_the_contract_skeleton(bundle):
    size = sum(p.stat().st_size for p in BUNDLE.iterdir())
    assert size < 5_000_000
    assert bundle.joint_names == SMPL_HEAD_30.joint_names
    assert list(bundle.skeleton_infos) == [SMPL_HEAD_30.name]
    assert (BUNDLE / "TRAINING.md").is_file()


def test_accuracy_on_held_apart_synthetic_crops(bundle, tmp_path):
    scene = SceneConfig(window_scale=1.6, window_max_side=256)  # as the training data
    render_synthetic_dataset(tmp_path, 80, seed=HELD_APART_SEED, scene=scene)
    metrics = evaluate_dataset(bundle.model, tmp_path)
    # Baseline: the mean root-relative pose of these very crops (crop camera axes) at the true
    # root: measured 266 mm root-relative MPJPE against the model's 187 mm (0.70 of it).
    from inference.training.datasets import AugmentConfig, CropDataset, load_pose_dataset

    data = load_pose_dataset(tmp_path, SMPL_HEAD_30.joint_names)
    crops = CropDataset(data, bundle.config.proc_side, AugmentConfig(enabled=False))
    truth = np.stack([crops[i]["joints3d"] for i in range(len(crops))]).astype(float)
    mean_pose = truth[:, :1] + (truth - truth[:, :1]).mean(0)
    flat2d = np.zeros(truth.shape[:2] + (2,))
    valid = np.ones(truth.shape[:2], bool)
    baseline = pose_errors(mean_pose, truth, flat2d, flat2d, valid, 160)["rootrel_mpjpe_mm"]
    assert metrics["rootrel_mpjpe_mm"] < 0.8 * baseline
    assert metrics["rootrel_mpjpe_mm"] < BOUNDS["crops_rootrel_mpjpe_mm"]
    assert metrics["mpjpe_mm"] < BOUNDS["crops_mpjpe_mm"]
    assert metrics["abs_mpjpe_mm"] < BOUNDS["crops_abs_mpjpe_mm"]
    assert metrics["pck150_pct"] > BOUNDS["crops_pck150_pct"]
    assert metrics["pck2d_pct"] > BOUNDS["crops_pck2d_pct"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Two held-apart clips (2 people, 1 s at 15 fps, 640 x 360): RGB frames and trajectories."""
    folder = tmp_path_factory.mktemp("clips")
    config = ClipConfig(num_people=2, duration_s=1.0, fps=15, image_size=(640, 360))
    result = []
    for seed in CLIP_SEEDS:
        truth = read_trajectory(
            render_clip(folder / f"{seed}.mp4", folder / f"{seed}.npz", seed, config)
        )
        capture = cv2.VideoCapture(str(folder / f"{seed}.mp4"))
        frames = []
        while (read := capture.read())[0]:
            frames.append(cv2.cvtColor(read[1], cv2.COLOR_BGR2RGB))
        result.append((frames, truth))
    return result


def _clip_errors(bundle, frames: list, truth, num_aug: int) -> dict[str, float]:
    """Estimate every person of a clip from its ground-truth visible boxes, as the worker would."""
    boxes = truth.extras["visible_boxes"]
    estimator = PoseEstimator(
        bundle.model, bundle.joint_names, config=EstimatorConfig(num_aug=num_aug)
    )
    poses = estimator.estimate(frames, list(boxes), truth.intrinsics)
    joints = len(bundle.joint_names)
    pred3d = np.stack([p.poses3d for p in poses]).reshape(-1, joints, 3)
    pred2d = np.stack([p.poses2d for p in poses]).reshape(-1, joints, 2)
    true3d = truth.poses3d.reshape(-1, joints, 3).astype(float)
    true2d = truth.poses2d.reshape(-1, joints, 2).astype(float)
    valid = np.ones(pred3d.shape[:2], bool)
    # 2D is in original pixels here; the 5 % threshold is that of a 160 px crop
    errors = pose_errors(pred3d, true3d, pred2d, true2d, valid, 160)
    edges = SMPL_HEAD_30.edges
    bones_pred = pred3d[:, edges[:, 1]] - pred3d[:, edges[:, 0]]
    bones_true = true3d[:, edges[:, 1]] - true3d[:, edges[:, 0]]
    cosine = np.sum(bones_pred * bones_true, -1) / (
        np.linalg.norm(bones_pred, axis=-1) * np.linalg.norm(bones_true, axis=-1)
    )
    errors["limb_direction_deg"] = float(np.degrees(np.arccos(np.clip(cosine, -1, 1))).mean())
    return errors


@pytest.mark.parametrize("num_aug", [1, 5])
def test_accuracy_on_held_apart_clips(bundle, clips, num_aug):
    errors = [_clip_errors(bundle, frames, truth, num_aug) for frames, truth in clips]
    mean = {key: float(np.mean([e[key] for e in errors])) for key in errors[0]}
    assert mean["rootrel_mpjpe_mm"] < BOUNDS[f"clip{num_aug}_rootrel_mpjpe_mm"]
    assert mean["root_error_mm"] < BOUNDS[f"clip{num_aug}_root_error_mm"]
    assert mean["pck150_pct"] > BOUNDS[f"clip{num_aug}_pck150_pct"]
    assert mean["limb_direction_deg"] < BOUNDS[f"clip{num_aug}_limb_direction_deg"]


# Measured on these seeds (TRAINING.md): crops 187 / 172 / 610 mm, PCK 53 %, 2D PCK 50 %;
# clips, 1 crop: 109 mm, root 424 mm, PCK 77 %, limbs 17.6°; 5 crops: 100 mm, 408 mm, 79 %, 15.5°.
BOUNDS: dict[str, float] = {
    "crops_rootrel_mpjpe_mm": 202.0,
    "crops_mpjpe_mm": 185.0,
    "crops_abs_mpjpe_mm": 700.0,
    "crops_pck150_pct": 49.0,
    "crops_pck2d_pct": 45.0,
    "clip1_rootrel_mpjpe_mm": 118.0,
    "clip1_root_error_mm": 490.0,
    "clip1_pck150_pct": 72.0,
    "clip1_limb_direction_deg": 19.5,
    "clip5_rootrel_mpjpe_mm": 109.0,
    "clip5_root_error_mm": 470.0,
    "clip5_pck150_pct": 73.0,
    "clip5_limb_direction_deg": 17.0,
}
