"""Which models exist: the built-in entries (official MeTRAbs, the project's own models, YOLOX
detectors), where each comes from and under which licence, and the JSON override file."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelNotFoundError, RegistryError

REGISTRY_ENV = "METRABS_MOCAP_REGISTRY"
REPO_ROOT = Path(__file__).resolve().parents[2]


#: files of a MeTRAbs model bundle (the official PyTorch release's layout; ours uses it too)
BUNDLE_FILES = (
    "ckpt.pt",
    "config.yaml",
    "joint_info.npz",
    "joint_transform_matrix.npy",
    "skeleton_infos.pkl",
)


POSE_BUNDLE = "pose_bundle"
DETECTOR = "detector"
KINDS = (POSE_BUNDLE, DETECTOR)
DEFAULT_POSE_MODEL = "metrabs_eff2l_384px_800k_28ds_pytorch"


# The detectors the worker's "auto" takes, the first installed one in this order; the download of
# a pose model brings the first of them unless one is installed (DETECTOR_WITH_POSE_MODEL).
AUTO_DETECTORS = ("yolox_s", "yolox_m", "yolox_tiny", "yolox_nano")
DETECTOR_WITH_POSE_MODEL = "yolox_s"
OFFLINE_POSE_MODEL = "metrabs_small_synth"
OFFLINE_DETECTOR = "yolox_synth"  # the detector trained with OFFLINE_POSE_MODEL's data


@dataclass(frozen=True)
class ModelEntry:
    """One known model. ``urls`` for downloadable ones, ``project_path`` for ones in the repository."""

    name: str
    kind: str  # POSE_BUNDLE or DETECTOR
    description: str
    license: str
    urls: tuple[str, ...] = ()  # tried in order
    filename: str | None = None  # name of the downloaded file
    archive: bool = False  # a tar(.gz) holding a bundle folder, unpacked after download
    sha256: str | None = None  # published SHA-256 of the download; None if not published
    size: int | None = None  # published size of the download in bytes; None if not published
    approx_size: str = ""  # human hint for the manual steps when ``size`` is unknown
    project_path: str | None = None  # folder or file relative to the repository root
    input_size: int | None = None  # detectors: square input side in pixels, from the publisher
    source_note: str = ""  # where the URL / hash facts come from

    @property
    def source(self) -> str:
        """``"project"`` for models in the repository, ``"remote"`` for downloads."""
        return "project" if self.project_path else "remote"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise RegistryError(
                f"Model {self.name!r}: kind must be one of {KINDS}, not {self.kind!r}"
            )
        if bool(self.project_path) == bool(self.urls):
            raise RegistryError(
                f"Model {self.name!r} needs either urls or project_path (not both)."
            )
        if self.urls and not self.filename:
            raise RegistryError(f"Model {self.name!r} has urls but no filename.")
        if not self.name or "/" in self.name or "\\" in self.name or self.name.startswith("."):
            raise RegistryError(f"Model name {self.name!r} must be a plain name without slashes.")


_YOLOX_RELEASE = "https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0"
_YOLOX_NOTE = (
    "URL from the README of Megvii-BaseDetection/YOLOX (release 0.1.1rc0, Apache-2.0); COCO-trained, "
    "person = class 0. No SHA-256 or byte size is published: the hash is recorded at first download."
)


def _yolox(variant: str, input_size: int, description: str, approx_size: str = "") -> ModelEntry:
    return ModelEntry(
        name=f"yolox_{variant}",
        kind=DETECTOR,
        description=description,
        license="Apache-2.0",
        urls=(f"{_YOLOX_RELEASE}/yolox_{variant}.pth",),
        filename=f"yolox_{variant}.pth",
        input_size=input_size,
        approx_size=approx_size,
        source_note=_YOLOX_NOTE,
    )


BUILTIN_MODELS: tuple[ModelEntry, ...] = (
    ModelEntry(
        name="metrabs_eff2l_384px_800k_28ds_pytorch",
        kind=POSE_BUNDLE,
        description="Official MeTRAbs, EfficientNetV2-L, 384 px crops, trained on 28 datasets",
        license="non-commercial use only (training-data licences)",
        urls=(
            "https://bit.ly/metrabs_l_pt",
            "https://omnomnom.vision.rwth-aachen.de/data/metrabs/"
            "metrabs_eff2l_384px_800k_28ds_pytorch.tar.gz",
        ),
        filename="metrabs_eff2l_384px_800k_28ds_pytorch.tar.gz",
        archive=True,
        approx_size="about 440 MB",
        source_note=(
            "First URL: the link in the README of isarandi/metrabs ('wget -O - "
            "https://bit.ly/metrabs_l_pt | tar -xzvf -'). Second URL: the authors' server, which "
            "hosts their other models (docs/MODELS.md); this exact path appears only in third-party "
            "code, not in the official README. Neither size nor SHA-256 is published: the hash is "
            "recorded at first download. The size is approximate: third-party download scripts "
            "give ~440 MB, as the fp32 weights of EfficientNetV2-L (118 M parameters) predict."
        ),
    ),
    ModelEntry(
        name="metrabs_small_synth",
        kind=POSE_BUNDLE,
        description="Small MeTRAbs trained by this project on its own synthetic data (tests, demo)",
        license="GPL-3.0-or-later (project's own weights)",
        project_path="models/metrabs_small_synth",
        source_note="Bundled with the project; integrity is tracked by the repository itself.",
    ),
    ModelEntry(
        name=OFFLINE_DETECTOR,
        kind=DETECTOR,
        description="Small person detector trained by this project on its synthetic frames (demo)",
        license="GPL-3.0-or-later (project's own weights)",
        project_path="models/yolox_synth/yolox_synth.pth",
        input_size=416,
        source_note="Bundled with the project; integrity is tracked by the repository itself.",
    ),
    # Approximate sizes as users report them (YOLOX issues 495, 1304): the files hold optimizer
    # state beside the weights.
    _yolox("nano", 416, "YOLOX-Nano person detector (COCO AP 25.8, 0.91 M params)", "about 8 MB"),
    _yolox("tiny", 416, "YOLOX-Tiny person detector (COCO AP 32.8, 5.06 M params)"),
    _yolox("s", 640, "YOLOX-S person detector (COCO AP 40.5, 9.0 M params)", "about 70 MB"),
    _yolox("m", 640, "YOLOX-M person detector (COCO AP 46.9, 25.3 M params)"),
)


_ENTRY_FIELDS = {f.name for f in dataclasses.fields(ModelEntry)}


def load_registry(override: Path | str | None = None) -> dict[str, ModelEntry]:
    """Built-in models, updated by a JSON override file (``override``, else ``$METRABS_MOCAP_REGISTRY``).

    The file holds ``{"models": [{"name": ..., <ModelEntry fields>}, ...]}``; ``"url"`` is accepted
    for a single URL. An entry whose name is built in replaces only the fields it gives (e.g. a
    mirror URL or a hash); a new name adds a model. Used for mirrors, and by the tests to point
    downloads at a local server.
    """
    registry = {entry.name: entry for entry in BUILTIN_MODELS}
    path = override if override is not None else os.environ.get(REGISTRY_ENV) or None
    if path is None:
        return registry
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RegistryError(f"Cannot read the registry file {path}: {exc}") from exc
    items = data.get("models") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise RegistryError(f'Registry file {path} must hold {{"models": [...]}}.')
    for item in items:
        entry = _entry_from_json(item, registry, path)
        registry[entry.name] = entry
    return registry


def _entry_from_json(item: object, registry: dict[str, ModelEntry], path: object) -> ModelEntry:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise RegistryError(f"Registry file {path}: every model needs a string 'name'.")
    fields = dict(item)
    if "url" in fields:
        fields["urls"] = [fields.pop("url")]
    unknown = set(fields) - _ENTRY_FIELDS
    if unknown:
        raise RegistryError(
            f"Registry file {path}, model {item['name']!r}: unknown fields {sorted(unknown)}; "
            f"known: {sorted(_ENTRY_FIELDS)}."
        )
    if "urls" in fields:
        fields["urls"] = tuple(fields["urls"])
    base = registry.get(fields["name"])
    try:
        return dataclasses.replace(base, **fields) if base else ModelEntry(**fields)
    except TypeError as exc:
        raise RegistryError(f"Registry file {path}, model {item['name']!r}: {exc}") from exc


def get_entry(name: str, registry: dict[str, ModelEntry] | None = None) -> ModelEntry:
    """The registry entry called ``name``; ``ModelNotFoundError`` listing the known names if none."""
    registry = load_registry() if registry is None else registry
    try:
        return registry[name]
    except KeyError:
        raise ModelNotFoundError(
            f"Unknown model {name!r}. Known models: {', '.join(sorted(registry))} "
            "(see `python -m inference weights list`), or give a path to a model folder/tarball."
        ) from None


def project_file(entry: ModelEntry) -> Path:
    """Where a model bundled with the project lies in the repository, present or not."""
    return REPO_ROOT / str(entry.project_path)
