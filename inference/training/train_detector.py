"""Training of the small YOLOX person detector on synthetic frames (``python -m inference train
detector-data|detector ...``).

The network is the project's YOLOX code (:mod:`inference.detect.yolox`) with one class (person),
so the trained weights load with ``YoloxDetector.from_file`` like the released checkpoints. The
objective is YOLOX's (Ge et al., "YOLOX: Exceeding YOLO Series in 2021"), written here from the
paper's description:

- **SimOTA assignment** per image: candidate grid cells are those whose centre lies inside a
  ground-truth box or within 2.5 strides of its centre; the cost of a (box, cell) pair is the
  classification BCE plus 3 x (-log IoU) plus a large penalty unless the cell is in both regions;
  each box takes its ``k`` cheapest cells, ``k`` = the sum of its 10 best IoUs (at least 1); a cell
  claimed by several boxes goes to the cheapest;
- losses normalised by the number of assigned cells: 5 x (1 - IoU²) on assigned boxes, BCE of the
  objectness of every cell (1 where assigned), BCE of the class logit of assigned cells with the
  IoU as target.

Data: a folder with images and ``detections.npz`` (``image_paths`` (N,) str, ``boxes`` (M, 4)
x, y, w, h pixels, ``image_index`` (M,) int); :func:`render_detection_dataset` makes one from the
synthetic renderer (whole frames, every person at least 20 % visible).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from retarget.files import atomic_write

from ..detect import DetectorWeightsError
from ..detect.nms import box_iou, xywh_to_xyxy
from ..detect.yolox import (
    PAD_VALUE,
    STRIDES,
    Yolox,
    YoloxConfig,
    YoloxDetector,
    config_from_state_dict,
    letterbox,
    load_state_dict,
)
from .datasets import DatasetError, frame_seed, read_rgb
from .train import learning_rate

logger = logging.getLogger(__name__)

DETECTIONS_FILE = "detections.npz"
CHECKPOINT_FILE = "detector_checkpoint.pt"
METRICS_FILE = "detector_metrics.jsonl"
CENTRE_RADIUS = 2.5  # strides: SimOTA's centre region
LOG_EVERY = 50


@dataclass(frozen=True)
class DetectorTrainConfig:
    """A detector training run (saved in its checkpoint)."""

    data: str  # detection dataset folder (see the module docstring)
    out: str  # run folder
    val_data: str | None = None
    width: float = 0.125  # YOLOX width factor (stem channels = 64 x width)
    depth: int = 1  # CSP bottlenecks (backbone dark2/dark5 and each neck layer)
    depthwise: bool = False  # nano-style depthwise convolutions (slower per FLOP on CPU)
    input_size: int = 416  # letterboxed input side; what YoloxDetector uses for width <= 0.375
    epochs: int = 10
    epoch_size: int = 0  # images per epoch, a fresh random subset each epoch (0 = all)
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 5e-4
    warmup: float = 0.05
    final_lr: float = 0.02
    seed: int = 0
    threads: int = 1
    workers: int = 1
    device: str = "auto"
    amp: bool = True
    init_from: str | None = None  # start from these weights (.pth or run checkpoint), not afresh

    def network(self) -> YoloxConfig:
        return YoloxConfig(self.width, self.depth, self.depth, self.depthwise, 1, self.input_size)


# ------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class DetectionDataset:
    """Images with person boxes: ``image_paths`` (N,) relative to ``root``; ``boxes`` (M, 4)
    x, y, w, h pixels; ``image_index`` (M,) the image of each box."""

    root: Path
    image_paths: np.ndarray
    boxes: np.ndarray
    image_index: np.ndarray

    def __len__(self) -> int:
        return len(self.image_paths)

    def boxes_of(self, index: int) -> np.ndarray:
        return self.boxes[self.image_index == index]

    def load_image(self, index: int) -> np.ndarray:
        return read_rgb(self.root / str(self.image_paths[index]))


def load_detection_dataset(root: str | os.PathLike) -> DetectionDataset:
    root = Path(root)
    path = root / DETECTIONS_FILE
    if not path.is_file():
        raise DatasetError(f"no {DETECTIONS_FILE} in {root}; make one with 'train detector-data'")
    with np.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    for key in ("image_paths", "boxes", "image_index"):
        if key not in arrays:
            raise DatasetError(f"{path} lacks the key {key!r}")
    boxes, index = arrays["boxes"].reshape(-1, 4), arrays["image_index"].astype(np.int64)
    if len(boxes) != len(index) or (len(index) and index.max() >= len(arrays["image_paths"])):
        raise DatasetError(f"{path}: 'image_index' must give an image for each of the boxes")
    return DetectionDataset(
        root, arrays["image_paths"].astype(str), boxes.astype(np.float32), index
    )


def render_detection_dataset(
    root: str | os.PathLike, num_frames: int, seed: int, min_visible: float = 0.2
) -> DetectionDataset:
    """Render ``num_frames`` whole synthetic frames (1–4 people) with the visible box of every
    person at least ``min_visible`` unoccluded into ``root``. Same arguments, same files."""
    from .synth.render import SceneConfig, render_frame

    scene = SceneConfig(extra_people=(0, 1, 1, 2, 2, 3), truncation_prob=0.25)
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    paths, boxes, index = [], [], []
    for i in range(num_frames):
        frame = render_frame(frame_seed(seed, i), scene)
        name = f"images/{i:06d}.jpg"
        cv2.imwrite(str(root / name), frame.image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        paths.append(name)
        for person in range(len(frame.boxes)):
            if frame.visible_fraction[person] >= min_visible and frame.boxes[person, 2] >= 4:
                boxes.append(frame.boxes[person])
                index.append(i)
        if (i + 1) % 250 == 0:
            logger.info("rendered %d / %d detection frames", i + 1, num_frames)
    with atomic_write(root / DETECTIONS_FILE) as file:
        np.savez(file, image_paths=np.array(paths), boxes=np.array(boxes, np.float32).reshape(-1, 4),
                 image_index=np.array(index, np.int64))  # fmt: skip
    return load_detection_dataset(root)


class DetectionCrops(torch.utils.data.Dataset):
    """Letterboxed, augmented detector inputs: item ``i`` of epoch ``e`` is a pure function of
    (seed, e, i). Returns (3, S, S) float32 BGR 0..255 and (K, 4) float32 x0, y0, x1, y1 boxes."""

    def __init__(self, data: DetectionDataset, size: int, augment: bool, seed: int = 0):
        self.data, self.size, self.augment, self.seed, self.epoch = data, size, augment, seed, 0

    def __len__(self) -> int:
        return len(self.data)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image = self.data.load_image(index)
        boxes = xywh_to_xyxy(self.data.boxes_of(index))
        if not self.augment:
            inputs, scale = letterbox(image, self.size)
            return inputs, (boxes * scale).astype(np.float32)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        height, width = image.shape[:2]
        scale = self.size / max(height, width) * rng.uniform(0.5, 1.25)
        new_w, new_h = max(1, int(width * scale)), max(1, int(height * scale))
        resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        if rng.uniform() < 0.5:
            resized = resized[:, ::-1]
            boxes = np.stack(
                [width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], 1
            )
        hsv = cv2.cvtColor(np.ascontiguousarray(resized), cv2.COLOR_RGB2HSV).astype(np.float32)
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(-8, 8)) % 180
        hsv[..., 1:] *= rng.uniform(0.7, 1.3, 2)
        resized = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB)
        # place the image anywhere on the canvas (parts may fall outside it)
        dx = int(rng.uniform(min(0, self.size - new_w), max(0, self.size - new_w) + 1))
        dy = int(rng.uniform(min(0, self.size - new_h), max(0, self.size - new_h) + 1))
        canvas = np.full((self.size, self.size, 3), PAD_VALUE, np.float32)
        x0, y0 = max(dx, 0), max(dy, 0)
        x1, y1 = min(dx + new_w, self.size), min(dy + new_h, self.size)
        canvas[y0:y1, x0:x1] = resized[y0 - dy : y1 - dy, x0 - dx : x1 - dx, ::-1]
        boxes = boxes * scale + [dx, dy, dx, dy]
        clipped = np.clip(boxes, [x0, y0, x0, y0], [x1, y1, x1, y1])
        # keep boxes that keep at least 40 % of their area and a few pixels of size
        area = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)
        kept = np.prod(np.clip(clipped[:, 2:] - clipped[:, :2], 0, None), axis=1)
        good = (kept >= 0.4 * np.maximum(area, 1e-9)) & np.all(
            clipped[:, 2:] - clipped[:, :2] >= 3, 1
        )
        return canvas.transpose(2, 0, 1), clipped[good].astype(np.float32)


def collate_detections(items: list) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images (B, 3, S, S), boxes (B, K, 4) x0 y0 x1 y1 padded, mask (B, K) bool."""
    images = torch.from_numpy(np.stack([item[0] for item in items]))
    most = max(1, max(len(item[1]) for item in items))
    boxes = torch.zeros(len(items), most, 4)
    mask = torch.zeros(len(items), most, dtype=torch.bool)
    for i, (_, b) in enumerate(items):
        boxes[i, : len(b)] = torch.from_numpy(b)
        mask[i, : len(b)] = True
    return images, boxes, mask


# ---------------------------------------------------------------------------------- objective


def _flatten(raw: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Raw maps -> predictions (B, A, 5 + C), cell centres (A, 2) and strides (A,) in pixels."""
    preds, centres, strides = [], [], []
    for level_map, stride in zip(raw, STRIDES, strict=True):
        _, _, height, width = level_map.shape
        preds.append(level_map.float().flatten(2).transpose(1, 2))
        rows, cols = torch.meshgrid(
            torch.arange(height, device=level_map.device),
            torch.arange(width, device=level_map.device),
            indexing="ij",
        )
        centres.append(torch.stack([cols, rows], -1).reshape(-1, 2).float() * stride)
        strides.append(torch.full((height * width,), float(stride), device=level_map.device))
    return torch.cat(preds, 1), torch.cat(centres), torch.cat(strides)


def _decode_xyxy(pred: torch.Tensor, grid: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
    """Boxes (..., A, 4) x0 y0 x1 y1 from predictions: centre (offset + cell) x stride, size
    exp(log size) x stride (log size clamped for stability early in training)."""
    centre = pred[..., :2] * strides[:, None] + grid
    size = torch.exp(pred[..., 2:4].clamp(max=8.0)) * strides[:, None]
    return torch.cat([centre - size / 2, centre + size / 2], -1)


def _pairwise_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU (N, M) of x0 y0 x1 y1 boxes (N, 4) and (M, 4)."""
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(-1)
    return inter / (area_a[:, None] + area_b[None] - inter).clamp(min=1e-9)


@torch.no_grad()
def simota_assign(
    boxes_pred: torch.Tensor,
    scores: torch.Tensor,
    gt: torch.Tensor,
    grid: torch.Tensor,
    strides: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SimOTA for one image: ``boxes_pred`` (A, 4) x0 y0 x1 y1, ``scores`` (A,) predicted person
    probability (objectness x class), ``gt`` (G, 4). Returns the assigned ground-truth index per
    cell (A,) (-1 = background) and the IoU of each cell's box with its assigned box (A,)."""
    num_cells = len(grid)
    assigned = torch.full((num_cells,), -1, dtype=torch.long, device=grid.device)
    matched_iou = torch.zeros(num_cells, device=grid.device)
    if len(gt) == 0:
        return assigned, matched_iou
    centres = grid + 0.5 * strides[:, None]
    inside_box = ((centres[None] > gt[:, None, :2]) & (centres[None] < gt[:, None, 2:])).all(-1)
    gt_centre = 0.5 * (gt[:, :2] + gt[:, 2:])
    radius = CENTRE_RADIUS * strides[None, :, None]
    inside_centre = ((centres[None] - gt_centre[:, None]).abs() < radius).all(-1)  # (G, A)
    candidate = (inside_box | inside_centre).any(0)
    if not candidate.any():
        return assigned, matched_iou
    cells = torch.nonzero(candidate).squeeze(1)
    ious = _pairwise_iou(gt, boxes_pred[cells])  # (G, C)
    probs = scores[cells].clamp(1e-6, 1 - 1e-6)
    cls_cost = -torch.log(probs)[None].expand_as(ious)
    in_both = inside_box[:, cells] & inside_centre[:, cells]
    cost = cls_cost + 3.0 * -torch.log(ious + 1e-8) + 1e5 * (~in_both).float()
    top = torch.topk(ious, min(10, ious.shape[1]), dim=1).values
    dynamic_k = top.sum(1).int().clamp(min=1)
    matching = torch.zeros_like(cost, dtype=torch.bool)
    for g in range(len(gt)):
        k = int(min(dynamic_k[g], cost.shape[1]))
        matching[g, torch.topk(cost[g], k, largest=False).indices] = True
    shared = matching.sum(0) > 1
    if shared.any():  # a cell claimed by several boxes goes to the cheapest
        cheapest = cost[:, shared].argmin(0)
        matching[:, shared] = False
        matching[cheapest, torch.nonzero(shared).squeeze(1)] = True
    owner = matching.float().argmax(0)
    chosen = matching.any(0)
    assigned[cells[chosen]] = owner[chosen]
    matched_iou[cells[chosen]] = ious[owner[chosen], torch.nonzero(chosen).squeeze(1)]
    return assigned, matched_iou


def yolox_loss(
    raw: list[torch.Tensor], gt_boxes: torch.Tensor, gt_mask: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The YOLOX objective for one batch (see the module docstring); ``gt_boxes`` (B, K, 4)
    x0 y0 x1 y1 input pixels, ``gt_mask`` (B, K)."""
    pred, grid, strides = _flatten(raw)
    boxes = _decode_xyxy(pred, grid, strides)  # (B, A, 4)
    obj_logit, cls_logit = pred[..., 4], pred[..., 5]
    obj_target = torch.zeros_like(obj_logit)
    iou_terms, cls_terms = [], []
    for b in range(pred.shape[0]):
        gt = gt_boxes[b][gt_mask[b]]
        scores = torch.sigmoid(obj_logit[b]) * torch.sigmoid(cls_logit[b])
        assigned, matched_iou = simota_assign(boxes[b].detach(), scores.detach(), gt, grid, strides)
        fg = assigned >= 0
        obj_target[b, fg] = 1.0
        if fg.any():
            iou = torch.diagonal(_pairwise_iou(boxes[b, fg], gt[assigned[fg]]))
            iou_terms.append(1 - iou.square())
            cls_terms.append(
                F.binary_cross_entropy_with_logits(
                    cls_logit[b, fg], matched_iou[fg], reduction="none"
                )
            )
    num_fg = max(1.0, float(sum(len(t) for t in iou_terms)))
    zero = pred.sum() * 0
    loss_iou = torch.cat(iou_terms).sum() / num_fg if iou_terms else zero
    loss_cls = torch.cat(cls_terms).sum() / num_fg if cls_terms else zero
    loss_obj = F.binary_cross_entropy_with_logits(obj_logit, obj_target, reduction="sum") / num_fg
    total = 5.0 * loss_iou + loss_obj + loss_cls
    return {
        "loss": total,
        "iou": loss_iou.detach(),
        "obj": loss_obj.detach(),
        "cls": loss_cls.detach(),
    }


# ------------------------------------------------------------------------------------ metrics


def average_precision(
    detections: list[np.ndarray], truths: list[np.ndarray], iou_threshold: float = 0.5
) -> dict[str, float]:
    """AP at ``iou_threshold`` (all-point interpolation) over images, plus precision and recall
    of the detections scoring at least 0.3. ``detections`` per image (n, 5) x, y, w, h, score;
    ``truths`` per image (m, 4) x, y, w, h."""
    records, total = [], sum(len(t) for t in truths)
    for found, truth in zip(detections, truths, strict=True):
        order = np.argsort(-found[:, 4]) if len(found) else np.zeros(0, int)
        taken = np.zeros(len(truth), bool)
        ious = box_iou(found[order, :4], truth) if len(found) and len(truth) else None
        for rank, index in enumerate(order):
            hit = False
            if ious is not None:
                candidates = np.where(~taken, ious[rank], -1)
                best = int(np.argmax(candidates))
                if candidates[best] >= iou_threshold:
                    taken[best], hit = True, True
            records.append((found[index, 4], hit))
    if not records or total == 0:
        return {"ap50": 0.0, "precision": 0.0, "recall": 0.0}
    records.sort(key=lambda r: -r[0])
    hits = np.array([r[1] for r in records], float)
    scores = np.array([r[0] for r in records])
    tp = np.cumsum(hits)
    precision, recall = tp / np.arange(1, len(hits) + 1), tp / total
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.diff(np.concatenate([[0.0], recall]))
    confident = scores >= 0.3
    return {
        "ap50": float(np.sum(steps * envelope)),
        "precision": float(hits[confident].mean()) if confident.any() else 0.0,
        "recall": float(hits[confident].sum() / total),
    }


@torch.no_grad()
def evaluate_detector(
    model: Yolox, data: DetectionDataset, max_images: int = 0
) -> dict[str, float]:
    """AP50, precision and recall (score >= 0.3) of ``model`` on a detection dataset."""
    was_training = model.training
    detector = YoloxDetector(model, score_threshold=0.01)
    count = min(len(data), max_images) if max_images else len(data)
    found = [detector.detect([data.load_image(i)])[0] for i in range(count)]
    model.train(was_training)
    return average_precision(found, [data.boxes_of(i) for i in range(count)])


# --------------------------------------------------------------------------------------- loop


def _load_initial_weights(model: Yolox, train: DetectorTrainConfig) -> None:
    """Start from ``train.init_from`` (a ``.pth`` or a run's checkpoint) for fine-tuning; the
    network options must describe the same network."""
    state = load_state_dict(train.init_from)
    found = config_from_state_dict(state, train.input_size)
    if found != train.network():
        raise DetectorWeightsError(
            f"{train.init_from} holds a {found} network, not the {train.network()} that the "
            "options describe; set --width/--depth/--depthwise to match it"
        )
    model.load_state_dict({k: v.to(next(model.parameters()).device) for k, v in state.items()})
    logger.info("starting from the weights in %s", train.init_from)


def fit_detector(train: DetectorTrainConfig) -> tuple[Yolox, list[dict[str, float]]]:
    """Train a single-class YOLOX detector; returns the model and per-epoch records (a
    checkpoint and ``detector_metrics.jsonl`` are written to ``train.out``)."""
    from .train import _device, _save_atomic, _worker_init

    torch.set_num_threads(train.threads)
    # No OpenCV thread pool in this process: DataLoader workers are forked from it, and a
    # forked copy of a live pool can deadlock the child (seen after validation used cv2).
    cv2.setNumThreads(0)
    torch.manual_seed(train.seed)
    device = _device(train.device)
    out = Path(train.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_detection_dataset(train.data)
    val = load_detection_dataset(train.val_data) if train.val_data else None
    model = Yolox(train.network()).to(device).to(memory_format=torch.channels_last)
    for module in model.modules():  # YOLOX's initialisation: BN eps/momentum, prior on objectness
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 0.03
    for conv in (*model.head.obj_preds, *model.head.cls_preds):
        torch.nn.init.constant_(conv.bias, -math.log((1 - 0.01) / 0.01))
    if train.init_from:
        _load_initial_weights(model, train)
    decay = [p for p in model.parameters() if p.ndim > 1]
    rest = [p for p in model.parameters() if p.ndim <= 1]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": train.weight_decay},
            {"params": rest, "weight_decay": 0.0},
        ],
        lr=train.lr,
    )
    use_amp = train.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    crops = DetectionCrops(data, train.input_size, augment=True, seed=train.seed)
    per_epoch = min(train.epoch_size, len(crops)) if train.epoch_size else len(crops)
    steps_per_epoch = per_epoch // train.batch_size
    total, step, history = steps_per_epoch * train.epochs, 0, []
    model.train()
    for epoch in range(train.epochs):
        crops.set_epoch(epoch)
        order = torch.randperm(
            len(crops), generator=torch.Generator().manual_seed(train.seed * 1000 + epoch)
        )
        loader = torch.utils.data.DataLoader(
            crops, batch_size=train.batch_size, sampler=order[:per_epoch].tolist(), drop_last=True,
            num_workers=train.workers, collate_fn=collate_detections, worker_init_fn=_worker_init,
        )  # fmt: skip
        started = tick = time.monotonic()
        sums = np.zeros(4)
        for images, boxes, mask in loader:
            images = images.to(device).contiguous(memory_format=torch.channels_last)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, total, train)
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                raw = model.forward_raw(images)
            losses = yolox_loss(raw, boxes.to(device), mask.to(device))
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(losses["loss"]).backward()
            scaler.unscale_(optimizer)
            if torch.isfinite(torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)):
                scaler.step(optimizer)
            scaler.update()
            sums += [losses[k].item() for k in ("loss", "iou", "obj", "cls")]
            if step % LOG_EVERY == 0:
                rate = train.batch_size * LOG_EVERY / max(time.monotonic() - tick, 1e-9)
                logger.info(
                    "detector step %d/%d loss %.3f %.1f images/s",
                    step,
                    total,
                    losses["loss"].item(),
                    rate,
                )
                tick = time.monotonic()
            step += 1
        record = {"epoch": epoch, "step": step, "seconds": round(time.monotonic() - started, 1)}
        record.update(
            dict(
                zip(
                    ("loss", "loss_iou", "loss_obj", "loss_cls"),
                    (sums / steps_per_epoch).tolist(),
                    strict=True,
                )
            )
        )
        if val is not None:
            model.eval()
            record.update({f"val_{k}": v for k, v in evaluate_detector(model, val).items()})
            model.train()
        history.append(record)
        logger.info("detector epoch %d: %s", epoch, json.dumps(record))
        with open(out / METRICS_FILE, "a", encoding="utf-8") as file:
            file.write(json.dumps(record) + "\n")
        _save_atomic(
            {
                "model": model.state_dict(),
                "train_config": dataclasses.asdict(train),
                "history": json.dumps(history),
            },
            out / CHECKPOINT_FILE,
        )
    return model.eval(), history


def export_detector(model: Yolox, path: str | os.PathLike) -> Path:
    """Write the detector's state dict as a ``.pth`` that ``YoloxDetector.from_file`` loads."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from .train import _save_atomic

    _save_atomic({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)
    return path
