"""The colour-joint reader of ``tinymodels.py`` as a crop network for ``inference.poses`` (test
helper; a separate module so that tests which do not need torch do not import it)."""

import numpy as np
import torch

from tests.synthvideo import BACKGROUND
from tests.tinymodels import find_joints, lift


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
        grey = image.max(axis=-1) - image.min(axis=-1) < 0.03
        values = image[grey].mean(axis=-1)
        background = np.percentile(values, 90) if values.size else BACKGROUND / 255
        gamma = np.log(np.clip(background, 1e-3, 0.999)) / np.log(BACKGROUND / 255)
        decoded = np.clip(image, 0, 1) ** (1 / gamma)
        pixels = np.round(decoded * 255).astype(np.uint8)
        return lift(find_joints(pixels), intrinsics)
