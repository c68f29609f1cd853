"""Model bundles laid out exactly as the official MeTRAbs PyTorch release is, for tests.

The official ``metrabs_eff2l_384px_800k_28ds_pytorch`` bundle (too large and not downloadable in
tests) has 555 raw joints: the 24 SMPL joints unsuffixed in SURREAL order with the pelvis last,
then joints suffixed by their dataset (``rhip_h36m``, ``nose_coco``, ``thor_3dhp``, ...). Its
``joint_transform_matrix.npy`` is (555, 580): the identity, then 25 Kinect v2 joints as linear
combinations. ``skeleton_infos.pkl`` holds 24 skeletons (``smpl+head_30`` with suffixed names in its
own order, ``smpl_24`` with the spine as ``spi1..3``, ``''`` with all 580 joints, ``kinectv2_25``,
...), indices as Python and numpy integers, edges as tuples; ``config.yaml`` has the official keys.
``tests/official_names.py`` holds that layout.

:func:`official_layout_bundle` lays the bundled ``metrabs_small_synth`` weights out that way: each
raw joint takes the head weights of the trained joint it is (``lhip_h36m`` -> ``lhip``) or, for
joints the small model never learnt, of a trained joint in turn (the hand points, of the hand
joint of their side), so every raw joint predicts something plausible.
:func:`own_layout_bundle` lays the *same* 555 joints and weights out in this project's own way
(the canonical ``smpl+head_30`` joints first, in our names and order, an identity transform).
Both must give the same poses, joint for joint.
"""

import pickle
import tarfile
from pathlib import Path

import numpy as np
import torch

from inference.model.config import dump_yaml_subset, parse_yaml_subset
from retarget.joints import canonical_name
from retarget.skeletons import HAND_POINTS, SMPL_HEAD_30
from tests.official_names import RAW_JOINT_EDGES, RAW_JOINT_NAMES, SKELETON_INFOS

REPO = Path(__file__).resolve().parents[1]
BUNDLED_MODEL = REPO / "models" / "metrabs_small_synth"
OFFICIAL_NAME = "metrabs_eff2l_384px_800k_28ds_pytorch"
NUM_RAW = len(RAW_JOINT_NAMES)
# The 25 Kinect v2 joints the transform appends (as "<name>_kinectv2").
_KINECT = ("pelv", "bell", "head", "htop", "rsho", "relb", "rwri", "rhan", "lsho", "lelb", "lwri",
           "lhan", "rhip", "rkne", "rank", "rtoe", "lhip", "lkne", "lank", "ltoe", "neck", "rfin",
           "rthu", "lfin", "lthu")  # fmt: skip


def _trained_joint(raw_name: str, position: int) -> int:
    """Index into the bundled model's (smpl+head_30) joints whose weights raw joint takes: its
    namesake, for a hand point (thumb, hand end: the small model never learnt them) the hand
    joint of its side, else a trained joint in turn."""
    joint = canonical_name(raw_name)
    if joint in SMPL_HEAD_30.joint_names:
        return SMPL_HEAD_30.index(joint)
    if joint in HAND_POINTS:
        return SMPL_HEAD_30.index(joint[0] + "han")
    return position % SMPL_HEAD_30.num_joints


def _kinect_matrix() -> np.ndarray:
    """(555, 25): each Kinect joint the mean of the raw joints it is (h36m / 3dhp namesakes)."""
    matrix = np.zeros((NUM_RAW, len(_KINECT)), np.float32)
    for k, joint in enumerate(_KINECT):
        sources = [i for i, n in enumerate(RAW_JOINT_NAMES) if canonical_name(n) == joint
                   and (n == joint or n.endswith(("_h36m", "_3dhp")))]  # fmt: skip
        matrix[sources, k] = 1.0 / len(sources)
    return matrix


def _heads_for(state: dict, rows: list[int], depth: int) -> dict:
    """``state`` with its head conv re-laid for raw joints taking the trained joints ``rows``."""
    weight, bias = state["heatmap_heads.conv_final.weight"], state["heatmap_heads.conv_final.bias"]
    trained = SMPL_HEAD_30.num_joints
    channels = list(rows) + [trained + d * trained + r for d in range(depth) for r in rows]
    return {**state, "heatmap_heads.conv_final.weight": weight[channels].clone(),
            "heatmap_heads.conv_final.bias": bias[channels].clone()}  # fmt: skip


def _official_config(values: dict) -> str:
    """The bundled model's constants under the official config_l.yaml's keys (plus the two width
    and depth multipliers our small EfficientNetV2-B0 needs)."""
    keys = {
        "proc_side": values["proc_side"],
        "stride_train": values["stride_train"],
        "stride_test": values["stride_test"],
        "centered_stride": values["centered_stride"],
        "legacy_centered_stride_bug": values["legacy_centered_stride_bug"],
        "efficientnet_size": "b0",
        "backbone": values["backbone"],
        "depth": values["depth"],
        "box_size_mm": values["box_size_mm"],
        "weak_perspective": values["weak_perspective"],
        "mix_3d_inside_fov": values["mix_3d_inside_fov"],
        "affine_weights": None,
        "transform_coords": False,
        "predict_all_and_latents": False,
        "backbone_width_mult": values["backbone_width_mult"],
        "backbone_depth_mult": values["backbone_depth_mult"],
    }
    return dump_yaml_subset(keys)


def _write_bundle(folder: Path, names, edges, rows, transform, infos, config_text) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = parse_yaml_subset((BUNDLED_MODEL / "config.yaml").read_text())
    state = torch.load(BUNDLED_MODEL / "ckpt.pt", map_location="cpu", weights_only=True)
    torch.save(_heads_for(state, rows, int(config["depth"])), folder / "ckpt.pt")
    (folder / "config.yaml").write_text(config_text)
    np.savez(folder / "joint_info.npz", joint_names=np.array(names),
             joint_edges=np.asarray(edges, np.int64))  # fmt: skip
    np.save(folder / "joint_transform_matrix.npy", transform.astype(np.float32))
    (folder / "skeleton_infos.pkl").write_bytes(pickle.dumps(infos, protocol=4))
    return folder


def official_layout_bundle(destination: Path, archive: bool = False) -> Path:
    """The bundled weights as the official release lays a bundle out: a folder named like the
    release inside ``destination``, or with ``archive`` its ``.tar.gz`` (one top folder)."""
    config = parse_yaml_subset((BUNDLED_MODEL / "config.yaml").read_text())
    rows = [_trained_joint(name, i) for i, name in enumerate(RAW_JOINT_NAMES)]
    transform = np.concatenate([np.eye(NUM_RAW, dtype=np.float32), _kinect_matrix()], axis=1)
    infos = {}
    for skeleton, info in SKELETON_INFOS.items():
        # As the release pickles them: the first index a Python int, the rest numpy int64.
        indices = [int(info["indices"][0])] + [np.int64(i) for i in info["indices"][1:]]
        infos[skeleton] = {"indices": indices, "names": list(info["names"]),
                           "edges": [tuple(e) for e in info["edges"]]}  # fmt: skip
    folder = _write_bundle(destination / OFFICIAL_NAME, RAW_JOINT_NAMES, RAW_JOINT_EDGES, rows,
                           transform, infos, _official_config(config))  # fmt: skip
    if not archive:
        return folder
    path = destination / f"{OFFICIAL_NAME}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname=OFFICIAL_NAME)
    return path


def own_layout_bundle(destination: Path) -> Path:
    """The same 555 joints and weights in this project's layout: the canonical smpl+head_30
    joints first (our names and order), the other raw joints after them, an identity transform
    and one skeleton."""
    official = SKELETON_INFOS["smpl+head_30"]
    by_canonical = {canonical_name(n): i for n, i in zip(official["names"], official["indices"],
                                                         strict=True)}  # fmt: skip
    first = [by_canonical[joint] for joint in SMPL_HEAD_30.joint_names]
    order = first + [i for i in range(NUM_RAW) if i not in first]
    names = list(SMPL_HEAD_30.joint_names) + [RAW_JOINT_NAMES[i] for i in order[len(first) :]]
    position = {raw: new for new, raw in enumerate(order)}
    edges = [(position[a], position[b]) for a, b in RAW_JOINT_EDGES]
    rows = [_trained_joint(RAW_JOINT_NAMES[i], i) for i in order]
    infos = {SMPL_HEAD_30.name: {"indices": list(range(SMPL_HEAD_30.num_joints)),
                                 "names": list(SMPL_HEAD_30.joint_names),
                                 "edges": SMPL_HEAD_30.edges.tolist()}}  # fmt: skip
    config = (BUNDLED_MODEL / "config.yaml").read_text()
    return _write_bundle(destination / "own_layout", names, edges, rows,
                         np.eye(NUM_RAW, dtype=np.float32), infos, config)  # fmt: skip


# A short clip of the bundled models' synthetic world (2 people, 30 frames), with a seed no
# training run of those models used (models/*/TRAINING.md).
SHORT_CLIP_SEED = 20261216


def render_short_clip(folder: Path) -> tuple[Path, Path]:
    """``clip.mp4`` and its ground truth ``truth.npz`` in ``folder``."""
    from inference.training.synth.render import ClipConfig, render_clip

    config = ClipConfig(num_people=2, duration_s=1.2, fps=25.0, image_size=(640, 360),
                        kinds=("walk", "dance"))  # fmt: skip
    video, truth = folder / "clip.mp4", folder / "truth.npz"
    render_clip(video, truth, SHORT_CLIP_SEED, config)
    return video, truth
