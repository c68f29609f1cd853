"""Unit tests of the crop model: decoding, reconstruction, backbones, config, inference paths."""

import dataclasses

import numpy as np
import pytest
import torch

from inference.model import CropPoses, MetrabsModel, ModelConfig, reconstruct_absolute, soft_argmax
from inference.model.backbones import ConvBNAct, build_backbone, fixed_padding
from inference.model.config import ConfigError, dump_yaml_subset, parse_yaml_subset
from inference.model.metrabs import (
    RIDGE_WEIGHT,
    heatmap_to_image,
    heatmap_to_metric,
    is_within_fov,
    reference_full_perspective,
)
from inference.model.testing import deterministic_state_dict, make_test_crops

TINY = ModelConfig(
    backbone="efficientnetv2-b0", proc_side=64, backbone_width_mult=0.25, backbone_depth_mult=0.34
)


def _tiny_model(config: ModelConfig = TINY, n_joints: int = 5) -> MetrabsModel:
    model = MetrabsModel(config, [f"j{i}" for i in range(n_joints)], [[0, 1], [1, 2]])
    model.load_state_dict(deterministic_state_dict(model))
    return model.eval()


# --- soft-argmax and heatmap geometry -------------------------------------------------------


def _numpy_soft_argmax(logits: np.ndarray, n_dims: int) -> np.ndarray:
    """Reference: explicit softmax and expectation over a [0, 1] grid per axis (float64)."""
    lead = logits.shape[:-n_dims]
    spatial = logits.shape[-n_dims:]
    flat = logits.reshape(*lead, -1).astype(np.float64)
    probs = np.exp(flat - flat.max(-1, keepdims=True))
    probs = (probs / probs.sum(-1, keepdims=True)).reshape(logits.shape)
    grids = np.meshgrid(*[np.linspace(0, 1, n) for n in spatial], indexing="ij")
    axes = tuple(range(-n_dims, 0))
    coords = [(probs * grids[a]).sum(axis=axes) for a in reversed(range(n_dims))]
    return np.stack(coords, axis=-1)


@pytest.mark.parametrize("shape,n_dims", [((2, 5, 8, 8), 2), ((2, 5, 8, 6, 7), 3)])
def test_soft_argmax_matches_numpy_reference(shape, n_dims):
    logits = np.random.default_rng(0).normal(0, 3, shape).astype(np.float32)
    ours = soft_argmax(torch.from_numpy(logits), n_dims).numpy()
    np.testing.assert_allclose(ours, _numpy_soft_argmax(logits, n_dims), atol=2e-6)


def test_soft_argmax_of_a_peak_is_its_position_and_runs_in_fp32():
    logits = torch.full((1, 1, 4, 8, 8), -1e4, dtype=torch.float16)
    logits[0, 0, 3, 2, 5] = 0  # depth 3 of 0..3, row 2, column 5 of 0..7
    coords = soft_argmax(logits, 3)
    assert coords.dtype == torch.float32
    np.testing.assert_allclose(coords[0, 0].numpy(), [5 / 7, 2 / 7, 1.0], atol=1e-6)


@pytest.mark.parametrize(
    "side,centered,legacy,first,last",
    [(384, True, False, 16, 368), (256, False, True, 16, 240), (256, False, False, 0, 224)],
)
def test_heatmap_to_image_maps_cell_centres(side, centered, legacy, first, last):
    config = ModelConfig(
        proc_side=side, centered_stride=centered, legacy_centered_stride_bug=legacy
    )
    px = heatmap_to_image(torch.tensor([0.0, 1.0]), config, training=False)
    np.testing.assert_allclose(px.numpy(), [first, last])
    mm = heatmap_to_metric(torch.tensor([[1.0, 0.0, 0.5]]), config, training=False)
    np.testing.assert_allclose(mm.numpy(), [[last * 2200 / side, first * 2200 / side, 1100]])


def test_field_of_view_border():
    config = ModelConfig(proc_side=256, centered_stride=True)
    pts = torch.tensor([[[24.0, 24.0], [23.9, 100.0], [232.0, 232.0], [100.0, 232.1]]])
    assert is_within_fov(pts, config).tolist() == [[True, False, True, False]]


# --- absolute reconstruction ----------------------------------------------------------------


def _synthetic_scene(n_batch=3, n_joints=20, seed=0):
    rng = np.random.default_rng(seed)
    rel = rng.normal(0, 200, (n_batch, n_joints, 3))  # mm, a person-sized cloud
    trans = np.stack(
        [
            rng.uniform(-300, 300, n_batch),
            rng.uniform(-200, 200, n_batch),
            rng.uniform(2500, 6000, n_batch),
        ],
        axis=1,
    )
    focal = rng.uniform(300, 500, n_batch)
    intrinsics = np.zeros((n_batch, 3, 3))
    intrinsics[:, 0, 0] = focal
    intrinsics[:, 1, 1] = focal
    intrinsics[:, :2, 2] = 128
    intrinsics[:, 2, 2] = 1
    absolute = rel + trans[:, None]
    projected = absolute @ intrinsics.transpose(0, 2, 1)
    coords2d = projected[..., :2] / projected[..., 2:]
    return rel, trans, intrinsics, coords2d


def _numpy_ridge_reference(normalized2d, rel, valid):
    """The official objective solved directly with float64 lstsq on the stacked matrix."""
    out = []
    s2d = np.sqrt(np.mean(normalized2d**2))
    rhs = normalized2d * rel[..., 2:] - rel[..., :2]
    srhs = np.sqrt(np.mean(rhs**2))
    for u, b, v in zip(normalized2d / s2d, rhs / srhs, valid, strict=True):
        rows, targets, weights = [], [], []
        for (uj, vj), (bx, by), ok in zip(u, b, v, strict=True):
            rows += [[1, 0, -uj], [0, 1, -vj]]
            targets += [bx, by]
            weights += [float(ok) + 1e-4] * 2
        rows += np.eye(3).tolist()
        targets += [0, 0, 0]
        weights += [RIDGE_WEIGHT] * 3
        w = np.array(weights)[:, None]
        sol = np.linalg.lstsq(np.array(rows) * w, np.array(targets) * w[:, 0], rcond=None)[0]
        out.append([sol[0] * srhs, sol[1] * srhs, sol[2] * srhs / s2d])
    return np.array(out)


def test_full_perspective_solution_matches_direct_least_squares():
    rel, _, intrinsics, coords2d = _synthetic_scene()
    coords2d = coords2d + np.random.default_rng(1).normal(0, 2, coords2d.shape)  # inconsistent
    normalized = (coords2d - intrinsics[:, None, :2, 2]) / intrinsics[:, None, [0], [0]]
    valid = np.ones(rel.shape[:2], bool)
    valid[0, :4] = False
    ours = reference_full_perspective(
        torch.from_numpy(normalized).float(), torch.from_numpy(rel).float(), torch.from_numpy(valid)
    )
    np.testing.assert_allclose(
        ours.numpy(), _numpy_ridge_reference(normalized, rel, valid), rtol=0, atol=0.05
    )


@pytest.mark.parametrize("mix", [0.5, None])
def test_reconstruction_recovers_known_translation(mix):
    rel, trans, intrinsics, coords2d = _synthetic_scene()
    config = ModelConfig(proc_side=256, mix_3d_inside_fov=mix)
    # Keep every joint inside the field of view (so the 2D path is used and checked too).
    assert is_within_fov(torch.from_numpy(coords2d), config).all()
    poses = reconstruct_absolute(
        torch.from_numpy(coords2d).float(),
        torch.from_numpy(rel).float(),
        torch.from_numpy(intrinsics).float(),
        config,
    ).numpy()
    expected = rel + trans[:, None]
    # The ridge term pulls the solution towards the origin by well under 0.1 % of the distance.
    error = np.linalg.norm(poses - expected, axis=-1)
    assert error.max() < 1e-3 * trans[:, 2].max(), error.max()


def test_out_of_view_joints_barely_influence_the_root():
    rel, trans, intrinsics, coords2d = _synthetic_scene(n_batch=1)
    config = ModelConfig(proc_side=256)
    corrupted = coords2d.copy()
    corrupted[0, :3] = [[-50.0, 10.0], [300.0, 20.0], [10.0, 400.0]]  # far outside the crop
    poses = reconstruct_absolute(
        torch.from_numpy(corrupted).float(),
        torch.from_numpy(rel).float(),
        torch.from_numpy(intrinsics).float(),
        config,
    ).numpy()
    expected = rel + trans[:, None]
    # Out-of-view joints keep their 3D-based position relative to the recovered root.
    assert np.abs(poses - expected).max() < 10.0


def test_weak_perspective_recovers_a_distant_person():
    rel, _, intrinsics, _ = _synthetic_scene(n_batch=2)
    trans = np.array([[200.0, -100.0, 30000.0], [-150.0, 80.0, 25000.0]])
    projected = (rel + trans[:, None]) @ intrinsics.transpose(0, 2, 1)
    coords2d = projected[..., :2] / projected[..., 2:]
    config = ModelConfig(proc_side=256, weak_perspective=True, mix_3d_inside_fov=None)
    poses = reconstruct_absolute(
        torch.from_numpy(coords2d).float(),
        torch.from_numpy(rel).float(),
        torch.from_numpy(intrinsics).float(),
        config,
    ).numpy()
    root = poses.mean(axis=1) - rel.mean(axis=1)
    np.testing.assert_allclose(root, trans, rtol=0.02, atol=50)


def test_batch_scale_option_makes_crops_independent():
    rel, _, intrinsics, coords2d = _synthetic_scene(n_batch=4)
    args = [torch.from_numpy(a).float() for a in (coords2d, rel, intrinsics)]
    config = ModelConfig(proc_side=256)
    whole = reconstruct_absolute(*args, config, batch_global_scale=False)
    single = reconstruct_absolute(*[a[1:2] for a in args], config, batch_global_scale=False)
    np.testing.assert_allclose(whole[1:2].numpy(), single.numpy(), atol=1e-3)


# --- backbones ------------------------------------------------------------------------------


def test_official_key_layout_and_shapes():
    with torch.device("meta"):
        model = MetrabsModel(ModelConfig(backbone="efficientnetv2-l", proc_side=384), ["a"] * 30)
    state = model.state_dict()
    assert tuple(state["backbone.1.0.0.weight"].shape) == (32, 3, 3, 3)
    assert tuple(state["backbone.1.6.24.block.1.0.weight"].shape) == (2304, 1, 3, 3)  # dw conv
    assert tuple(state["backbone.1.6.24.block.2.fc1.weight"].shape) == (96, 2304, 1, 1)  # SE
    assert tuple(state["backbone.1.8.0.weight"].shape) == (1280, 640, 1, 1)
    assert tuple(state["heatmap_heads.conv_final.weight"].shape) == (30 * 9, 1280, 1, 1)
    assert state["backbone.1.0.1.running_var"].shape == (32,)
    assert model.backbone[1][0][1].eps == 1e-3


def test_centered_stride_samples_block_centres():
    assert (
        fixed_padding(3) == (1, 1)
        and fixed_padding(3, 1) == (0, 2)
        and fixed_padding(1, 1) == (-1, 1)
    )
    x = torch.arange(64.0).reshape(1, 1, 8, 8)
    for shift, start in [(0, 0), (1, 1)]:
        layer = ConvBNAct(1, 1, 3, stride=2, act=None, shift=shift).eval()
        with torch.no_grad():
            layer[0].weight.zero_()
            layer[0].weight[0, 0, 1, 1] = 1.0  # pick the centre tap
            layer[1].running_var.fill_(1 - layer[1].eps)
        out = layer(x)
        np.testing.assert_allclose(out.detach()[0, 0].numpy(), x[0, 0, start::2, start::2].numpy())
    # The official configs shift exactly one strided depthwise conv (stage 6, block 0).
    backbone = build_backbone("efficientnetv2-s", centered_stride=True)
    shifted = [
        n
        for n, m in backbone.named_modules()
        if isinstance(m, ConvBNAct) and m.explicit_pad is not None
    ]
    assert shifted == ["1.6.0.block.1"]


@pytest.mark.parametrize("name,channels", [("resnet50", 2048), ("efficientnetv2-b0", 1280)])
def test_small_and_resnet_backbones_have_stride_32(name, channels):
    backbone = build_backbone(name, centered_stride=True).eval()
    with torch.no_grad():
        out = backbone(torch.rand(2, 3, 64, 96))
    assert out.shape == (2, channels, 2, 3)
    assert backbone.out_channels == channels


# --- model paths ----------------------------------------------------------------------------


def test_forward_shapes_and_bad_input_messages():
    model = _tiny_model()
    crops = torch.from_numpy(make_test_crops(2, 64))
    intrinsics = torch.tensor([[[60.0, 0, 32], [0, 60, 32], [0, 0, 1]]]).repeat(2, 1, 1)
    poses = model(crops, intrinsics)
    assert isinstance(poses, CropPoses)
    assert poses.poses3d.shape == (2, 5, 3) and poses.poses2d.shape == (2, 5, 2)
    with pytest.raises(Exception, match=r"\(B, 3, 64, 64\)"):
        model(torch.rand(2, 3, 32, 32), intrinsics)
    with pytest.raises(Exception, match="intrinsics"):
        model(crops, None)


@pytest.mark.slow
def test_fused_channels_last_chunked_predict_matches_plain_forward():
    model = _tiny_model()
    model.batch_global_scale = False
    crops = torch.from_numpy(make_test_crops(5, 64, seed=3))
    intrinsics = torch.tensor([[[70.0, 0, 32], [0, 70, 32], [0, 0, 1]]]).repeat(5, 1, 1)
    with torch.no_grad():
        plain = model(crops, intrinsics)
    model.prepare_for_inference("cpu", channels_last=True, fuse_batchnorm=True)
    assert model.is_fused
    fast = model.predict(crops, intrinsics, batch_size=2)
    np.testing.assert_allclose(fast.poses2d.numpy(), plain.poses2d.numpy(), atol=1e-3)
    np.testing.assert_allclose(fast.poses3d.numpy(), plain.poses3d.numpy(), atol=0.05)


def test_bfloat16_autocast_keeps_decoding_in_float32():
    model = _tiny_model().prepare_for_inference("cpu", amp_dtype=torch.bfloat16)
    crops = torch.from_numpy(make_test_crops(2, 64))
    intrinsics = torch.tensor([[[60.0, 0, 32], [0, 60, 32], [0, 0, 1]]]).repeat(2, 1, 1)
    poses = model.predict(crops, intrinsics)
    assert poses.poses3d.dtype == torch.float32 and torch.isfinite(poses.poses3d).all()


@pytest.mark.slow
def test_training_heads_are_differentiable_through_the_reconstruction():
    model = _tiny_model().train()
    crops = torch.from_numpy(make_test_crops(2, 64))
    intrinsics = torch.tensor([[[60.0, 0, 32], [0, 60, 32], [0, 0, 1]]]).repeat(2, 1, 1)
    heads = model.predict_heads(crops)
    assert heads.logits2d.shape == (2, 5, 2, 2) and heads.logits3d.shape == (2, 5, 8, 2, 2)
    loss = model.reconstruct(heads, intrinsics).poses3d.abs().mean() + heads.coords2d.mean()
    loss.backward()
    assert model.heatmap_heads.conv_final.weight.grad.abs().sum() > 0
    assert model.backbone[1][0][0].weight.grad.abs().sum() > 0


def test_metro_variant_shares_the_head_and_is_root_relative():
    config = dataclasses.replace(TINY, model_class="metro")
    model = _tiny_model(config)
    assert model.heatmap_heads.conv_final.out_channels == 8 * 5
    with torch.no_grad():
        heads = model.predict_heads(torch.from_numpy(make_test_crops(2, 64)))
        poses = model.reconstruct(heads, None)
    np.testing.assert_allclose(poses.poses3d.mean(dim=1).numpy(), 0, atol=1e-3)
    np.testing.assert_allclose(
        poses.poses2d.numpy(), heads.coords3d[..., :2].numpy() * 64 / 2200, atol=1e-4
    )


# --- config ---------------------------------------------------------------------------------

OFFICIAL_L = """proc_side: 384

stride_train: 32
stride_test: 32
centered_stride: true
legacy_centered_stride_bug: false

# Model
efficientnet_size: l
backbone: efficientnetv2-l
depth: 8
box_size_mm: 2200

weak_perspective: false
mix_3d_inside_fov: 0.5

affine_weights: null
model_dir: '/some/where # not a comment'
"""


def test_config_reads_the_official_layout_and_round_trips():
    values = parse_yaml_subset(OFFICIAL_L)
    assert values["model_dir"] == "/some/where # not a comment"
    config = ModelConfig.from_mapping(values)
    assert (config.backbone, config.proc_side, config.box_size_mm) == (
        "efficientnetv2-l",
        384,
        2200.0,
    )
    assert config.mix_3d_inside_fov == 0.5 and config.centered_stride
    again = ModelConfig.from_mapping(parse_yaml_subset(dump_yaml_subset(config.to_mapping())))
    assert again == config


@pytest.mark.parametrize(
    "text,message",
    [
        ("proc_side: 384\n", "lacks depth"),
        ("model:\n  proc_side: 384\n", "nested"),
        (OFFICIAL_L.replace("centered_stride: true", "centered_stride: 1"), "true or false"),
        (OFFICIAL_L + "transform_coords: true\n", "unsupported"),
        (OFFICIAL_L.replace("proc_side: 384", "proc_side: 300"), "multiple of 32"),
        (OFFICIAL_L.replace("backbone: efficientnetv2-l", "backbone: vit"), "efficientnet_size"),
    ],
)
def test_config_errors_are_specific(text, message):
    with pytest.raises(ConfigError, match=message):
        ModelConfig.from_mapping(parse_yaml_subset(text))
