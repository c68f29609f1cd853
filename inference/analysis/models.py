"""The models of an analysis: the torch device, the pose estimator (with the joints it writes) and
the person detector, loaded through the weights manager (``inference.weights``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .errors import InputError, ModelUnavailableError
from .events import AnalysisEvents
from .settings import DEFAULT_SKELETON, Settings

logger = logging.getLogger(__name__)


class PoseEstimatorLike(Protocol):
    """What an analysis needs of a pose estimator (``inference.poses.PoseEstimator``)."""

    def estimate(
        self, frames: list[np.ndarray], boxes: list[np.ndarray], intrinsics: np.ndarray
    ) -> list[Any]:
        """Per frame an object (or mapping) with ``poses3d`` (n, J, 3) mm, ``poses2d`` (n, J, 2)
        px and ``uncertainty`` (n, J)."""
        ...


def resolve_device(spec: str) -> str:
    """The torch device of ``--device`` (auto: CUDA when there is one), checked to exist here."""
    if spec == "cpu":
        return spec  # no need to import torch to know
    import torch

    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise InputError(
            f"--device {spec!r} is not a device; use auto, cpu, cuda or cuda:N"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {spec}: CUDA is not available here; use --device cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise InputError(f"--device {spec}: this machine has {count} CUDA device(s), "
                             f"cuda:0 to cuda:{count - 1}")  # fmt: skip
    elif device.type != "cpu":
        raise InputError(f"--device {spec}: only cpu and cuda devices are supported")
    return spec


def warn_if_offline_default(settings: Settings, events: AnalysisEvents) -> None:
    """Say so when no pose model was named and none is installed, so the bundled synthetic one
    runs: its results on real footage are not usable."""
    from .. import weights

    if settings.model is None and weights.default_pose_model() == weights.OFFLINE_POSE_MODEL:
        events.warning(
            f"No official MeTRAbs model is installed: using the bundled demo model "
            f"{weights.OFFLINE_POSE_MODEL}, trained on synthetic people only (fine for the demo, "
            f"not for real footage). Install the official one with `python -m inference weights "
            f"download {weights.DEFAULT_POSE_MODEL}`."
        )


def load_pose_estimator(settings: Settings, device: str) -> PoseEstimatorLike:
    """The pose estimator for ``settings.model`` (default: the official model when installed, else
    the bundled offline model), via the weights manager and the bundle loader;
    :class:`ModelUnavailableError` says how to install one."""
    from .. import weights

    name = settings.model or weights.default_pose_model()
    try:
        folder = weights.resolve_model(name)
    except weights.WeightsError as error:
        raise ModelUnavailableError(str(error)) from None
    from ..model import load_bundle
    from ..poses import EstimatorConfig, PoseEstimator

    bundle = load_bundle(folder)
    infos = with_hand_extension(bundle.skeleton_infos, _output_joints(bundle))
    skeleton, info = _choose_skeleton(infos, settings.skeleton, name)
    indices, names, edges, bundle_names = _canonical_joints(skeleton, info, name)
    model = bundle.model.prepare_for_inference(device)
    config = EstimatorConfig(num_aug=settings.tta, batch_size=settings.batch_size)
    estimator = PoseEstimator(
        model,
        bundle.joint_names,
        device,
        config,
        joint_transform_matrix=bundle.joint_transform_matrix,
        skeleton_indices=indices,
        output_joint_names=names,
    )
    estimator.skeleton = skeleton
    estimator.joint_edges = edges
    estimator.bundle_joint_names = bundle_names
    digest = weights.model_digest(folder)  # all of its bytes: another model is another id
    estimator.model_id = f"{name if settings.model is None else Path(name).name} {digest}".strip()
    logger.info("pose model %s, skeleton %s", estimator.model_id, skeleton)
    return estimator


def _choose_skeleton(
    infos: dict[str, dict[str, Any]], wanted: str | None, model_name: str
) -> tuple[str, dict[str, Any]]:
    """The output skeleton: ``wanted``, else the project's canonical one with the hand extension
    where the model has it, else the canonical one, else the bundle's first."""
    if wanted is not None:
        if wanted not in infos:
            raise InputError(
                f"--skeleton {wanted}: model {model_name} has {', '.join(sorted(infos))}"
            )
        return wanted, infos[wanted]
    for name in (HAND_SKELETON, DEFAULT_SKELETON):
        if name in infos:
            return name, infos[name]
    name = next(iter(infos))
    return name, infos[name]


# The hand points of the hand extension, as the model's output joints spell them, best first: the
# Human3.6M ones (markers of a motion-capture suit, in the official release's raw joints), then
# any other dataset's (GPA, SMPL-X, Kinect v2 as linear combinations, ...).
HAND_SKELETON = "smpl+head+hands_34"
_HAND_SOURCES = ("h36m",)


def _output_joints(bundle: Any) -> tuple[tuple[str, ...], np.ndarray]:
    """Names and indices of every output joint of a bundle whose names are known: the official
    release's ``''`` skeleton (all of them), else the raw joints when the transform keeps them."""
    infos = getattr(bundle, "skeleton_infos", {}) or {}
    if "" in infos:
        return tuple(str(n) for n in infos[""]["names"]), np.asarray(infos[""]["indices"])
    names = tuple(str(n) for n in getattr(bundle, "joint_names", ()))
    matrix = getattr(bundle, "joint_transform_matrix", None)
    if matrix is not None and (matrix.shape[1] != len(names) or
                               not np.allclose(matrix, np.eye(len(names)))):  # fmt: skip
        return (), np.zeros(0, np.int64)
    return names, np.arange(len(names))


def hand_point_indices(names: tuple[str, ...], indices: np.ndarray) -> dict[str, tuple[int, str]]:
    """Per hand point (``retarget.skeletons.HAND_POINTS``) the output index and name the model
    predicts it as, best source first; a point the model lacks is left out."""
    from retarget.joints import canonical_name
    from retarget.skeletons import HAND_POINTS

    found = {}
    for joint in HAND_POINTS:
        candidates = [(n, int(i)) for n, i in zip(names, indices, strict=True)
                      if canonical_name(n) == joint]  # fmt: skip
        if not candidates:
            continue
        rank = [next((k for k, tag in enumerate(_HAND_SOURCES) if n.endswith("_" + tag)),
                     len(_HAND_SOURCES)) for n, _ in candidates]  # fmt: skip
        name, index = candidates[int(np.argmin(rank))]
        found[joint] = (index, name)
    return found


def with_hand_extension(
    infos: dict[str, dict[str, Any]], output: tuple[tuple[str, ...], np.ndarray]
) -> dict[str, dict[str, Any]]:
    """``infos`` with the hand extension (smpl+head_30 and the four hand points, in the bundle's
    own names) when the model has both; otherwise as they are."""
    from retarget.skeletons import HAND_POINTS

    if DEFAULT_SKELETON not in infos or HAND_SKELETON in infos:
        return infos
    hands = hand_point_indices(*output)
    if set(hands) != set(HAND_POINTS):
        return infos
    base = infos[DEFAULT_SKELETON]
    names = [str(n) for n in base["names"]] + [hands[j][1] for j in HAND_POINTS]
    indices = [int(i) for i in base["indices"]] + [hands[j][0] for j in HAND_POINTS]
    # A skeleton the contract knows: its edges come from retarget.skeletons (_canonical_joints).
    edges = np.asarray(base["edges"]).reshape(-1, 2)
    return {**infos, HAND_SKELETON: {"indices": indices, "names": names, "edges": edges}}


def _canonical_joints(
    skeleton: str, info: dict[str, Any], model_name: str
) -> tuple[np.ndarray, tuple[str, ...], np.ndarray, tuple[str, ...]]:
    """(indices, names, edges, bundle's names) of the output joints: a skeleton the contract knows
    in its canonical names and order, whatever the bundle calls them; another one as it is."""
    from retarget.joints import JointNamesError, skeleton_order
    from retarget.skeletons import SKELETONS

    indices = np.asarray(info["indices"], np.int64)
    names = tuple(str(n) for n in info["names"])
    edges = np.asarray(info["edges"], np.int32).reshape(-1, 2)
    known = SKELETONS.get(skeleton)
    if known is None:
        return indices, names, edges, names
    try:
        order = skeleton_order(names, known)
    except JointNamesError as error:
        raise ModelUnavailableError(f"model {model_name}: {error}") from None
    return indices[order], known.joint_names, known.edges, tuple(names[i] for i in order)


def load_detector(settings: Settings, device: str, events: AnalysisEvents) -> Any | None:
    """The person detector for ``settings.detector``; None for ``none``. ``auto`` takes the first
    installed YOLOX detector, else the bundled synthetic detector when the pose model is the
    bundled synthetic one (the offline default pair), else OpenCV's HOG with a warning."""
    from ..detect import make_detector

    spec = settings.detector
    if spec == "none":
        return None
    threshold = settings.detection_threshold
    if spec == "auto":
        from .. import weights

        for name in weights.AUTO_DETECTORS:
            if weights.installed_path(weights.get_entry(name)) is not None:
                try:
                    path = weights.resolve_model(name)  # checks its bytes are those installed
                except weights.WeightsError as error:
                    raise ModelUnavailableError(str(error)) from None
                logger.info("detector: %s (%s)", name, path)
                return make_detector(str(path), device, threshold)
        if (settings.model or weights.default_pose_model()) == weights.OFFLINE_POSE_MODEL:
            path = weights.resolve_model(weights.OFFLINE_DETECTOR)
            logger.info("detector: %s (%s)", weights.OFFLINE_DETECTOR, path)
            return make_detector(str(path), device, threshold)
        events.warning(
            "No YOLOX person detector is installed; using OpenCV's HOG detector (slower, misses "
            "people who are not upright). Install one with `python -m inference weights download "
            "yolox_s`."
        )
        return make_detector("hog", device, threshold)
    if spec != "hog" and not spec.lower().endswith((".pth", ".pt")):
        from .. import weights

        try:
            spec = str(weights.resolve_model(spec))
        except weights.WeightsError as error:
            raise ModelUnavailableError(str(error)) from None
    return make_detector(spec, device, threshold)


def model_id(estimator: PoseEstimatorLike, settings: Settings) -> str:
    """How a result names its model (its ``model`` key): the estimator's id (name and weights
    hash), else ``--model``."""
    return str(getattr(estimator, "model_id", "") or settings.model or "unknown-model")


@dataclass(frozen=True)
class Models:
    """The models of an analysis, loaded."""

    estimator: PoseEstimatorLike
    detector: Any | None  # ``detect(images) -> [(n, 5) boxes]``; None: poses alone follow people


@dataclass(frozen=True)
class ModelLoader:
    """Loads the models that the settings name, on a device; either loader may be replaced
    (tests and benchmarks bring their own models). Called by :func:`analyze` once the input and
    the output are known to be usable, so a bad video is reported before a slow model load."""

    estimator: Callable[[Settings, str], PoseEstimatorLike] = load_pose_estimator
    detector: Callable[[Settings, str, AnalysisEvents], Any | None] = load_detector

    def __call__(self, settings: Settings, device: str, events: AnalysisEvents) -> Models:
        if self.estimator is load_pose_estimator:
            warn_if_offline_default(settings, events)
        estimator = self.estimator(settings, device)
        return Models(estimator, self.detector(settings, device, events))


ModelSource = Models | Callable[[Settings, str, AnalysisEvents], Models]
"""What :func:`inference.analysis.analyze` takes: loaded models, or a loader such as
:class:`ModelLoader` (called with the settings, the resolved device and the events)."""


def tuned_batch_size(estimator: Any, settings: Settings, image_size: tuple[int, int]) -> int:
    """Crops per network call: the estimator's (tuned for ``image_size`` if automatic), else
    ``--batch-size`` or the CPU default; logged."""
    tune = getattr(estimator, "tune_batch_size", None)
    if tune is not None:
        size = int(tune(image_size))
    else:
        from ..poses import CPU_BATCH_SIZE

        size = settings.batch_size or CPU_BATCH_SIZE
    how = "automatic" if settings.batch_size is None else "--batch-size"
    logger.info("batch size: %d crops per network call (%s)", size, how)
    return size


def joint_info(
    estimator: PoseEstimatorLike,
) -> tuple[tuple[str, ...], np.ndarray, str, tuple[str, ...] | None]:
    """Joint names, edges (E, 2), skeleton name and the model's own names (None: the same) of the
    estimator's output joints."""
    from retarget.skeletons import SKELETONS

    names = getattr(estimator, "output_joint_names", None) or estimator.joint_names
    names = tuple(str(n) for n in names)
    skeleton = str(getattr(estimator, "skeleton", "") or "")
    edges = getattr(estimator, "joint_edges", None)
    known = next((s for s in SKELETONS.values() if s.joint_names == names), None)
    if known is not None:
        skeleton = skeleton or known.name
        edges = known.edges if edges is None else edges
    edges = np.zeros((0, 2), np.int32) if edges is None else np.asarray(edges, np.int32)
    bundle_names = getattr(estimator, "bundle_joint_names", None)
    bundle_names = None if bundle_names is None or tuple(bundle_names) == names else bundle_names
    return names, edges.reshape(-1, 2), skeleton or f"custom_{len(names)}", bundle_names
