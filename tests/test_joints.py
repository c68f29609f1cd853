"""Joint identity (retarget.joints) and the contract reading files by it: the official MeTRAbs
release's spellings and orders, other tools' files without the optional keys."""

import numpy as np
import pytest

from retarget.contract import (
    ContractError,
    Trajectory,
    has_camera,
    read_trajectory,
    write_trajectory,
)
from retarget.joints import JointNamesError, canonical_name, skeleton_order
from retarget.skeletons import H36M_17, SMPL_24, SMPL_HEAD_30, SMPL_HEAD_HANDS_34
from tests.official_names import (
    OFFICIAL_SMPL_24,
    OFFICIAL_SMPL_HEAD_30,
    SKELETON_INFOS,
    TENSORFLOW_SMPL_HEAD_30,
)

# The release's Human3.6M joints as its '' skeleton spells them (pelv_h36m, ...), in reverse order.
SUFFIXED_H36M_17 = tuple(
    SKELETON_INFOS[""]["names"][i] for i in reversed(SKELETON_INFOS["h36m_17"]["indices"])
)


@pytest.mark.parametrize(
    ("spelling", "joint"),
    [
        ("pelv_smpl", "pelv"),
        ("nose_coco", "nose"),
        ("htop_mpi_inf_3dhp", "htop"),
        ("lear_coco", "lear"),
        ("spi1", "bell"),
        ("spi2", "spin"),
        ("spi3", "thor"),
        ("tors_h36m", "spin"),
        ("lsho", "lsho"),
        ("spinebase", "spinebase"),  # a Kinect joint: no canonical joint of ours, stays itself
    ],
)
def test_canonical_name(spelling, joint):
    assert canonical_name(spelling) == joint


@pytest.mark.parametrize(
    ("names", "skeleton"),
    [
        (OFFICIAL_SMPL_HEAD_30, SMPL_HEAD_30),
        (TENSORFLOW_SMPL_HEAD_30, SMPL_HEAD_30),
        (OFFICIAL_SMPL_24, SMPL_24),
        (SUFFIXED_H36M_17, H36M_17),
    ],
)
def test_official_spellings_and_orders_find_every_canonical_joint(names, skeleton):
    order = skeleton_order(names, skeleton)
    assert sorted(order.tolist()) == list(range(skeleton.num_joints))
    assert tuple(canonical_name(names[i]) for i in order) == skeleton.joint_names
    assert tuple(names) != skeleton.joint_names  # the test means something: spellings differ


def test_names_that_do_not_fit_are_named():
    names = list(OFFICIAL_SMPL_HEAD_30)
    names[names.index("nose_coco")] = "nose_tip"
    names[names.index("lsho_smpl")] = "lelb_smpl"  # lelb twice, lsho missing
    with pytest.raises(JointNamesError) as error:
        skeleton_order(names, SMPL_HEAD_30)
    message = str(error.value)
    assert "nose_tip" in message and "missing: lsho, nose" in message
    assert "more than once: lelb" in message and "'smpl+head_30'" in message


def _official_file(tmp_path, names, skeleton_name, frames=5, people=2, **drop):
    rng = np.random.default_rng(0)
    joints = len(names)
    arrays = {
        "poses3d": (rng.normal(0, 300, (frames, people, joints, 3)) + [0, 0, 4000]).astype(
            np.float32
        ),
        "poses2d": rng.normal(300, 50, (frames, people, joints, 2)).astype(np.float32),
        "uncertainty": rng.uniform(10, 50, (frames, people, joints)).astype(np.float32),
        "boxes": rng.uniform(0, 100, (frames, people, 5)).astype(np.float32),
        "track_ids": np.array([3, 7][:people], np.int32),
        "frame_times": np.arange(frames) / 25.0,
        "fps": np.float64(25.0),
        "image_size": np.array([640, 360], np.int32),
        "intrinsics": np.array([[500.0, 0, 320], [0, 500, 180], [0, 0, 1]]),
        "joint_names": np.array(names),
        "joint_edges": np.zeros((0, 2), np.int32),
        "skeleton": np.array(skeleton_name),
        "source": np.array("other tool"),
        "model": np.array("some model"),
        "format_version": np.array("1.0"),
    }
    for key in drop:
        del arrays[key]
    path = tmp_path / "clip.npz"
    np.savez(path, **arrays)
    return path, arrays


@pytest.mark.parametrize(
    ("names", "skeleton"),
    [
        (OFFICIAL_SMPL_HEAD_30, SMPL_HEAD_30),
        (OFFICIAL_SMPL_24, SMPL_24),
        (SUFFIXED_H36M_17, H36M_17),
    ],
)
def test_a_file_in_official_names_reads_in_canonical_order(tmp_path, names, skeleton):
    path, arrays = _official_file(tmp_path, names, skeleton.name)
    trajectory = read_trajectory(path)
    assert trajectory.joint_names == skeleton.joint_names
    assert tuple(trajectory.extras["source_joint_names"]) == tuple(names)
    np.testing.assert_array_equal(trajectory.joint_edges, skeleton.edges)
    for j, joint in enumerate(skeleton.joint_names):
        original = [canonical_name(n) for n in names].index(joint)
        for key in ("poses3d", "poses2d", "uncertainty"):
            np.testing.assert_array_equal(
                getattr(trajectory, key)[:, :, j], arrays[key][:, :, original]
            )
    # Written again and read back, it stays canonical (no second permutation).
    again = read_trajectory(write_trajectory(tmp_path / "again.npz", trajectory))
    np.testing.assert_array_equal(again.poses3d, trajectory.poses3d)
    assert tuple(again.extras["source_joint_names"]) == tuple(names)


def test_a_file_whose_names_do_not_fit_its_skeleton_is_refused_naming_them(tmp_path):
    names = list(OFFICIAL_SMPL_24)
    names[0] = "pelvis_root"
    path, _ = _official_file(tmp_path, names, "smpl_24")
    with pytest.raises(ContractError, match="pelvis_root.*missing: pelv"):
        read_trajectory(path)


def test_a_file_with_only_the_required_keys_reads_with_documented_defaults(tmp_path):
    optional = ("poses2d", "uncertainty", "boxes", "track_ids", "frame_times", "image_size",
                "intrinsics", "joint_edges", "source", "model", "format_version")  # fmt: skip
    path, arrays = _official_file(
        tmp_path, SMPL_24.joint_names, "smpl_24", **dict.fromkeys(optional)
    )
    trajectory = read_trajectory(path)
    np.testing.assert_array_equal(trajectory.poses3d, arrays["poses3d"])
    np.testing.assert_allclose(trajectory.frame_times, np.arange(5) / 25.0)
    assert np.isnan(trajectory.uncertainty).all() and trajectory.uncertainty.shape == (5, 2, 24)
    assert np.isnan(trajectory.poses2d).all() and np.isnan(trajectory.boxes).all()
    np.testing.assert_array_equal(trajectory.track_ids, [0, 1])
    np.testing.assert_array_equal(trajectory.joint_edges, SMPL_24.edges)
    assert not has_camera(trajectory)


def test_defaults_from_times_alone_and_a_size_alone(tmp_path):
    times = np.array([0.0, 0.04, 0.08, 0.12, 0.16])
    path, _ = _official_file(tmp_path, SMPL_24.joint_names, "smpl_24", fps=None, intrinsics=None,
                             uncertainty=None)  # fmt: skip
    with np.load(path) as archive:
        arrays = {key: archive[key] for key in archive.files}
    arrays["frame_times"] = times
    np.savez(path, **arrays)
    trajectory = read_trajectory(path)
    assert trajectory.fps == pytest.approx(25.0)
    # 55 degrees on the longer side of 640 x 360, principal point in the centre
    focal = 320 / np.tan(np.radians(27.5))
    np.testing.assert_allclose(np.diag(trajectory.intrinsics), [focal, focal, 1.0])
    np.testing.assert_allclose(trajectory.intrinsics[:2, 2], [319.5, 179.5])
    assert has_camera(trajectory)


@pytest.mark.parametrize(
    ("drop", "message"),
    [({"poses3d": None}, "'poses3d'"), ({"fps": None, "frame_times": None}, "frame_times or fps")],
)
def test_required_keys_are_named_when_missing(tmp_path, drop, message):
    path, _ = _official_file(tmp_path, SMPL_24.joint_names, "smpl_24", **drop)
    with pytest.raises(ContractError, match=message):
        read_trajectory(path)


def test_the_writer_refuses_names_that_do_not_fit():
    frames, joints = 2, SMPL_24.num_joints
    trajectory = Trajectory(
        poses3d=np.zeros((frames, 1, joints, 3), np.float32),
        poses2d=np.zeros((frames, 1, joints, 2), np.float32),
        uncertainty=np.zeros((frames, 1, joints), np.float32),
        boxes=np.zeros((frames, 1, 5), np.float32),
        track_ids=np.array([0]),
        frame_times=np.arange(frames) / 30.0,
        fps=30.0,
        image_size=np.array([64, 64]),
        intrinsics=np.eye(3),
        joint_names=SMPL_HEAD_30.joint_names[:joints],
        joint_edges=SMPL_24.edges,
        skeleton="smpl+head_30",
    )
    with pytest.raises(ContractError, match="missing: htop, lear, leye, nose, rear, reye"):
        write_trajectory("/nonexistent/never.npz", trajectory)


def test_the_worker_extends_the_releases_skeleton_with_its_human36m_hand_points():
    """The release's ``''`` skeleton (all 580 output joints) has a thumb and a hand end per hand
    from several datasets: the hand extension takes the Human3.6M ones (raw joints 41, 42, 46,
    47), after the release's own smpl+head_30; a model without them is left as it is."""
    from inference.analysis.models import HAND_SKELETON, hand_point_indices, with_hand_extension

    every = (tuple(SKELETON_INFOS[""]["names"]), np.asarray(SKELETON_INFOS[""]["indices"]))
    assert {j: hand_point_indices(*every)[j][1] for j in ("lthu", "lfin", "rthu", "rfin")} == {
        "lthu": "lthu_h36m", "lfin": "lfin_h36m", "rthu": "rthu_h36m", "rfin": "rfin_h36m",
    }  # fmt: skip
    extended = with_hand_extension(dict(SKELETON_INFOS), every)[HAND_SKELETON]
    assert extended["names"] == list(OFFICIAL_SMPL_HEAD_30) + [
        "lthu_h36m", "lfin_h36m", "rthu_h36m", "rfin_h36m"
    ]  # fmt: skip
    assert extended["indices"][30:] == [41, 42, 46, 47]
    order = skeleton_order(extended["names"], SMPL_HEAD_HANDS_34)
    assert [canonical_name(extended["names"][i]) for i in order] == list(
        SMPL_HEAD_HANDS_34.joint_names
    )
    # Kinect's hand tip and BMLmovi's thumb name the same points.
    assert canonical_name("lhandtip_kinectv2") == "lfin"
    assert canonical_name("rthumb_bmlmovi") == "rthu"
    own = {"smpl+head_30": SKELETON_INFOS["smpl+head_30"]}
    assert with_hand_extension(own, (OFFICIAL_SMPL_HEAD_30, np.arange(30))) is own
