"""Our YOLOX network against the official implementation (reference outputs made by
``tests/data/make_yolox_reference.py`` from the official code with the same name-derived weights),
plus decoding, letterboxing, checkpoint loading and person-box post-processing."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.detect import DetectorWeightsError, make_detector
from inference.detect.yolox import (
    Yolox,
    YoloxConfig,
    YoloxDetector,
    build_from_state_dict,
    config_from_state_dict,
    decode,
    letterbox,
)
from tests.data.make_yolox_reference import fill_from_names, reference_input

REFERENCE = np.load(Path(__file__).parent / "data" / "yolox_reference.npz")
VARIANT_NAMES = {"nano": "yolox-nano", "tiny": "yolox-tiny", "s": "yolox-s"}


@pytest.mark.slow
@pytest.mark.parametrize("short", sorted(VARIANT_NAMES))
def test_matches_official_yolox_outputs(short):
    model = Yolox(YoloxConfig.named(VARIANT_NAMES[short]))
    assert sorted(model.state_dict()) == REFERENCE[f"{short}_keys"].tolist()
    state = fill_from_names(model.state_dict())
    model = build_from_state_dict(state)  # strict, shape-checked load
    with torch.no_grad():
        output = model(reference_input())
    assert output.shape == (2, int(REFERENCE[f"{short}_num_anchors"]), 85)
    rows = REFERENCE[f"{short}_rows"]
    expected = REFERENCE[f"{short}_output"]
    np.testing.assert_allclose(output[:, rows, :4].numpy(), expected[..., :4], atol=2e-3, rtol=1e-4)
    np.testing.assert_allclose(output[:, rows, 4:].numpy(), expected[..., 4:], atol=1e-5)


def test_config_is_read_from_the_tensors():
    for name in ("yolox-nano", "yolox-tiny", "yolox-s", "yolox-m"):
        config = YoloxConfig.named(name)
        state = Yolox(config).state_dict()
        assert config_from_state_dict(state) == config
    assert YoloxConfig.named("yolox-m").backbone_depth == 2  # depth 0.67 -> 2 bottlenecks


def test_decode_places_boxes_on_the_grid():
    side = 64  # levels of 8x8, 4x4, 2x2 cells
    raw = [torch.zeros(1, 6, side // s, side // s) for s in (8, 16, 32)]
    raw[0][0, :4, 2, 3] = torch.tensor([0.5, 0.25, math.log(2), math.log(4)])
    raw[0][0, 4, 2, 3] = 10.0  # objectness logit
    raw[2][0, :2, 1, 0] = torch.tensor([-0.5, 0.0])
    out = decode(raw)
    assert out.shape == (1, 64 + 16 + 4, 6)
    np.testing.assert_allclose(out[0, 2 * 8 + 3, :4], [(3 + 0.5) * 8, (2 + 0.25) * 8, 16, 32])
    assert out[0, 2 * 8 + 3, 4] > 0.9999
    np.testing.assert_allclose(out[0, 64 + 16 + 2, :4], [-0.5 * 32, 32, 32, 32])


def test_letterbox_keeps_aspect_with_grey_padding_and_bgr_order():
    image = np.zeros((72, 128, 3), np.uint8)
    image[..., 0] = 200  # red in RGB
    tensor, scale = letterbox(image, 64)
    assert scale == 0.5 and tensor.shape == (3, 64, 64)
    assert np.all(tensor[2, :36] == 200) and np.all(tensor[:2, :36] == 0)  # B, G, R planes
    assert np.all(tensor[:, 36:] == 114)


def _detector(score_threshold=0.3):
    return YoloxDetector(
        Yolox(YoloxConfig.named("yolox-nano", num_classes=3)), score_threshold=score_threshold
    )


def test_person_boxes_from_predictions():
    detector = _detector()
    prediction = np.zeros((4, 8), np.float32)  # cx, cy, w, h, obj, 3 classes
    prediction[0] = [100, 50, 40, 80, 0.9, 0.9, 0.1, 0.0]  # person, score 0.81
    prediction[1] = [104, 52, 40, 80, 0.9, 0.8, 0.1, 0.0]  # duplicate, suppressed by NMS
    prediction[2] = [300, 50, 40, 80, 0.9, 0.4, 0.5, 0.0]  # more likely class 1: not a person
    prediction[3] = [200, 50, 40, 80, 0.5, 0.5, 0.0, 0.0]  # person, score 0.25 < threshold
    boxes = detector.boxes_from_prediction(prediction, scale=0.5)
    np.testing.assert_allclose(boxes, [[160, 20, 80, 160, 0.81]], rtol=1e-6)


@pytest.mark.slow
def test_checkpoint_file_loads_and_detects(tmp_path):
    model = Yolox(YoloxConfig.named("yolox-nano"))
    state = fill_from_names(model.state_dict())
    path = tmp_path / "yolox_nano.pth"
    torch.save({"model": state, "start_epoch": 300}, path)  # layout of the released files
    detector = make_detector(str(path), score_threshold=0.0)
    frames = [np.full((90, 160, 3), v, np.uint8) for v in (30, 220)]
    boxes = detector.detect(frames)
    assert len(boxes) == 2 and all(b.ndim == 2 and b.shape[1] == 5 for b in boxes)
    assert all(np.all(b[:, 4] >= 0) and np.all(b[:, 4] <= 1) for b in boxes)
    assert detector.input_size == 416


def test_bad_checkpoints_raise_clear_errors(tmp_path):
    truncated = tmp_path / "cut.pth"
    model = Yolox(YoloxConfig.named("yolox-nano"))
    torch.save({"model": model.state_dict()}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:5000])
    with pytest.raises(DetectorWeightsError, match="truncated or not a PyTorch checkpoint"):
        make_detector(str(truncated))
    foreign = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, foreign)
    with pytest.raises(DetectorWeightsError, match="not a YOLOX checkpoint"):
        make_detector(str(foreign))
    state = model.state_dict()
    del state["head.obj_preds.2.bias"]
    with pytest.raises(DetectorWeightsError, match="missing \\[head.obj_preds.2.bias\\]"):
        build_from_state_dict(state)
    with pytest.raises(DetectorWeightsError, match="weights download"):
        make_detector(str(tmp_path / "absent.pth"))
