"""Automatic batch size: the CUDA sizing arithmetic, the out-of-memory back-off (with the real
``torch.cuda.OutOfMemoryError``, raised by stand-in networks on the CPU), and the worker's
``--batch-size auto``."""

import io
import json
import logging

import numpy as np
import pytest
import torch
from crop_models import STUB_JOINT_NAMES, IntrinsicsStubModel
from test_poses import case, fixture_inputs

from inference import analysis
from inference.__main__ import build_parser
from inference.poses import (
    CPU_BATCH_SIZE,
    MAX_AUTO_BATCH_SIZE,
    DeviceMemoryError,
    EstimatorConfig,
    PoseEstimator,
    batch_size_for_memory,
    run_in_batches,
    smaller_batch,
)

MIB = 1 << 20


def out_of_memory(size: int, limit: int) -> torch.cuda.OutOfMemoryError:
    return torch.cuda.OutOfMemoryError(
        f"CUDA out of memory. Tried to allocate {size} crops, room for {limit}"
    )


class LimitedForward:
    """``forward(start, stop)`` that fails with out-of-memory above ``limit`` items and records
    which items its successful calls ran."""

    def __init__(self, values: torch.Tensor, limit: int) -> None:
        self.values, self.limit = values, limit
        self.ran: list[int] = []
        self.failed_sizes: list[int] = []

    def __call__(self, start: int, stop: int) -> torch.Tensor:
        if stop - start > self.limit:
            self.failed_sizes.append(stop - start)
            raise out_of_memory(stop - start, self.limit)
        self.ran.extend(range(start, stop))
        return self.values[start:stop] * 2 + 1


@pytest.mark.parametrize(
    "n, batch, limit, granule, final",
    [
        (37, 64, 7, 5, 5),  # 37 -> 15 -> 5 crops: whole people of 5 augmentations
        (37, 64, 4, 5, 2),  # not even one person fits: 37 -> 15 -> 5 -> 2
        (50, 16, 3, 1, 2),  # 16 -> 8 -> 4 -> 2
        (10, 8, 8, 1, 8),  # fits: no back-off
    ],
)
def test_back_off_runs_every_item_exactly_once_with_unsplit_results(
    n, batch, limit, granule, final
):
    values = torch.arange(n * 3, dtype=torch.float32).reshape(n, 3)
    forward = LimitedForward(values, limit)
    outputs, size = run_in_batches(forward, n, batch, granule)
    assert size == final
    assert forward.ran == list(range(n))  # each item once, in order, by a call that returned
    assert all(failed > limit for failed in forward.failed_sizes)
    assert bool(forward.failed_sizes) == (batch > limit)
    unsplit = LimitedForward(values, n)(0, n)
    assert torch.equal(torch.cat(outputs), unsplit)
    # after the back-off every call stays at or below the size that fitted
    assert all(len(o) <= max(final, 1) for o in outputs)


def test_back_off_gives_up_on_a_single_item_and_passes_other_errors_through():
    values = torch.zeros(4, 2)
    with pytest.raises(DeviceMemoryError, match="single crop"):
        run_in_batches(LimitedForward(values, 0), 4, 4)

    def broken(start, stop):
        raise RuntimeError("not a memory problem")

    with pytest.raises(RuntimeError, match="not a memory problem"):
        run_in_batches(broken, 4, 4)


def test_smaller_batch_halves_to_whole_people_while_one_fits():
    assert [smaller_batch(s, 5) for s in (64, 20, 15, 10, 9, 5, 3, 2)] == [30, 10, 5, 5, 4, 2, 1, 1]
    assert [smaller_batch(s) for s in (64, 7, 2, 1)] == [32, 3, 1, 1]


def test_batch_size_for_memory_arithmetic():
    # (0.8 * 8192 MiB - 500 MiB) / 50 MiB = 121.07 -> 121 crops; in whole people of 5: 120
    assert batch_size_for_memory(8192 * MIB, 50 * MIB, 500 * MIB) == 121
    assert batch_size_for_memory(8192 * MIB, 50 * MIB, 500 * MIB, granule=5) == 120
    assert batch_size_for_memory(8192 * MIB, 50 * MIB, 500 * MIB, fraction=1.0) == 128
    assert batch_size_for_memory(8192 * MIB, 50 * MIB, 500 * MIB, fraction=1.0, maximum=500) == 153
    # a big GPU is capped at MAX_AUTO_BATCH_SIZE, rounded down to whole people
    assert batch_size_for_memory(80 << 30, 30 * MIB, 1 << 30) == MAX_AUTO_BATCH_SIZE
    assert batch_size_for_memory(80 << 30, 30 * MIB, 1 << 30, granule=5) == 125
    # less than one person fits: as many crops as fit; nothing fits: still 1 (the back-off decides)
    assert batch_size_for_memory(1000 * MIB, 200 * MIB, 200 * MIB, granule=5) == 3
    assert batch_size_for_memory(100 * MIB, 200 * MIB, 500 * MIB, granule=5) == 1
    assert batch_size_for_memory(0, 1, 0) == 1
    with pytest.raises(ValueError, match="positive"):
        batch_size_for_memory(1 << 30, 0, 0)


class LimitedStubModel(IntrinsicsStubModel):
    """The intrinsics stub network that runs out of memory above ``limit`` crops per call."""

    def __init__(self, side: int, limit: int) -> None:
        super().__init__(side)
        self.limit = limit
        self.ran_intrinsics: list[torch.Tensor] = []
        self.failed = 0

    def forward(self, crops, intrinsics):
        if len(crops) > self.limit:
            self.failed += 1
            raise out_of_memory(len(crops), self.limit)
        self.ran_intrinsics.append(intrinsics.clone())
        return super().forward(crops, intrinsics)


@pytest.mark.slow
@pytest.mark.parametrize("warp", ["opencv", "torch"])
def test_estimator_backs_off_without_losing_or_repeating_crops(warp):
    frames, boxes = fixture_inputs()
    intrinsics = case("aug5", "intrinsics")
    results = {}
    models = {}
    for limit in (1000, 14):  # unlimited (one call of all 35 crops), then 14 crops at most
        model = LimitedStubModel(48, limit)
        estimator = PoseEstimator(
            model, STUB_JOINT_NAMES, config=EstimatorConfig(num_aug=5, batch_size=64, warp=warp)
        )
        results[limit] = estimator.estimate(frames, boxes, intrinsics)
        models[limit] = model
        assert estimator.crops_per_batch == (60 if limit == 1000 else 5)
    # 35 crops -> 15 (whole people of 5 crops) -> 5
    assert models[1000].failed == 0 and models[14].failed == 2
    ran_once = torch.cat(models[1000].ran_intrinsics)
    ran_split = torch.cat(models[14].ran_intrinsics)
    assert [len(k) for k in models[14].ran_intrinsics] == [5] * 7
    assert torch.equal(ran_split, ran_once)  # every crop exactly once, in the same order
    for a, b in zip(results[1000], results[14], strict=True):
        np.testing.assert_array_equal(a.poses3d, b.poses3d)
        np.testing.assert_array_equal(a.poses2d, b.poses2d)
        np.testing.assert_array_equal(a.uncertainty, b.uncertainty)

    # the next call starts at the size that fitted: no further out-of-memory errors
    model = models[14]
    estimator = PoseEstimator(
        model, STUB_JOINT_NAMES, config=EstimatorConfig(num_aug=5, batch_size=64, warp=warp)
    )
    estimator.estimate(frames, boxes, intrinsics)
    failed_before = model.failed
    estimator.estimate(frames, boxes, intrinsics)
    assert model.failed == failed_before and estimator.crops_per_batch == 5


@pytest.mark.parametrize("num_aug, expected", [(1, 16), (5, 15), (3, 15)])
def test_automatic_batch_size_on_the_cpu_is_the_cpu_default_in_whole_people(num_aug, expected):
    frames, boxes = fixture_inputs()
    model = IntrinsicsStubModel(48)
    estimator = PoseEstimator(model, STUB_JOINT_NAMES, config=EstimatorConfig(num_aug=num_aug))
    assert estimator.config.batch_size is None and CPU_BATCH_SIZE == 16
    estimator.estimate(frames, boxes, case("aug5", "intrinsics"))
    assert estimator.crops_per_batch == expected == estimator.tune_batch_size((640, 480))
    n_crops = 7 * num_aug  # 7 boxes in the fixture
    assert [c[0] for c in model.calls] == [
        min(expected, n_crops - i) for i in range(0, n_crops, expected)
    ]


def test_batch_size_option_parses_auto_and_numbers(capsys):
    parse = build_parser("analyze").parse_args
    assert parse(["analyze", "v.mp4", "-o", "o.npz"]).batch_size is None  # auto by default
    assert parse(["analyze", "v.mp4", "-o", "o.npz", "--batch-size", "auto"]).batch_size is None
    assert parse(["analyze", "v.mp4", "-o", "o.npz", "--batch-size", "24"]).batch_size == 24
    for bad in ("0", "-3", "big"):
        with pytest.raises(SystemExit):
            parse(["analyze", "v.mp4", "-o", "o.npz", "--batch-size", bad])
        assert "--batch-size" in capsys.readouterr().err


@pytest.fixture(scope="module")
def walking_clip(tmp_path_factory):
    from tests.synthvideo import walking_people, write_clip

    truth = walking_people(1, 0.96)  # 24 frames, 640x360
    return write_clip(tmp_path_factory.mktemp("clip") / "walk.mp4", truth), truth


def run_worker(clip, tmp_path, model, *options):
    from inference.training.synth.motion import SKELETON

    output = tmp_path / "out.npz"
    args = build_parser("analyze").parse_args(
        ["analyze", str(clip), "-o", str(output), "--device", "cpu", *options]
    )
    made = []

    def make_estimator(settings, device):
        config = EstimatorConfig(num_aug=settings.tta, batch_size=settings.batch_size)
        estimator = PoseEstimator(model, SKELETON.joint_names, device, config)
        estimator.model_id = "colour-joints"
        made.append(estimator)
        return estimator

    from tests.tinymodels import PersonColourDetector

    stream = io.StringIO()
    code = analysis.run(args, make_estimator, lambda *a: PersonColourDetector(), stream=stream)
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    return code, events, output, made[0]


def test_worker_records_the_automatic_batch_size(walking_clip, tmp_path):
    from retarget.contract import read_trajectory
    from tests.tinycrop import ColourJointCropModel

    clip, _ = walking_clip
    code, events, output, _ = run_worker(clip, tmp_path, ColourJointCropModel(128))
    assert code == analysis.EXIT_OK, events[-1]
    assert events[0]["event"] == "start" and events[0]["batch_size"] == CPU_BATCH_SIZE
    settings = json.loads(str(read_trajectory(output).extras["worker_settings"]))
    assert settings["batch_size"] == CPU_BATCH_SIZE


class LimitedColourModel(torch.nn.Module):
    """The colour-joint crop network, out of memory above ``limit`` crops per call."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        from tests.tinycrop import ColourJointCropModel

        self.inner, self.limit, self.input_resolution = ColourJointCropModel(128), limit, 128
        self.calls: list[int] = []

    def forward(self, crops, intrinsics):
        self.calls.append(len(crops))
        if len(crops) > self.limit:
            raise out_of_memory(len(crops), self.limit)
        return self.inner(crops, intrinsics)


def test_worker_follows_the_estimators_back_off(walking_clip, tmp_path, caplog):
    from retarget.contract import read_trajectory

    clip, truth = walking_clip
    model = LimitedColourModel(3)
    with caplog.at_level(logging.WARNING, logger="inference.poses"):
        code, events, output, estimator = run_worker(clip, tmp_path, model, "--batch-size", "16")
    assert code == analysis.EXIT_OK, events[-1]
    assert events[0]["batch_size"] == 16
    assert "batch size lowered to" in caplog.text
    assert estimator.crops_per_batch == 2  # 16 -> 8 -> 4 -> 2
    # once lowered, the worker gathers batches of that size: no call above it after the first
    failures = [i for i, n in enumerate(model.calls) if n > 3]
    assert failures and all(n <= 2 for n in model.calls[failures[-1] + 1 :])
    assert sum(n for n in model.calls if n <= 3) == model.inner.crops_seen
    result = read_trajectory(output)
    assert result.num_frames == 24 and result.num_people == 1
    assert np.isfinite(result.boxes[:, 0, 0]).all()  # found in every frame
    error = np.linalg.norm(result.poses2d[:, 0] - truth.poses2d[:, 0], axis=-1)
    assert np.nanmedian(error) < 1.5
