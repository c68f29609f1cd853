"""Convolutional backbones of the crop model: EfficientNetV2-S/M/L/B0 and ResNet-50.

All take ``(B, 3, H, W)`` float RGB in ``[0, 1]`` through :class:`InputScaling` and return
``(B, C, H/32, W/32)`` features. EfficientNetV2 modules are named like torchvision's ``features``
so that the official MeTRAbs checkpoint keys (``backbone.1.<stage>.<block>.block.<layer>.*``) load
strictly. Facts taken from the official MeTRAbs PyTorch port:

* padding is TensorFlow's fixed "SAME" padding: ``k - 1`` pixels in total, ``(k - 1) // 2`` before;
* BatchNorm eps is 1e-3 (the TF default), activations SiLU, squeeze-excite width ``in_ch // 4``;
* with ``centered_stride`` the strided depthwise conv of the stride-2 stage before the last stage
  group has its padding shifted by one pixel towards the bottom right, so each output cell samples
  the centre of its 2x2 input block.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError

BN_EPS_TF = 1e-3  # BatchNorm eps of the TF-trained EfficientNetV2 weights
OUTPUT_STRIDE = 32


class InputScaling(nn.Module):
    """``(B, 3, H, W)`` RGB in ``[0, 1]`` -> ``[-1, 1]`` (the official ``backbone.0``; no weights)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 - 1


def fixed_padding(kernel: int, shift: int = 0) -> tuple[int, int]:
    """(before, after) padding of TF "SAME" fixed padding, shifted by ``shift`` pixels.

    A negative ``before`` crops; ``shift=1`` moves every strided sample one pixel down/right.
    """
    total = kernel - 1
    before = total // 2
    return before - shift, total - before + shift


class ConvBNAct(nn.Sequential):
    """Conv (no bias) -> BatchNorm -> optional activation; children ``0``, ``1`` (, ``2``).

    Padding is TF fixed padding, applied inside the conv when symmetric (faster) and with an
    explicit ``F.pad`` when shifted.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int,
        stride: int = 1,
        groups: int = 1,
        act: type[nn.Module] | None = nn.SiLU,
        shift: int = 0,
        bn_eps: float = BN_EPS_TF,
    ) -> None:
        before, after = fixed_padding(kernel, shift)
        symmetric = before == after and before >= 0
        conv = nn.Conv2d(
            in_ch,
            out_ch,
            kernel,
            stride,
            padding=before if symmetric else 0,
            groups=groups,
            bias=False,
        )
        layers: list[nn.Module] = [conv, nn.BatchNorm2d(out_ch, eps=bn_eps)]
        if act is not None:
            layers.append(act(inplace=True))
        super().__init__(*layers)
        self.explicit_pad = None if symmetric else (before, after, before, after)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.explicit_pad is not None:
            x = F.pad(x, self.explicit_pad)
        for layer in self:
            x = layer(x)
        return x


class SqueezeExcite(nn.Module):
    """Channel gating ``x * sigmoid(fc2(silu(fc1(mean_hw(x)))))``; keys ``fc1``, ``fc2``."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)
        scale = torch.sigmoid(self.fc2(F.silu(self.fc1(scale))))
        return x * scale


def _drop_path(x: torch.Tensor, prob: float, training: bool) -> torch.Tensor:
    """Stochastic depth ("row" mode): zero whole samples of a residual branch while training."""
    if not training or prob == 0.0:
        return x
    keep = 1.0 - prob
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


@dataclass(frozen=True)
class StageSpec:
    """One EfficientNetV2 stage (row of Table 4 of the EfficientNetV2 paper)."""

    fused: bool  # FusedMBConv (full conv) instead of MBConv (depthwise + squeeze-excite)
    expand: int  # expansion ratio
    kernel: int  # kernel side
    stride: int  # stride of the first block
    in_ch: int  # input channels
    out_ch: int  # output channels
    layers: int  # number of blocks
    centered: bool = False  # shift the strided conv's padding when centered_stride is on


def _f(*args: int) -> StageSpec:
    return StageSpec(True, *args)


def _m(*args: int, centered: bool = False) -> StageSpec:
    return StageSpec(False, *args, centered=centered)


# (expand, kernel, stride, in, out, layers); the official port marks the stride-2 stage before the
# last group as the centred one.
EFFICIENTNETV2_STAGES: dict[str, tuple[StageSpec, ...]] = {
    "s": (
        _f(1, 3, 1, 24, 24, 2),
        _f(4, 3, 2, 24, 48, 4),
        _f(4, 3, 2, 48, 64, 4),
        _m(4, 3, 2, 64, 128, 6),
        _m(6, 3, 1, 128, 160, 9),
        _m(6, 3, 2, 160, 256, 15, centered=True),
    ),
    "m": (
        _f(1, 3, 1, 24, 24, 3),
        _f(4, 3, 2, 24, 48, 5),
        _f(4, 3, 2, 48, 80, 5),
        _m(4, 3, 2, 80, 160, 7),
        _m(6, 3, 1, 160, 176, 14),
        _m(6, 3, 2, 176, 304, 18, centered=True),
        _m(6, 3, 1, 304, 512, 5),
    ),
    "l": (
        _f(1, 3, 1, 32, 32, 4),
        _f(4, 3, 2, 32, 64, 7),
        _f(4, 3, 2, 64, 96, 7),
        _m(4, 3, 2, 96, 192, 10),
        _m(6, 3, 1, 192, 224, 19),
        _m(6, 3, 2, 224, 384, 25, centered=True),
        _m(6, 3, 1, 384, 640, 7),
    ),
    # The EfficientNetV2 "base" (B0) network: ~6 M parameters, for our own small models.
    "b0": (
        _f(1, 3, 1, 32, 16, 1),
        _f(4, 3, 2, 16, 32, 2),
        _f(4, 3, 2, 32, 48, 2),
        _m(4, 3, 2, 48, 96, 3),
        _m(6, 3, 1, 96, 112, 5),
        _m(6, 3, 2, 112, 192, 8, centered=True),
    ),
}
HEAD_CHANNELS = 1280


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of ``divisor``, never dropping more than 10 %."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand -> kxk depthwise -> squeeze-excite -> 1x1 project.

    ``block`` children are ``0`` expand, ``1`` depthwise, ``2`` SE, ``3`` project (``0``-``2``
    without expansion), the official key layout.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        expand: int,
        kernel: int,
        stride: int,
        shift: int,
        drop_prob: float,
    ) -> None:
        super().__init__()
        mid = make_divisible(in_ch * expand)
        layers: list[nn.Module] = []
        if mid != in_ch:
            layers.append(ConvBNAct(in_ch, mid, 1))
        layers.append(ConvBNAct(mid, mid, kernel, stride, groups=mid, shift=shift))
        layers.append(SqueezeExcite(mid, max(1, in_ch // 4)))
        layers.append(ConvBNAct(mid, out_ch, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_ch == out_ch
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if self.use_residual:
            out = _drop_path(out, self.drop_prob, self.training) + x
        return out


class FusedMBConv(nn.Module):
    """Fused inverted residual: kxk expand conv -> 1x1 project (one kxk conv without expansion)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        expand: int,
        kernel: int,
        stride: int,
        shift: int,
        drop_prob: float,
    ) -> None:
        super().__init__()
        mid = make_divisible(in_ch * expand)
        if mid != in_ch:
            layers = [
                ConvBNAct(in_ch, mid, kernel, stride, shift=shift),
                ConvBNAct(mid, out_ch, 1, act=None),
            ]
        else:
            layers = [ConvBNAct(in_ch, out_ch, kernel, stride, shift=shift)]
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_ch == out_ch
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if self.use_residual:
            out = _drop_path(out, self.drop_prob, self.training) + x
        return out


class EfficientNetV2Features(nn.Sequential):
    """EfficientNetV2 feature extractor, ``(B, 3, H, W)`` in ``[-1, 1]`` -> ``(B, 1280, H/32, W/32)``.

    Children: ``0`` stem (3x3 stride 2), ``1..n`` stages, ``n+1`` the 1x1 head conv to 1280.
    """

    def __init__(
        self,
        stages: Sequence[StageSpec],
        centered_stride: bool,
        width_mult: float = 1.0,
        depth_mult: float = 1.0,
        stochastic_depth_prob: float = 0.0,
    ) -> None:
        def width(ch: int) -> int:
            return ch if width_mult == 1.0 else make_divisible(ch * width_mult)

        specs = [
            StageSpec(
                s.fused,
                s.expand,
                s.kernel,
                s.stride,
                width(s.in_ch),
                width(s.out_ch),
                int(math.ceil(s.layers * depth_mult)),
                s.centered,
            )
            for s in stages
        ]
        layers: list[nn.Module] = [ConvBNAct(3, specs[0].in_ch, 3, stride=2)]
        total = sum(s.layers for s in specs)
        block_id = 0
        for spec in specs:
            blocks = []
            for i in range(spec.layers):
                block_cls = FusedMBConv if spec.fused else MBConv
                first = i == 0
                blocks.append(
                    block_cls(
                        spec.in_ch if first else spec.out_ch,
                        spec.out_ch,
                        spec.expand,
                        spec.kernel,
                        spec.stride if first else 1,
                        1 if (first and spec.centered and centered_stride) else 0,
                        stochastic_depth_prob * block_id / total,
                    )
                )
                block_id += 1
            layers.append(nn.Sequential(*blocks))
        layers.append(ConvBNAct(specs[-1].out_ch, HEAD_CHANNELS, 1))
        super().__init__(*layers)
        self.out_channels = HEAD_CHANNELS


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck (stride on the 3x3 conv); torchvision key names."""

    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int, shift: int, bn_eps: float) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width, eps=bn_eps)
        # Shifted (centred-stride) padding needs an explicit pad; plain SAME padding is symmetric.
        self.pad3 = fixed_padding(3, shift) * 2 if shift else None
        self.pad1 = fixed_padding(1, shift) * 2 if shift else None
        self.conv2 = nn.Conv2d(width, width, 3, stride, padding=0 if shift else 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width, eps=bn_eps)
        self.conv3 = nn.Conv2d(width, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch, eps=bn_eps)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch, eps=bn_eps)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        if self.pad3 is not None:
            out = F.pad(out, self.pad3)
        out = F.relu(self.bn2(self.conv2(out)), inplace=True)
        out = self.bn3(self.conv3(out))
        identity = x
        if self.downsample is not None:
            identity = self.downsample(x if self.pad1 is None else F.pad(x, self.pad1))
        return F.relu(out + identity, inplace=True)


class ResNet50Features(nn.Module):
    """ResNet-50 (v1.5) trunk, ``(B, 3, H, W)`` -> ``(B, 2048, H/32, W/32)``; torchvision keys.

    With ``centered_stride`` the strided convs of ``layer4`` sample the centre of each 2x2 block.
    """

    def __init__(self, centered_stride: bool, bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=bn_eps)
        self.maxpool = nn.MaxPool2d(3, 2, padding=1)
        in_ch = 64
        for index, (width, blocks, stride) in enumerate(
            [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)], start=1
        ):
            shift = 1 if (index == 4 and centered_stride) else 0
            layer = []
            for i in range(blocks):
                layer.append(
                    Bottleneck(
                        in_ch, width, stride if i == 0 else 1, shift if i == 0 else 0, bn_eps
                    )
                )
                in_ch = width * Bottleneck.expansion
            setattr(self, f"layer{index}", nn.Sequential(*layer))
        self.out_channels = in_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x)), inplace=True))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def build_backbone(
    name: str,
    centered_stride: bool,
    width_mult: float = 1.0,
    depth_mult: float = 1.0,
    stochastic_depth_prob: float = 0.0,
) -> nn.Sequential:
    """``Sequential(InputScaling(), features)``: keys ``backbone.1.*`` as in the official model.

    Args:
        name: ``efficientnetv2-s|m|l|b0`` or ``resnet50``.
        centered_stride: shifted padding in the last stride-2 stage (config ``centered_stride``).
        width_mult, depth_mult: channel/block multipliers, only for ``efficientnetv2-b0``.
        stochastic_depth_prob: EfficientNetV2 drop-path rate of the last block while training.

    The returned module has ``out_channels`` (feature channels) set.
    """
    if name.startswith("efficientnetv2-"):
        size = name.split("-", 1)[1]
        if size not in EFFICIENTNETV2_STAGES:
            raise ConfigError(f"Unknown EfficientNetV2 size {size!r}.")
        if size != "b0" and (width_mult != 1.0 or depth_mult != 1.0):
            raise ConfigError("Width/depth multipliers apply to efficientnetv2-b0 only.")
        features: nn.Module = EfficientNetV2Features(
            EFFICIENTNETV2_STAGES[size],
            centered_stride,
            width_mult,
            depth_mult,
            stochastic_depth_prob,
        )
    elif name == "resnet50":
        features = ResNet50Features(centered_stride)
    else:
        raise ConfigError(f"Unknown backbone {name!r}.")
    backbone = nn.Sequential(InputScaling(), features)
    backbone.out_channels = features.out_channels
    return backbone


@torch.no_grad()
def fuse_batchnorm_(module: nn.Module) -> int:
    """Fold every eval-mode BatchNorm that follows a conv into that conv, in place.

    For inference only (the state dict keys change). Returns the number of folded pairs.
    """
    count = 0
    for child in module.modules():
        pairs: list[tuple[nn.Module, str, str]] = []
        if isinstance(child, ConvBNAct) or (
            isinstance(child, nn.Sequential)
            and len(child) >= 2
            and isinstance(child[0], nn.Conv2d)
            and isinstance(child[1], nn.BatchNorm2d)
        ):
            pairs.append((child, "0", "1"))
        if isinstance(child, Bottleneck | ResNet50Features):
            pairs += [(child, f"conv{i}", f"bn{i}") for i in (1, 2, 3) if hasattr(child, f"bn{i}")]
        for parent, conv_name, bn_name in pairs:
            conv, bn = getattr(parent, conv_name), getattr(parent, bn_name)
            if not isinstance(bn, nn.BatchNorm2d):
                continue
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            bias = bn.bias - bn.running_mean * scale
            if conv.bias is not None:
                bias = bias + conv.bias * scale
            conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
            conv.bias = nn.Parameter(bias)
            setattr(parent, bn_name, nn.Identity())
            count += 1
    return count
