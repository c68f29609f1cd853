"""Weights manager: which model files to load, where they live, how they get there.

``python -m inference weights list | download NAME | verify [NAME] | path NAME``

Library entry point for other modules (the analysis's ``--model``)::

    folder = resolve_model("metrabs_eff2l_384px_800k_28ds_pytorch")  # installed copy in the cache
    folder = resolve_model("/downloads/metrabs_eff2l_384px_800k_28ds_pytorch.tar.gz")  # manual file
    folder = resolve_model("metrabs_small_synth")  # bundled with the project (repository folder)
    folder = resolve_model(default_pose_model())  # the official model if installed, else the bundled

The offline default. Without downloads the analysis runs the bundled pose model
``metrabs_small_synth`` with the bundled detector ``yolox_synth`` (both trained by the project on
its own synthetic renders, good for the demo and the tests, not for real footage).

Cache (``METRABS_MOCAP_CACHE``, else the platform's user cache folder, see ``cache_dir``)::

    downloads/<file>         finished downloads waiting to be unpacked; <file>.part while in flight
                             (<file>.part.url: the URL those bytes came from)
    models/<name>/           installed models (a bundle folder, or a folder holding one weight file)
    manifests/<name>.json    size + SHA-256 of every installed file, written last (= "installed")
    extracted/<stem>-<key>/  tarballs given by path (``--model file.tar.gz``), unpacked once
    recorded_hashes.json     SHA-256 of downloads whose hash the publisher does not publish

Hashes. When the publisher gives a SHA-256, every download is checked against it. None of the
current remote entries has a published hash (neither the MeTRAbs README nor the YOLOX release
pages publish one), so the first successful download's SHA-256 is recorded ("trust on first use")
and every later download or ``verify`` is checked against that record. This detects corruption
and later substitution, not a file that was already wrong at the first download.

Command line (``cli.py``): stdout carries only JSON lines (``inference.jsonlines``), each with
``"event"`` and ``"time"``; logs go to stderr. Events: ``model`` (one per ``list`` entry), ``download_start``,
``progress`` (``downloaded``, ``total`` bytes or null, ``fraction``, ``speed_bps``), ``resume``,
``restart``, ``retry``, ``download_done``, ``verified``, ``hash_recorded``, ``install``,
``installed``, ``path`` (``name``, ``path``), ``verify`` (``status``, ``problems``),
``verify_summary``, ``warning`` (``message``), ``error`` (``message``, ``exit_code``, ``kind``).
Downloading a pose model also installs the person detector YOLOX-S unless a YOLOX detector is
installed (``--no-detector``: not); its events carry its own ``name``. Exit codes: 0 success,
1 other error, 2 bad command line, 3 model not found / not installed, 4 network unreachable (the
message gives the manual steps), 5 download failed (run again to resume), 6 integrity failure
(hash/size mismatch, unsafe archive, wrong bundle layout), 130 interrupted (Ctrl-C).

The modules:

================  ========================================================================
``registry``      the known models (:class:`ModelEntry`), the registry override file
``cache``         the cache folder, installed models, recorded and installed-file hashes
``file_hashes``   full SHA-256 of large files, remembered by size and modification time
``install``       download, check, unpack and install; a file downloaded by hand
``verify``        re-hash an installed model
``resolve``       a ``--model`` value as the path to load; the default pose model
``cli``           the command; ``errors``: the errors and their exit codes
================  ========================================================================
"""

from .cache import (
    CACHE_ENV,
    CachePaths,
    cache_dir,
    check_installed,
    expected_hash,
    forget_recorded_hash,
    installed_path,
    model_digest,
    recorded_hash,
)
from .cli import configure_parser, main
from .errors import (
    EXIT_DOWNLOAD,
    EXIT_ERROR,
    EXIT_INTEGRITY,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_OFFLINE,
    EXIT_OK,
    EXIT_USAGE,
    ModelDownloadError,
    ModelIntegrityError,
    ModelNotFoundError,
    ModelOfflineError,
    RegistryError,
    WeightsError,
)
from .install import download_model, ensure_detector, install_from_file, manual_steps
from .registry import (
    AUTO_DETECTORS,
    BUILTIN_MODELS,
    BUNDLE_FILES,
    DEFAULT_POSE_MODEL,
    DETECTOR,
    DETECTOR_WITH_POSE_MODEL,
    KINDS,
    OFFLINE_DETECTOR,
    OFFLINE_POSE_MODEL,
    POSE_BUNDLE,
    REGISTRY_ENV,
    ModelEntry,
    get_entry,
    load_registry,
)
from .resolve import default_pose_model, extract_local_tarball, resolve_model
from .verify import VerifyResult, verify_model

__all__ = [
    "AUTO_DETECTORS",
    "BUILTIN_MODELS",
    "BUNDLE_FILES",
    "CACHE_ENV",
    "DEFAULT_POSE_MODEL",
    "DETECTOR",
    "DETECTOR_WITH_POSE_MODEL",
    "EXIT_DOWNLOAD",
    "EXIT_ERROR",
    "EXIT_INTEGRITY",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_OFFLINE",
    "EXIT_OK",
    "EXIT_USAGE",
    "KINDS",
    "OFFLINE_DETECTOR",
    "OFFLINE_POSE_MODEL",
    "POSE_BUNDLE",
    "REGISTRY_ENV",
    "CachePaths",
    "ModelDownloadError",
    "ModelEntry",
    "ModelIntegrityError",
    "ModelNotFoundError",
    "ModelOfflineError",
    "RegistryError",
    "VerifyResult",
    "WeightsError",
    "cache_dir",
    "check_installed",
    "configure_parser",
    "default_pose_model",
    "download_model",
    "ensure_detector",
    "expected_hash",
    "extract_local_tarball",
    "forget_recorded_hash",
    "get_entry",
    "install_from_file",
    "installed_path",
    "load_registry",
    "main",
    "manual_steps",
    "model_digest",
    "recorded_hash",
    "resolve_model",
    "verify_model",
]
