"""The offline demo: a synthetic two-person clip (a walker, a dancer) -> trajectory -> Blender scene + a plot.

Writes ``demo/out/sample.npz`` (the trajectory, as the worker would), ``demo/out/demo.blend`` (built
by the headless main job ``python -m metrabs_blender``) and ``demo/out/demo.png``, drawn from the
bone positions read back out of the saved .blend, so the picture shows what was really keyed.
"""

import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "demo" / "out"
sys.path.insert(0, str(REPO))

from inference.synth.clip import default_camera, motions_to_trajectory  # noqa: E402
from inference.synth.motion import generate_motion  # noqa: E402
from retarget.contract import write_trajectory  # noqa: E402


def make_sample(path: Path) -> Path:
    motions = [
        generate_motion("walk", 4.0, 30.0, seed=0, start_xy=(-1.2, 0.0), turn_deg_per_s=-20.0),
        generate_motion("dance", 4.0, 30.0, seed=1, start_xy=(1.2, 1.0), heading_deg=180.0),
    ]
    trajectory = motions_to_trajectory(motions, default_camera(motions), source="demo synthetic")
    return write_trajectory(path, trajectory)


def read_back_bones(blend: Path) -> dict[str, np.ndarray]:
    """Armature name -> bone heads ``(T, B, 3)`` world metres at every scene frame."""
    import bpy

    bpy.ops.wm.open_mainfile(filepath=str(blend))
    scene = bpy.context.scene
    armatures = [obj for obj in scene.objects if obj.type == "ARMATURE"]
    heads = {obj.name: [] for obj in armatures}
    for frame in range(scene.frame_start, scene.frame_end + 1):
        scene.frame_set(frame)
        for obj in armatures:
            heads[obj.name].append([tuple(obj.matrix_world @ b.head) for b in obj.pose.bones])
    bones = {
        obj.name: [(b.name, b.parent.name if b.parent else None) for b in obj.pose.bones]
        for obj in armatures
    }
    return {name: (np.array(h), bones[name]) for name, h in heads.items()}


def plot(motion: dict, path: Path) -> None:
    figure, (top, side) = plt.subplots(1, 2, figsize=(13, 5.5))
    colours = plt.cm.tab10.colors
    for colour, (name, (heads, bones)) in zip(colours, motion.items(), strict=False):
        names = [b for b, _ in bones]
        top.plot(heads[:, 0, 0], heads[:, 0, 1], color=colour, label=f"{name}: pelvis path")
        for t in range(0, len(heads), 15):
            for bone, parent in bones:
                if parent is None:
                    continue
                a, b = heads[t, names.index(parent)], heads[t, names.index(bone)]
                side.plot(
                    [a[0], b[0]],
                    [a[2], b[2]],
                    color=colour,
                    alpha=0.35 + 0.65 * t / len(heads),
                    lw=1,
                )
    top.set(title="Top view (pelvis paths, metres)", xlabel="x", ylabel="y", aspect="equal")
    top.legend(fontsize=8)
    side.set(
        title="Front view every 0.5 s (bone heads, metres)",
        xlabel="x",
        ylabel="z (up)",
        aspect="equal",
    )
    side.axhline(0, color="k", lw=0.5)
    figure.tight_layout()
    figure.savefig(path, dpi=90)


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    sample = make_sample(OUT / "sample.npz")
    blend = OUT / "demo.blend"
    main_job = [
        sys.executable,
        "-m",
        "metrabs_blender",
        str(sample),
        "--out",
        str(blend),
        "--overwrite",
    ]
    subprocess.run(main_job, cwd=REPO, check=True)
    plot(read_back_bones(blend), OUT / "demo.png")
    print(f"wrote {sample}\nwrote {blend}\nwrote {OUT / 'demo.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
