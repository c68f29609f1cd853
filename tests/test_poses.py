"""PoseEstimator: parity with the official wrapper's outputs and exact recovery of known joints."""

from pathlib import Path

import numpy as np
import pytest
import torch
from crop_models import (
    BLOB_JOINT_NAMES,
    BLOB_PERSON_MM,
    STUB_JOINT_NAMES,
    BlobPoseModel,
    IntrinsicsStubModel,
    render_blob_scene,
)

from inference import poses
from inference.poses import (
    EstimatorConfig,
    FramePoses,
    PoseEstimator,
    PoseInputError,
    _split_frames,
)

FIXTURE = np.load(Path(__file__).parent / "fixtures" / "crops_parity.npz")
CASES = [str(c) for c in FIXTURE["cases"]]


def case(name: str, key: str) -> np.ndarray:
    return FIXTURE[f"{name}/{key}"]


def fixture_inputs() -> tuple[list[np.ndarray], list[np.ndarray]]:
    frames = list(FIXTURE["images"].transpose(0, 2, 3, 1))
    boxes = np.split(FIXTURE["boxes"], np.cumsum(FIXTURE["boxes_per_frame"])[:-1])
    return frames, boxes


def stub_estimator(name: str, **kwargs) -> PoseEstimator:
    config = EstimatorConfig(num_aug=int(case(name, "num_aug")), up=tuple(case(name, "up")))
    return PoseEstimator(
        IntrinsicsStubModel(int(FIXTURE["side"])),
        STUB_JOINT_NAMES,
        config=config,
        joint_transform_matrix=case(name, "joint_transform"),
        **kwargs,
    )


@pytest.mark.parametrize("name", CASES)
def test_outputs_match_the_official_wrapper_with_the_same_crop_model(name):
    frames, boxes = fixture_inputs()
    intrinsics = case(name, "intrinsics")
    assert not stub_estimator(name).uses_torch_warp  # "auto" on the CPU
    result = stub_estimator(name).estimate(
        frames, boxes, intrinsics[0] if len(intrinsics) == 1 else intrinsics
    )
    poses3d = np.concatenate([r.poses3d for r in result])
    poses2d = np.concatenate([r.poses2d for r in result])
    # float32 official arithmetic at ~4 m: agreement to a few micrometres
    np.testing.assert_allclose(poses3d, case(name, "poses3d"), atol=0.01)
    np.testing.assert_allclose(poses2d, case(name, "poses2d"), atol=1e-3)

    per_aug = case(name, "poses3d_per_aug").astype(np.float64)  # (n, A, J, 3)
    uncertainty = np.concatenate([r.uncertainty for r in result])
    if per_aug.shape[1] == 1:
        assert np.all(np.isnan(uncertainty))
    else:
        spread = np.sqrt(np.mean(np.sum((per_aug - per_aug.mean(1, keepdims=True)) ** 2, -1), 1))
        assert spread.max() > 10  # the stub's depth follows the zoom: real spread to compare
        np.testing.assert_allclose(uncertainty, spread, atol=0.01)

    subset = stub_estimator(name, skeleton_indices=case(name, "subset"))
    subset_result = subset.estimate(
        frames, boxes, intrinsics[0] if len(intrinsics) == 1 else intrinsics
    )
    np.testing.assert_allclose(
        np.concatenate([r.poses3d for r in subset_result]), case(name, "poses3d_subset"), atol=0.01
    )


def blob_scene(
    rng: np.random.Generator, people_offsets_mm: list[list[float]], intrinsics: np.ndarray
):
    """Frame (720p) and boxes of blob people at the given root positions, slightly rotated."""
    people = []
    for offset in people_offsets_mm:
        angle = rng.uniform(-0.4, 0.4)
        c, s = np.cos(angle), np.sin(angle)
        turn = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])  # turn about the vertical axis
        people.append(BLOB_PERSON_MM @ turn.T + offset)
    people = np.array(people)
    frame = render_blob_scene((1280, 720), intrinsics, people, sigma_px=3.0)
    boxes = []
    for person in people:
        uv = person @ intrinsics.T
        uv = uv[:, :2] / uv[:, 2:]
        centre, size = (uv.min(0) + uv.max(0)) / 2, (uv.max(0) - uv.min(0)).max() * 1.8
        boxes.append([*(centre - size / 2), size, size * rng.uniform(0.9, 1.1)])
    return frame, np.array(boxes), people


@pytest.mark.parametrize("num_aug, warp", [(1, "opencv"), (5, "opencv"), (5, "torch")])
def test_exact_model_recovers_known_joints_in_the_original_camera(num_aug, warp):
    rng = np.random.default_rng(11)
    k0 = np.array([[700.0, 0, 640], [0, 690, 360], [0, 0, 1]])
    k1 = np.array([[950.0, 0, 610], [0, 950, 375], [0, 0, 1]])
    scenes = [
        blob_scene(rng, [[-2600, 800, 5000], [1800, -200, 4200], [300, 900, 6000]], k0),
        blob_scene(rng, [], k1),
        blob_scene(rng, [[2900, 1400, 5500]], k1),  # far off-axis, bottom right
    ]
    frames = [s[0] for s in scenes]
    boxes = [s[1].reshape(-1, 4) for s in scenes]
    truth = [s[2] for s in scenes]
    intrinsics = np.stack([k0, k1, k1])
    model = BlobPoseModel(np.concatenate([t for t in truth if len(t)]), side=128)
    estimator = PoseEstimator(
        model, BLOB_JOINT_NAMES, config=EstimatorConfig(num_aug=num_aug, batch_size=6, warp=warp)
    )
    result = estimator.estimate(frames, boxes, intrinsics)

    assert [len(r.poses3d) for r in result] == [3, 0, 1]
    errors = np.concatenate(
        [
            np.linalg.norm(r.poses3d - t, axis=-1).ravel()
            for r, t in zip(result, truth, strict=True)
            if len(t)
        ]
    )
    assert errors.max() < 1.0  # mm
    for r, t, k in zip(result, truth, intrinsics, strict=True):
        if len(t):
            uv = t @ k.T
            np.testing.assert_allclose(r.poses2d, uv[..., :2] / uv[..., 2:], atol=0.1)
            if num_aug > 1:
                assert r.uncertainty.max() < 1.0  # an exact model agrees with itself
            else:
                assert np.isnan(r.uncertainty).all()
    # every crop was read as the person its box holds (the model identifies people by ray angles)
    assert model.seen_people == list(np.repeat([0, 1, 2, 3], num_aug))


def test_batch_size_does_not_change_results():
    frames, boxes = fixture_inputs()
    intrinsics = case("aug5", "intrinsics")
    results = []
    for batch_size in (1, 7, 64):
        estimator = PoseEstimator(
            IntrinsicsStubModel(48),
            STUB_JOINT_NAMES,
            config=EstimatorConfig(num_aug=5, batch_size=batch_size),
        )
        results.append(estimator.estimate(frames, boxes, intrinsics))
        per_call = max(1, batch_size // 5) * 5  # whole people: 5, 5, 60 crops
        assert [c[0] for c in estimator.model.calls] == [
            min(per_call, 35 - i) for i in range(0, 35, per_call)
        ]
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            np.testing.assert_array_equal(a.poses3d, b.poses3d)


def test_model_output_forms_and_crop_layout():
    seen = {}

    def model_tensor(crops, intrinsics):
        seen["crops"] = crops
        seen["intrinsics"] = intrinsics
        return torch.zeros(len(crops), 2, 3) + torch.tensor([0.0, 0.0, 3000.0])

    frame = np.full((100, 120, 3), 128, np.uint8)
    boxes = [np.array([[10.0, 10, 50, 80, 0.9]])]  # a score column is ignored
    k = np.array([[100.0, 0, 60], [0, 100, 50], [0, 0, 1]])
    for wrap in (lambda t: t, lambda t: (t, None), lambda t: {"poses3d": t}):
        estimator = PoseEstimator(
            lambda c, i, wrap=wrap: wrap(model_tensor(c, i)), ["lhand", "rhand"], crop_side=32
        )
        result = estimator.estimate([frame], boxes, k)
        assert isinstance(result[0], FramePoses)
        assert result[0].poses3d.shape == (1, 2, 3) and result[0].poses3d.dtype == np.float32
        assert result[0].poses2d.shape == (1, 2, 2) and result[0].uncertainty.shape == (1, 2)
    crops = seen["crops"]
    assert crops.shape == (5, 3, 32, 32) and crops.dtype == torch.float32
    assert seen["intrinsics"].shape == (5, 3, 3)
    # a uniform grey 128 frame comes back as 128/255 ** gamma in the middle of each crop
    gammas = np.linspace(0.6, 1.0, 5)
    expected = np.repeat((128 / 255) ** gammas[:, None], 3, axis=1)
    np.testing.assert_allclose(crops[:, :, 16, 16].numpy(), expected, rtol=1e-4)
    assert estimator.output_joint_names == ("lhand", "rhand")


def test_empty_batches_and_bad_inputs():
    estimator = PoseEstimator(IntrinsicsStubModel(32), STUB_JOINT_NAMES)
    frame = np.zeros((60, 80, 3), np.uint8)
    empty = estimator.estimate([frame, frame], [np.zeros((0, 4)), []], np.eye(3))
    assert [r.poses3d.shape for r in empty] == [(0, 6, 3), (0, 6, 3)]
    assert estimator.estimate([], [], np.eye(3)) == []

    k = np.array([[80.0, 0, 40], [0, 80, 30], [0, 0, 1]])
    box = [np.array([[10.0, 10, 20, 30]])]
    with pytest.raises(PoseInputError, match="uint8"):
        estimator.estimate([frame.astype(np.float32)], box, k)
    with pytest.raises(PoseInputError, match="2 box arrays"):
        estimator.estimate([frame], box * 2, k)
    with pytest.raises(PoseInputError, match="intrinsics"):
        estimator.estimate([frame], box, np.stack([k, k]))
    with pytest.raises(PoseInputError, match=r"\(n, 4\)"):
        estimator.estimate([frame], [np.array([[1.0, 2.0]])], k)
    wrong = PoseEstimator(lambda c, i: torch.zeros(len(c), 3, 3), STUB_JOINT_NAMES, crop_side=32)
    with pytest.raises(PoseInputError, match="poses3d of shape"):
        wrong.estimate([frame], box, k)
    with pytest.raises(PoseInputError, match="crop size is unknown"):
        PoseEstimator(lambda c, i: c, STUB_JOINT_NAMES)
    with pytest.raises(PoseInputError, match="joint_transform_matrix"):
        PoseEstimator(IntrinsicsStubModel(32), STUB_JOINT_NAMES, joint_transform_matrix=np.eye(4))
    with pytest.raises(PoseInputError, match="amp_dtype"):
        EstimatorConfig(amp_dtype="float64")


@pytest.mark.parametrize(
    ("frame_of_crop", "parts", "expected"),
    [
        ([0, 1, 2, 3], 2, [(0, 2), (2, 4)]),
        ([0, 0, 0, 1], 2, [(0, 3), (3, 4)]),  # a frame is never split
        ([5, 5, 5, 5], 2, [(0, 4)]),
        ([0, 1, 1, 1, 1, 2], 2, [(0, 1), (1, 6)]),
        ([0, 1, 2, 3, 4, 5], 3, [(0, 2), (2, 4), (4, 6)]),
        ([0, 1], 4, [(0, 1), (1, 2)]),
        ([3], 1, [(0, 1)]),
    ],
)
def test_a_batch_splits_into_runs_of_whole_frames(frame_of_crop, parts, expected):
    assert _split_frames(np.array(frame_of_crop), parts) == expected


def test_estimator_crops_equal_crops_of_the_whole_decoded_frame(monkeypatch):
    """The estimator decodes only the part of each frame its crops read (``source_region``) and
    renders a batch's frames in several threads: the crops it feeds the network are bit for bit
    those of the whole decoded frame, also when a frame's crops span several network calls."""
    from inference.crops import crop_geometry, make_crops

    frames, boxes = fixture_inputs()
    intrinsics = case("aug5", "intrinsics")
    seen = []

    def recording_model(crops, k):
        seen.append(crops.clone())
        return torch.zeros(len(crops), len(STUB_JOINT_NAMES), 3) + torch.tensor([0.0, 0, 3000])

    monkeypatch.setattr(poses, "RENDER_THREADS", 2)  # also on a one-core machine
    config = EstimatorConfig(num_aug=5, batch_size=10)
    estimator = PoseEstimator(recording_model, STUB_JOINT_NAMES, config=config, crop_side=48)
    estimator.estimate(frames, boxes, intrinsics)
    assert len(seen) > 1 and len(boxes[0]) * 5 > 10  # the first frame's crops span calls
    expected = []
    k = np.broadcast_to(intrinsics, (len(frames), 3, 3))
    for frame, frame_boxes, frame_k in zip(frames, boxes, k, strict=True):
        if not len(frame_boxes):
            continue
        augmentations = list(estimator.augmentations) * len(frame_boxes)
        geometry = crop_geometry(
            np.repeat(frame_boxes[:, :4], 5, axis=0), frame_k, 48, augmentations
        )
        expected.append(torch.from_numpy(make_crops(frame, geometry)))
    assert torch.equal(torch.cat(seen), torch.cat(expected))


def test_flipping_augmentations_need_left_right_joint_names():
    model = lambda crops, k: torch.zeros(len(crops), 3, 3)  # noqa: E731
    with pytest.raises(PoseInputError, match="pairs left with right"):
        PoseEstimator(model, ("hip_a", "hip_b", "head"), config=EstimatorConfig(2), crop_side=48)
    PoseEstimator(model, ("hip_a", "hip_b", "head"), config=EstimatorConfig(1), crop_side=48)


def test_a_failed_render_returns_only_once_the_other_thread_is_done(monkeypatch):
    """The render threads write into the estimator's own buffers: an error in one must not leave
    the other running into the next call."""
    import threading
    import time

    frames, boxes = fixture_inputs()
    finished = threading.Event()

    def render(self, start, stop, buffers, out):
        if threading.current_thread() is threading.main_thread():
            raise RuntimeError("render failed")
        time.sleep(0.2)
        finished.set()

    monkeypatch.setattr(poses, "RENDER_THREADS", 2)
    monkeypatch.setattr(poses._OpenCVRenderer, "_render", render)
    config = EstimatorConfig(num_aug=1, batch_size=16)
    estimator = PoseEstimator(lambda c, k: None, STUB_JOINT_NAMES, config=config, crop_side=48)
    with pytest.raises(RuntimeError, match="render failed"):
        estimator.estimate(frames, boxes, case("aug5", "intrinsics"))
    assert finished.is_set()
