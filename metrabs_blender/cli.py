"""Headless scene building: trajectory or video in, saved .blend out. See ``__main__``.

Without ``--target`` the scene is new and every person gets a generated MeTRAbs rig. With
``--target FILE.blend:OBJECT`` the character's file is opened, the motion is retargeted onto that
armature and the result is saved to ``--out`` (the character's file itself is not touched);
``--target FILE.blend:0=Hero,1=Villain`` puts several people onto several rigs of that file. A

camera matching the footage is added unless ``--no-camera``. A folder of batch results is
imported as takes (``api.import_folder``).
"""

import argparse
import logging
import os
import re
import sys
from pathlib import Path

import bpy
import numpy as np

from .. import retarget
from ..retarget import contract
from ..retarget.arguments import field_of_view_deg, int_at_least, positive_number
from ..retarget.contract import output_problem
from ..retarget.files import replacing
from ..retarget.keys import KeyTolerance
from ..retarget.solve import ROOT_MOTIONS, grounding
from ..retarget.solve.grounding import CONTACT_MODES
from ..retarget.solve.ik_controls import LIMB_MODES
from . import api
from .errors import MocapError
from .importer import read_source

log = logging.getLogger(__name__)


def _blend_file(text: str) -> Path:
    """``--out``: a .blend file name (anything else would be a .blend under another name)."""
    if Path(text).suffix.lower() != ".blend":
        raise argparse.ArgumentTypeError(f"must be a .blend file, got {text!r}")
    return Path(text)


def _target_spec(text: str) -> str:
    """``--target``: ``FILE.blend:OBJECT``, checked as the command line is read."""
    try:
        _split_target(text)
    except MocapError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


_count = int_at_least(1)
_frame = int_at_least(0, "frames count from 0")


def _key_reduction(args: argparse.Namespace) -> "KeyTolerance | str":
    if args.keys == "dense":
        return "dense"
    return KeyTolerance.from_mm(args.key_tolerance_deg, args.key_tolerance_mm)


def _export_file(text: str) -> Path:
    from .export import FORMATS

    if Path(text).suffix.lower() not in FORMATS:
        raise argparse.ArgumentTypeError(f"the file name must end in {', '.join(FORMATS)}")
    return Path(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m metrabs_blender",
        description="Import a MeTRAbs trajectory into a new Blender scene and save it.",
    )
    parser.add_argument(
        "input",
        type=Path,
        help="trajectory .npz written by 'python -m inference analyze', a video to analyse first "
        "(the trajectory is then written beside --out), or a folder of results of 'python -m "
        "inference batch' (one take per clip and person)",
    )
    parser.add_argument("--out", type=_blend_file, required=True, help="the .blend file to write")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace --out (and for a video input the analysis beside it) if it exists "
        "(default: refuse)",
    )
    parser.add_argument(
        "--target",
        type=_target_spec,
        metavar="FILE.blend:OBJECT",
        help="retarget onto the armature OBJECT of FILE.blend (saved to --out, FILE is unchanged); "
        "FILE.blend:ID=OBJECT,ID=OBJECT puts person ID onto OBJECT, several people onto several "
        "rigs in one import (e.g. rigs.blend:0=Hero,1=Villain)",
    )
    parser.add_argument(
        "--rig-map",
        default="auto",
        help="'auto' (default), a preset (metrabs, rigify, mixamo, smpl, smplx, metarig, "
        "autorigpro) or a JSON rig map file",
    )
    parser.add_argument(
        "--root-motion",
        choices=ROOT_MOTIONS,
        help="root path: relative to the rig (default with --target), as seen from the camera "
        "(default without), or in place",
    )
    parser.add_argument(
        "--limb-ik",
        choices=tuple(LIMB_MODES),
        default="legs",
        help="on a rig with IK controls (Rigify): the limbs animated in IK, their IK controls keyed "
        "from the motion (default: legs)",
    )
    parser.add_argument("--person", type=int, help="track id of the person to retarget")
    parser.add_argument(
        "--foot-contacts",
        choices=CONTACT_MODES,
        default="auto",
        help="auto (default): hold the feet during the contacts the cleaning found and keep them "
        "above the floor; always: hold them for the whole take; grounded: only keep them above "
        "the floor; never: the motion as solved (with --clean: no joint-level lock either)",
    )
    parser.add_argument(
        "--no-foot-lock", action="store_true", help="the same as --foot-contacts never"
    )
    parser.add_argument("--joint-limits", action="store_true", help="clamp joint rotations")
    parser.add_argument(
        "--keys",
        choices=("reduced", "dense"),
        default="reduced",
        help="reduced (default): few Bezier keys per bone an animator can edit, within the "
        "tolerances of the solved motion on every frame; dense: a linear key on every frame",
    )
    parser.add_argument(
        "--key-tolerance-deg", type=positive_number, metavar="DEG",
        help="reduced keys: largest rotation error of a bone on any frame (default 0.5)",
    )  # fmt: skip
    parser.add_argument(
        "--key-tolerance-mm", type=positive_number, metavar="MM",
        help="reduced keys: largest error of the root's location on any frame (default 5)",
    )  # fmt: skip
    parser.add_argument("--nla", action="store_true", help="also stack each take as an NLA track")
    parser.add_argument(
        "--clean", metavar="PRESET", help="clean the trajectory first (default, strong, fast, none)"
    )
    parser.add_argument(
        "--export",
        type=_export_file,
        metavar="FILE",
        help="also export each take's deform skeleton and motion for game engines and other tools: "
        "FILE.fbx, FILE.bvh or FILE.glb (several people: FILE_P<id>.fbx, ...)",
    )
    parser.add_argument(
        "--no-camera",
        action="store_true",
        help="do not add the matched camera (the analysis intrinsics, the floor-fit pose and, for "
        "video input, the footage as its background)",
    )
    video = parser.add_argument_group("video input (runs the analysis worker)")
    video.add_argument("--python", help="backend Python with torch (default: auto-detected)")
    video.add_argument("--model", help="pose model name or bundle path (see 'weights list')")
    video.add_argument(
        "--fov", type=field_of_view_deg, help="field of view on the longer side, degrees"
    )
    video.add_argument("--max-people", type=_count, help="keep at most this many people")
    video.add_argument("--device", default="auto", help="auto, cpu or cuda")
    video.add_argument(
        "--start", type=_frame, default=None, metavar="FRAME",
        help="first frame to analyse (0-based, as analyze's --start)",
    )  # fmt: skip
    video.add_argument("--stop", type=_frame, metavar="FRAME", help="frame to stop at (exclusive)")
    video.add_argument(
        "--tta",
        type=_count,
        help="crops per person and frame, flipped and turned (5: better poses)",
    )
    return parser


def _trajectory_path(args: argparse.Namespace) -> Path:
    """The trajectory to import: the input itself, or the analysis of the input video."""
    if args.input.suffix.lower() == ".npz":
        return args.input
    output = args.out.with_suffix(".npz")
    result = api.analyze_video(
        args.input,
        output,
        python=args.python,
        model=args.model,
        fov_deg=args.fov,
        max_people=args.max_people,
        device=args.device,
        frame_start=args.start,
        frame_stop=args.stop,
        extra_args=() if args.tta is None else ("--tta", str(args.tta)),
        overwrite=args.overwrite,
    )
    for warning in result.warnings:
        log.warning("%s", warning)
    log.info("analysed %s -> %s", args.input, output)
    return output


def _split_target(value: str) -> tuple[Path, str]:
    file, separator, name = value.rpartition(".blend:")
    if not separator or not name:
        raise MocapError(f"--target must look like FILE.blend:OBJECT, got {value!r}")
    return Path(file + ".blend"), name


def people_rigs(name: str) -> dict[int, str] | None:
    """The ``OBJECT`` part of ``--target`` as people -> rigs: ``0=Hero,1=Villain`` ->
    ``{0: "Hero", 1: "Villain"}``; a plain object name -> None."""
    pairs = name.split(",")
    if not all(re.fullmatch(r"\s*\d+\s*=.+", pair) for pair in pairs):
        return None
    rigs: dict[int, str] = {}
    for pair in pairs:
        track_id, _, obj = pair.partition("=")
        if int(track_id) in rigs:
            raise MocapError(f"--target names person {int(track_id)} twice")
        rigs[int(track_id)] = obj.strip()
    return rigs


def _open_target(value: str) -> "bpy.types.Object | dict[int, bpy.types.Object]":
    """The target file opened; its object, or for ``ID=OBJECT`` pairs track id -> object."""
    path, name = _split_target(value)
    if not path.is_file():
        raise MocapError(f"target file not found: {path}")
    bpy.ops.wm.open_mainfile(filepath=str(path.resolve()))
    rigs = people_rigs(name)
    wanted = {None: name} if rigs is None else rigs
    found = {}
    for track_id, obj_name in wanted.items():
        found[track_id] = bpy.data.objects.get(obj_name)
        if found[track_id] is None:
            armatures = [o.name for o in bpy.data.objects if o.type == "ARMATURE"]
            raise MocapError(f"{path.name} has no object {obj_name!r}; its armatures: {armatures}")
    return found[None] if rigs is None else found


def _import(args: argparse.Namespace) -> list:
    """Analyse/clean as asked, import into a new scene or the target's file; the import results."""
    options = {
        "rig_map": args.rig_map, "root_motion": args.root_motion,
        "foot_contacts": "never" if args.no_foot_lock else args.foot_contacts, "use_nla": args.nla,
        "joint_limits": args.joint_limits, "person": args.person, "limb_ik": args.limb_ik,
        "key_reduction": _key_reduction(args),
    }  # fmt: skip
    if args.input.is_dir():
        if args.clean:
            raise MocapError(
                "--clean takes one trajectory; for a folder, run the batch with --clean"
            )
        target = _open_target(args.target) if args.target else _new_scene()
        imported = api.import_folder(args.input, target=target, **options)
        for name, error in imported.errors.items():
            log.warning("%s not imported: %s", name, error)
        return [result for takes in imported.takes.values() for result in takes]
    path = _trajectory_path(args)
    if args.clean:
        free = not grounding.holds_feet(options["foot_contacts"])
        path = api.clean_file(path, args.clean, **({"lock_feet": False} if free else {}))
    target = _open_target(args.target) if args.target else _new_scene()
    source = read_source(path)  # the one read of the file imported
    if isinstance(target, dict):  # several people onto several rigs
        results = api.import_trajectory(source, targets=target, **options)
    else:
        results = api.import_trajectory(source, target=target, **options)
    if args.no_camera:
        return results
    if not contract.has_camera(source.trajectory):
        log.warning("%s gives no image size or intrinsics: no camera is made", path.name)
        return results
    footage = None if args.input.suffix.lower() == ".npz" else args.input
    api.setup_camera(source.trajectory, footage=footage)
    return results


def _new_scene() -> None:
    bpy.ops.wm.read_homefile(use_empty=True)


def _absolute(args: argparse.Namespace) -> None:
    """Every path of the command line against the caller's working folder, before anything runs:
    the analysis worker runs in the extension's folder, where a relative path names another file."""
    from . import backend

    args.input, args.out = Path(os.path.abspath(args.input)), Path(os.path.abspath(args.out))
    if args.target:
        file, name = _split_target(args.target)
        args.target = f"{os.path.abspath(file)}:{name}"
    if args.python:
        args.python = backend.caller_python(args.python)
    if args.model and Path(args.model).exists():  # a bundle path, not a model name
        args.model = os.path.abspath(args.model)
    if args.export:
        args.export = Path(os.path.abspath(args.export))


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file, however spelt (links, ``..``, case on some systems)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist (yet)
        return os.path.realpath(a) == os.path.realpath(b)


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse, before any work, an --out that would lose a file or cannot be written."""
    out = args.out
    if out.is_dir():
        raise MocapError(f"--out {out} is a folder; give the .blend file to write")
    if _same_file(out, args.input):
        raise MocapError(f"--out {out} is the input itself; choose another .blend file")
    if args.target and _same_file(out, _split_target(args.target)[0]):
        raise MocapError(
            f"--out {out} is the --target file, which is never changed; choose another"
        )
    if out.exists() and not args.overwrite:
        raise MocapError(f"{out} exists; pass --overwrite to replace it")
    analysis = out.with_suffix(".npz")
    if not args.input.is_dir() and args.input.suffix.lower() != ".npz":
        if analysis.exists() and not args.overwrite:  # the video's trajectory goes beside --out
            raise MocapError(f"{analysis} exists (an earlier analysis); pass --overwrite to "
                             "replace it, or import it: python -m metrabs_blender "
                             f"{analysis} --out ...")  # fmt: skip
    problem = output_problem(out)
    if problem is not None:
        raise MocapError(f"cannot write --out: {problem}")
    if args.export:
        _check_export_file(args.export, args.overwrite)


def _check_export_file(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise MocapError(f"{path} exists; pass --overwrite to replace it")
    problem = output_problem(path)
    if problem is not None:
        raise MocapError(f"cannot write --export: {problem}")


def _export(results: list, path: Path, overwrite: bool) -> list[Path]:
    """Each imported take to ``path`` (one person) or ``<stem>_P<id><suffix>`` (several)."""
    from .export import check_export, export_take

    targets = [
        path if len(results) == 1 else path.with_name(f"{path.stem}_P{r.track_id}{path.suffix}")
        for r in results
    ]
    for result, target in zip(results, targets, strict=True):  # all checked before any is written
        _check_export_file(target, overwrite)
        check_export(target, result.armature)
    for result, target in zip(results, targets, strict=True):
        first, last = int(np.ceil(result.frames.min())), int(np.floor(result.frames.max()))
        written = export_take(result.armature, target, first, last)
        log.info("exported %s: %d bones, frames %d-%d, %.1f s", written.path, written.bones,
                 *written.frames, written.seconds)  # fmt: skip
    return targets


_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"  # a compressed .blend: a seekable zstd archive
_ZSTD_SEEK_TABLE_END = b"\xb1\xea\x92\x8f"  # the last four bytes of one


def _whole_blend(path: Path) -> bool:
    """Whether the .blend at ``path`` is complete: it ends with its last block (``ENDB``), or a
    compressed one with its seek table. Blender reports no error when a write stops part way
    (a full disk) and leaves a truncated file."""
    with open(path, "rb") as handle:
        head = handle.read(4)
        handle.seek(max(0, path.stat().st_size - 64))
        tail = handle.read()
    if head == _ZSTD_MAGIC:
        return tail.endswith(_ZSTD_SEEK_TABLE_END)
    return head != b"BLEN" or b"ENDB" in tail


def _save(out: Path) -> None:
    """Save the scene to ``out`` atomically: to a temporary file beside it, checked whole, then
    renamed, so a full disk leaves the earlier file (or none) and an error."""
    with replacing(out, suffix=".blend") as temporary:
        try:
            bpy.ops.wm.save_as_mainfile(filepath=str(temporary), copy=True)
        except RuntimeError as error:
            reason = str(error).strip()  # Blender 4.2 says "No such file" for a full disk
            raise MocapError(f"cannot save {out}: {reason} (is the disk full?)") from None
        finally:
            temporary.with_name(temporary.name + "1").unlink(missing_ok=True)  # Blender's backup
        if not temporary.is_file() or not _whole_blend(temporary):
            raise MocapError(f"cannot save {out}: the file was cut short (is the disk full?)")


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 done, 1 bad input (message on stderr), 2 bad command line."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.start is not None and args.stop is not None and args.stop <= args.start:
        parser.error(f"--stop {args.stop} must come after --start {args.start}")
    if args.target and people_rigs(_split_target(args.target)[1]) is not None:
        if args.person is not None:
            parser.error("--person picks the person for one --target OBJECT; with ID=OBJECT "
                         "pairs the ids say who goes where")  # fmt: skip
        if args.input.is_dir():
            parser.error("--target ID=OBJECT pairs take one trajectory or video, not a folder")
    is_video = not args.input.is_dir() and args.input.suffix.lower() != ".npz"
    if not is_video and (args.start is not None or args.stop is not None):
        parser.error("--start and --stop choose the frames of a video to analyse")
    if args.no_foot_lock and args.foot_contacts not in ("auto", "never"):
        parser.error(f"--no-foot-lock contradicts --foot-contacts {args.foot_contacts}")
    if args.keys == "dense" and (args.key_tolerance_deg or args.key_tolerance_mm):
        parser.error(
            "--key-tolerance-deg and --key-tolerance-mm bound reduced keys (--keys reduced)"
        )
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        _absolute(args)
        _check_outputs(args)
        results = _import(args)
        if args.export:
            _export(results, args.export, args.overwrite)
        _save(args.out)
    except (MocapError, retarget.RetargetError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for result in results:
        if result.report:
            log.info("%s", result.report)
        log.info(
            "person %d -> %s (%s), %d frames, root scale %.3f, a foot held on %d frames",
            result.track_id,
            result.armature.name,
            result.action.name,
            len(result.frames),
            result.hip_ratio,
            result.locked_frames,
        )
        log.info(
            "  keys: %d of %d (%.1f %%), largest error %.3f deg per bone, %.2f mm on a location",
            result.keys_kept,
            result.keys_dense,
            100.0 * result.keys_kept / max(result.keys_dense, 1),
            result.max_key_error_deg,
            1000.0 * result.max_key_error_m,
        )
    log.info("saved %s", args.out)
    return 0
