"""Record the official MeTRAbs wrapper's crop geometry as numbers: ``tests/fixtures/crops_parity.npz``.

Runs ``metrabs_pytorch.multiperson.multiperson_model.Pose3dEstimator`` from a checkout of
isarandi/metrabs (read, never copied into this project) on a few fixed frames, boxes, intrinsics and
test-time-augmentation settings, with the deterministic crop model of ``tests/crop_models.py`` in
place of the network, and stores what its code computed: augmentation parameters, look-at rotations,
box zooms, crop intrinsics, the rotation into each crop camera, the inverse projection matrices used
for warping, a few rendered crops, and the final averaged 3D/2D poses. ``tests/test_crops.py``
compares ours against these numbers.

Needs a throwaway environment with torch, torchvision, einops and numpy (the official code imports
them), the official source and PosePile's ``posepile/joint_info.py`` (for the left/right mapping).
Imports the official code needs only for training or detection (hydra, simplepyutils, ultralytics,
posepile datasets, addict, more_itertools) are replaced by empty modules or trivial equivalents.

    /work/refenv/bin/python tools/make_crop_fixtures.py --metrabs-src /work/refenv/metrabs_src \
        --posepile-src /path/to/PosePile
"""

from __future__ import annotations

import argparse
import itertools
import sys
import types
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "tests" / "fixtures" / "crops_parity.npz"
SIDE = 48  # crop side of the fixtures: small, yet the zooms reach every pyramid level
CROP_LEVELS = 1023  # crops are stored quantised to 10 bits to keep the file small
IMAGE_SIZE = (320, 240)  # width, height


def install_import_stubs(posepile_src: Path) -> None:
    """Empty stand-ins for modules imported at module level but unused by the crop geometry."""

    def module(name: str, **attributes: object) -> types.ModuleType:
        m = types.ModuleType(name)
        m.__dict__.update(attributes)
        sys.modules[name] = m
        return m

    for name in ("hydra", "hydra.core", "hydra.core.global_hydra", "simplepyutils"):
        module(name)
    module("ultralytics", YOLO=None)
    module("addict", Addict=dict)
    module("more_itertools", pairwise=itertools.pairwise)
    posepile = module("posepile")
    posepile.__path__ = [str(posepile_src / "posepile")]  # the real joint_info.py
    module("posepile.paths", DATA_ROOT="")
    module("posepile.datasets3d")


def test_image(width: int, height: int, phase: float) -> np.ndarray:
    """(3, H, W) uint8 smooth colour pattern with a few sharp edges."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    channels = [
        0.5 + 0.45 * np.sin(x / 9.0 + phase) * np.cos(y / 7.0 - phase),
        0.5 + 0.45 * np.sin((x + 2 * y) / 15.0 + 2 * phase),
        np.where((x // 40 + y // 30) % 2 == 0, 0.8, 0.2) * (0.6 + 0.4 * np.cos(x / 23.0)),
    ]
    return np.round(np.stack(channels) * 255).astype(np.uint8)


CASES = {
    # name: (num_aug, world up, per-frame intrinsics?, with joint transform?)
    "aug5": (5, (0.0, -1.0, 0.0), True, True),
    "aug1": (1, (0.0, -1.0, 0.0), False, False),
    "aug2": (2, (0.0, -1.0, 0.0), True, False),
    "aug6_tilted_up": (6, (0.25, -1.0, 0.1), False, True),
}

BOXES = [
    np.array(
        [
            [10.0, 20.0, 60.0, 150.0],  # tall, near the left border
            [200.0, 30.0, 100.0, 200.0],  # off-axis right
            [120.0, 90.0, 40.0, 40.0],  # small, central: zoom > 1
            [-30.0, 170.0, 90.0, 110.0],  # partly outside the frame, bottom left corner
        ]
    ),
    np.array(
        [
            [5.0, 3.0, 310.0, 230.0],  # almost the whole frame: pyramid level 2
            [250.0, 150.0, 90.0, 120.0],  # bottom right, partly outside
            [140.0, 10.0, 150.0, 60.0],  # wide
        ]
    ),
]

INTRINSICS = np.array(
    [
        [[300.0, 0.0, 160.0], [0.0, 300.0, 120.0], [0.0, 0.0, 1.0]],
        [[350.0, 0.0, 150.5], [0.0, 340.0, 131.0], [0.0, 0.0, 1.0]],
    ]
)


def run_case(mpm, joint_info_cls, images, num_aug, up, per_frame_k, transform, record):
    sys.path.insert(0, str(REPO / "tests"))
    from crop_models import STUB_JOINT_NAMES, stub_crop_poses

    class OfficialStub(torch.nn.Module):
        """The stub crop model with the official call signature ``model((crops, intrinsics))``."""

        def __init__(self):
            super().__init__()
            self.input_resolution = np.int32(SIDE)
            self.joint_names = np.array(STUB_JOINT_NAMES)
            self.joint_edges = np.array([[0, 1], [0, 2], [0, 3], [0, 4], [0, 5]])

        def forward(self, inp):
            crops, intrinsics = inp
            return stub_crop_poses(intrinsics)

    n_joints = len(STUB_JOINT_NAMES)
    matrix = transform if transform is not None else np.eye(n_joints, dtype=np.float32)
    estimator = mpm.Pose3dEstimator.__new__(mpm.Pose3dEstimator)
    torch.nn.Module.__init__(estimator)  # skip __init__: it would build the YOLO detector
    estimator.crop_model = OfficialStub()
    estimator.joint_names = estimator.crop_model.joint_names
    estimator.joint_info = joint_info_cls(list(STUB_JOINT_NAMES), [])
    estimator.joint_transform_matrix = torch.tensor(matrix, dtype=torch.float32)
    n_out = matrix.shape[1]
    subset = [n_out - 1, 0, 2]
    estimator.skeleton_joint_indices_table = {"": list(range(n_out)), "subset": subset}

    calls = {}
    original_get_crops = estimator._get_crops
    original_rotation_and_scale = estimator._get_new_rotation_and_scale
    original_warp = mpm.warping.warp_images_with_pyramid

    def get_crops(*args):
        crops, new_k, rotation = original_get_crops(*args)
        calls.update(aug_rotflipmat=args[6], aug_scales=args[7], aug_gammas=args[8])
        calls.update(crops=crops, crop_intrinsics=new_k, rotation=rotation)
        return crops, new_k, rotation

    def rotation_and_scale(*args):
        rotation, scales = original_rotation_and_scale(*args)
        calls.update(lookat=rotation, box_scales=scales)
        return rotation, scales

    def warp(images, intrinsic_matrix, new_invprojmats, distortion_coeffs, crop_scales, **kw):
        calls.update(invprojmat=new_invprojmats, crop_scales=crop_scales)
        return original_warp(
            images, intrinsic_matrix, new_invprojmats, distortion_coeffs, crop_scales, **kw
        )

    original_split = torch.split

    def split(tensor, sizes, dim=0):
        # the official code passes a tensor of sizes, which this torch no longer accepts
        return original_split(tensor, sizes.tolist() if torch.is_tensor(sizes) else sizes, dim)

    estimator._get_crops = get_crops
    estimator._get_new_rotation_and_scale = rotation_and_scale
    mpm.warping.warp_images_with_pyramid = warp
    torch.split = split
    try:
        intrinsics = INTRINSICS if per_frame_k else INTRINSICS[:1]
        boxes = [torch.tensor(np.c_[b, np.ones(len(b))], dtype=torch.float32) for b in BOXES]
        common = dict(
            images=torch.from_numpy(images),
            boxes=boxes,
            intrinsic_matrix=torch.tensor(intrinsics, dtype=torch.float32),
            distortion_coeffs=torch.zeros((1, 5)),
            extrinsic_matrix=torch.eye(4)[None],
            world_up_vector=torch.tensor(up, dtype=torch.float32),
            default_fov_degrees=55,
            internal_batch_size=10_000,  # one batch, so every recorded tensor covers all boxes
            antialias_factor=1,
            num_aug=num_aug,
            suppress_implausible_poses=False,
        )
        with torch.inference_mode():
            result = estimator._estimate_poses_batched(average_aug=True, skeleton="", **common)
            per_aug = estimator._estimate_poses_batched(average_aug=False, skeleton="", **common)
            subset_result = estimator._estimate_poses_batched(
                average_aug=True, skeleton="subset", **common
            )
    finally:
        mpm.warping.warp_images_with_pyramid = original_warp
        torch.split = original_split

    record["intrinsics"] = intrinsics
    record["up"] = np.array(up)
    record["num_aug"] = np.array(num_aug)
    record["joint_transform"] = matrix
    record["subset"] = np.array(subset)
    for key in ("aug_rotflipmat", "aug_scales", "aug_gammas"):
        record[key] = calls[key].numpy()
    for key in ("lookat", "box_scales"):
        record[key] = calls[key].numpy()
    for key in ("crop_intrinsics", "rotation"):
        record[key] = calls[key].numpy()  # (A, N, 3, 3)
    record["invprojmat"] = calls["invprojmat"].numpy().reshape(num_aug, -1, 3, 3)
    record["crop_scales"] = calls["crop_scales"].numpy().reshape(num_aug, -1)
    crops = calls["crops"].numpy()  # (A, N, 3, S, S)
    record["crops_q10"] = np.round(crops * CROP_LEVELS).astype(np.uint16)
    record["poses3d"] = torch.cat(result["poses3d"]).numpy()
    record["poses2d"] = torch.cat(result["poses2d"]).numpy()
    record["poses3d_per_aug"] = torch.cat(per_aug["poses3d"]).numpy()
    record["poses3d_subset"] = torch.cat(subset_result["poses3d"]).numpy()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrabs-src", type=Path, default=Path("/work/refenv/metrabs_src"))
    parser.add_argument("--posepile-src", type=Path, required=True)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()

    install_import_stubs(args.posepile_src)
    sys.path.insert(0, str(args.metrabs_src))
    from metrabs_pytorch.multiperson import multiperson_model as mpm
    from posepile.joint_info import JointInfo

    torch.set_num_threads(1)
    width, height = IMAGE_SIZE
    images = np.stack([test_image(width, height, 0.0), test_image(width, height, 1.3)])
    fixture = {
        "images": images,
        "boxes": np.concatenate(BOXES),
        "boxes_per_frame": np.array([len(b) for b in BOXES]),
        "side": np.array(SIDE),
        "crop_levels": np.array(CROP_LEVELS),
        "cases": np.array(list(CASES)),
    }
    rng = np.random.default_rng(7)
    for name, (num_aug, up, per_frame_k, with_transform) in CASES.items():
        transform = None
        if with_transform:
            transform = rng.uniform(-0.05, 1.0, size=(6, 5)).astype(np.float32)
            transform /= transform.sum(axis=0, keepdims=True)  # each output: an affine mix
        record: dict[str, np.ndarray] = {}
        run_case(mpm, JointInfo, images, num_aug, up, per_frame_k, transform, record)
        if name != "aug5":
            del record["crops_q10"]  # keep the file small: the crops of one setting suffice
        fixture.update({f"{name}/{key}": value for key, value in record.items()})

    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.output, **fixture)
    print(f"wrote {args.output} ({args.output.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
