"""Training of the MeTRAbs crop model (``python -m inference train ...``).

The network is the one of :mod:`inference.model` (the same code that runs official weights); this
module adds the objective, the optimiser and the loop. The objective follows MeTRAbs (Sárándi et
al., "MeTRAbs: Metric-Scale Truncation-Robust Heatmaps for Absolute 3D Human Pose Estimation"):

- **metric 3D heatmap loss**: L1 between the 3D head's soft-argmax coordinates and the ground
  truth, both centred on their joint mean, in metres (the head is metric, the root unknown);
- **2D heatmap loss**: L1 between the 2D head's soft-argmax and the ground-truth crop pixels,
  converted to metres at the heatmap's scale (``box_size_mm / proc_side`` per pixel);
- **absolute pose loss**: L1 between the camera-frame pose that the closed-form reconstruction
  builds from both heads and the ground truth, xy weighted twice as z, z down-weighted beyond
  10 m, joints closer than 30 cm ignored; it starts after ``abs_loss_start`` of the steps (the
  official code waits 5000 of 400k steps), and the reconstruction is weak-perspective for the first
  500 steps, as the official trainer does while the two heads are still incompatible.

Optimiser: AdamW, linear warm-up then cosine decay; mixed precision (float16 + grad scaling) on
CUDA; checkpoint after every epoch and ``--resume``; validation metrics per epoch in
``metrics.jsonl``: MPJPE (mean-centred), root-relative MPJPE (pelvis-aligned), absolute MPJPE,
absolute root error, PCK@150 mm (root-relative) and 2D PCK (2D error under 5 % of the crop side).

Sub-commands: ``synth-data`` renders a synthetic dataset, ``fit`` trains, ``evaluate`` measures a
checkpoint or bundle on a dataset, ``export`` writes a model bundle.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from retarget.files import atomic_write

from .. import InferenceError
from ..model import (
    HeadOutputs,
    MetrabsModel,
    ModelConfig,
    load_bundle,
    reconstruct_absolute,
    save_bundle,
)
from .datasets import (
    AugmentConfig,
    CropBatch,
    CropDataset,
    PoseDataset,
    collate_crops,
    load_pose_dataset,
    render_synthetic_dataset,
)

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
METRICS_FILE = "metrics.jsonl"
WEAK_PERSPECTIVE_STEPS = 500  # official trainer: weak perspective reconstruction at first
MAX_SKIPPED_STEPS = 20  # consecutive steps with non-finite gradients before giving up
LOG_EVERY = 50  # steps between progress lines
PCK_THRESHOLD_MM = 150.0
PCK2D_FRACTION = 0.05  # 2D PCK threshold as a fraction of the crop side


class TrainingError(InferenceError):
    """A training run that cannot start or continue; the message says what to change."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (saved in the checkpoint and the bundle)."""

    data: str  # dataset folder (generic layout, see inference.training.datasets)
    out: str  # run folder: checkpoint.pt, metrics.jsonl
    val_data: str | None = None  # validation dataset folder (metrics per epoch); None = none
    backbone: str = "efficientnetv2-b0"
    width_mult: float = 0.5  # backbone channel multiplier (efficientnetv2-b0)
    depth_mult: float = 0.5  # backbone block-count multiplier (efficientnetv2-b0)
    side: int = 160  # crop side in pixels (multiple of 32)
    depth: int = 8  # depth bins of the metric heatmap
    box_size_mm: float = 2200.0  # side of the metric heatmap volume
    epochs: int = 10
    epoch_size: int = 0  # crops per epoch, drawn anew each epoch from all people (0 = all)
    batch_size: int = 32
    lr: float = 2e-3  # peak AdamW learning rate
    weight_decay: float = 1e-2  # AdamW decoupled weight decay, on conv/linear weights only
    warmup: float = 0.03  # share of the steps with a linear warm-up
    final_lr: float = 0.01  # cosine decay ends at this share of the peak rate
    loss2d_factor: float = 1.0  # weight of the 2D heatmap loss
    abs_loss_factor: float = 0.1  # weight of the absolute pose loss (official default; 0 = off)
    abs_loss_start: float = 0.4  # share of the steps before the absolute pose loss starts
    clip_grad_norm: float = 10.0  # gradient norm clipping (also catches non-finite gradients)
    seed: int = 0
    threads: int = 1  # torch CPU threads of the training process
    workers: int = 1  # DataLoader worker processes (0 = load in the training process)
    device: str = "auto"  # "auto" = CUDA when available, else CPU
    amp: bool = True  # float16 autocast + grad scaling on CUDA (ignored on CPU)
    max_train: int = 0  # use only the first N training people (0 = all)
    max_val: int = 0  # use only the first N validation people (0 = all)
    keep_checkpoints: bool = False  # also keep checkpoint_epochNNN.pt of every epoch

    def model_config(self) -> ModelConfig:
        return ModelConfig(
            backbone=self.backbone,
            proc_side=self.side,
            depth=self.depth,
            box_size_mm=self.box_size_mm,
            backbone_width_mult=self.width_mult,
            backbone_depth_mult=self.depth_mult,
        )


# ----------------------------------------------------------------------------------- objective


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` (B, J, C) over the joints where ``mask`` (B, J) is set."""
    weights = mask.unsqueeze(-1).to(values.dtype).expand_as(values)
    return (values * weights).sum() / weights.sum().clamp_min(1.0)


def _centred(points: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``points`` (B, J, 3) minus their mean over the valid joints (B, J)."""
    weights = valid.unsqueeze(-1).to(points.dtype)
    mean = (points * weights).sum(dim=1, keepdim=True) / weights.sum(dim=1, keepdim=True).clamp_min(
        1
    )
    return points - mean


@dataclass(frozen=True)
class Losses:
    """Loss terms of one batch (scalars, metres): the total and its parts."""

    total: torch.Tensor
    loss3d: torch.Tensor
    loss2d: torch.Tensor
    loss_abs: torch.Tensor


def metrabs_losses(
    heads: HeadOutputs,
    batch: CropBatch,
    config: ModelConfig,
    step: int,
    total_steps: int,
    train: TrainConfig,
) -> Losses:
    """The MeTRAbs objective of one batch (see the module docstring)."""
    valid = batch.valid
    truth = batch.joints3d
    loss3d = _masked_mean(
        (_centred(heads.coords3d, valid) - _centred(truth, valid)).abs() / 1000, valid
    )
    metres_per_pixel = config.box_size_mm / config.proc_side / 1000
    loss2d = _masked_mean((heads.coords2d - batch.joints2d).abs() * metres_per_pixel, valid)
    abs_on = step >= train.abs_loss_start * total_steps
    factor = train.abs_loss_factor if abs_on else 0.0
    # Without its weight the absolute loss is only logged: kept out of the graph, so that a
    # degenerate reconstruction (no joint in view) cannot send NaN gradients back.
    with torch.set_grad_enabled(factor > 0 and torch.is_grad_enabled()):
        loss_abs = absolute_pose_loss(heads, batch, config, step)
    total = loss3d + train.loss2d_factor * loss2d
    if factor > 0:
        total = total + factor * loss_abs
    return Losses(total, loss3d.detach(), loss2d.detach(), loss_abs.detach())


def absolute_pose_loss(
    heads: HeadOutputs, batch: CropBatch, config: ModelConfig, step: int
) -> torch.Tensor:
    """Absolute pose loss (metres) of the closed-form reconstruction, weighted as the official
    trainer: xy twice as much as z, z errors scaled down beyond 10 m, joints nearer than 30 cm
    left out; weak perspective during the first steps."""
    recon_config = config
    if step < WEAK_PERSPECTIVE_STEPS:
        recon_config = dataclasses.replace(config, weak_perspective=True)
    truth = batch.joints3d
    absolute = reconstruct_absolute(heads.coords2d, heads.coords3d, batch.intrinsics, recon_config)
    diff = (absolute - truth).abs()
    far_weight = torch.clamp(10000.0 / truth[..., 2:].abs().clamp_min(1.0), max=1.0)
    abs_diff = (2 * diff[..., :2].sum(-1, keepdim=True) + diff[..., 2:] * far_weight) / 3
    return _masked_mean(abs_diff / 1000, batch.valid & (truth[..., 2] > 300))


# ------------------------------------------------------------------------------------- metrics


def pose_errors(
    pred3d: np.ndarray,
    true3d: np.ndarray,
    pred2d: np.ndarray,
    true2d: np.ndarray,
    valid: np.ndarray,
    side: int,
    root: int = 0,
) -> dict[str, float]:
    """Validation metrics of ``N`` poses: 3D (N, J, 3) mm in one camera frame, 2D (N, J, 2) crop
    pixels, ``valid`` (N, J). Returns millimetres and percentages (keys in the module docstring)."""
    v = valid.astype(bool)
    weights = v.astype(float)

    def centre(points: np.ndarray) -> np.ndarray:
        return points - (points * weights[..., None]).sum(1, keepdims=True) / np.maximum(
            weights.sum(1)[:, None, None], 1
        )

    absolute = np.linalg.norm(pred3d - true3d, axis=-1)
    centred = np.linalg.norm(centre(pred3d) - centre(true3d), axis=-1)
    rootrel = np.linalg.norm(
        (pred3d - pred3d[:, root : root + 1]) - (true3d - true3d[:, root : root + 1]), axis=-1
    )
    error2d = np.linalg.norm(pred2d - true2d, axis=-1)
    return {
        "mpjpe_mm": float(centred[v].mean()),
        "rootrel_mpjpe_mm": float(rootrel[v].mean()),
        "abs_mpjpe_mm": float(absolute[v].mean()),
        "root_error_mm": float(absolute[:, root][v[:, root]].mean()),
        "pck150_pct": float(100 * (rootrel[v] < PCK_THRESHOLD_MM).mean()),
        "pck2d_pct": float(100 * (error2d[v] < PCK2D_FRACTION * side).mean()),
    }


@torch.inference_mode()
def evaluate(
    model: MetrabsModel, loader: torch.utils.data.DataLoader, device: torch.device
) -> dict[str, float]:
    """Metrics of ``model`` (eval mode) on every crop of ``loader`` (see :func:`pose_errors`)."""
    was_training = model.training
    model.eval()
    preds3d, preds2d, trues3d, trues2d, valids = [], [], [], [], []
    for batch in loader:
        batch = batch.to(device)
        images = batch.images.contiguous(memory_format=torch.channels_last)
        poses = model.reconstruct(model.predict_heads(images), batch.intrinsics)
        preds3d.append(poses.poses3d.float().cpu().numpy())
        preds2d.append(poses.poses2d.float().cpu().numpy())
        trues3d.append(batch.joints3d.cpu().numpy())
        trues2d.append(batch.joints2d.cpu().numpy())
        valids.append(batch.valid.cpu().numpy())
    model.train(was_training)
    return pose_errors(
        np.concatenate(preds3d), np.concatenate(trues3d), np.concatenate(preds2d),
        np.concatenate(trues2d), np.concatenate(valids), model.config.proc_side,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------- loop


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_model(train: TrainConfig, joint_names: tuple[str, ...]) -> MetrabsModel:
    """A fresh model for ``train`` (weights drawn from ``train.seed``)."""
    from retarget.skeletons import SKELETONS

    torch.manual_seed(train.seed)
    edges = next((s.edges for s in SKELETONS.values() if s.joint_names == joint_names), None)
    return MetrabsModel(train.model_config(), joint_names, edges)


def _optimizer(model: MetrabsModel, train: TrainConfig) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": train.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=train.lr)


def learning_rate(step: int, total_steps: int, train: TrainConfig) -> float:
    """Linear warm-up over ``warmup`` of the steps, then cosine decay to ``final_lr`` x peak
    (``train``: any config with ``lr``, ``warmup`` and ``final_lr``; the detector's too)."""
    warmup_steps = max(1, int(train.warmup * total_steps))
    if step < warmup_steps:
        return train.lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return train.lr * (
        train.final_lr + (1 - train.final_lr) * 0.5 * (1 + math.cos(math.pi * progress))
    )


def _worker_init(_: int) -> None:
    import cv2

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def _loader(
    dataset: CropDataset, train: TrainConfig, shuffle_seed: int | None
) -> torch.utils.data.DataLoader:
    """Batches of ``dataset``: in order (validation), or with ``shuffle_seed`` a seeded random
    order, cut to ``train.epoch_size`` crops when that is set, full batches only (training)."""
    sampler = None
    if shuffle_seed is not None:
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(shuffle_seed))
        sampler = order[: _epoch_size(len(dataset), train)].tolist()
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=train.batch_size,
        sampler=sampler,
        drop_last=shuffle_seed is not None,
        num_workers=train.workers,
        collate_fn=collate_crops,
        worker_init_fn=_worker_init,
        persistent_workers=False,
    )


def _epoch_size(num_people: int, train: TrainConfig) -> int:
    return min(train.epoch_size, num_people) if train.epoch_size else num_people


def _save_atomic(obj: dict, path: Path) -> None:
    with atomic_write(path) as file:
        torch.save(obj, file)


def _limit(data: PoseDataset, count: int) -> PoseDataset:
    return data.subset(np.arange(min(count, len(data)))) if count else data


@dataclass
class RunResult:
    """What :func:`fit` leaves behind: the trained model and the per-epoch records."""

    model: MetrabsModel
    history: list[dict[str, float]]


def fit(
    train: TrainConfig, resume: bool = False, resume_from: str | os.PathLike | None = None
) -> RunResult:
    """Train as ``train`` says; returns the model and the per-epoch history.

    ``resume`` continues from the run folder's own ``checkpoint.pt``; ``resume_from`` continues
    from another checkpoint file into this run folder (e.g. to branch an ablation off a run at the
    epoch where the two settings start to differ)."""
    torch.set_num_threads(train.threads)
    # No OpenCV thread pool in this process: DataLoader workers are forked from it, and a
    # forked copy of a live pool can deadlock the child (seen after validation used cv2).
    cv2.setNumThreads(0)
    out = Path(train.out)
    out.mkdir(parents=True, exist_ok=True)
    device = _device(train.device)
    from retarget.skeletons import SMPL_HEAD_30

    joint_names = SMPL_HEAD_30.joint_names
    train_data = _limit(load_pose_dataset(train.data, joint_names), train.max_train)
    model = build_model(train, joint_names).to(device)
    model = model.to(memory_format=torch.channels_last)
    optimizer = _optimizer(model, train)
    use_amp = train.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    crops = CropDataset(train_data, train.side, AugmentConfig(), seed=train.seed)
    steps_per_epoch = _epoch_size(len(crops), train) // train.batch_size
    if steps_per_epoch == 0:
        raise TrainingError(
            f"{len(crops)} training people give no full batch of {train.batch_size}; "
            "use a smaller --batch-size or more data"
        )
    total_steps = steps_per_epoch * train.epochs
    val_loader = None
    if train.val_data:
        val_data = _limit(load_pose_dataset(train.val_data, joint_names), train.max_val)
        val_crops = CropDataset(val_data, train.side, AugmentConfig(enabled=False))
        val_loader = _loader(val_crops, train, shuffle_seed=None)

    start_epoch, step, history = 0, 0, []
    checkpoint_path = out / CHECKPOINT_FILE
    if resume or resume_from:
        source = Path(resume_from) if resume_from else checkpoint_path
        if not source.is_file():
            raise TrainingError(f"nothing to resume: {source} does not exist")
        state = torch.load(source, map_location=device, weights_only=True)
        if state["train_config"] != _comparable(dataclasses.asdict(train)):
            logger.warning(
                "resuming with changed settings; the checkpoint's were %s", state["train_config"]
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        start_epoch, step, history = state["epoch"] + 1, state["step"], json.loads(state["history"])
        logger.info("resumed from %s after epoch %d (step %d)", source, start_epoch - 1, step)
        if resume_from and not (out / METRICS_FILE).exists():
            (out / METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in history))

    model.train()
    for epoch in range(start_epoch, train.epochs):
        crops.set_epoch(epoch)
        started = tick = time.monotonic()
        sums, skipped = np.zeros(4), 0
        for batch in _loader(crops, train, shuffle_seed=train.seed * 1000 + epoch):
            batch = batch.to(device)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, total_steps, train)
            images = batch.images.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                heads = model.predict_heads(images)
            losses = metrabs_losses(heads, batch, model.config, step, total_steps, train)
            if not torch.isfinite(losses.total):
                raise TrainingError(
                    f"the loss became {losses.total.item()} at step {step}; lower --lr"
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(losses.total).backward()
            scaler.unscale_(optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), train.clip_grad_norm)
            if torch.isfinite(grad_norm):
                scaler.step(optimizer)
                skipped = 0
            else:  # a rare degenerate batch; AMP's scaler skips these steps the same way
                skipped += 1
                logger.warning("step %d: non-finite gradients, step skipped", step)
                if skipped >= MAX_SKIPPED_STEPS:
                    raise TrainingError(
                        f"{skipped} steps in a row had non-finite gradients; lower --lr"
                    )
            scaler.update()
            if step % LOG_EVERY == 0:
                logger.info(
                    "step %d/%d loss %.4f (3d %.4f 2d %.4f abs %.4f) %.1f crops/s",
                    step, total_steps, losses.total.item(), losses.loss3d.item(),
                    losses.loss2d.item(), losses.loss_abs.item(),
                    train.batch_size * LOG_EVERY / max(time.monotonic() - tick, 1e-9),
                )  # fmt: skip
                tick = time.monotonic()
            sums += [
                losses.total.item(),
                losses.loss3d.item(),
                losses.loss2d.item(),
                losses.loss_abs.item(),
            ]
            step += 1
        record = {
            "epoch": epoch,
            "step": step,
            "seconds": round(time.monotonic() - started, 1),
            "lr": learning_rate(step - 1, total_steps, train),
            **dict(
                zip(
                    ("loss", "loss3d", "loss2d", "loss_abs"),
                    (sums / steps_per_epoch).tolist(),
                    strict=True,
                )
            ),
        }
        if val_loader is not None:
            record.update({f"val_{k}": v for k, v in evaluate(model, val_loader, device).items()})
        history.append(record)
        logger.info("epoch %d: %s", epoch, json.dumps(record))
        with open(out / METRICS_FILE, "a", encoding="utf-8") as file:
            file.write(json.dumps(record) + "\n")
        _save_atomic(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(),
                "epoch": epoch,
                "step": step,
                "history": json.dumps(history),
                "train_config": _comparable(dataclasses.asdict(train)),
            },
            checkpoint_path,
        )
        if train.keep_checkpoints:
            shutil.copyfile(checkpoint_path, out / f"checkpoint_epoch{epoch:03d}.pt")
    return RunResult(model, history)


def _comparable(config: dict) -> dict:
    """The run settings that matter for resuming (paths and machine settings left out)."""
    return {k: v for k, v in config.items() if k not in ("threads", "workers", "device", "out")}


# ------------------------------------------------------------------------------ bundles and CLI


def load_checkpoint_model(run: str | os.PathLike) -> tuple[MetrabsModel, TrainConfig]:
    """The model and settings of a run folder's ``checkpoint.pt`` (model in eval mode, CPU)."""
    path = Path(run) / CHECKPOINT_FILE if Path(run).is_dir() else Path(run)
    if not path.is_file():
        raise TrainingError(f"no checkpoint at {path}; train with 'fit' first")
    state = torch.load(path, map_location="cpu", weights_only=True)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    settings = {k: v for k, v in state["train_config"].items() if k in fields}
    train = TrainConfig(**{"out": str(path.parent), **settings})
    from retarget.skeletons import SMPL_HEAD_30

    model = build_model(train, SMPL_HEAD_30.joint_names)
    model.load_state_dict(state["model"])
    return model.eval(), train


def export_bundle(model: MetrabsModel, path: str | os.PathLike) -> Path:
    """Write ``model`` as a model bundle whose skeleton ``smpl+head_30`` is its own joints."""
    from retarget.skeletons import SMPL_HEAD_30

    if model.joint_names != SMPL_HEAD_30.joint_names:
        raise TrainingError("export expects a model trained on the smpl+head_30 joints")
    infos = {
        SMPL_HEAD_30.name: {
            "indices": list(range(SMPL_HEAD_30.num_joints)),
            "names": list(SMPL_HEAD_30.joint_names),
            "edges": SMPL_HEAD_30.edges.tolist(),
        }
    }
    return save_bundle(model, path, skeleton_infos=infos)


def evaluate_dataset(
    model: MetrabsModel, data: str | os.PathLike, max_people: int = 0, batch_size: int = 32
) -> dict[str, float]:
    """Metrics of ``model`` on the plain (unaugmented) crops of a dataset folder."""
    from retarget.skeletons import SMPL_HEAD_30

    dataset = _limit(load_pose_dataset(data, SMPL_HEAD_30.joint_names), max_people)
    crops = CropDataset(dataset, model.config.proc_side, AugmentConfig(enabled=False))
    loader = torch.utils.data.DataLoader(crops, batch_size=batch_size, collate_fn=collate_crops)
    return evaluate(model, loader, next(model.parameters()).device)


def _add_options(parser: argparse.ArgumentParser, config_class: type) -> None:
    """One ``--option`` per field of a config dataclass (``data`` and ``out`` required)."""
    for f in dataclasses.fields(config_class):
        flag = "--" + f.name.replace("_", "-")
        if f.name in ("data", "out"):
            parser.add_argument(flag, required=True, help=f"(required) {f.name}")
            continue
        default = f.default
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        else:
            kind = type(default) if default is not None else str
            parser.add_argument(flag, type=kind, default=default, help=f"default: {default}")


def _config_from_args(config_class: type, args: argparse.Namespace):
    names = {f.name for f in dataclasses.fields(config_class)}
    return config_class(**{k: v for k, v in vars(args).items() if k in names})


def configure_parser(parser: argparse.ArgumentParser) -> None:
    from .train_detector import DetectorTrainConfig

    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    synth = actions.add_parser("synth-data", help="render a synthetic dataset (generic layout)")
    synth.add_argument("out", help="dataset folder to create or complete")
    synth.add_argument("--frames", type=int, required=True, help="number of images")
    synth.add_argument("--seed", type=int, required=True, help="dataset seed")
    synth.add_argument("--window-max-side", type=int, default=256, help="image side limit, px")
    fit_parser = actions.add_parser("fit", help="train the crop model")
    _add_options(fit_parser, TrainConfig)
    fit_parser.add_argument("--resume", action="store_true", help="continue from checkpoint.pt")
    fit_parser.add_argument("--resume-from", help="continue from this checkpoint file instead")
    fit_parser.add_argument("--bundle", help="write the trained model as a bundle here")
    evaluate_parser = actions.add_parser("evaluate", help="metrics of a model on a dataset")
    source = evaluate_parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="run folder (its checkpoint.pt)")
    source.add_argument("--bundle", help="model bundle folder or .tar.gz")
    evaluate_parser.add_argument("--data", required=True, help="dataset folder")
    evaluate_parser.add_argument("--max", type=int, default=0, help="first N people only")
    export_parser = actions.add_parser("export", help="write a run's model as a bundle")
    export_parser.add_argument("run", help="run folder")
    export_parser.add_argument("bundle", help="bundle folder (or .tar.gz) to write")
    det_data = actions.add_parser("detector-data", help="render whole frames with person boxes")
    det_data.add_argument("out", help="dataset folder to create")
    det_data.add_argument("--frames", type=int, required=True, help="number of images")
    det_data.add_argument("--seed", type=int, required=True, help="dataset seed")
    detector = actions.add_parser("detector", help="train the small YOLOX person detector")
    _add_options(detector, DetectorTrainConfig)
    detector.add_argument("--weights", help="write the trained detector's .pth here")


def _emit(result: dict) -> None:
    """The command's result: one JSON object on stdout (logs go to stderr)."""
    sys.stdout.write(json.dumps(result) + "\n")


def main(args: argparse.Namespace) -> int:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    try:
        if args.action == "synth-data":
            from .synth.render import SceneConfig

            scene = SceneConfig(window_scale=1.6, window_max_side=args.window_max_side)
            data = render_synthetic_dataset(args.out, args.frames, args.seed, scene)
            _emit({"dataset": args.out, "people": len(data)})
        elif args.action == "fit":
            train = _config_from_args(TrainConfig, args)
            result = fit(train, resume=args.resume, resume_from=args.resume_from)
            if args.bundle:
                export_bundle(result.model, args.bundle)
            _emit(result.history[-1] if result.history else {})
        elif args.action == "evaluate":
            if args.run:
                model = load_checkpoint_model(args.run)[0]
            else:
                model = load_bundle(args.bundle).model
            _emit(evaluate_dataset(model, args.data, args.max))
        elif args.action == "export":
            export_bundle(load_checkpoint_model(args.run)[0], args.bundle)
            _emit({"bundle": args.bundle})
        else:
            from . import train_detector

            if args.action == "detector-data":
                data = train_detector.render_detection_dataset(args.out, args.frames, args.seed)
                _emit({"dataset": args.out, "images": len(data), "boxes": len(data.boxes)})
            else:
                config = _config_from_args(train_detector.DetectorTrainConfig, args)
                model, history = train_detector.fit_detector(config)
                if args.weights:
                    train_detector.export_detector(model, args.weights)
                _emit(history[-1] if history else {})
    except InferenceError as error:
        logger.error("%s", error)
        return 2
    return 0
