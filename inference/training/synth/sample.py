"""The bundled sample: the synthetic two-person clip that ``make demo`` analyses and the end-to-end
tests check. It is rendered on demand (deterministic by seed) rather than stored: the seed is held
apart from every training seed of the bundled models (models/*/TRAINING.md)."""

from pathlib import Path

from .render import ClipConfig, render_clip

SAMPLE_SEED = 20261207
SAMPLE_CONFIG = ClipConfig(
    num_people=2, duration_s=4.0, fps=25.0, image_size=(640, 360), kinds=("walk", "dance")
)


def render_sample(folder: str | Path, name: str = "sample") -> tuple[Path, Path]:
    """Write ``<name>.mp4`` and its ground truth ``<name>_truth.npz`` (the contract, see
    :func:`inference.training.synth.render.render_clip`) into ``folder``; return both paths."""
    folder = Path(folder)
    video, truth = folder / f"{name}.mp4", folder / f"{name}_truth.npz"
    render_clip(video, truth, SAMPLE_SEED, SAMPLE_CONFIG)
    return video, truth
