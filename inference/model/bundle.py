"""Model bundles: the official MeTRAbs PyTorch layout, for downloaded and for our own models.

A bundle is a folder (or a ``.tar.gz`` of one) holding::

    ckpt.pt                     state dict of the crop model (torch.load, weights_only=True)
    config.yaml                 model constants (see ``config.ModelConfig``)
    joint_info.npz              joint_names (J,) str, joint_edges (E, 2) int
    joint_transform_matrix.npy  (J, N) float: raw joints -> N output joints (poses @ matrix)
    skeleton_infos.pkl          {skeleton: {'indices': (K,) int into N, 'names': K str,
                                'edges': (E, 2) int}}

Nothing in a bundle can run code: the checkpoint is read with ``weights_only=True``, the arrays
with ``allow_pickle=False`` and ``skeleton_infos.pkl`` with a restricted unpickler that admits only
dicts, lists, tuples, strings, numbers and plain numpy arrays.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import pickle
import re
import shutil
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..weights.registry import BUNDLE_FILES
from .config import ModelConfig, dump_yaml_subset, parse_yaml_subset
from .errors import (
    BundleError,
    BundleFileMissingError,
    CheckpointCorruptError,
    CheckpointMismatchError,
    ConfigError,
    TensorFlowModelError,
    UnsafePickleError,
)
from .metrabs import MetrabsModel

logger = logging.getLogger(__name__)

LAYOUT_HELP = (
    "A MeTRAbs PyTorch bundle is a folder (or .tar.gz of one) with " + ", ".join(BUNDLE_FILES) + "."
)


@dataclass(frozen=True, eq=False)
class Bundle:
    """A loaded bundle: the crop model in eval mode on CPU plus its joint sets.

    Attributes:
        model: the crop model (weights loaded strictly).
        config: its constants.
        joint_names: ``J`` raw joint names; ``joint_edges``: ``(E, 2)`` int32.
        joint_transform_matrix: ``(J, N)`` float32, raw joints -> output joints.
        skeleton_infos: per skeleton name: ``indices`` (K,) int64 into the N output joints,
            ``names`` K str, ``edges`` (E, 2) int64.
        path: the folder or archive it came from.
    """

    model: MetrabsModel
    config: ModelConfig
    joint_names: tuple[str, ...]
    joint_edges: np.ndarray
    joint_transform_matrix: np.ndarray
    skeleton_infos: dict[str, dict[str, Any]] = field(default_factory=dict)
    path: Path | None = None


def load_bundle(path: str | Path) -> Bundle:
    """Load a bundle folder or ``.tar.gz`` into a ready (eval, CPU) model.

    Raises:
        BundleFileMissingError, CheckpointCorruptError, CheckpointMismatchError,
        TensorFlowModelError, UnsafePickleError, ConfigError: each with what was found and what
        is expected.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise BundleFileMissingError(f"No model bundle at {path}. {LAYOUT_HELP}")
    if path.is_file():
        if not tarfile.is_tarfile(path):
            raise BundleError(
                f"{path} is a file but not a .tar.gz archive. {LAYOUT_HELP} Pass the folder or "
                "the archive as downloaded."
            )
        with tempfile.TemporaryDirectory(prefix="metrabs_bundle_") as tmp:
            folder = _extract_bundle(path, Path(tmp))
            bundle = _load_folder(folder)
        return dataclasses.replace(bundle, path=path)
    return _load_folder(path)


def _load_folder(folder: Path) -> Bundle:
    _check_layout(folder)
    config = _read_config(folder / "config.yaml")
    joint_names, joint_edges = _read_joint_info(folder / "joint_info.npz")
    transform = _read_array(folder / "joint_transform_matrix.npy")
    if transform.ndim != 2 or transform.shape[0] != len(joint_names):
        raise BundleError(
            f"joint_transform_matrix.npy has shape {transform.shape}; expected ({len(joint_names)}, "
            "N) for the joints of joint_info.npz."
        )
    skeleton_infos = _read_skeleton_infos(folder / "skeleton_infos.pkl", transform.shape[1])
    model = MetrabsModel(config, joint_names, joint_edges)
    state_dict = _read_checkpoint(folder / "ckpt.pt")
    _load_state_dict_strict(model, state_dict, config)
    model.eval()
    return Bundle(
        model=model,
        config=config,
        joint_names=tuple(joint_names),
        joint_edges=model.joint_edges,
        joint_transform_matrix=transform.astype(np.float32),
        skeleton_infos=skeleton_infos,
        path=folder,
    )


def _check_layout(folder: Path) -> None:
    if (folder / "saved_model.pb").exists() or (folder / "variables").is_dir():
        raise TensorFlowModelError(
            f"{folder} is a TensorFlow SavedModel (saved_model.pb, variables/); this add-on runs "
            f"the PyTorch release of MeTRAbs. Download the PyTorch bundle instead. {LAYOUT_HELP}"
        )
    missing = [name for name in BUNDLE_FILES if not (folder / name).is_file()]
    if missing:
        found = sorted(p.name for p in folder.iterdir())[:12]
        raise BundleFileMissingError(
            f"Model bundle {folder} lacks {', '.join(missing)} (found: "
            f"{', '.join(found) or 'nothing'}). {LAYOUT_HELP}"
        )


def _extract_bundle(archive: Path, destination: Path) -> Path:
    """Extract only the bundle's regular files (from one folder) of ``archive``; return the folder."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = [m for m in tar.getmembers() if m.isfile()]
            names = {m.name for m in members}
            if any(Path(m.name).name in ("saved_model.pb", "saved_model.pbtxt") for m in members):
                raise TensorFlowModelError(
                    f"{archive} holds a TensorFlow SavedModel; download the PyTorch bundle. "
                    + LAYOUT_HELP
                )
            ckpts = [m for m in members if Path(m.name).name == "ckpt.pt"]
            if len(ckpts) != 1:
                raise BundleFileMissingError(
                    f"{archive} holds {len(ckpts)} ckpt.pt files (of {len(names)} files); expected "
                    f"one. {LAYOUT_HELP}"
                )
            prefix = str(Path(ckpts[0].name).parent)
            for member in members:
                relative = Path(member.name)
                if str(relative.parent) != prefix or relative.name not in BUNDLE_FILES:
                    continue
                source = tar.extractfile(member)
                assert source is not None  # regular file
                with source, open(destination / relative.name, "wb") as target:
                    shutil.copyfileobj(source, target)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise CheckpointCorruptError(
            f"Cannot read the archive {archive} ({exc}); the download is probably incomplete. "
            "Download it again or verify it (python -m inference weights verify)."
        ) from exc
    return destination


def _read_config(path: Path) -> ModelConfig:
    try:
        values = parse_yaml_subset(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not a text file: {exc}") from exc
    return ModelConfig.from_mapping(values)


def _read_array(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise BundleError(
            f"Cannot read {path.name} as a plain numpy array ({exc}); the bundle is damaged or "
            "holds pickled objects."
        ) from exc


def _read_joint_info(path: Path) -> tuple[list[str], np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            if "joint_names" not in data or "joint_edges" not in data:
                raise BundleError(
                    f"{path.name} has arrays {sorted(data.files)}; expected joint_names and "
                    "joint_edges."
                )
            names = [str(n) for n in data["joint_names"]]
            edges = np.asarray(data["joint_edges"]).astype(np.int64).reshape(-1, 2)
    except (ValueError, OSError, EOFError) as exc:
        raise BundleError(f"Cannot read {path.name} ({exc}); the bundle is damaged.") from exc
    if edges.size and (edges.min() < 0 or edges.max() >= len(names)):
        raise BundleError(f"{path.name}: joint_edges index joints outside 0..{len(names) - 1}.")
    return names, edges


class _RestrictedUnpickler(pickle.Unpickler):
    """Admits containers, strings, numbers and plain numpy arrays; refuses every other global."""

    def find_class(self, module: str, name: str) -> Any:
        module = module.replace("numpy._core", "numpy.core")
        if (module, name) == ("numpy.core.multiarray", "_reconstruct"):
            return _safe_reconstruct
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return _safe_dtype
        if (module, name) == ("numpy.core.multiarray", "scalar"):
            return _safe_scalar
        if (module, name) == ("numpy.core.numeric", "_frombuffer"):  # protocol-5 arrays
            return _safe_frombuffer
        if (module, name) == ("_codecs", "encode"):  # how protocol 2 stores bytes
            return _latin1_encode
        raise UnsafePickleError(
            f"skeleton_infos.pkl refers to {module}.{name}; only dicts, lists, tuples, strings, "
            "numbers and numpy arrays are allowed. The file may have been tampered with: "
            "download the bundle again from the official source."
        )


def _safe_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    if subtype is not np.ndarray:
        raise UnsafePickleError("skeleton_infos.pkl: array of a subclass of ndarray refused.")
    return np.core.multiarray._reconstruct(subtype, shape, dtype)


def _safe_dtype(spec: Any, *args: Any) -> np.dtype:
    dtype = np.dtype(spec, *args)
    if dtype.hasobject:
        raise UnsafePickleError("skeleton_infos.pkl: numpy arrays of Python objects are refused.")
    return dtype


def _safe_scalar(dtype: np.dtype, data: bytes = b"") -> Any:
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise UnsafePickleError("skeleton_infos.pkl: numpy object scalars are refused.")
    return np.core.multiarray.scalar(dtype, data)


def _safe_frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise UnsafePickleError("skeleton_infos.pkl: numpy arrays of Python objects are refused.")
    return np.core.numeric._frombuffer(buffer, dtype, shape, order)


def _latin1_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("skeleton_infos.pkl: unexpected use of _codecs.encode refused.")
    return text.encode("latin1")


def read_restricted_pickle(data: bytes) -> Any:
    """Unpickle ``data`` admitting only containers, strings, numbers and numpy arrays."""
    try:
        return _RestrictedUnpickler(io.BytesIO(data)).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise BundleError(f"skeleton_infos.pkl is damaged ({exc}).") from exc


def _read_skeleton_infos(path: Path, n_output_joints: int) -> dict[str, dict[str, Any]]:
    raw = read_restricted_pickle(path.read_bytes())
    if not isinstance(raw, Mapping):
        raise BundleError(f"{path.name} holds a {type(raw).__name__}; expected a dict by skeleton.")
    infos = {}
    for skeleton, info in raw.items():
        if not isinstance(info, Mapping) or not {"indices", "names", "edges"} <= set(info):
            raise BundleError(f"{path.name}: skeleton {skeleton!r} lacks indices/names/edges.")
        indices = np.asarray(info["indices"], dtype=np.int64).reshape(-1)
        names = [str(n) for n in info["names"]]
        edges = np.asarray(info["edges"], dtype=np.int64).reshape(-1, 2)
        if len(indices) != len(names) or (
            indices.size and (indices.min() < 0 or indices.max() >= n_output_joints)
        ):
            raise BundleError(
                f"{path.name}: skeleton {skeleton!r} has {len(indices)} indices for {len(names)} "
                f"names, or indices outside 0..{n_output_joints - 1}."
            )
        infos[str(skeleton)] = {"indices": indices, "names": names, "edges": edges}
    return infos


def _read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointCorruptError(
            f"{path.name} holds objects other than tensors, refused for safety ({exc}). "
            "Download the bundle again from the official source."
        ) from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        size = path.stat().st_size
        raise CheckpointCorruptError(
            f"Cannot read {path} ({size} bytes): {str(exc).splitlines()[0]}. The file is "
            "truncated or damaged; download the bundle again and verify its SHA-256."
        ) from exc
    if isinstance(state, Mapping) and "state_dict" in state and len(state) < 10:
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise CheckpointCorruptError(f"{path.name} is not a state dict of tensors.")
    return dict(state)


_STAGE_KEY = re.compile(r"^backbone\.1\.(\d+)\.(\d+)\.block\.")


def describe_checkpoint_backbone(keys: list[str] | Mapping[str, Any]) -> str:
    """Guess which backbone a state dict's keys belong to (e.g. ``efficientnetv2-l``)."""
    blocks: dict[int, int] = {}
    for key in keys:
        match = _STAGE_KEY.match(key)
        if match:
            stage, block = int(match.group(1)), int(match.group(2))
            blocks[stage] = max(blocks.get(stage, 0), block + 1)
    if not blocks:
        return "resnet50" if any(k.startswith("backbone.1.layer4.") for k in keys) else "unknown"
    counts = tuple(blocks[s] for s in sorted(blocks))
    from .backbones import EFFICIENTNETV2_STAGES

    for size, stages in EFFICIENTNETV2_STAGES.items():
        if counts == tuple(s.layers for s in stages):
            return f"efficientnetv2-{size}"
    return f"an EfficientNet-like network with {counts} blocks per stage"


def _load_state_dict_strict(
    model: MetrabsModel, state: dict[str, torch.Tensor], config: ModelConfig
) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or wrong_shape:
        found = describe_checkpoint_backbone(list(state))
        details = []
        if missing:
            details.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        if wrong_shape:
            details.append(f"{len(wrong_shape)} of another shape (e.g. {wrong_shape[0]})")
        raise CheckpointMismatchError(
            f"ckpt.pt does not fit config.yaml: the config describes {config.backbone} with "
            f"{model.n_joints} joints, the checkpoint's keys look like {found}; "
            f"{'; '.join(details)}. Use the config.yaml that came with this ckpt.pt."
        )
    model.load_state_dict(state, strict=True)


def save_bundle(
    model: MetrabsModel,
    path: str | Path,
    joint_transform_matrix: np.ndarray | None = None,
    skeleton_infos: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """Write ``model`` as a bundle folder (or ``.tar.gz`` when ``path`` ends so); returns ``path``.

    Args:
        model: an unfused model (``prepare_for_inference(fuse_batchnorm=True)`` changes its keys).
        joint_transform_matrix: ``(J, N)``; identity by default.
        skeleton_infos: ``{name: {'indices', 'names', 'edges'}}``; by default one skeleton named
            ``"model"`` with all joints.
    """
    if model.is_fused:
        raise BundleError(
            "Cannot save a BatchNorm-fused model; save it before prepare_for_inference."
        )
    path = Path(path)
    n = model.n_joints
    transform = (
        np.eye(n, dtype=np.float32)
        if joint_transform_matrix is None
        else np.asarray(joint_transform_matrix, np.float32)
    )
    if transform.ndim != 2 or transform.shape[0] != n:
        raise BundleError(
            f"joint_transform_matrix must have shape ({n}, N), got {transform.shape}."
        )
    if skeleton_infos is None:
        skeleton_infos = {
            "model": {
                "indices": list(range(n)),
                "names": list(model.joint_names),
                "edges": model.joint_edges.tolist(),
            }
        }
    plain_infos = {
        str(name): {
            "indices": [int(i) for i in info["indices"]],
            "names": [str(s) for s in info["names"]],
            "edges": [[int(a), int(b)] for a, b in np.asarray(info["edges"]).reshape(-1, 2)],
        }
        for name, info in skeleton_infos.items()
    }
    archive = path.name.endswith((".tar.gz", ".tgz"))
    with tempfile.TemporaryDirectory(prefix="metrabs_save_") as tmp:
        folder = Path(tmp) / (path.name.split(".")[0] if archive else path.name)
        folder.mkdir()
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        torch.save(state, folder / "ckpt.pt")
        (folder / "config.yaml").write_text(dump_yaml_subset(model.config.to_mapping()))
        np.savez(
            folder / "joint_info.npz",
            joint_names=np.array(model.joint_names),
            joint_edges=model.joint_edges.astype(np.int32),
        )
        np.save(folder / "joint_transform_matrix.npy", transform)
        (folder / "skeleton_infos.pkl").write_bytes(pickle.dumps(plain_infos, protocol=4))
        if archive:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tarfile.open(path, "w:gz") as tar:
                tar.add(folder, arcname=folder.name)
        else:
            path.mkdir(parents=True, exist_ok=True)
            for name in BUNDLE_FILES:
                shutil.move(str(folder / name), str(path / name))
    logger.info("saved model bundle to %s", path)
    return path
