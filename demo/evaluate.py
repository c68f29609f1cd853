"""Ground truth for the whole chain on the bundled sample (``inference.training.synth.sample``): the
worker's tracking against the truth's visible boxes, and the final armature motion read back out of the
saved .blend against the truth's 3D joints. Used by ``make demo`` and tests/test_end_to_end.py.

The armatures are compared in the camera frame: bone heads (world metres) go through the inverse of
the scene camera's world matrix, so the floor fit, root motion, retarget and keying are all inside
the measured error. Needs ``bpy`` (reading the .blend) besides numpy and OpenCV.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from inference.camera import project
from inference.detect.nms import box_iou
from retarget.contract import Trajectory
from retarget.skeletons import SMPL_HEAD_30
from retarget.solve.rig import BONE_NAMES, PRIMARY_CHILD

#: joints that are bone heads of the generated MeTRAbs rig, in skeleton order
RIG_JOINTS = tuple(name for name in SMPL_HEAD_30.joint_names if name in BONE_NAMES)
#: (parent, child) joint pairs of the rig's bones whose both ends are bone heads
RIG_LIMBS = tuple((j, c) for j, c in PRIMARY_CHILD.items() if j in BONE_NAMES and c in BONE_NAMES)
# OpenCV camera axes (x right, y down, z forward) from Blender's (x right, y up, looking down -z)
_CV_FROM_BLENDER = np.diag([1.0, -1.0, -1.0])


@dataclass(frozen=True)
class Tracking:
    """How the worker's tracks cover the truth's people."""

    column: np.ndarray  # (T, P_truth) output person column matched to each true person, -1: none
    detection_rate: np.ndarray  # (P_truth,) share of frames (person visible) with a matched track
    id_switches: np.ndarray  # (P_truth,) times the matched track changes
    num_tracks: int  # people in the output


def evaluate_tracking(
    output: Trajectory, truth: Trajectory, min_iou: float = 0.3, min_visible: float = 0.2
) -> Tracking:
    """Match each true person per frame to the output box overlapping their visible box most
    (IoU >= ``min_iou``; one output box per true person, greedily by overlap). Frames where a
    person is less than ``min_visible`` visible do not count for the detection rate."""
    true_boxes = truth.extras["visible_boxes"]
    visible = truth.extras["visible_fraction"] >= min_visible
    frames, people = visible.shape
    column = np.full((frames, people), -1)
    for t in range(frames):
        found = np.flatnonzero(np.isfinite(output.boxes[t, :, 0]))
        shown = np.flatnonzero(visible[t])
        if not found.size or not shown.size:
            continue
        iou = box_iou(true_boxes[t, shown], output.boxes[t, found, :4])
        while iou.size and iou.max() >= min_iou:
            i, j = np.unravel_index(np.argmax(iou), iou.shape)
            column[t, shown[i]] = found[j]
            iou[i, :], iou[:, j] = -1.0, -1.0
    rate = (column >= 0).sum(axis=0) / np.maximum(visible.sum(axis=0), 1)
    switches = np.array([np.count_nonzero(np.diff(c[c >= 0])) for c in column.T])
    return Tracking(column, rate, switches, output.num_people)


def read_armatures(blend: str | Path) -> tuple[dict[int, np.ndarray], int]:
    """Open ``blend``; return track id -> rig joints (scene frames, len(RIG_JOINTS), 3) in the
    OpenCV frame of the scene camera (millimetres) for the imported armatures (named ``MeTRAbs
    <clip> P<id>``), and the scene's first frame."""
    import bpy

    bpy.ops.wm.open_mainfile(filepath=str(blend))
    scene = bpy.context.scene
    armatures = [obj for obj in scene.objects if obj.type == "ARMATURE" and " P" in obj.name]
    heads = {obj.name: [] for obj in armatures}
    cameras = []
    for frame in range(scene.frame_start, scene.frame_end + 1):
        scene.frame_set(frame)
        cameras.append(np.array(scene.camera.matrix_world))
        for obj in armatures:
            world = np.array(obj.matrix_world)
            points = [world @ (*obj.pose.bones[BONE_NAMES[j]].head, 1.0) for j in RIG_JOINTS]
            heads[obj.name].append(np.array(points)[:, :3])
    camera_from_world = np.linalg.inv(np.array(cameras))  # (T, 4, 4)
    joints = {}
    for name, points in heads.items():
        points = np.array(points)  # (T, J, 3) world metres
        in_camera = np.einsum("tij,tkj->tki", camera_from_world[:, :3, :3], points)
        in_camera += camera_from_world[:, None, :3, 3]
        joints[int(name.rsplit(" P", 1)[1])] = 1000.0 * in_camera @ _CV_FROM_BLENDER.T
    return joints, scene.frame_start


@dataclass(frozen=True)
class MotionErrors:
    """Errors of one true person's armature motion over the frames it was tracked."""

    frames: int
    rootrel_mpjpe_mm: float  # mean joint error with both poses' pelvis at the origin
    root_error_mm: float  # mean pelvis position error (absolute, camera frame)
    limb_direction_deg: float  # mean angle between true and armature bone directions


def evaluate_armatures(
    armature_joints: dict[int, np.ndarray], output: Trajectory, truth: Trajectory,
    tracking: Tracking,
) -> list[MotionErrors]:  # fmt: skip
    """Per true person: compare the armature of the track matched in each frame (``armature_joints``
    maps track id -> joints as :func:`read_armatures` gives, indexed by video frame) with the truth."""
    picks = [SMPL_HEAD_30.index(j) for j in RIG_JOINTS]
    limbs = np.array([[RIG_JOINTS.index(a), RIG_JOINTS.index(b)] for a, b in RIG_LIMBS])
    results = []
    for person in range(truth.num_people):
        estimated, expected = [], []
        for t, column in enumerate(tracking.column[:, person]):
            track_id = int(output.track_ids[column]) if column >= 0 else None
            if track_id in armature_joints and t < len(armature_joints[track_id]):
                estimated.append(armature_joints[track_id][t])
                expected.append(truth.poses3d[t, person, picks].astype(np.float64))
        if not estimated:
            results.append(MotionErrors(0, np.nan, np.nan, np.nan))
            continue
        est, exp = np.array(estimated), np.array(expected)
        rootrel = np.linalg.norm((est - est[:, :1]) - (exp - exp[:, :1]), axis=-1).mean()
        root = np.linalg.norm(est[:, 0] - exp[:, 0], axis=-1).mean()
        results.append(
            MotionErrors(len(est), float(rootrel), float(root), _limb_angle(est, exp, limbs))
        )
    return results


def _limb_angle(est: np.ndarray, exp: np.ndarray, limbs: np.ndarray) -> float:
    a = est[:, limbs[:, 1]] - est[:, limbs[:, 0]]
    b = exp[:, limbs[:, 1]] - exp[:, limbs[:, 0]]
    cosine = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))).mean())


def overlay_strip(
    video: str | Path, truth: Trajectory, armature_joints: dict[int, np.ndarray],
    frames: list[int], path: str | Path,
) -> Path:  # fmt: skip
    """A PNG of ``frames`` of the footage in two rows, each with the true skeleton (white) and
    every armature projected through the analysis camera (one colour per track)."""
    capture = cv2.VideoCapture(str(video))
    colours = [(255, 128, 0), (0, 200, 255), (0, 255, 0), (255, 0, 255), (0, 0, 255)]
    tiles = []
    limbs = [(RIG_JOINTS.index(a), RIG_JOINTS.index(b)) for a, b in RIG_LIMBS]
    for frame in frames:
        capture.set(cv2.CAP_PROP_POS_FRAMES, frame)
        ok, image = capture.read()
        if not ok:
            raise ValueError(f"{video} has no frame {frame}")
        true2d = truth.poses2d[frame][:, [SMPL_HEAD_30.index(j) for j in RIG_JOINTS]]
        _draw(image, true2d, limbs, (255, 255, 255), 1)
        for k, (track_id, joints) in enumerate(sorted(armature_joints.items())):
            if frame < len(joints):
                pixels = project(joints[frame][None], truth.intrinsics)
                _draw(image, pixels, limbs, colours[k % len(colours)], 2)
                cv2.putText(image, f"P{track_id}", tuple(int(v) for v in pixels[0, 0] + 6),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.5, colours[k % len(colours)], 1)  # fmt: skip
        cv2.putText(image, f"frame {frame}", (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255,) * 3, 1)
        tiles.append(image)
    if len(tiles) % 2:
        tiles.append(np.zeros_like(tiles[0]))
    half = len(tiles) // 2
    path = Path(path)
    cv2.imwrite(str(path), np.vstack([np.hstack(tiles[:half]), np.hstack(tiles[half:])]))
    return path


def _draw(image: np.ndarray, people: np.ndarray, limbs: list, colour: tuple, width: int) -> None:
    for pose in people:
        for a, b in limbs:
            if np.isfinite(pose[[a, b]]).all():
                start, end = tuple(int(v) for v in pose[a]), tuple(int(v) for v in pose[b])
                cv2.line(image, start, end, colour, width, cv2.LINE_AA)
