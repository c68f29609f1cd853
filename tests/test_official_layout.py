"""The official MeTRAbs release's bundle layout through the analysis: a bundle laid out exactly as
the release is (555 raw joints, pelvis-last SMPL order, dataset-suffixed names, a 555 x 580
transform, 24 skeletons incl. '' and kinectv2_25, the official config.yaml keys; see
tests/official_layout.py) gives the same poses, joint for joint, as this project's own layout of
the same weights, with flip test-time augmentation on; the result is written in the contract's
canonical names and order with the release's own names kept."""

import numpy as np
import pytest

from retarget.contract import read_trajectory
from retarget.joints import canonical_name
from retarget.skeletons import H36M_17, SMPL_24, SMPL_HEAD_30, SMPL_HEAD_HANDS_34
from tests.official_layout import REPO, official_layout_bundle, own_layout_bundle, render_short_clip
from tests.official_names import OFFICIAL_SMPL_24, OFFICIAL_SMPL_HEAD_30, SKELETON_INFOS
from tests.workerrun import analyze

pytestmark = pytest.mark.slow  # every test starts worker, batch or CLI processes

DETECTOR = REPO / "models" / "yolox_synth" / "yolox_synth.pth"


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("layouts")
    video, _ = render_short_clip(folder)
    return video, official_layout_bundle(folder / "official"), own_layout_bundle(folder / "own")


def _analyze(video, bundle, output, *extra):
    run = analyze(video, "-o", output, "--model", bundle, "--detector", DETECTOR, "--tta", "5", "--max-people", "2",
                  *extra, real=True, timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    return read_trajectory(output)


@pytest.fixture(scope="module")
def results(layouts, tmp_path_factory):
    video, official, own = layouts
    folder = tmp_path_factory.mktemp("results")
    return (
        _analyze(video, official, folder / "official.npz"),
        _analyze(video, own, folder / "own.npz"),
    )


def test_the_official_layout_gives_our_layouts_poses_joint_for_joint(results):
    official, own = results
    assert official.num_people == own.num_people == 2 and official.num_frames == 30
    np.testing.assert_array_equal(official.track_ids, own.track_ids)
    seen = np.isfinite(own.poses3d).all(axis=(2, 3))
    assert seen.mean() >= 0.8  # the people were found: the comparison covers real poses
    np.testing.assert_array_equal(np.isfinite(official.poses3d), np.isfinite(own.poses3d))
    np.testing.assert_allclose(official.poses3d, own.poses3d, atol=1e-3, rtol=0)  # mm
    np.testing.assert_allclose(official.poses2d, own.poses2d, atol=1e-3, rtol=0)  # px
    np.testing.assert_allclose(official.uncertainty, own.uncertainty, atol=1e-3, rtol=0)


def test_the_result_is_in_canonical_names_with_the_releases_names_kept(results):
    """The release has the hand points: the result is the canonical skeleton with the hand
    extension, its hand points the Human3.6M ones of the raw joints."""
    official, own = results
    assert official.skeleton == own.skeleton == "smpl+head+hands_34"
    assert official.joint_names == own.joint_names == SMPL_HEAD_HANDS_34.joint_names
    np.testing.assert_array_equal(official.joint_edges, SMPL_HEAD_HANDS_34.edges)
    kept = tuple(official.extras["source_joint_names"])
    hands = ("lthu_h36m", "lfin_h36m", "rthu_h36m", "rfin_h36m")
    assert sorted(kept[:30]) == sorted(OFFICIAL_SMPL_HEAD_30) and kept[:30] != OFFICIAL_SMPL_HEAD_30
    assert kept[30:] == hands
    assert tuple(canonical_name(n) for n in kept) == SMPL_HEAD_HANDS_34.joint_names
    # our own layout names the body joints canonically already, its hand points as the raw ones
    assert tuple(own.extras["source_joint_names"]) == SMPL_HEAD_30.joint_names + hands


def test_the_canonical_skeleton_without_hands_by_name(layouts, results, tmp_path):
    video, official_bundle, _ = layouts
    result = _analyze(video, official_bundle, tmp_path / "out.npz", "--skeleton", "smpl+head_30")
    assert result.skeleton == "smpl+head_30" and result.joint_names == SMPL_HEAD_30.joint_names
    # the same joints (boxes proposed from the last poses see the hand points too: 0.01 mm)
    np.testing.assert_allclose(result.poses3d, results[0].poses3d[:, :, :30], atol=0.05, rtol=0)


def test_a_skeleton_chosen_by_name_comes_out_canonical(layouts, tmp_path):
    video, official_bundle, _ = layouts
    result = _analyze(video, official_bundle, tmp_path / "out.npz", "--skeleton", "smpl_24")
    assert result.skeleton == "smpl_24" and result.joint_names == SMPL_24.joint_names
    assert tuple(result.extras["source_joint_names"]) == OFFICIAL_SMPL_24  # spi1..3 kept
    assert np.isfinite(result.poses3d).all(axis=(2, 3)).mean() >= 0.8


@pytest.mark.parametrize("skeleton", [SMPL_24, H36M_17], ids=lambda s: s.name)
def test_every_skeleton_of_the_release_maps_each_joint_to_its_identity(layouts, skeleton):
    """On the same crops, a joint of ``smpl_24`` (``spi1`` is ``bell``) or ``h36m_17`` (whose
    joints this fixture predicts with the weights of their SMPL namesakes) comes out where the
    same joint of ``smpl+head_30`` does."""
    import cv2

    from inference.analysis import Settings, load_pose_estimator

    video, official_bundle, _ = layouts
    truth = read_trajectory(video.with_name("truth.npz"))
    capture = cv2.VideoCapture(str(video))
    frames = [cv2.cvtColor(capture.read()[1], cv2.COLOR_BGR2RGB) for _ in range(3)]
    boxes = [truth.boxes[t][np.isfinite(truth.boxes[t, :, 0]), :4] for t in range(3)]

    def estimate(name):
        settings = Settings(video=str(video), output="unused.npz", model=str(official_bundle),
                            skeleton=name, tta=5)  # fmt: skip
        estimator = load_pose_estimator(settings, "cpu")
        return np.concatenate(
            [r.poses3d for r in estimator.estimate(frames, boxes, truth.intrinsics)]
        )

    full, chosen = estimate("smpl+head_30"), estimate(skeleton.name)
    assert chosen.shape == (sum(len(b) for b in boxes), skeleton.num_joints, 3)
    same = [SMPL_HEAD_30.index(joint) for joint in skeleton.joint_names]
    np.testing.assert_allclose(chosen, full[:, same], atol=1e-3, rtol=0)
    if skeleton is H36M_17:  # the hand points are the release's Human3.6M thumb and hand end
        hands, h36m = estimate("smpl+head+hands_34"), estimate("h36m_25")
        names = list(SKELETON_INFOS["h36m_25"]["names"])
        picks = [names.index(joint) for joint in ("lthu", "lfin", "rthu", "rfin")]
        np.testing.assert_allclose(hands[:, 30:], h36m[:, picks], atol=1e-3, rtol=0)
        np.testing.assert_allclose(hands[:, :30], full, atol=1e-3, rtol=0)
