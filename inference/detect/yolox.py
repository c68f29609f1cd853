"""YOLOX person detector in our own PyTorch code, loading the released YOLOX ``.pth`` checkpoints.

Facts from the YOLOX repository (Megvii-BaseDetection/YOLOX, Apache-2.0) that this module follows so
its checkpoints load by key name (``model.backbone.backbone.stem.conv.conv.weight`` ...):

- Network = ``backbone`` (a PAFPN neck holding the CSP-Darknet as ``backbone.backbone``) + ``head``.
  Every convolution is a ``BaseConv`` (``conv`` without bias, ``bn`` with eps 1e-3, SiLU); the nano
  model replaces 3x3 convs by depthwise (``dconv``) + pointwise (``pconv``) pairs.
- Variants differ by a width factor (stem channels = 64 * width) and depth (number of bottlenecks):
  nano 0.25/0.33 (depthwise), tiny 0.375/0.33, s 0.50/0.33, m 0.75/0.67, l 1.0/1.0, x 1.25/1.33.
  :func:`config_from_state_dict` reads both from the tensors, so no name is needed.
- Input: BGR, 0..255 floats, letterboxed (aspect kept, image at the top-left, padding value 114) to
  640x640 (416x416 for nano/tiny), no mean/std normalisation.
- Output per level (strides 8, 16, 32): 4 box regressions, 1 objectness logit, C class logits.
  Decoding: centre = (offset + grid cell) * stride, size = exp(log size) * stride, in input pixels;
  score = sigmoid(objectness) * sigmoid(class). COCO class 0 is "person".
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from . import DetectorWeightsError
from .nms import nms, xyxy_to_xywh

logger = logging.getLogger(__name__)

STRIDES = (8, 16, 32)
PAD_VALUE = 114.0
BN_EPS = 1e-3
# Named variants of the released checkpoints: width factor, CSP depth factor, depthwise, input side.
VARIANTS = {
    "yolox-nano": (0.25, 0.33, True, 416),
    "yolox-tiny": (0.375, 0.33, False, 416),
    "yolox-s": (0.50, 0.33, False, 640),
    "yolox-m": (0.75, 0.67, False, 640),
    "yolox-l": (1.00, 1.00, False, 640),
    "yolox-x": (1.25, 1.33, False, 640),
}


@dataclass(frozen=True)
class YoloxConfig:
    """Shape of a YOLOX network."""

    width: float = 0.5  # channel factor: stem has int(64 * width) channels
    backbone_depth: int = 1  # bottlenecks in the dark2/dark5 CSP layers (x3 in dark3/dark4)
    neck_depth: int = 1  # bottlenecks in each PAFPN CSP layer
    depthwise: bool = False  # depthwise-separable 3x3 convolutions (nano)
    num_classes: int = 80  # COCO; person is class 0
    input_size: int = 640  # side of the square letterboxed input, pixels

    @classmethod
    def from_factors(
        cls, width: float, depth: float, depthwise: bool = False, **kwargs
    ) -> YoloxConfig:
        """Config from the width and depth factors of the YOLOX experiment files."""
        return cls(width, max(round(depth * 3), 1), round(3 * depth), depthwise, **kwargs)

    @classmethod
    def named(cls, name: str, num_classes: int = 80) -> YoloxConfig:
        width, depth, depthwise, size = VARIANTS[name]
        return cls.from_factors(width, depth, depthwise, num_classes=num_classes, input_size=size)


class BaseConv(nn.Sequential):
    """Conv (no bias) -> BatchNorm (eps 1e-3) -> SiLU; 'same' padding for odd kernels."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(
            c_in, c_out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(c_out, eps=BN_EPS, momentum=0.03)
        self.act = nn.SiLU(inplace=True)


class DWConv(nn.Sequential):
    """Depthwise ``kernel`` conv then pointwise 1x1 conv, both :class:`BaseConv`."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1):
        super().__init__()
        self.dconv = BaseConv(c_in, c_in, kernel, stride, groups=c_in)
        self.pconv = BaseConv(c_in, c_out, 1)


def _conv(depthwise: bool, c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Module:
    return (
        DWConv(c_in, c_out, kernel, stride) if depthwise else BaseConv(c_in, c_out, kernel, stride)
    )


class Bottleneck(nn.Module):
    """1x1 conv -> 3x3 conv, plus the input when ``shortcut`` (channels unchanged)."""

    def __init__(self, channels: int, shortcut: bool, depthwise: bool):
        super().__init__()
        self.conv1 = BaseConv(channels, channels, 1)
        self.conv2 = _conv(depthwise, channels, channels, 3)
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return x + y if self.shortcut else y


class CSPLayer(nn.Module):
    """Cross-stage partial layer: two 1x1 branches (one through ``n`` bottlenecks), concat, 1x1."""

    def __init__(
        self, c_in: int, c_out: int, n: int, shortcut: bool = True, depthwise: bool = False
    ):
        super().__init__()
        hidden = int(c_out * 0.5)
        self.conv1 = BaseConv(c_in, hidden, 1)
        self.conv2 = BaseConv(c_in, hidden, 1)
        self.conv3 = BaseConv(2 * hidden, c_out, 1)
        self.m = nn.Sequential(*(Bottleneck(hidden, shortcut, depthwise) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(torch.cat([self.m(self.conv1(x)), self.conv2(x)], dim=1))


class SPPBottleneck(nn.Module):
    """1x1 conv, max-pools of size 5/9/13 concatenated with their input, 1x1 conv."""

    def __init__(self, c_in: int, c_out: int, kernels: tuple[int, ...] = (5, 9, 13)):
        super().__init__()
        hidden = c_in // 2
        self.conv1 = BaseConv(c_in, hidden, 1)
        self.m = nn.ModuleList(nn.MaxPool2d(k, 1, k // 2) for k in kernels)
        self.conv2 = BaseConv(hidden * (len(kernels) + 1), c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        return self.conv2(torch.cat([x] + [pool(x) for pool in self.m], dim=1))


class Focus(nn.Module):
    """Space-to-depth (2x2 pixel blocks into channels: TL, BL, TR, BR) then a 3x3 conv."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = BaseConv(4 * c_in, c_out, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, H, W) -> (B, 4C, H/2, W/2)
        blocks = (x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2])
        return self.conv(torch.cat(blocks, dim=1))


class CSPDarknet(nn.Module):
    """Backbone: stem (stride 2) and stages dark2..dark5 (strides 4..32); returns dark3..dark5."""

    def __init__(self, config: YoloxConfig):
        super().__init__()
        base, n, dw = int(config.width * 64), config.backbone_depth, config.depthwise
        self.stem = Focus(3, base)
        self.dark2 = nn.Sequential(
            _conv(dw, base, base * 2, 3, 2), CSPLayer(base * 2, base * 2, n, depthwise=dw)
        )
        self.dark3 = nn.Sequential(
            _conv(dw, base * 2, base * 4, 3, 2), CSPLayer(base * 4, base * 4, 3 * n, depthwise=dw)
        )
        self.dark4 = nn.Sequential(
            _conv(dw, base * 4, base * 8, 3, 2), CSPLayer(base * 8, base * 8, 3 * n, depthwise=dw)
        )
        self.dark5 = nn.Sequential(
            _conv(dw, base * 8, base * 16, 3, 2),
            SPPBottleneck(base * 16, base * 16),
            CSPLayer(base * 16, base * 16, n, shortcut=False, depthwise=dw),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.dark2(self.stem(x))
        c3 = self.dark3(x)
        c4 = self.dark4(c3)
        return c3, c4, self.dark5(c4)


class PAFPN(nn.Module):
    """Path-aggregation neck over the backbone; outputs at strides 8, 16, 32."""

    def __init__(self, config: YoloxConfig):
        super().__init__()
        c3, c4, c5 = (int(c * config.width) for c in (256, 512, 1024))
        n, dw = config.neck_depth, config.depthwise
        self.backbone = CSPDarknet(config)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.lateral_conv0 = BaseConv(c5, c4, 1)
        self.C3_p4 = CSPLayer(2 * c4, c4, n, False, dw)
        self.reduce_conv1 = BaseConv(c4, c3, 1)
        self.C3_p3 = CSPLayer(2 * c3, c3, n, False, dw)
        self.bu_conv2 = _conv(dw, c3, c3, 3, 2)
        self.C3_n3 = CSPLayer(2 * c3, c4, n, False, dw)
        self.bu_conv1 = _conv(dw, c4, c4, 3, 2)
        self.C3_n4 = CSPLayer(2 * c4, c5, n, False, dw)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x3, x4, x5 = self.backbone(x)
        top = self.lateral_conv0(x5)  # stride 32
        mid = self.C3_p4(torch.cat([self.upsample(top), x4], 1))  # stride 16
        mid_reduced = self.reduce_conv1(mid)
        out3 = self.C3_p3(torch.cat([self.upsample(mid_reduced), x3], 1))  # stride 8
        out4 = self.C3_n3(torch.cat([self.bu_conv2(out3), mid_reduced], 1))  # stride 16
        out5 = self.C3_n4(torch.cat([self.bu_conv1(out4), top], 1))  # stride 32
        return [out3, out4, out5]


class YoloxHead(nn.Module):
    """Decoupled head per level: stem 1x1, two 3x3 convs per branch, 1x1 predictions."""

    def __init__(self, config: YoloxConfig):
        super().__init__()
        hidden = int(256 * config.width)
        dw = config.depthwise
        self.stems, self.cls_convs, self.reg_convs = (
            nn.ModuleList(),
            nn.ModuleList(),
            nn.ModuleList(),
        )
        self.cls_preds, self.reg_preds, self.obj_preds = (
            nn.ModuleList(),
            nn.ModuleList(),
            nn.ModuleList(),
        )
        for channels in (256, 512, 1024):
            self.stems.append(BaseConv(int(channels * config.width), hidden, 1))
            self.cls_convs.append(
                nn.Sequential(_conv(dw, hidden, hidden, 3), _conv(dw, hidden, hidden, 3))
            )
            self.reg_convs.append(
                nn.Sequential(_conv(dw, hidden, hidden, 3), _conv(dw, hidden, hidden, 3))
            )
            self.cls_preds.append(nn.Conv2d(hidden, config.num_classes, 1))
            self.reg_preds.append(nn.Conv2d(hidden, 4, 1))
            self.obj_preds.append(nn.Conv2d(hidden, 1, 1))

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """Raw maps per level ``(B, 4 + 1 + C, H, W)``: box regression, objectness, class logits."""
        outputs = []
        for level, x in enumerate(features):
            x = self.stems[level](x)
            reg = self.reg_convs[level](x)
            cls_logits = self.cls_preds[level](self.cls_convs[level](x))
            outputs.append(
                torch.cat([self.reg_preds[level](reg), self.obj_preds[level](reg), cls_logits], 1)
            )
        return outputs


class Yolox(nn.Module):
    """The whole network; :meth:`forward` returns decoded ``(B, N, 4 + 1 + C)`` predictions:
    box centre x, y and width, height in input pixels, then objectness and class probabilities."""

    def __init__(self, config: YoloxConfig):
        super().__init__()
        self.config = config
        self.backbone = PAFPN(config)
        self.head = YoloxHead(config)

    def forward_raw(self, images: torch.Tensor) -> list[torch.Tensor]:
        """``images`` (B, 3, S, S) BGR 0..255 -> raw head maps per stride (see :class:`YoloxHead`)."""
        return self.head(self.backbone(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return decode(self.forward_raw(images))


def decode(raw: list[torch.Tensor]) -> torch.Tensor:
    """Raw head maps (strides 8, 16, 32) -> ``(B, N, 5 + C)`` decoded predictions (see :class:`Yolox`)."""
    decoded = []
    for level_map, stride in zip(raw, STRIDES, strict=True):
        batch, channels, height, width = level_map.shape
        flat = level_map.float().flatten(2).transpose(1, 2)  # (B, H*W, 5 + C), row-major cells
        rows, cols = torch.meshgrid(
            torch.arange(height, device=flat.device),
            torch.arange(width, device=flat.device),
            indexing="ij",
        )
        grid = torch.stack([cols, rows], dim=-1).reshape(1, -1, 2).to(flat.dtype)
        centre = (flat[..., :2] + grid) * stride
        size = torch.exp(flat[..., 2:4]) * stride
        decoded.append(torch.cat([centre, size, torch.sigmoid(flat[..., 4:])], dim=-1))
    return torch.cat(decoded, dim=1)


def letterbox(image_rgb: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """YOLOX input ``(3, size, size)`` float32 BGR 0..255 and the scale from image to input pixels."""
    import cv2

    height, width = image_rgb.shape[:2]
    scale = min(size / height, size / width)
    new_w, new_h = int(width * scale), int(height * scale)
    canvas = np.full((size, size, 3), PAD_VALUE, np.float32)
    resized = cv2.resize(image_rgb, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    canvas[:new_h, :new_w] = resized[..., ::-1]
    return canvas.transpose(2, 0, 1), scale


_DEPTH_KEYS = {
    "backbone_depth": re.compile(r"^backbone\.backbone\.dark2\.1\.m\.(\d+)\."),
    "neck_depth": re.compile(r"^backbone\.C3_p4\.m\.(\d+)\."),
}


def config_from_state_dict(
    state: dict[str, torch.Tensor], input_size: int | None = None
) -> YoloxConfig:
    """Read a YOLOX network's shape from its tensors; raises :class:`DetectorWeightsError`."""
    stem_key = "backbone.backbone.stem.conv.conv.weight"
    if stem_key not in state or "head.cls_preds.0.weight" not in state:
        sample = ", ".join(list(state)[:3])
        raise DetectorWeightsError(
            f"this is not a YOLOX checkpoint: expected keys such as {stem_key!r}, found {sample} ..."
        )
    width = state[stem_key].shape[0] / 64
    counts = {}
    for name, pattern in _DEPTH_KEYS.items():
        indices = {int(m.group(1)) for key in state if (m := pattern.match(key))}
        counts[name] = max(indices) + 1 if indices else 0
    depthwise = "backbone.backbone.dark2.0.dconv.conv.weight" in state
    size = input_size or (416 if width <= 0.375 else 640)
    return YoloxConfig(
        width, counts["backbone_depth"], counts["neck_depth"], depthwise,
        int(state["head.cls_preds.0.weight"].shape[0]), size,
    )  # fmt: skip


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a YOLOX ``.pth`` (the released files hold them under ``"model"``)."""
    try:
        checkpoint = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DetectorWeightsError(f"detector weights not found: {path}") from None
    except Exception as error:  # torch raises many types for truncated or foreign files
        raise DetectorWeightsError(
            f"cannot read detector weights {path} ({type(error).__name__}: {error}); the file is "
            f"truncated or not a PyTorch checkpoint — download it again with "
            f"`python -m inference weights download yolox-s`"
        ) from error
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("model"), dict):
        checkpoint = checkpoint["model"]
    if not isinstance(checkpoint, dict) or not all(
        isinstance(v, torch.Tensor) for v in checkpoint.values()
    ):
        raise DetectorWeightsError(f"{path} does not hold a state dict of tensors")
    return {key.removeprefix("module."): value for key, value in checkpoint.items()}


def build_from_state_dict(state: dict[str, torch.Tensor], input_size: int | None = None) -> Yolox:
    """A :class:`Yolox` with ``state`` loaded strictly (a clear error lists bad keys)."""
    model = Yolox(config_from_state_dict(state, input_size))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:

        def head(keys: list[str]) -> str:
            return ", ".join(keys[:5]) + (" ..." if len(keys) > 5 else "")

        raise DetectorWeightsError(
            f"YOLOX checkpoint does not fit the network ({model.config}): "
            f"missing [{head(missing)}], unexpected [{head(unexpected)}], wrong shape [{head(wrong)}]"
        )
    model.load_state_dict(state)
    return model.eval()


class YoloxDetector:
    """Person boxes with a YOLOX network: ``detect(frames)`` -> per frame ``(n, 5)`` x, y, w, h, score.

    ``person_class`` is the class index of people (0 in COCO and in our single-class models).
    A box is a person when that class is the most likely one and objectness x class probability
    is at least ``score_threshold``; overlapping boxes are merged by NMS at ``nms_iou``.
    """

    name = "yolox"

    def __init__(
        self,
        model: Yolox,
        device: str | torch.device = "cpu",
        score_threshold: float = 0.3,
        nms_iou: float = 0.45,
        person_class: int = 0,
        min_size: float = 8.0,
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.person_class = person_class
        self.min_size = min_size
        self.input_size = model.config.input_size

    @classmethod
    def from_file(cls, path: str | os.PathLike, **kwargs) -> YoloxDetector:
        detector = cls(build_from_state_dict(load_state_dict(path)), **kwargs)
        detector.name = f"yolox:{os.path.basename(os.fspath(path))}"
        return detector

    @torch.inference_mode()
    def predict(self, frames: list[np.ndarray]) -> tuple[torch.Tensor, list[float]]:
        """Decoded predictions ``(B, N, 5 + C)`` in input pixels and the per-frame input scales."""
        inputs, scales = zip(*(letterbox(frame, self.input_size) for frame in frames), strict=True)
        batch = torch.from_numpy(np.stack(inputs))
        if self.device.type == "cuda":
            batch = batch.pin_memory().to(self.device, non_blocking=True)
            batch = batch.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.float16):
                raw = self.model.forward_raw(batch)
            return decode(raw), list(scales)
        return self.model(batch), list(scales)

    def detect(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        """Per frame ``(n, 5)`` float32 boxes x, y, w, h (original pixels) and score, best first."""
        if not frames:
            return []
        predictions, scales = self.predict(frames)
        return [
            self.boxes_from_prediction(prediction, scale)
            for prediction, scale in zip(predictions.cpu().numpy(), scales, strict=True)
        ]

    def boxes_from_prediction(self, prediction: np.ndarray, scale: float) -> np.ndarray:
        """One image's decoded ``(N, 5 + C)`` predictions -> ``(n, 5)`` person boxes x, y, w, h,
        score in original pixels (input pixels divided by ``scale``), after NMS, best first."""
        class_probs = prediction[:, 5:]
        scores = prediction[:, 4] * class_probs[:, self.person_class]
        keep = (class_probs.argmax(axis=1) == self.person_class) & (scores >= self.score_threshold)
        keep &= (prediction[:, 2:4] >= self.min_size * scale).all(axis=1)
        centre, size, scores = prediction[keep, :2], prediction[keep, 2:4], scores[keep]
        boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1) / scale
        order = nms(boxes, scores, self.nms_iou)
        boxes = np.concatenate([xyxy_to_xywh(boxes[order]), scores[order, None]], axis=1)
        return boxes.astype(np.float32).reshape(-1, 5)
