"""The colour-joint reader of ``tinymodels.py`` as a crop network for ``inference.poses`` (test
helper; a separate module so that tests which do not need torch do not import it)."""

import cv2
import numpy as np
import torch

from tests.synthvideo import BACKGROUND
from tests.tinymodels import central_figure, find_joints, lift


class ColourJointCropModel(torch.nn.Module):
    """The same joint reader as a crop network for ``inference.poses.PoseEstimator``:
    ``forward(crops (B, 3, S, S) RGB in [0, 1], crop intrinsics (B, 3, 3))`` -> ``(B, J, 3)`` mm in
    the crop camera. Crops come gamma-encoded (test-time augmentation); the model measures that
    gamma on the known background grey and undoes it before reading colours. It cannot tell a
    mirrored figure from an unmirrored one, so use it without flip augmentation (``num_aug=1``).
    """

    def __init__(self, side: int = 192) -> None:
        super().__init__()
        self.input_resolution = side
        self.crops_seen = 0

    def forward(self, crops: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
        images = crops.detach().float().permute(0, 2, 3, 1).cpu().numpy()
        matrices = intrinsics.detach().double().cpu().numpy()
        out = np.stack([self._read(image, k) for image, k in zip(images, matrices, strict=True)])
        self.crops_seen += len(images)
        return torch.from_numpy(out).float()

    @staticmethod
    def _read(image: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
        pixels = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
        sample = pixels[::4, ::4].astype(np.int16)
        grey = sample.max(axis=-1) - sample.min(axis=-1) < 8
        values = sample[grey].mean(axis=-1) / 255
        background = np.percentile(values, 90) if values.size else BACKGROUND / 255
        gamma = np.log(np.clip(background, 1e-3, 0.999)) / np.log(BACKGROUND / 255)
        table = np.round(255 * (np.arange(256) / 255) ** (1 / gamma)).astype(np.uint8)
        return lift(find_joints(central_figure(cv2.LUT(pixels, table))), intrinsics)
