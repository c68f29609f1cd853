"""Rebuild ``deepmimic_clips.npz`` from the DeepMimic motion clips that PyPI's ``pybullet`` wheel
ships (``pybullet_data/data/motions``; DeepMimic, MIT licence, see ``LICENSE-DeepMimic.txt``).

    pip download --no-deps pybullet -d /tmp/pb && python make_mocap_clips.py /tmp/pb/pybullet-*.whl

Each clip is stored verbatim as its ``Frames`` array (N, 44) float64: frame duration (s), root
position (3, metres, Y up), root rotation (w, x, y, z), then the joints' local rotations
(quaternions, w first; knees and elbows one angle in radians) in the order of
:data:`inference.training.synth.mocap.DEEPMIMIC_JOINTS`, plus its ``Loop`` mode (``wrap``: cyclic).
"""

import json
import sys
import zipfile
from pathlib import Path

import numpy as np

CLIPS = {  # stored name -> path in the wheel
    "run": "pybullet_data/data/motions/humanoid3d_run.txt",
    "walk": "pybullet_data/data/motions/humanoid3d_walk.txt",
    "walk_turn_left": "pybullet_data/data/motions/walker/turn_left0.txt",
    "kick": "pybullet_data/data/motions/humanoid3d_kick.txt",
    "spinkick": "pybullet_data/data/motions/humanoid3d_spinkick.txt",
    "punch": "pybullet_data/data/motions/humanoid3d_punch.txt",
    "dance_a": "pybullet_data/data/motions/humanoid3d_dance_a.txt",
    "dance_b": "pybullet_data/data/motions/humanoid3d_dance_b.txt",
    "jump": "pybullet_data/data/motions/humanoid3d_jump.txt",
}


def main(wheel: str) -> None:
    arrays = {}
    with zipfile.ZipFile(wheel) as archive:
        for name, path in CLIPS.items():
            clip = json.loads(archive.read(path))
            arrays[f"{name}/frames"] = np.array(clip["Frames"], np.float64)
            arrays[f"{name}/loop"] = np.array(clip.get("Loop", "none"))
    out = Path(__file__).with_name("deepmimic_clips.npz")
    np.savez_compressed(out, **arrays)
    print(f"wrote {out} ({out.stat().st_size} bytes, {len(CLIPS)} clips)")


if __name__ == "__main__":
    main(sys.argv[1])
