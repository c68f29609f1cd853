"""Motion quality on real motion capture (issue 21): the default preset against the raw estimate and
the classic filter (zero-phase Butterworth, order 4, 7 Hz) on every clip of the mocap ground truth.

The clips are ``inference.synth.mocap.MOCAP_CASES`` (DeepMimic optical motion capture: a dance, a
dash, a kick, a spin kick, a run, a walking turn and a jump, 30 fps) through the estimator error
model, one fixed seed each (the first of the three that ``benchmarks/bench_motion_quality.py``
averages). Bounds come from the measurement on these seeds, with the margins given per test; the
benchmark reports the three-seed means, where the spin kick misses the per-clip 78 % (-77.0 %:
its cleaned acceleration error is ~12.6 mm/frame² on every seed, the raw one 43-65).
"""

import numpy as np
import pytest

from inference.synth.mocap import MOCAP_CASES, make_mocap_scenario
from retarget.clean import clean_trajectory
from retarget.filters import baseline_butterworth

NAMES = tuple(case.name for case in MOCAP_CASES)
# Clips whose planted ankle sits at the height the cleaning assumes for a flat SMPL foot (toe
# clearance + foot x sin 23°, ~6.5 cm here): the kick, the jump and the walking turn stand on
# ankles 4.5-7.6 cm up (on the ball, or this skeleton's low ankle), so "below the true planted
# height" there measures that prior, not the feet going through the floor.
FLAT_FOOT = ("dance", "dash", "spinkick", "run")


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, dict[str, float]]]:
    out = {}
    for index, case in enumerate(MOCAP_CASES):
        scenario = make_mocap_scenario(case, seed=index)
        raw = scenario.raw.poses3d[:, 0].astype(float)
        baseline = baseline_butterworth(raw, scenario.raw.frame_times)
        cleaned = clean_trajectory(scenario.raw)
        out[case.name] = {
            "raw": scenario.score(raw, scenario.world_from_camera),
            "baseline": scenario.score(baseline, scenario.world_from_camera),
            "default": scenario.score(
                cleaned.poses3d[:, 0].astype(float), cleaned.extras["world_from_camera"]
            ),
        }
    return out


def _reduction(result: dict) -> float:
    return 1.0 - result["default"]["accel"] / result["raw"]["accel"]


@pytest.mark.parametrize("name", NAMES)
def test_smoother_and_more_accurate_than_butterworth(results, name):
    raw, baseline, clean = (results[name][k] for k in ("raw", "baseline", "default"))
    # Measured: 0.13 (walking turn) to 0.52 (dash) of the baseline's acceleration error.
    assert clean["accel"] <= 0.65 * baseline["accel"], "smoother than Butterworth 7 Hz"
    assert clean["accel_abs"] < baseline["accel_abs"], "the root too"
    # Measured: 0.68 (spin kick) to 0.995 (kick: 46 frames, one fast kick) of the baseline's.
    assert clean["mpjpe"] < baseline["mpjpe"], "root-relative MPJPE below Butterworth 7 Hz"
    # Measured: 0.81-1.003 of raw (the dash far from the camera: depth drift, not jitter).
    assert clean["abs"] <= 1.01 * raw["abs"], "MPJPE not worse than raw"
    assert clean["bone_cv"] < 0.01, "one length per bone (%)"


def test_acceleration_error_targets(results):
    reductions = {name: _reduction(result) for name, result in results.items()}
    # Measured on these seeds: 79.6 % (spin kick) to 96.1 % (walking turn), 87.3 % on average.
    assert all(value >= 0.78 for value in reductions.values()), reductions
    assert np.mean(list(reductions.values())) >= 0.85, reductions
    mpjpe = [results[name]["default"]["abs"] / results[name]["raw"]["abs"] for name in NAMES]
    assert np.mean(mpjpe) < 0.95, "MPJPE below raw on average (measured 0.90)"


def test_feet_planted_on_real_motion(results):
    slides = [results[name]["default"]["slide"] for name in NAMES]
    # Measured: 0 (kick) to 6.0 (spin kick: the pivot foot turns) mm/frame, 2.4 on average;
    # the true motion itself slides 0.9-5.0 mm/frame during its contacts.
    assert np.mean(slides) <= 5.0, slides
    for name in NAMES:
        assert results[name]["default"]["skate"] < 0.05, name  # measured <= 1.6 %
        assert results[name]["default"]["slide"] < results[name]["baseline"]["slide"], name
    for name in FLAT_FOOT:
        assert results[name]["default"]["pen_ok"] >= 0.99, name  # measured 100 %
