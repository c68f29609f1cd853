"""Write tests/fixtures/parity_*.npz: outputs of the OFFICIAL MeTRAbs PyTorch crop model.

Dev script, not part of the product or of CI. It needs a throwaway environment with the official
code's dependencies (torch, torchvision, einops, numpy) and a checkout of isarandi/metrabs; it
imports the official ``metrabs_pytorch`` package from the path given on the command line, replacing
only its hydra/posepile config plumbing with a plain namespace. No official code is copied here.

    /work/refenv/bin/python tools/make_parity_fixtures.py --official /work/refenv/metrabs_src

Each fixture holds the config (YAML text), the crop seed, intrinsics and the official outputs:
2D head coordinates (crop px), metric 3D head coordinates (mm) and absolute poses (mm) for several
reconstruction variants. Weights come from ``inference.model.testing.deterministic_state_dict`` (a
function of key name and shape), so the test rebuilds identical weights without storing them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import types
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

# name -> (config.yaml text, n joints, n crops); S as in the official config_s_256.yaml
# (legacy offset), S with centred stride, L as in config_l.yaml (the released model's geometry).
FIXTURES = {
    "s256_legacy": (
        "proc_side: 256\nstride_train: 32\nstride_test: 32\ncentered_stride: false\n"
        "legacy_centered_stride_bug: true\nefficientnet_size: s\nbackbone: efficientnetv2-s\n"
        "depth: 8\nbox_size_mm: 2200\nweak_perspective: false\nmix_3d_inside_fov: 0.5\n"
        "affine_weights: null\ntransform_coords: false\npredict_all_and_latents: false\n",
        24,
        4,
    ),
    "s256_centered": (
        "proc_side: 256\nstride_train: 32\nstride_test: 32\ncentered_stride: true\n"
        "legacy_centered_stride_bug: false\nefficientnet_size: s\nbackbone: efficientnetv2-s\n"
        "depth: 8\nbox_size_mm: 2200\nweak_perspective: false\nmix_3d_inside_fov: 0.5\n"
        "affine_weights: null\ntransform_coords: false\npredict_all_and_latents: false\n",
        24,
        4,
    ),
    "l384": (
        "proc_side: 384\nstride_train: 32\nstride_test: 32\ncentered_stride: true\n"
        "legacy_centered_stride_bug: false\nefficientnet_size: l\nbackbone: efficientnetv2-l\n"
        "depth: 8\nbox_size_mm: 2200\nweak_perspective: false\nmix_3d_inside_fov: 0.5\n"
        "affine_weights: null\ntransform_coords: false\npredict_all_and_latents: false\n",
        30,
        3,
    ),
}
# Reconstruction variants: overrides of the config applied to the same network. (The official
# port's weak-perspective path does not run: ptu.reduce_mean_masked adds a list to a torch.Size,
# so weak perspective is checked by our own unit tests instead.)
VARIANTS = {
    "base": {},
    "no_mix": {"mix_3d_inside_fov": None},
    "mix_0.2": {"mix_3d_inside_fov": 0.2},
}
CROP_SEED = 1234


def install_official(official: Path, cfg: types.SimpleNamespace) -> types.ModuleType:
    """Import the official package with ``get_config`` answering ``cfg`` (hydra not needed)."""
    sys.path.insert(0, str(official))
    util = types.ModuleType("metrabs_pytorch.util")
    util.get_config = lambda *args, **kwargs: cfg
    sys.modules["metrabs_pytorch.util"] = util
    posepile = types.ModuleType("posepile")
    paths = types.ModuleType("posepile.paths")
    paths.DATA_ROOT = "/nonexistent"
    posepile.paths = paths
    sys.modules.setdefault("posepile", posepile)
    sys.modules.setdefault("posepile.paths", paths)
    import metrabs_pytorch.backbones.efficientnet as effnet
    import metrabs_pytorch.models.metrabs as metrabs

    return types.SimpleNamespace(effnet=effnet, metrabs=metrabs)


def build_official(official_mod, cfg, n_joints: int):
    import torch

    from inference.model.testing import deterministic_state_dict

    effnet, metrabs = official_mod.effnet, official_mod.metrabs
    raw = getattr(effnet, f"efficientnet_v2_{cfg.efficientnet_size}")()
    backbone = torch.nn.Sequential(effnet.PreprocLayer(), raw.features)
    names = [f"joint{i:02d}" for i in range(n_joints)]
    joint_info = types.SimpleNamespace(
        names=names, stick_figure_edges=[(i, i + 1) for i in range(n_joints - 1)], n_joints=n_joints
    )
    model = metrabs.Metrabs(backbone, joint_info).eval()
    with torch.no_grad():  # materialise the lazy head conv, as the official loader does
        model((torch.zeros(1, 3, cfg.proc_side, cfg.proc_side), torch.eye(3)[None]))
    model.load_state_dict(deterministic_state_dict(model), strict=True)
    return model, names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, required=True, help="folder with metrabs_pytorch/")
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures")
    parser.add_argument("--only", nargs="*", default=None, help="fixture names to (re)build")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))

    import torch

    from inference.model.config import parse_yaml_subset
    from inference.model.testing import feature_probes, make_test_crops, make_test_intrinsics

    torch.set_num_threads(max(1, torch.get_num_threads()))
    cfg = types.SimpleNamespace()
    official_mod = install_official(args.official, cfg)
    commit = (
        subprocess.run(
            ["git", "-C", str(args.official), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        or "unknown (not a git checkout)"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    for name, (yaml_text, n_joints, n_crops) in FIXTURES.items():
        if args.only and name not in args.only:
            continue
        values = parse_yaml_subset(yaml_text)
        cfg.__dict__.clear()
        cfg.__dict__.update(values)
        model, joint_names = build_official(official_mod, cfg, n_joints)
        side = values["proc_side"]
        crops = torch.from_numpy(make_test_crops(n_crops, side, seed=CROP_SEED))
        intrinsics = make_test_intrinsics(n_crops, side)
        out = {
            "config_yaml": np.array(yaml_text),
            "joint_names": np.array(joint_names),
            "crop_seed": np.int64(CROP_SEED),
            "intrinsics": intrinsics,
            "variants": np.array(list(VARIANTS)),
            "official_source": np.array(f"isarandi/metrabs {commit}, torch {torch.__version__}"),
        }
        stage_outputs = {}
        for stage, module in model.backbone[1].named_children():
            if stage.isdigit():  # skip the parameter-free 'padding' child
                module.register_forward_hook(
                    lambda mod, inp, outp, stage=stage, store=stage_outputs: store.__setitem__(
                        stage, outp
                    )
                )
        with torch.no_grad():
            features = model.backbone(crops)
            for stage, value in stage_outputs.items():
                out[f"probe_stage{stage}"] = feature_probes(value.numpy(), f"stage{stage}")
            out["logits2d"] = model.heatmap_heads.conv_final(features)[:, :n_joints].numpy()
            coords2d, coords3d = model.heatmap_heads(features)
            out["coords2d"] = coords2d.numpy()
            out["coords3d"] = coords3d.numpy()
            for variant, overrides in VARIANTS.items():
                cfg.__dict__.update(values)
                cfg.__dict__.update(overrides)
                poses = model((crops, torch.from_numpy(intrinsics)))
                out[f"poses3d_{variant}"] = poses.numpy()
        cfg.__dict__.update(values)
        path = args.out / f"parity_{name}.npz"
        np.savez_compressed(path, **out)
        print(f"{path}: {path.stat().st_size} bytes, poses3d[0,0] = {out['poses3d_base'][0, 0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
