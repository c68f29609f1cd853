"""The MeTRAbs crop model in PyTorch: official-weight compatible, plus our own small backbones.

Everything the rest of the project needs::

    from inference.model import load_bundle, MetrabsModel, ModelConfig

    bundle = load_bundle("metrabs_eff2l_384px_800k_28ds_pytorch.tar.gz")  # or the folder
    model = bundle.model.prepare_for_inference("cuda")   # eval, BN folded, fp16 autocast, NHWC
    poses = model.predict(crops, intrinsics, batch_size=64)
    poses.poses3d   # (B, J, 3) float32 mm, crop camera frame (OpenCV axes: x right, y down, z fwd)
    poses.poses2d   # (B, J, 2) float32 crop pixels (the 2D heatmap head's estimate)

Inputs: ``crops`` ``(B, 3, S, S)`` float RGB in ``[0, 1]`` with ``S = model.config.proc_side``
(384 for the released model); ``intrinsics`` ``(B, 3, 3)`` the crop camera matrix (pixels of the
crop). Joints are the bundle's raw joints (``bundle.joint_names``); map them to output skeletons
with ``poses3d @ bundle.joint_transform_matrix`` then ``[..., skeleton_infos[name]['indices'], :]``.
Poses of crops in one ``predict`` chunk are solved with one shared RMS normalisation, exactly like
the official code (a sub-millimetre effect); set ``model.batch_global_scale = False`` to make each
crop independent of its batch.

Speed/precision: :meth:`MetrabsModel.prepare_for_inference` takes ``amp_dtype``
(``"auto"`` = float16 on CUDA, none on CPU; ``torch.bfloat16`` works too), ``channels_last``,
``fuse_batchnorm`` and ``compile``; ``predict`` runs under ``torch.inference_mode``. Soft-argmax,
the pixel/millimetre conversion and the root least squares always run in float32.

Training: build ``MetrabsModel(ModelConfig(backbone="efficientnetv2-b0", proc_side=...),
joint_names, joint_edges)``; in ``model.train()`` call ``heads = model.predict_heads(crops)``:
``heads.coords2d`` ``(B, J, 2)`` crop px (2D loss), ``heads.coords3d`` ``(B, J, 3)`` mm relative
to an unknown reference (metric 3D loss, e.g. after subtracting the joint mean),
``heads.logits2d``/``heads.logits3d`` the raw heatmaps; ``model.reconstruct(heads, intrinsics)``
gives the differentiable absolute pose (absolute loss). Save with :func:`save_bundle` (same layout
as the official bundle, loadable by :func:`load_bundle`). ``config.model_class = "metro"`` gives
the root-relative MeTRo variant (no 2D head; ``poses3d`` centred on the joint mean).

Errors derive from :class:`ModelError` (an ``inference.InferenceError``).
"""

from .bundle import BUNDLE_FILES, Bundle, load_bundle, save_bundle
from .config import ModelConfig
from .errors import (
    BundleError,
    BundleFileMissingError,
    CheckpointCorruptError,
    CheckpointMismatchError,
    ConfigError,
    ModelError,
    TensorFlowModelError,
    UnsafePickleError,
)
from .metrabs import CropPoses, HeadOutputs, MetrabsModel, reconstruct_absolute, soft_argmax

__all__ = [
    "BUNDLE_FILES",
    "Bundle",
    "BundleError",
    "BundleFileMissingError",
    "CheckpointCorruptError",
    "CheckpointMismatchError",
    "ConfigError",
    "CropPoses",
    "HeadOutputs",
    "MetrabsModel",
    "ModelConfig",
    "ModelError",
    "TensorFlowModelError",
    "UnsafePickleError",
    "load_bundle",
    "reconstruct_absolute",
    "save_bundle",
    "soft_argmax",
]
