"""Parity of our MeTRAbs crop model with the official PyTorch implementation.

The fixtures hold outputs of the official code (isarandi/metrabs, ``metrabs_pytorch``) run by
``tools/make_parity_fixtures.py`` with weights filled from key names and shapes by
``inference.model.testing.deterministic_state_dict``. Here we rebuild the same weights, load them
strictly into our model and compare: per-stage feature fingerprints, 2D logits, decoded 2D/3D
head coordinates and the absolute poses for three reconstruction variants (fp32, CPU).
"""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.model.config import ModelConfig, parse_yaml_subset
from inference.model.metrabs import MetrabsModel, reconstruct_absolute
from inference.model.testing import deterministic_state_dict, feature_probes, make_test_crops

# Slow (full-size networks, EfficientNetV2-L at 384 px, on the CPU): not in `make test-fast`.
pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parent / "fixtures"
TOLERANCE_MM = 0.1  # required agreement of absolute 3D poses
TOLERANCE_PX = 0.01  # 2D head coordinates, crop pixels
VARIANT_OVERRIDES = {
    "base": {},
    "no_mix": {"mix_3d_inside_fov": None},
    "mix_0.2": {"mix_3d_inside_fov": 0.2},
}


@pytest.fixture(scope="module", params=["s256_legacy", "s256_centered", "l384"])
def parity_case(request):
    data = dict(np.load(FIXTURES / f"parity_{request.param}.npz"))
    config = ModelConfig.from_mapping(parse_yaml_subset(str(data["config_yaml"])))
    model = MetrabsModel(config, [str(n) for n in data["joint_names"]]).eval()
    model.load_state_dict(deterministic_state_dict(model), strict=True)
    crops = torch.from_numpy(
        make_test_crops(len(data["intrinsics"]), config.proc_side, int(data["crop_seed"]))
    )
    stages = {}
    hooks = [
        module.register_forward_hook(
            lambda mod, inp, out, name=name: stages.__setitem__(name, out.numpy().copy())
        )
        for name, module in model.backbone[1].named_children()
    ]
    with torch.no_grad():
        heads = model.predict_heads(crops)
        poses = model(crops, torch.from_numpy(data["intrinsics"]))
    for hook in hooks:
        hook.remove()
    return data, config, heads, poses, stages


def test_stage_fingerprints_match(parity_case):
    data, _, _, _, stages = parity_case
    names = sorted(k for k in data if k.startswith("probe_stage"))
    assert len(names) == len(stages) >= 8
    for key in names:
        stage = key.removeprefix("probe_stage")
        ours = feature_probes(stages[stage], f"stage{stage}")
        theirs = data[key]
        scale = np.abs(theirs).max()
        assert scale > 1e-3, f"{key}: degenerate fingerprint"
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4 * scale, err_msg=key)


def test_head_coordinates_match(parity_case):
    data, _, heads, _, _ = parity_case
    np.testing.assert_allclose(heads.logits2d.numpy(), data["logits2d"], rtol=0, atol=1e-3)
    np.testing.assert_allclose(heads.coords2d.numpy(), data["coords2d"], rtol=0, atol=TOLERANCE_PX)
    np.testing.assert_allclose(heads.coords3d.numpy(), data["coords3d"], rtol=0, atol=TOLERANCE_MM)


def test_absolute_poses_match_within_0_1_mm(parity_case):
    data, config, heads, poses, _ = parity_case
    # The full model call (base config) ...
    expected = data["poses3d_base"]
    assert np.abs(poses.poses3d.numpy() - expected).max() < TOLERANCE_MM
    np.testing.assert_array_equal(poses.poses2d.numpy(), heads.coords2d.numpy())
    # ... and every reconstruction variant on the same head outputs.
    intrinsics = torch.from_numpy(data["intrinsics"])
    for variant in data["variants"]:
        variant_config = dataclasses.replace(config, **VARIANT_OVERRIDES[str(variant)])
        ours = reconstruct_absolute(heads.coords2d, heads.coords3d, intrinsics, variant_config)
        error = np.abs(ours.numpy() - data[f"poses3d_{variant}"]).max()
        assert error < TOLERANCE_MM, f"{variant}: {error:.4f} mm"


def test_fixture_outputs_are_informative(parity_case):
    """The reference is not degenerate: joints spread out, poses differ between crops."""
    data = parity_case[0]
    assert data["coords2d"].std(axis=1).mean() > 3.0  # px spread of joints within a crop
    poses = data["poses3d_base"]
    assert np.abs(poses[0] - poses[1]).mean() > 1.0  # mm, crops give different poses
