"""Training of the small YOLOX person detector: SimOTA assignment, augmentation that keeps boxes
on their pixels, AP, and a tiny run whose weights load in the worker's detector."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from inference.detect import DetectorWeightsError
from inference.detect.yolox import STRIDES, Yolox, YoloxDetector
from inference.training.train_detector import (
    DETECTIONS_FILE,
    DetectionCrops,
    DetectionDataset,
    DetectorTrainConfig,
    _flatten,
    _load_initial_weights,
    average_precision,
    export_detector,
    fit_detector,
    load_detection_dataset,
    render_detection_dataset,
    simota_assign,
)


def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    raw = [torch.zeros(1, 6, size // s, size // s) for s in STRIDES]
    _, grid, strides = _flatten(raw)
    return grid, strides


def test_simota_assigns_cells_near_each_box_and_never_twice():
    grid, strides = _grid(128)
    gt = torch.tensor([[20.0, 20.0, 60.0, 100.0], [50.0, 30.0, 90.0, 110.0]])
    # predictions: every cell predicts the first box, except cells right of x = 64 the second
    centres = grid + 0.5 * strides[:, None]
    boxes = torch.where((centres[:, :1] < 64), gt[0], gt[1])
    scores = torch.full((len(grid),), 0.5)
    assigned, iou = simota_assign(boxes, scores, gt, grid, strides)
    for g in range(2):
        cells = centres[assigned == g]
        assert len(cells) >= 1
        # assigned cells lie inside their box and near its centre (SimOTA's regions)
        box_centre = 0.5 * (gt[g, :2] + gt[g, 2:])
        assert torch.all((cells > gt[g, :2]) & (cells < gt[g, 2:]))
        assert torch.all((cells - box_centre).abs() < 2.5 * strides[assigned == g][:, None])
    assert torch.all(iou[assigned >= 0] > 0.99)  # perfect predictions were the cheapest
    assert torch.all(iou[assigned < 0] == 0)
    empty, _ = simota_assign(boxes, scores, torch.zeros(0, 4), grid, strides)
    assert torch.all(empty == -1)


def test_average_precision_on_known_detections():
    truth = [np.array([[0, 0, 10, 10], [20, 20, 10, 10]], float), np.array([[5, 5, 10, 20]], float)]
    perfect = [np.c_[t, np.full(len(t), 0.9)] for t in truth]
    assert average_precision(perfect, truth) == {"ap50": 1.0, "precision": 1.0, "recall": 1.0}
    # one miss, one false positive ranked below the hits
    found = [np.array([[0, 0, 10, 10, 0.9], [60, 60, 5, 5, 0.5]]), np.array([[5, 5, 10, 20, 0.8]])]
    result = average_precision(found, truth)
    assert result["recall"] == pytest.approx(2 / 3) and result["precision"] == pytest.approx(2 / 3)
    assert result["ap50"] == pytest.approx(2 / 3)


def test_augmented_boxes_stay_on_their_pixels(tmp_path):
    image = np.full((240, 320, 3), 30, np.uint8)
    cv2.rectangle(image, (100, 50), (159, 189), (0, 0, 255), -1)  # BGR red person-sized block
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images/0.png"), image)
    data = DetectionDataset(
        tmp_path,
        np.array(["images/0.png"]),
        np.array([[100, 50, 60, 140]], np.float32),
        np.zeros(1, int),
    )
    crops = DetectionCrops(data, 160, augment=True, seed=1)
    checked = 0
    for epoch in range(12):
        crops.set_epoch(epoch)
        inputs, boxes = crops[0]
        for x0, y0, x1, y1 in boxes:
            inner = inputs[:, int(y0) + 2 : int(y1) - 2, int(x0) + 2 : int(x1) - 2]
            if inner.size:
                # BGR input: red stays dominant inside the box whatever the colour jitter did
                assert np.all(inner[2].mean() > inner[0].mean() + 50)
                checked += 1
    assert checked >= 6
    plain, boxes = DetectionCrops(data, 160, augment=False)[0]
    np.testing.assert_allclose(boxes, [[50, 25, 80, 95]], atol=1e-4)  # letterbox scale 0.5


@pytest.mark.slow
def test_tiny_detector_run_learns_and_loads_in_the_worker_detector(tmp_path):
    render_detection_dataset(tmp_path / "data", 12, seed=5)
    data = load_detection_dataset(tmp_path / "data")
    assert (tmp_path / "data" / DETECTIONS_FILE).is_file() and len(data.boxes) >= 12
    train = DetectorTrainConfig(
        data=str(tmp_path / "data"), out=str(tmp_path / "run"), input_size=160, epochs=12,
        batch_size=4, workers=0, lr=3e-3, seed=2,
    )  # fmt: skip
    model, history = fit_detector(train)
    assert history[-1]["loss"] < 0.85 * history[0]["loss"]  # measured: 12.7 -> 9.5
    path = export_detector(model, tmp_path / "det.pth")
    detector = YoloxDetector.from_file(path, score_threshold=0.0)
    assert detector.model.config.num_classes == 1
    boxes = detector.detect([data.load_image(0)])[0]
    assert boxes.shape[1] == 5 and len(boxes) >= 1
    assert Path(path).stat().st_size < 5_000_000


def test_init_from_starts_from_the_given_weights_and_rejects_another_network(tmp_path):
    train = DetectorTrainConfig(data="", out="", input_size=160, init_from=str(tmp_path / "a.pth"))
    torch.manual_seed(1)
    source = Yolox(train.network())
    export_detector(source, tmp_path / "a.pth")
    torch.manual_seed(2)
    target = Yolox(train.network())
    stem = "backbone.backbone.stem.conv.conv.weight"
    assert not torch.equal(target.state_dict()[stem], source.state_dict()[stem])
    _load_initial_weights(target, train)
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key
    wider = DetectorTrainConfig(
        data="", out="", input_size=160, width=0.25, init_from=str(tmp_path / "a.pth")
    )
    with pytest.raises(DetectorWeightsError, match="--width"):
        _load_initial_weights(Yolox(wider.network()), wider)


BUNDLED = Path(__file__).resolve().parents[1] / "models" / "yolox_synth" / "yolox_synth.pth"


@pytest.mark.slow
def test_bundled_detector_finds_people_in_held_apart_synthetic_data(tmp_path):
    """The bundled detector (models/yolox_synth/TRAINING.md) on data of unseen seeds. Measured:
    AP50 0.97 and 1.00, recall 0.97 and 1.00 on clips 31 and 32 (whole people 4-8 m away);
    AP50 0.61, recall 0.67 on these 60 hard random frames (small, cut and occluded people; the
    first, shorter training run scored 0.31 / 0.50 here). Bounds: clip 31 may lose 3 of its 30
    boxes; the hard frames keep about 10 % of margin."""
    from inference.training.synth.render import ClipConfig, render_clip
    from retarget.contract import read_trajectory

    detector = YoloxDetector.from_file(BUNDLED)
    assert BUNDLED.stat().st_size < 5_000_000 and detector.model.config.num_classes == 1
    config = ClipConfig(num_people=2, duration_s=1.0, fps=15, image_size=(640, 360))
    truth = read_trajectory(render_clip(tmp_path / "c.mp4", tmp_path / "c.npz", 31, config))
    capture = cv2.VideoCapture(str(tmp_path / "c.mp4"))
    frames = []
    while (read := capture.read())[0]:
        frames.append(cv2.cvtColor(read[1], cv2.COLOR_BGR2RGB))
    found = detector.detect(frames)
    clip = average_precision(found, list(truth.extras["visible_boxes"]))
    assert clip["ap50"] > 0.9 and clip["recall"] > 0.9
    data = render_detection_dataset(tmp_path / "frames", 60, seed=13)
    hard = average_precision([detector.detect([data.load_image(i)])[0] for i in range(len(data))],
                             [data.boxes_of(i) for i in range(len(data))])  # fmt: skip
    assert hard["ap50"] > 0.55 and hard["recall"] > 0.6
