"""Model configuration (the bundle's ``config.yaml``) and a small, safe YAML-subset reader/writer.

The official bundles ship a flat hydra/OmegaConf dump such as::

    proc_side: 384
    stride_train: 32
    centered_stride: true
    backbone: efficientnetv2-l
    mix_3d_inside_fov: 0.5
    affine_weights: null

PyYAML is not a dependency of the project, so :func:`parse_yaml_subset` reads exactly this subset:
one ``key: value`` per line, ``#`` comments, scalars (``null``/``~``, ``true``/``false``, integers,
floats, plain or quoted strings) and flow lists of scalars (``[1, 2]``). Anything else (nesting,
anchors, multi-line strings) raises :class:`ConfigError` naming the line, rather than guessing.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

logger = logging.getLogger(__name__)

BACKBONES = (
    "efficientnetv2-s",
    "efficientnetv2-m",
    "efficientnetv2-l",
    "efficientnetv2-b0",
    "resnet50",
)
MODEL_CLASSES = ("metrabs", "metro")

# Keys every config.yaml must state: the geometry of the heatmaps depends on all of them.
REQUIRED_KEYS = ("proc_side", "depth", "box_size_mm", "stride_test", "centered_stride")


@dataclass(frozen=True)
class ModelConfig:
    """Constants of a MeTRAbs crop model, as stated in its ``config.yaml``.

    Defaults are those of the official training script; :meth:`from_mapping` requires the keys in
    ``REQUIRED_KEYS`` and a backbone to be present, so the geometry never comes from a default.
    """

    backbone: str = "efficientnetv2-s"  # one of BACKBONES
    proc_side: int = 256  # crop side in pixels that the network sees
    depth: int = 8  # voxels along z in the metric 3D heatmap
    box_size_mm: float = 2200.0  # side of the metric 3D heatmap volume, millimetres
    stride_train: int = 32  # backbone output stride used while training
    stride_test: int = 32  # backbone output stride used at inference
    centered_stride: bool = True  # shifted padding in the last stride-2 stage + pixel offset
    legacy_centered_stride_bug: bool = False  # extra stride/2 pixel offset of some old models
    weak_perspective: bool = False  # weak instead of full perspective root reconstruction
    mix_3d_inside_fov: float | None = 0.5  # in-view joints: share of the 3D-based estimate
    model_class: str = "metrabs"  # "metrabs" (absolute) or "metro" (root-relative only)
    mean_relative: bool = True  # metro: centre the output on the joint mean
    backbone_width_mult: float = 1.0  # efficientnetv2-b0 only: channel multiplier
    backbone_depth_mult: float = 1.0  # efficientnetv2-b0 only: block-count multiplier

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ConfigError(
                f"Unknown backbone {self.backbone!r}; expected one of {', '.join(BACKBONES)}."
            )
        if self.model_class not in MODEL_CLASSES:
            raise ConfigError(
                f"Unknown model_class {self.model_class!r}; expected one of {MODEL_CLASSES}."
            )
        if self.proc_side <= 0 or self.proc_side % 32:
            raise ConfigError(f"proc_side must be a positive multiple of 32, got {self.proc_side}.")
        if self.depth <= 0 or self.box_size_mm <= 0:
            raise ConfigError("depth and box_size_mm must be positive.")
        if self.stride_test != 32 or self.stride_train != 32:
            raise ConfigError(
                "Only output stride 32 is supported (stride_train = stride_test = 32), got "
                f"{self.stride_train}/{self.stride_test}."
            )
        if self.mix_3d_inside_fov is not None and not 0.0 <= self.mix_3d_inside_fov <= 1.0:
            raise ConfigError(
                f"mix_3d_inside_fov must be in [0, 1] or null, got {self.mix_3d_inside_fov}."
            )

    @property
    def heatmap_side(self) -> int:
        """Side of the heatmaps in cells (``proc_side / stride_test``)."""
        return self.proc_side // self.stride_test

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> ModelConfig:
        """Build a config from a parsed ``config.yaml`` (official or ours); unknown keys are ignored.

        Raises:
            ConfigError: a required key is missing, or the config asks for an unsupported variant
                (affine latent points, ``transform_coords``, ``predict_all_and_latents``).
        """
        missing = [key for key in REQUIRED_KEYS if key not in values]
        if "backbone" not in values and "efficientnet_size" not in values:
            missing.append("backbone")
        if missing:
            raise ConfigError(
                f"config.yaml lacks {', '.join(missing)}; a MeTRAbs config states the crop size, "
                "heatmap depth, box size, stride and backbone (see the official config_l.yaml)."
            )
        for key in ("transform_coords", "predict_all_and_latents"):
            if values.get(key):
                raise ConfigError(
                    f"config.yaml sets {key}: true; that model variant is unsupported."
                )
        if values.get("affine_weights"):
            raise ConfigError(
                "config.yaml names affine_weights; latent-point models are unsupported."
            )

        backbone = values.get("backbone")
        if backbone is None:
            backbone = f"efficientnetv2-{values['efficientnet_size']}"
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {key: values[key] for key in fields if key in values and key != "backbone"}
        kwargs["backbone"] = str(backbone).replace("_", "-").lower()
        if "efficientnet_size" in values and "backbone" in values:
            size = str(values["efficientnet_size"]).lower()
            if kwargs["backbone"] != f"efficientnetv2-{size}":
                raise ConfigError(
                    f"config.yaml says backbone {backbone!r} but efficientnet_size {size!r}."
                )
        if "model_class" in kwargs:
            kwargs["model_class"] = str(kwargs["model_class"]).lower()
        if "stride_train" not in values:
            kwargs["stride_train"] = values["stride_test"]
        try:
            return cls(**_coerce(kwargs))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"config.yaml has a value of the wrong type: {exc}") from exc

    def to_mapping(self) -> dict[str, Any]:
        """The config as a flat dict, ready for :func:`dump_yaml_subset`."""
        return dataclasses.asdict(self)


def _coerce(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Convert YAML scalars to the field types (``2200`` -> 2200.0, ``1`` for a bool is refused)."""
    out = dict(kwargs)
    for field in dataclasses.fields(ModelConfig):
        if field.name not in out or out[field.name] is None:
            continue
        value = out[field.name]
        kind = str(field.type)
        if kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"{field.name} must be true or false, got {value!r}")
        elif kind == "int":
            if isinstance(value, bool) or int(value) != value:
                raise ValueError(f"{field.name} must be an integer, got {value!r}")
            out[field.name] = int(value)
        elif kind.startswith("float"):
            if isinstance(value, bool):
                raise ValueError(f"{field.name} must be a number, got {value!r}")
            out[field.name] = float(value)
    return out


_KEY_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_.\-]*)\s*:(?:\s+(.*))?$")
_INT_RE = re.compile(r"^[-+]?\d+$")
_FLOAT_RE = re.compile(r"^[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?$")


def parse_yaml_subset(text: str) -> dict[str, Any]:
    """Parse a flat YAML mapping of scalars (see the module docstring) into a dict.

    Raises:
        ConfigError: a line outside the supported subset, naming its number.
    """
    result: dict[str, Any] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _strip_comment(raw).rstrip()
        if not line.strip() or line.strip() in ("---", "..."):
            continue
        if line[0].isspace():
            raise ConfigError(
                f"config.yaml line {number}: nested or indented YAML is not supported ({raw!r})."
            )
        match = _KEY_RE.match(line)
        if match is None:
            raise ConfigError(f"config.yaml line {number}: expected 'key: value', got {raw!r}.")
        key, value = match.group(1), (match.group(2) or "").strip()
        if not value:
            raise ConfigError(
                f"config.yaml line {number}: key {key!r} has no inline value (nested mappings "
                "and block lists are not supported)."
            )
        if key in result:
            raise ConfigError(f"config.yaml line {number}: duplicate key {key!r}.")
        result[key] = _parse_value(value, number)
    return result


def _strip_comment(line: str) -> str:
    """Remove a ``#`` comment that is not inside quotes."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def _parse_value(value: str, number: int) -> Any:
    if value.startswith("[") and value.endswith("]"):
        inner = value[1:-1].strip()
        return [_parse_scalar(item.strip(), number) for item in inner.split(",")] if inner else []
    return _parse_scalar(value, number)


def _parse_scalar(value: str, number: int) -> Any:
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'")
    if len(value) >= 2 and value[0] == value[-1] == '"' and "\\" not in value:
        return value[1:-1]
    if value[0] in "&*!|>{[@`'\"":
        raise ConfigError(f"config.yaml line {number}: unsupported YAML value {value!r}.")
    lowered = value.lower()
    if lowered in ("null", "~"):
        return None
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    if _INT_RE.match(value):
        return int(value)
    if _FLOAT_RE.match(value):
        return float(value)
    if lowered in (".inf", "+.inf", "-.inf", ".nan"):
        return float(lowered.replace(".", ""))
    return value


def dump_yaml_subset(values: Mapping[str, Any]) -> str:
    """Write a flat mapping of scalars so that :func:`parse_yaml_subset` (and PyYAML) read it back."""
    lines = []
    for key, value in values.items():
        if not _KEY_RE.match(f"{key}: x"):
            raise ConfigError(f"Cannot write config key {key!r}.")
        lines.append(f"{key}: {_format_scalar(value)}")
    return "\n".join(lines) + "\n"


def _format_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_format_scalar(v) for v in value) + "]"
    raise ConfigError(f"Cannot write a config value of type {type(value).__name__}.")
