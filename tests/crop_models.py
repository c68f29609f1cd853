"""Deterministic stand-ins for the MeTRAbs crop network, for the crop and pose-estimator tests.

Both follow the crop model's call signature: ``model(crops, intrinsics)`` with crops
``(B, 3, H, W)`` RGB float in [0, 1] and crop intrinsics ``(B, 3, 3)``, returning
``(poses3d (B, J, 3) mm in the crop camera, poses2d (B, J, 2) crop pixels)``.

- ``IntrinsicsStubModel`` ignores the pixels and returns a fixed skeleton whose depth depends on
  the crop focal length. ``tools/make_crop_fixtures.py`` runs the same function inside the official
  wrapper, so both wrappers' outputs for it can be compared number for number.
- ``BlobPoseModel`` is an exact "network" for scenes rendered by ``render_blob_scene``: every joint
  is a Gaussian spot whose RGB on/off pattern names it. The model finds the spots in the crop, reads
  their sub-pixel centroids, names them the way a real network would (by the body's handedness, so a
  mirrored crop swaps left and right), and back-projects each along its crop ray to the joint's
  distance from the camera centre. Those distances do not change when the camera rotates, and the
  crop rotation is exactly what the model cannot see directly, so the only way its outputs can land
  on the true joints is through correct crop pixels, crop intrinsics and mapping back.
"""

from __future__ import annotations

import numpy as np
import torch

# Joint names with left/right pairs, in the MeTRAbs short-name style.
STUB_JOINT_NAMES = ("pelv", "lhip", "rhip", "lsho", "rsho", "head")
# Fixed skeleton (mm) in the crop camera, asymmetric so a missing or extra left/right swap shows.
STUB_SKELETON_MM = (
    (0.0, 0.0, 0.0),
    (-95.0, 40.0, 12.0),
    (105.0, 35.0, -8.0),
    (-180.0, -480.0, 30.0),
    (170.0, -495.0, -25.0),
    (10.0, -700.0, 5.0),
)


def stub_crop_poses(intrinsics: torch.Tensor) -> torch.Tensor:
    """(B, J, 3) mm: the fixed skeleton at depth ``2500 + 4 * fx`` along the crop axis."""
    skeleton = torch.tensor(STUB_SKELETON_MM, dtype=torch.float32, device=intrinsics.device)
    depth = 2500.0 + 4.0 * intrinsics[:, 0, 0].float()
    offset = torch.stack([torch.zeros_like(depth), torch.zeros_like(depth), depth], dim=-1)
    return skeleton[None] + offset[:, None]


def project_torch(points: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """(B, J, 2) pixels of camera points (B, J, 3) with intrinsics (B, 3, 3)."""
    homogeneous = torch.einsum("bij,bkj->bki", intrinsics.to(points.dtype), points)
    return homogeneous[..., :2] / homogeneous[..., 2:3]


class IntrinsicsStubModel(torch.nn.Module):
    """Returns ``stub_crop_poses(intrinsics)`` and its projection; ignores the crop pixels."""

    def __init__(self, side: int):
        super().__init__()
        self.input_resolution = side
        self.calls: list[tuple[int, ...]] = []

    def forward(self, crops: torch.Tensor, intrinsics: torch.Tensor):
        self.calls.append(tuple(crops.shape))
        poses3d = stub_crop_poses(intrinsics)
        return poses3d, project_torch(poses3d, intrinsics)


# ---------------------------------------------------------------------------------------------
# Blob scenes and the exact blob-reading model

BLOB_JOINT_NAMES = ("pelv", "lhip", "rhip", "lsho", "rsho", "neck", "head")
# RGB on/off code of each joint's spot; codes survive any gamma since 0**g = 0 and 1**g = 1.
BLOB_CODES = np.array(
    [(1, 1, 1), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1)], np.float64
)
# A standing person facing the camera, root-relative mm (x right, y down, z away from the camera);
# the person's left side is on the image's right.
BLOB_PERSON_MM = np.array(
    [
        (0.0, 0.0, 0.0),
        (230.0, 120.0, 10.0),
        (-225.0, 110.0, -10.0),
        (260.0, -470.0, 40.0),
        (-250.0, -480.0, -30.0),
        (5.0, -560.0, 0.0),
        (0.0, -800.0, 20.0),
    ]
)  # spots kept far apart (a test figure, not anatomy)
_HANDEDNESS_JOINTS = (0, 3, 4)  # pelvis, left shoulder, right shoulder


def _project(points: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    homogeneous = points @ intrinsics.T
    return homogeneous[..., :2] / homogeneous[..., 2:3]


def _signed_area(points2d: np.ndarray) -> float:
    a, b, c = points2d
    return float(np.cross(b - a, c - a))


def render_blob_scene(
    image_size: tuple[int, int], intrinsics: np.ndarray, people_mm: np.ndarray, sigma_px: float
) -> np.ndarray:
    """(H, W, 3) uint8 frame with one Gaussian spot of std ``sigma_px`` per joint.

    ``image_size`` (width, height); ``people_mm`` (P, J, 3) joints in the camera frame.
    """
    width, height = image_size
    frame = np.zeros((height, width, 3))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    for person in people_mm:
        for joint, (u, v) in enumerate(_project(person, intrinsics)):
            r = int(np.ceil(6 * sigma_px))
            y0, y1 = max(int(v) - r, 0), min(int(v) + r + 2, height)
            x0, x1 = max(int(u) - r, 0), min(int(u) + r + 2, width)
            d2 = (xs[y0:y1, x0:x1] - u) ** 2 + (ys[y0:y1, x0:x1] - v) ** 2
            spot = np.exp(-d2 / (2 * sigma_px**2))[..., None] * BLOB_CODES[joint]
            frame[y0:y1, x0:x1] = np.maximum(frame[y0:y1, x0:x1], spot)
    return np.round(frame * 255).astype(np.uint8)


class BlobPoseModel(torch.nn.Module):
    """Reads blob scenes exactly (see the module docstring).

    ``people_mm`` (P, J, 3) are the scene's joints in the original camera; the model uses only what
    a camera rotation leaves unchanged: each joint's distance from the camera centre, the angles
    between joint rays (to tell the people apart) and the body's handedness.
    """

    def __init__(self, people_mm: np.ndarray, side: int):
        super().__init__()
        self.input_resolution = side
        self.people_mm = np.asarray(people_mm, np.float64)
        self.ranges = np.linalg.norm(self.people_mm, axis=-1)  # (P, J)
        rays = self.people_mm / self.ranges[..., None]
        self.ray_angles = np.einsum("pjc,pkc->pjk", rays, rays)  # (P, J, J) cosines
        self.handedness = [
            np.sign(_signed_area(p[_HANDEDNESS_JOINTS, :2] / p[_HANDEDNESS_JOINTS, 2:]))
            for p in self.people_mm
        ]
        self.seen_people: list[int] = []

    def forward(self, crops: torch.Tensor, intrinsics: torch.Tensor):
        crops_np = crops.detach().float().cpu().numpy()
        intrinsics_np = intrinsics.detach().double().cpu().numpy()
        out3d = np.zeros((len(crops_np), len(BLOB_JOINT_NAMES), 3))
        out2d = np.zeros((len(crops_np), len(BLOB_JOINT_NAMES), 2))
        for i, (crop, k) in enumerate(zip(crops_np, intrinsics_np, strict=True)):
            out3d[i], out2d[i] = self._read_crop(crop, k)
        return torch.from_numpy(out3d).float(), torch.from_numpy(out2d).float()

    def _read_crop(self, crop: np.ndarray, intrinsics: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from scipy import ndimage

        n_joints = len(BLOB_JOINT_NAMES)
        intensity = crop.sum(axis=0)
        threshold = 0.08 * intensity.max()
        labels, n_found = ndimage.label(intensity > threshold)
        spots = np.full((n_joints, 2), np.nan)
        for label in range(1, n_found + 1):
            mask = labels == label
            color = crop[:, mask].mean(axis=1)
            code = (color > 0.5 * color.max()).astype(np.float64)
            joint = int(np.flatnonzero(np.all(BLOB_CODES == code, axis=1))[0])
            ys, xs = np.nonzero(mask)
            w = intensity[ys, xs] - threshold  # fades to 0 at the edge: no cut-off bias
            spots[joint] = (np.sum(w * xs) / w.sum(), np.sum(w * ys) / w.sum())
        if np.isnan(spots).any():
            raise AssertionError(
                f"blob model found {n_found} spots, expected all {n_joints} joints"
            )

        rays = np.concatenate([spots, np.ones((n_joints, 1))], axis=1) @ np.linalg.inv(intrinsics).T
        rays /= np.linalg.norm(rays, axis=1, keepdims=True)
        person = int(np.argmin(np.abs(self.ray_angles - rays @ rays.T).sum(axis=(1, 2))))
        self.seen_people.append(person)
        points = rays * self.ranges[person][:, None]

        # Name the spots by the body's handedness, as a network would: in a mirrored crop the
        # person's left shoulder looks like a right shoulder.
        area = _signed_area(spots[list(_HANDEDNESS_JOINTS)])
        if np.sign(area) != self.handedness[person]:
            swap = np.array([0, 2, 1, 4, 3, 5, 6])
            points, spots = points[swap], spots[swap]
        return points, spots
