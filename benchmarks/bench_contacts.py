"""Foot contact modes on synthetic ground truth, through the whole import (bpy 5.0).

The seven DeepMimic clips of bench_motion_quality (real optical motion capture through the
estimator error model, seed 0) are cleaned with the default preset (the joint-level foot lock on
for the modes that hold the feet, off for the others, as the panel's Import does) and imported
onto the generated rig with each foot contact mode (Auto, Always, Never, Grounded; reduced keys,
and Auto with dense keys too). The rig's ankles and toes are read back from Blender's evaluated
pose bones, in the world frame of the cleaning's floor fit, and compared with the truth: foot
slide during the true contacts (mean mm/frame over the heel and toe channels; skate: the share
of steps over 2.5 cm); the deepest any foot joint goes below the floor the import works with (the
cleaning's fitted floor and flat-foot heights, ``contact_clearance``: what Grounded guarantees,
mm); penetration below each joint's true flat-foot height (the share of frames with less than
1 cm, and the 99th percentile, mm: this also holds the error of the fitted floor and of the
cleaning's flat-foot heights, e.g. a recorded toe that stands 3-5 cm high where the cleaning
assumes 2 cm); and the mean ankle and toe position error (mm; what holding the feet costs when
they should move).

Targets: Auto and Grounded at most 1 mm below the import's floor (0 with dense keys; reduced
keys hold the legs to a fifth of their tolerance near the floor), Always a few mm where a held
foot is out of the leg's reach; Auto slides less than Never.
"""

import logging
import sys
import tempfile
from pathlib import Path

import bpy
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from inference.training.synth.mocap import MOCAP_CASES, make_mocap_scenario  # noqa: E402
from metrabs_blender.__main__ import load_extension_package  # noqa: E402
from retarget import metrics  # noqa: E402
from retarget.clean import clean_trajectory  # noqa: E402
from retarget.contract import write_trajectory  # noqa: E402
from retarget.frames import FOOT_JOINTS, camera_to_world  # noqa: E402

extension = load_extension_package()
api = __import__(extension.__name__ + ".metrabs_blender.api", fromlist=["api"])
WORK = Path(tempfile.mkdtemp(prefix="bench-contacts-"))
BONES = {"lank": "foot.L", "rank": "foot.R", "ltoe": "toe.L", "rtoe": "toe.R"}  # heads
ROWS = (("auto", "reduced"), ("auto", "dense"), ("always", "reduced"), ("never", "reduced"),
        ("grounded", "reduced"))  # fmt: skip


def read_feet(obj, num_frames: int) -> np.ndarray:
    """World positions ``(T, 4, 3)`` of the foot joints, in FOOT_JOINTS order."""
    scene = bpy.context.scene
    matrix = np.array(obj.matrix_world)
    out = np.empty((num_frames, len(FOOT_JOINTS), 3))
    for t in range(num_frames):
        scene.frame_set(scene.frame_start + t)
        for c, name in enumerate(FOOT_JOINTS):
            head = np.array(obj.pose.bones[BONES[name]].head)
            out[t, c] = matrix[:3, :3] @ head + matrix[:3, 3]
    return out


def measure(case, mode: str, keys: str) -> dict[str, float]:
    scenario = make_mocap_scenario(case, seed=0)
    holds = mode in ("auto", "always")
    cleaned = clean_trajectory(scenario.raw, "default", **({} if holds else {"lock_feet": False}))
    path = write_trajectory(WORK / f"{case.name}.npz", cleaned)
    bpy.ops.wm.read_homefile(app_template="")
    (take,) = api.import_trajectory(path, foot_contacts=mode, key_reduction=keys)
    feet = read_feet(take.armature, cleaned.num_frames)
    motion = scenario.motions[0]
    names = list(scenario.truth.joint_names)
    channels = [names.index(n) for n in FOOT_JOINTS]
    truth = camera_to_world(
        scenario.truth.poses3d[:, 0, channels].astype(float), cleaned.extras["world_from_camera"]
    )
    slide = metrics.foot_slide(feet, motion.channel_contacts)
    depth = metrics.penetration(feet, motion.clearance)
    names = [str(n) for n in cleaned.extras["contact_channels"]]
    floor = np.array([cleaned.extras["contact_clearance"][0, names.index(n)] for n in FOOT_JOINTS])
    return {
        "slide": float(slide.mean()),
        "below": float(np.nanmax(metrics.penetration(feet, floor))),
        "skate": 100.0 * float(np.mean(slide > metrics.SKATE_THRESHOLD_MM)),
        "pen_ok": 100.0 * float(np.mean(depth < 10.0)),
        "pen_p99": float(np.percentile(depth, 99)),
        "error": 1000.0 * float(np.linalg.norm(feet - truth, axis=-1).mean()),
    }


def main() -> None:
    logging.getLogger("retarget").setLevel(logging.ERROR)
    print(__doc__.strip().splitlines()[0])
    header = (f"{'clip':11s}{'mode':10s}{'keys':9s}{'slide':>7s}{'skate%':>8s}{'below':>7s}"
              f"{'pen<1cm%':>9s}")  # fmt: skip
    print(header + f"{'pen p99':>8s}{'foot err':>9s}")
    totals: dict[tuple, list[dict]] = {}
    for case in MOCAP_CASES:
        for mode, keys in ROWS:
            row = measure(case, mode, keys)
            totals.setdefault((mode, keys), []).append(row)
            print(f"{case.name:11s}{mode:10s}{keys:9s}{row['slide']:7.2f}{row['skate']:8.1f}"
                  f"{row['below']:7.1f}{row['pen_ok']:9.1f}{row['pen_p99']:8.1f}{row['error']:9.1f}")  # fmt: skip
    print("\nmean over the clips")
    print(header + f"{'pen p99':>8s}{'foot err':>9s}")
    for (mode, keys), rows in totals.items():
        mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        print(f"{'all':11s}{mode:10s}{keys:9s}{mean['slide']:7.2f}{mean['skate']:8.1f}"
              f"{mean['below']:7.1f}{mean['pen_ok']:9.1f}{mean['pen_p99']:8.1f}{mean['error']:9.1f}")  # fmt: skip
    means = {row: {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
             for row, rows in totals.items()}  # fmt: skip
    auto, never = means[("auto", "reduced")], means[("never", "reduced")]
    deepest = ", ".join(f"{mode} {keys} {max(r['below'] for r in rows):.1f}"
                        for (mode, keys), rows in totals.items())  # fmt: skip
    print(f"\ndeepest below the import's floor, mm: {deepest}")
    print(f"Auto slides {auto['slide']:.2f} mm/frame against {never['slide']:.2f} for Never")


if __name__ == "__main__":
    main()
