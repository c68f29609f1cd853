"""The official MeTRAbs PyTorch release's joint layout as data (``tests/data/official_layout.json``,
see its ``provenance``): its 555 raw joint names and edges, its ``skeleton_infos.pkl`` entries and
the 2021 TensorFlow models' ``smpl+head_30`` names. No torch here: the Blender 4.2 tests use it."""

import json
from pathlib import Path

import numpy as np

_LAYOUT = json.loads((Path(__file__).parent / "data" / "official_layout.json").read_text())

RAW_JOINT_NAMES: tuple[str, ...] = tuple(_LAYOUT["raw_joint_names"])  # 555
RAW_JOINT_EDGES = np.array(_LAYOUT["raw_joint_edges"], np.int64)
SKELETON_INFOS: dict = _LAYOUT["skeleton_infos"]  # in the release's key order, '' last
OFFICIAL_SMPL_HEAD_30 = tuple(SKELETON_INFOS["smpl+head_30"]["names"])
OFFICIAL_SMPL_24 = tuple(SKELETON_INFOS["smpl_24"]["names"])
OFFICIAL_H36M_17 = tuple(SKELETON_INFOS["h36m_17"]["names"])
TENSORFLOW_SMPL_HEAD_30 = tuple(_LAYOUT["tensorflow_2021_smpl_head_30"])
