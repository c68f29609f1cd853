"""Motion cleaning measured on ground truth: the issue's targets on fixed seeds, at 25, 30 and 60 fps.

Every clip is a synthetic motion (walk, run, turn, jump, sit, dance; towards, away from and across
the camera) corrupted by the realistic error model of ``inference.training.synth.noise``. The
cleaned result is compared with the truth, with the raw input, and with the baseline most open tools use
(zero-phase Butterworth order 4 at 7 Hz after linear gap filling of <= 10 frames). Position and
acceleration errors and foot slide are measured where the raw estimate exists, so all three are
compared on the same joint-frames; penetration on every frame.
"""

import numpy as np
import pytest

from inference.training.synth.noise import make_scenario
from retarget.clean import clean_trajectory
from retarget.clean.filters import baseline_butterworth

CASES = [
    ("walk", "left"), ("walk", "towards"), ("run", "right"), ("run", "away"),
    ("turn", "left"), ("jump", "towards"), ("sit", "left"), ("dance", "away"),
]  # fmt: skip
DURATION_S = 8.0


def evaluate(fps: float, preset: str = "default") -> dict[str, dict[str, float]]:
    """Mean metrics over :data:`CASES` for raw, baseline and ``preset``; penetration pooled."""
    results: dict[str, list[dict]] = {"raw": [], "baseline": [], preset: []}
    for seed, (kind, direction) in enumerate(CASES):
        scenario = make_scenario(kind, fps, seed=seed, direction=direction, duration_s=DURATION_S)
        raw = scenario.raw.poses3d[:, 0].astype(float)
        baseline = baseline_butterworth(raw, scenario.raw.frame_times)
        cleaned = clean_trajectory(scenario.raw, preset)
        results["raw"].append(scenario.score(raw, scenario.world_from_camera))
        results["baseline"].append(scenario.score(baseline, scenario.world_from_camera))
        pose = cleaned.extras["world_from_camera"]
        results[preset].append(scenario.score(cleaned.poses3d[:, 0].astype(float), pose))
    return {
        name: {key: float(np.mean([r[key] for r in rows])) for key in rows[0]}
        for name, rows in results.items()
    }


@pytest.fixture(scope="module", params=[25.0, 30.0, 60.0], ids=lambda fps: f"{fps:g}fps")
def table(request):
    return evaluate(request.param)


@pytest.mark.slow
def test_default_preset_smooths_without_losing_accuracy(table):
    raw, baseline, clean = table["raw"], table["baseline"], table["default"]
    assert clean["accel"] <= 0.15 * raw["accel"], "acceleration error at least 85 % below raw"
    assert clean["mpjpe"] <= raw["mpjpe"], "MPJPE not worse than raw"
    assert clean["accel"] < baseline["accel"] and clean["mpjpe"] < baseline["mpjpe"]
    assert clean["accel_abs"] < baseline["accel_abs"], "the root is smoothed too"
    assert clean["root"] <= raw["root"]
    assert clean["bone_cv"] < 0.01, "one length per bone (%)"
    assert clean["coverage"] == 1.0, "every frame of the clip is filled"


@pytest.mark.slow
def test_default_preset_plants_the_feet(table):
    clean = table["default"]
    assert clean["slide"] <= 5.0, "foot slide during contact (mm/frame)"
    assert clean["skate"] < 0.05, "share of contact frames sliding more than 2.5 cm"
    assert clean["pen_ok"] >= 0.99, "penetration below 1 cm on 99 % of frames"
    assert clean["slide"] < table["baseline"]["slide"]


def test_noise_free_input_comes_out_nearly_unchanged():
    scenario = make_scenario("walk", 30.0, seed=11, duration_s=6.0, model=_no_errors())
    cleaned = clean_trajectory(scenario.raw)
    result = scenario.score(
        cleaned.poses3d[:, 0].astype(float), cleaned.extras["world_from_camera"]
    )
    assert result["mpjpe"] < 6.0 and result["root"] < 15.0
    assert result["pen_ok"] == 1.0 and result["slide"] < 1.0
    rejected = cleaned.extras["rejected"]
    assert rejected.mean() < 0.01, "the gates leave clean data alone"


def _no_errors():
    from inference.training.synth.noise import NO_ERRORS

    return NO_ERRORS
