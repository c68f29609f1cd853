"""Errors of the model package; every message says what was found and what to do."""

from .. import InferenceError


class ModelError(InferenceError):
    """Base class of the errors raised by ``inference.model``."""


class ConfigError(ModelError):
    """A model config (``config.yaml``) is missing a key, has a bad value or unsupported syntax."""


class BundleError(ModelError):
    """A model bundle (folder or ``.tar.gz``) is missing, incomplete or not in the expected layout."""


class BundleFileMissingError(BundleError):
    """A file of the bundle layout is absent."""


class CheckpointCorruptError(BundleError):
    """``ckpt.pt`` cannot be read (truncated download, wrong file)."""


class CheckpointMismatchError(BundleError):
    """``ckpt.pt`` has keys or shapes that do not fit the model that ``config.yaml`` describes."""


class TensorFlowModelError(BundleError):
    """A TensorFlow SavedModel was given where a PyTorch bundle is expected."""


class UnsafePickleError(BundleError):
    """``skeleton_infos.pkl`` holds something other than plain containers, numbers and arrays."""
