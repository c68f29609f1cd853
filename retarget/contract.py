"""The trajectory contract: one ``.npz`` per clip, written by the worker, read by everything else.

Keys, dtypes and units (``T`` frames, ``P`` people, ``J`` joints, ``E`` edges):

=================  ==============  =========================================================
``poses3d``        f32 (T,P,J,3)   millimetres, camera frame (OpenCV: x right, y down, z fwd)
``poses2d``        f32 (T,P,J,2)   pixels in the original frame
``uncertainty``    f32 (T,P,J)     per joint, millimetres (spread of the estimate); NaN unknown
``boxes``          f32 (T,P,5)     x, y, w, h, detector score; NaN where the person is absent
``track_ids``      i32 (P,)        stable person ids
``frame_times``    f64 (T,)        seconds, strictly increasing (variable frame rate allowed)
``fps``            f64 ()          nominal frame rate
``image_size``     i32 (2,)        width, height in pixels; (0, 0) unknown
``intrinsics``     f64 (3,3)       camera matrix used for the crops; NaN unknown
``joint_names``    str (J,)
``joint_edges``    i32 (E,2)
``skeleton``       str ()          e.g. ``smpl+head_30``
``source``         str ()          video path and content hash
``model``          str ()          model id and hash
``format_version`` str ()          ``MAJOR.MINOR``; readers refuse a newer MAJOR
=================  ==============  =========================================================

Missing data is NaN. Optional extra arrays (cleaning results, flags) travel in ``extras`` under names
that do not clash with the keys above. A file is written atomically (temp file + rename), so a reader
never sees half a file and an earlier result is never destroyed by a failed write.

Files from other tools need only ``poses3d``, ``joint_names``, ``skeleton`` and ``frame_times`` or
``fps``; a reader fills the other keys (:data:`OPTIONAL_DEFAULTS`): no 2D poses, uncertainty or
boxes (NaN), track ids 0..P-1, times ``t / fps`` or the rate of the times, no camera (image size
(0, 0)) or, with an image size, a 55 degree field of view on its longer side, the skeleton's edges.

Joints are known by identity, not spelling (:mod:`retarget.joints`): a file declaring a known
skeleton may name its joints in any spelling and order; readers get them in the skeleton's
canonical names and order, the file's own names kept in ``extras["source_joint_names"]``.
"""

import contextlib
import dataclasses
import os
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import RetargetError
from .files import atomic_write
from .joints import JointNamesError, skeleton_order
from .skeletons import SKELETONS

FORMAT_VERSION = "1.2"  # 1.2: the hand extension smpl+head+hands_34
DEFAULT_FOV_DEG = 55.0  # on the longer image side, as the official MeTRAbs demo assumes
# Keys a file may leave out, and what a reader puts in their place (see the module docstring).
OPTIONAL_DEFAULTS = {
    "poses2d": "NaN",
    "uncertainty": "NaN",
    "boxes": "NaN",
    "track_ids": "0..P-1",
    "frame_times": "t / fps",
    "fps": "1 / median step of frame_times",
    "image_size": "(0, 0): unknown",
    "intrinsics": f"{DEFAULT_FOV_DEG:g} deg field of view on the longer side, NaN without a size",
    "joint_edges": "the skeleton's edges",
    "source": "empty",
    "model": "empty",
    "format_version": FORMAT_VERSION,
}


class ContractError(RetargetError):
    """A trajectory file or object that breaks the contract; the message names the bad key."""


@dataclass
class Trajectory:
    """All poses of one clip, see the module docstring for shapes and units."""

    poses3d: np.ndarray
    poses2d: np.ndarray
    uncertainty: np.ndarray
    boxes: np.ndarray
    track_ids: np.ndarray
    frame_times: np.ndarray
    fps: float
    image_size: np.ndarray
    intrinsics: np.ndarray
    joint_names: tuple[str, ...]
    joint_edges: np.ndarray
    skeleton: str
    source: str = ""
    model: str = ""
    format_version: str = FORMAT_VERSION
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return self.poses3d.shape[0]

    @property
    def num_people(self) -> int:
        return self.poses3d.shape[1]

    @property
    def num_joints(self) -> int:
        return self.poses3d.shape[2]

    def replace(self, **changes) -> "Trajectory":
        return dataclasses.replace(self, **changes)


# key -> (dtype kind, shape with symbolic dims); "U" = string
_ARRAY_SPECS: dict[str, tuple[str, tuple]] = {
    "poses3d": ("f", ("T", "P", "J", 3)),
    "poses2d": ("f", ("T", "P", "J", 2)),
    "uncertainty": ("f", ("T", "P", "J")),
    "boxes": ("f", ("T", "P", 5)),
    "track_ids": ("i", ("P",)),
    "frame_times": ("f", ("T",)),
    "fps": ("f", ()),
    "image_size": ("i", (2,)),
    "intrinsics": ("f", (3, 3)),
    "joint_names": ("U", ("J",)),
    "joint_edges": ("i", ("E", 2)),
    "skeleton": ("U", ()),
    "source": ("U", ()),
    "model": ("U", ()),
    "format_version": ("U", ()),
}
_STORED_DTYPES = {
    "poses3d": np.float32,
    "poses2d": np.float32,
    "uncertainty": np.float32,
    "boxes": np.float32,
    "track_ids": np.int32,
    "frame_times": np.float64,
    "fps": np.float64,
    "image_size": np.int32,
    "intrinsics": np.float64,
    "joint_edges": np.int32,
}


def _check_array(key: str, value: np.ndarray, dims: dict[str, int]) -> None:
    kind, shape = _ARRAY_SPECS[key]
    if kind == "f" and value.dtype.kind not in "f":
        raise ContractError(f"{key!r} must be a float array, got dtype {value.dtype}")
    if kind == "i" and value.dtype.kind not in "iu":
        raise ContractError(f"{key!r} must be an integer array, got dtype {value.dtype}")
    if kind == "U" and value.dtype.kind not in "US":
        raise ContractError(f"{key!r} must be a string, got dtype {value.dtype}")
    if value.ndim != len(shape):
        raise ContractError(f"{key!r} must have {len(shape)} dimensions {shape}, got {value.shape}")
    for axis, (expected, actual) in enumerate(zip(shape, value.shape, strict=True)):
        if isinstance(expected, str):
            expected = dims.setdefault(expected, actual)
        if expected != actual:
            raise ContractError(
                f"{key!r} has shape {value.shape}; axis {axis} should be {expected} "
                f"to match the other arrays {dict(dims)}"
            )


def _check_version(version: str) -> None:
    try:
        major, _minor = (int(part) for part in version.split("."))
    except ValueError:
        raise ContractError(f"'format_version' {version!r} is not MAJOR.MINOR") from None
    supported_major = int(FORMAT_VERSION.split(".")[0])
    if major > supported_major:
        raise ContractError(
            f"this file has format_version {version}, newer than this add-on understands "
            f"({FORMAT_VERSION}); update MeTRAbs Mocap to read it"
        )


def _check_values(arrays: dict[str, np.ndarray]) -> None:
    times = arrays["frame_times"]
    if not np.all(np.isfinite(times)):
        raise ContractError("'frame_times' contains NaN or infinite values")
    if times.size > 1 and not np.all(np.diff(times) > 0):
        raise ContractError("'frame_times' must be strictly increasing")
    fps = float(arrays["fps"])
    if not (np.isfinite(fps) and fps > 0):
        raise ContractError(f"'fps' must be a positive number, got {fps}")
    if np.any(np.isinf(arrays["poses3d"])):
        raise ContractError("'poses3d' contains infinite values (use NaN for missing joints)")
    num_joints = arrays["poses3d"].shape[2]
    edges = arrays["joint_edges"]
    if edges.size and (edges.min() < 0 or edges.max() >= num_joints):
        raise ContractError(f"'joint_edges' refers to joints outside 0..{num_joints - 1}")
    if len(np.unique(arrays["track_ids"])) != arrays["track_ids"].size:
        raise ContractError("'track_ids' must be unique per person")


def _check_joint_identity(arrays: dict[str, np.ndarray]) -> np.ndarray | None:
    """Canonical order ``(J,)`` of the file's joints if it declares a known skeleton, else None."""
    skeleton = SKELETONS.get(str(arrays["skeleton"]))
    if skeleton is None:
        return None
    try:
        return skeleton_order([str(n) for n in np.asarray(arrays["joint_names"])], skeleton)
    except JointNamesError as error:
        raise ContractError(f"'joint_names': {error}") from None


def validate_arrays(arrays: dict[str, np.ndarray]) -> np.ndarray | None:
    """Check a mapping of contract keys to arrays; raise :class:`ContractError` naming the bad key.

    Returns the canonical joint order (:func:`retarget.joints.skeleton_order`) of a known
    skeleton, None for another one."""
    missing = [key for key in _ARRAY_SPECS if key not in arrays]
    if missing:
        raise ContractError(f"missing key(s) {', '.join(map(repr, missing))} in trajectory")
    _check_version(str(arrays["format_version"]))
    dims: dict[str, int] = {}
    for key in _ARRAY_SPECS:
        _check_array(key, np.asarray(arrays[key]), dims)
    _check_values(arrays)
    return _check_joint_identity(arrays)


def intrinsics_from_fov(fov_deg: float, image_size: tuple[int, int]) -> np.ndarray:
    """3x3 camera matrix with the given field of view on the longer side of ``(width, height)``."""
    width, height = image_size
    if not 0 < fov_deg < 180:
        raise ValueError(f"field of view must be between 0 and 180 degrees, got {fov_deg}")
    focal = 0.5 * max(width, height) / np.tan(np.radians(fov_deg) / 2)
    return np.array([[focal, 0, (width - 1) / 2], [0, focal, (height - 1) / 2], [0, 0, 1.0]])


def has_camera(trajectory: "Trajectory") -> bool:
    """Whether the trajectory knows the image size and intrinsics of its footage."""
    size = np.asarray(trajectory.image_size)
    return bool(np.all(size > 0) and np.all(np.isfinite(trajectory.intrinsics)))


def _with_defaults(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``arrays`` with the optional keys a file left out filled in (:data:`OPTIONAL_DEFAULTS`)."""
    missing = [key for key in ("poses3d", "joint_names", "skeleton") if key not in arrays]
    if "frame_times" not in arrays and "fps" not in arrays:
        missing.append("frame_times or fps")
    if missing:
        raise ContractError(f"missing key(s) {', '.join(map(repr, missing))} in trajectory")
    filled = dict(arrays)
    poses = np.asarray(arrays["poses3d"])
    if poses.ndim != 4:
        raise ContractError(f"'poses3d' must have 4 dimensions (T, P, J, 3), got {poses.shape}")
    frames, people, joints = poses.shape[:3]
    nan = np.float32(np.nan)
    filled.setdefault("poses2d", np.full((frames, people, joints, 2), nan))
    filled.setdefault("uncertainty", np.full((frames, people, joints), nan))
    filled.setdefault("boxes", np.full((frames, people, 5), nan))
    filled.setdefault("track_ids", np.arange(people, dtype=np.int32))
    if "frame_times" not in filled:
        filled["frame_times"] = np.arange(frames) / float(np.asarray(arrays["fps"]))
    if "fps" not in filled:
        steps = np.diff(np.asarray(filled["frame_times"], np.float64))
        if not steps.size:
            raise ContractError("a file of one frame needs 'fps' beside 'frame_times'")
        filled["fps"] = np.float64(1.0 / np.median(steps))
    filled.setdefault("image_size", np.zeros(2, np.int32))
    if "intrinsics" not in filled:
        size = np.asarray(filled["image_size"])
        known = size.shape == (2,) and np.all(size > 0)
        filled["intrinsics"] = (
            intrinsics_from_fov(DEFAULT_FOV_DEG, tuple(size)) if known else np.full((3, 3), np.nan)
        )
    skeleton = SKELETONS.get(str(arrays["skeleton"]))
    filled.setdefault(
        "joint_edges", np.zeros((0, 2), np.int32) if skeleton is None else skeleton.edges
    )
    filled.setdefault("source", np.array(""))
    filled.setdefault("model", np.array(""))
    filled.setdefault("format_version", np.array(FORMAT_VERSION))
    return filled


def _in_canonical_order(arrays: dict[str, np.ndarray], order: np.ndarray) -> dict[str, np.ndarray]:
    """The per-joint arrays in the skeleton's canonical order and names; the file's own names kept
    as ``source_joint_names`` when they differ."""
    skeleton = SKELETONS[str(arrays["skeleton"])]
    names = np.asarray(arrays["joint_names"]).astype(str)
    if tuple(names) == skeleton.joint_names:
        return arrays
    canonical = dict(arrays)
    for key in ("poses3d", "poses2d", "uncertainty"):
        canonical[key] = np.asarray(arrays[key])[:, :, order]
    canonical["joint_names"] = np.array(skeleton.joint_names)
    canonical["joint_edges"] = skeleton.edges
    canonical.setdefault("source_joint_names", names)
    return canonical


def _to_arrays(trajectory: Trajectory) -> dict[str, np.ndarray]:
    arrays = {}
    for key in _ARRAY_SPECS:
        value = getattr(trajectory, key)
        if key == "joint_names":
            value = np.array(value, dtype=str)
        arrays[key] = np.asarray(value, dtype=_STORED_DTYPES.get(key))
    clashes = set(trajectory.extras) & set(arrays)
    if clashes:
        raise ContractError(f"extras may not reuse contract keys: {sorted(clashes)}")
    arrays.update({key: np.asarray(value) for key, value in trajectory.extras.items()})
    return arrays


def _from_arrays(arrays: dict[str, np.ndarray]) -> Trajectory:
    arrays = _with_defaults(arrays)
    order = validate_arrays(arrays)
    if order is not None:
        arrays = _in_canonical_order(arrays, order)
    values = {key: arrays[key] for key in _ARRAY_SPECS}
    for key, dtype in _STORED_DTYPES.items():
        values[key] = np.asarray(values[key], dtype=dtype)
    return Trajectory(
        poses3d=values["poses3d"],
        poses2d=values["poses2d"],
        uncertainty=values["uncertainty"],
        boxes=values["boxes"],
        track_ids=values["track_ids"],
        frame_times=values["frame_times"],
        fps=float(values["fps"]),
        image_size=values["image_size"],
        intrinsics=values["intrinsics"],
        joint_names=tuple(str(name) for name in values["joint_names"]),
        joint_edges=values["joint_edges"],
        skeleton=str(values["skeleton"]),
        source=str(values["source"]),
        model=str(values["model"]),
        format_version=str(values["format_version"]),
        extras={key: value for key, value in arrays.items() if key not in _ARRAY_SPECS},
    )


def validate(trajectory: Trajectory) -> None:
    """Check a :class:`Trajectory` in memory; raise :class:`ContractError` naming the bad key."""
    validate_arrays(_to_arrays(trajectory))


def write_trajectory(path: str | os.PathLike, trajectory: Trajectory) -> Path:
    """Validate and write ``trajectory`` to ``path`` atomically; returns the path written."""
    path = Path(path)
    arrays = _to_arrays(trajectory)
    validate_arrays(arrays)
    with atomic_write(path) as stream:
        _save_npz(stream, arrays)
    return path


def _save_npz(file, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez_compressed`` into the open binary ``file``, closing the archive when a write fails
    (a full disk): numpy's leaves it open, and its finaliser later writes into the closed file and
    prints an "Exception ignored ... ValueError" traceback after the real error."""
    archive = zipfile.ZipFile(file, "w", zipfile.ZIP_DEFLATED, allowZip64=True)
    try:
        for key, value in arrays.items():
            with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
    except BaseException:
        with contextlib.suppress(Exception):  # the first error is the one to report
            archive.close()
        raise
    archive.close()


def output_problem(path: str | os.PathLike) -> str | None:
    """Why no file can be written at ``path`` (a folder, a file where a folder should be, a
    read-only or full file system), or None when one can; the missing folders are created. Entry
    points call it before their work, so a long run does not fail at its very end."""
    path = Path(path)
    if path.is_dir():
        return f"{path} is a folder; give a file name"
    folder = path.parent
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        return f"{existing} is a file, not a folder; choose another output path"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as error:
        return f"cannot write into {folder}: {error.strerror or error}"
    return None


def read_trajectory(path: str | os.PathLike) -> Trajectory:
    """Read and validate a trajectory file; any problem raises :class:`ContractError`."""
    path = Path(path)
    if not path.is_file():
        raise ContractError(f"trajectory file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    # zlib.error: a damaged compressed member (a cut or corrupted download or copy)
    except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError) as error:
        raise ContractError(
            f"{path} is not a trajectory .npz file or is damaged ({error}); re-run the analysis "
            "or copy the file again"
        ) from error
    try:
        return _from_arrays(arrays)
    except ContractError as error:
        raise ContractError(f"{path.name}: {error}") from None
