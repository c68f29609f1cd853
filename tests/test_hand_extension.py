"""The hand extension of the contract (``smpl+head+hands_34``) through every reader: the file read
in any spelling and order, cleaned like the other joints (gates, swaps, smoothing, bone lengths),
the generated rig with its thumbs, and the hand roll after cleaning, on synthetic ground truth."""

import dataclasses

import numpy as np
import pytest

from inference.training.synth.clip import default_camera, motions_to_trajectory
from inference.training.synth.noise import ErrorModel, corrupt
from retarget import frames, solve
from retarget.clean import clean_trajectory
from retarget.contract import ContractError, read_trajectory, write_trajectory
from retarget.rotations import normalize
from retarget.skeletons import SMPL_HEAD_30, SMPL_HEAD_HANDS_34
from retarget.solve import people
from tests.test_solve_hands import _roll, with_hands
from tests.test_solve_rigs import world_motion


def hand_trajectory(curl=None):
    """A walk with rolling hands (and, with ``curl`` ``(T,)``, opening and closing ones) as a
    trajectory file's content (camera frame), the world truth (T, 34, 3), its thumb sides and
    the camera pose."""
    body, roll = _roll()
    joints, sides = with_hands(body, roll, curl)
    motion = dataclasses.replace(world_motion("walk", 4.0, seed=31), joints=joints)
    camera = default_camera([motion])
    trajectory = motions_to_trajectory([motion], camera).replace(
        joint_names=SMPL_HEAD_HANDS_34.joint_names,
        joint_edges=SMPL_HEAD_HANDS_34.edges,
        skeleton=SMPL_HEAD_HANDS_34.name,
    )
    return trajectory, joints, sides, camera


def test_a_hands_file_reads_in_any_spelling_and_order(tmp_path):
    trajectory, *_ = hand_trajectory()
    official = [f"{n}_smpl" for n in SMPL_HEAD_30.joint_names[:24]] + [
        "htop_mpi_inf_3dhp", "lear_coco", "leye_coco", "nose_coco", "rear_coco", "reye_coco",
        "lthu_h36m", "lhandtip", "rthumb_bmlmovi", "rfin_h36m",
    ]  # fmt: skip
    order = np.random.default_rng(1).permutation(34)
    shuffled = trajectory.replace(
        poses3d=trajectory.poses3d[:, :, order],
        poses2d=trajectory.poses2d[:, :, order],
        uncertainty=trajectory.uncertainty[:, :, order],
        joint_names=tuple(official[i] for i in order),
        joint_edges=np.zeros((0, 2), np.int32),
    )
    read = read_trajectory(write_trajectory(tmp_path / "hands.npz", shuffled))
    assert read.skeleton == "smpl+head+hands_34"
    assert read.joint_names == SMPL_HEAD_HANDS_34.joint_names
    np.testing.assert_array_equal(read.poses3d, trajectory.poses3d)
    assert tuple(read.extras["source_joint_names"]) == tuple(official[i] for i in order)
    # The base skeleton does not take the hand points: a file says which one it is.
    with pytest.raises(ContractError, match="not joints of 'smpl\\+head_30': lthu"):
        write_trajectory(tmp_path / "bad.npz", trajectory.replace(skeleton="smpl+head_30"))


def test_hand_points_are_cleaned_like_the_other_joints():
    """Estimator noise, outliers and left/right swaps on the hand points too: the cleaning brings
    them nearer the truth and keeps the wrist -> thumb and wrist -> hand end lengths constant;
    the generated rig gets its thumbs."""
    truth, *_ = hand_trajectory()
    raw = corrupt(truth, ErrorModel(), seed=7)
    cleaned = clean_trajectory(raw, "default")
    assert cleaned.joint_names == SMPL_HEAD_HANDS_34.joint_names
    hands = [SMPL_HEAD_HANDS_34.index(n) for n in ("lthu", "lfin", "rthu", "rfin")]
    wrists = [SMPL_HEAD_HANDS_34.index(n) for n in ("lwri", "lwri", "rwri", "rwri")]
    poses, exact = cleaned.poses3d[:, 0].astype(float), truth.poses3d[:, 0].astype(float)

    def error(p):  # mm, the hand points relative to their wrist (the depth drift is the body's)
        offsets = p[:, hands] - p[:, wrists]
        return np.nanmean(np.linalg.norm(offsets - (exact[:, hands] - exact[:, wrists]), axis=-1))

    assert np.isfinite(poses[:, hands]).all()
    assert error(poses) < 0.6 * error(raw.poses3d[:, 0].astype(float))
    lengths = np.linalg.norm(poses[:, hands] - poses[:, wrists], axis=-1)
    assert np.ptp(lengths, axis=0).max() < 0.5  # mm: constant bones
    motion = people.person_motions(cleaned)[0]
    assert {"thumb.L", "thumb.R"} <= {bone.name for bone in motion.bones}


def roll_errors(model: ErrorModel, seed: int) -> np.ndarray:
    """Degrees per frame and hand between the truth's thumb side and the generated rig's, after
    the estimator's errors (``model``) and the default cleaning."""
    truth, *_ = hand_trajectory()
    cleaned = clean_trajectory(corrupt(truth, model, seed=seed), "default")
    motion = people.person_motions(cleaned)[0]
    bones = {bone.name: bone for bone in motion.bones}
    rig = solve.TargetRig.from_bones(list(bones), [b.parent for b in bones.values()],
                                     np.array([b.head for b in bones.values()]),
                                     np.array([b.tail for b in bones.values()]))  # fmt: skip
    mapping = solve.rigmaps.restrict(solve.rigmaps.PRESETS["metrabs"], set(rig.names))[0]
    result = solve.retarget(motion.joints, SMPL_HEAD_HANDS_34, rig, mapping,
                            solve.RetargetParams(root_motion="camera", reground=False))  # fmt: skip
    world = frames.camera_to_world(truth.poses3d[:, 0].astype(float),
                                   cleaned.extras["world_from_camera"])[motion.complete]  # fmt: skip

    def across(vector, axis):
        return normalize(vector - np.sum(vector * axis, -1)[:, None] * axis)

    errors = []
    for p, side in (("l", "L"), ("r", "R")):
        wrist, hand, thumb = (
            world[:, SMPL_HEAD_HANDS_34.index(p + n)] for n in ("wri", "han", "thu")
        )
        truth_side = across(thumb - wrist, normalize(hand - wrist))
        offset = bones[f"thumb.{side}"].head - bones[f"hand.{side}"].head
        posed = np.einsum("tij,j->ti", result.deltas[f"hand.{side}"], offset)
        posed = across(posed, normalize(result.joints[p + "han"] - result.joints[p + "wri"]))
        errors.append(np.degrees(np.arccos(np.clip(np.sum(posed * truth_side, -1), -1, 1))))
    return np.concatenate(errors)


def test_the_roll_after_cleaning_follows_the_truth_with_hand_scale_errors():
    """With errors of the hand points that are small against the thumb's 3.5 cm lever (1 mm white,
    4 mm slow bias across the image, three times that in depth, and the model's outliers, gaps
    and swaps) the roll after cleaning is within 11 deg on half the frames (measured: 10.9 over
    three seeds). With the body-scale errors of the motion-quality benchmark (3 / 13 mm per
    joint, independent) it is not: 36 deg (README)."""
    errors = np.concatenate([roll_errors(ErrorModel(white_mm=1.0, bias_mm=4.0), s) for s in (7, 8)])
    assert np.median(errors) < 15.0 and np.percentile(errors, 90) < 40.0
