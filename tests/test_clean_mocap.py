"""Motion quality on real motion capture (issue 21): the default preset against the raw estimate and
the classic filter (zero-phase Butterworth, order 4, 7 Hz) on every clip of the mocap ground truth.

The clips are ``inference.training.synth.mocap.MOCAP_CASES`` (DeepMimic optical motion capture: a dance, a
dash, a kick, a spin kick, a run, a walking turn and a jump, 30 fps) through the estimator error
model with the three seeds per clip that ``benchmarks/bench_motion_quality.py`` uses; per clip the
metrics are the means over them (one seed alone says little: the kick's raw error is 40-54
mm/frame² depending on its outliers, and one seed loses 34 of its 46 frames to a long gap).
Bounds come from these measurements, with the margins given per test. The spin kick is the
closest to the per-clip 78 % (-78.1 %: its cleaned acceleration error is 11.5-12.3 mm/frame² on
every seed, the raw one 43-65).
"""

import dataclasses
import json

import numpy as np
import pytest

from inference.training.synth.mocap import ESTIMATOR_ERRORS, MOCAP_CASES, make_mocap_scenario
from inference.training.synth.motion import FOOT_CHANNELS
from inference.training.synth.noise import NOISIER_EXTREMITIES
from retarget.clean import clean_trajectory
from retarget.clean.filters import baseline_butterworth
from retarget.metrics import floor_tilt_deg
from retarget.solve.grounding import floor_from_extras

NAMES = tuple(case.name for case in MOCAP_CASES)
# Clips whose planted feet sit where the cleaning puts a planted SMPL foot (toe 2 cm up, ankle
# 2 cm + foot length x sin 23° = 6.5 cm here). The kick, the jump and the walking turn plant
# ankles or toes 1-3 cm higher (kick: ankles 7.6 cm; jump: toes 3.4-5 cm, landing on the balls
# of a rigid foot), so "1 cm below the true planted height" there measures that prior, not feet
# going through the floor.
FLAT_FOOT = ("dance", "dash", "spinkick", "run")


SEEDS = 3


def _mean(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, dict[str, float]]]:
    """Per clip and method the mean metrics over the seeds, and ``accel_red`` (1 - default / raw
    acceleration error) averaged over them as the benchmark does."""
    out = {}
    for index, case in enumerate(MOCAP_CASES):
        rows: dict[str, list[dict]] = {"raw": [], "baseline": [], "default": []}
        for seed in range(SEEDS):
            scenario = make_mocap_scenario(case, seed=100 * seed + index)
            raw = scenario.raw.poses3d[:, 0].astype(float)
            baseline = baseline_butterworth(raw, scenario.raw.frame_times)
            cleaned = clean_trajectory(scenario.raw)
            rows["raw"].append(scenario.score(raw, scenario.world_from_camera))
            rows["baseline"].append(scenario.score(baseline, scenario.world_from_camera))
            pose = cleaned.extras["world_from_camera"]
            poses = cleaned.poses3d[:, 0].astype(float)
            rows["default"].append(scenario.score(poses, pose))
            heights = floor_from_extras(cleaned.extras, 0)  # the floor the cleaning stands on
            own = [heights[name] for name in FOOT_CHANNELS]
            rows["default"][-1]["pen_own"] = scenario.score(poses, pose, np.array(own))["pen_ok"]
            rows["default"][-1]["tilt"] = floor_tilt_deg(pose, scenario.world_from_camera)
        out[case.name] = {
            method: {key: _mean([r[key] for r in group]) for key in group[0]}
            for method, group in rows.items()
        }
        out[case.name]["accel_red"] = float(np.mean(
            [1 - d["accel"] / r["accel"] for d, r in zip(rows["default"], rows["raw"], strict=True)]
        ))  # fmt: skip
    return out


@pytest.mark.parametrize("name", NAMES)
def test_smoother_and_more_accurate_than_butterworth(results, name):
    raw, baseline, clean = (results[name][k] for k in ("raw", "baseline", "default"))
    # Measured: 0.18 (walking turn) to 0.53 (spin kick) of the baseline's acceleration error.
    assert clean["accel"] <= 0.65 * baseline["accel"], "smoother than Butterworth 7 Hz"
    assert clean["accel_abs"] <= 0.65 * baseline["accel_abs"], "the root too (measured <= 0.52)"
    # Measured: 0.69 (spin kick) to 0.89 (kick: 46 frames, one fast kick).
    assert clean["mpjpe"] < baseline["mpjpe"], "root-relative MPJPE below Butterworth 7 Hz"
    # Measured: 0.77-0.99 of raw (the kick and the dash: mostly the depth drift of the root).
    assert clean["abs"] <= raw["abs"], "MPJPE not worse than raw"
    assert clean["bone_cv"] < 0.01, "one length per bone (%)"


def test_acceleration_error_targets(results):
    reductions = {name: result["accel_red"] for name, result in results.items()}
    # Measured: 78.1 % (spin kick) and 81.3 % (kick) to 94.7 % (walking turn), 87.0 % on average.
    for name, value in reductions.items():
        assert value >= 0.78, (name, reductions)
    assert np.mean(list(reductions.values())) >= 0.85, reductions


def test_targets_hold_when_the_limbs_are_noisier_than_the_spine():
    """Robustness beyond the issue's error model: an estimator's wrists and hands 3x, its elbows,
    knees and feet 2x noisier than the rest (as the bundled model's are). The smoother measures
    each joint's own noise, so the targets still hold (with the median joint's noise for every
    joint the spin kick fell to -77.3 %, the mean to -86.2 %)."""
    model = dataclasses.replace(ESTIMATOR_ERRORS, white_scale=NOISIER_EXTREMITIES)
    reductions = {}
    for index, case in enumerate(MOCAP_CASES):
        per_seed = []
        for seed in range(SEEDS):
            scenario = make_mocap_scenario(case, seed=100 * seed + index, model=model)
            raw = scenario.raw.poses3d[:, 0].astype(float)
            baseline = baseline_butterworth(raw, scenario.raw.frame_times)
            cleaned = clean_trajectory(scenario.raw)
            clean = scenario.score(
                cleaned.poses3d[:, 0].astype(float), cleaned.extras["world_from_camera"]
            )
            base = scenario.score(baseline, scenario.world_from_camera)
            per_seed.append(
                1 - clean["accel"] / scenario.score(raw, scenario.world_from_camera)["accel"]
            )
            assert clean["accel"] < base["accel"] and clean["mpjpe"] < base["mpjpe"], case.name
        reductions[case.name] = float(np.mean(per_seed))
    # Measured: 79.0 % (spin kick) and 82.0 % (kick) to 95.3 % (walking turn), 87.4 % on average.
    assert min(reductions.values()) >= 0.78, reductions
    assert np.mean(list(reductions.values())) >= 0.85, reductions


def test_feet_planted_on_real_motion(results):
    slides = [results[name]["default"]["slide"] for name in NAMES]
    # Measured: 0.3 (walking turn) to 7.5 (run: its true stance slides 7-9 mm/frame too) mm/frame,
    # 2.8 on average; Butterworth 17-89.
    assert np.mean(slides) <= 5.0, slides
    for name in NAMES:
        clean, baseline = results[name]["default"], results[name]["baseline"]
        assert clean["skate"] < 0.05, name  # measured <= 1.4 %
        assert clean["slide"] < 0.5 * baseline["slide"], name
    for name in FLAT_FOOT:
        assert results[name]["default"]["pen_ok"] >= 0.99, name  # measured 100 %
    for name in NAMES:  # on the floor the cleaning fitted, where the import stands the rig
        assert results[name]["default"]["pen_own"] >= 0.99, name  # measured 100 %


def test_floor_fit_does_not_lean_with_the_body(results):
    """The floor's tilt from the true one. Where the planted feet leave it open (a kick stands on
    one foot in one place) it follows the body's upright axis, which leans with a kicking body,
    averaged with the direction from the planted feet to the centre of mass, and a camera held
    level (these cameras are)."""
    tilts = {name: results[name]["default"]["tilt"] for name in NAMES}
    # Measured: 0.2 (walking turn) to 6.4 (spin kick) degrees, 2.9 on average; without the
    # level camera 0.3 to 7.8, 3.4 on average; with the body axis alone 0.3 to 13.3, 5.2.
    assert np.mean(list(tilts.values())) < 3.2, tilts
    assert max(tilts.values()) < 7.0, tilts


def _mean_tilt(roll_deg: float, level_camera: bool) -> float:
    """The fitted floor's tilt (degrees) from the true one, mean over the clips and seeds."""
    tilts = []
    for index, case in enumerate(MOCAP_CASES):
        for seed in range(SEEDS):
            scenario = make_mocap_scenario(case, seed=100 * seed + index, roll_deg=roll_deg)
            extras = clean_trajectory(scenario.raw, level_camera=level_camera).extras
            tilts.append(floor_tilt_deg(extras["world_from_camera"], scenario.world_from_camera))
    return float(np.mean(tilts))


@pytest.mark.slow
def test_level_camera_prior_helps_level_footage_and_spares_rolled_footage():
    """The floor fit leans towards a camera held level. On level footage that takes a degree
    off the spin kick's floor (the body leaning sideways rolls the up hint with it); on a camera
    rolled 12° either way it costs at most 0.1° on average (the data and the hint hold the roll
    where the feet spread)."""
    level, free = _mean_tilt(0.0, True), _mean_tilt(0.0, False)
    assert level < free - 0.3, (level, free)  # measured 2.87 vs 3.37
    rolled = [_mean_tilt(roll, flag) for roll in (-12.0, 12.0) for flag in (True, False)]
    # Measured: -12°: 3.58 vs 3.34; +12°: 3.11 vs 3.39 (the hints' own roll errors add or cancel);
    # over 16 seeds 3.83 vs 3.34 and 3.08 vs 3.38.
    assert rolled[0] + rolled[2] <= rolled[1] + rolled[3] + 0.1, rolled


@pytest.mark.parametrize("case", MOCAP_CASES, ids=NAMES)
def test_true_motion_passes_every_gate(case):
    """The recorded motion itself, without estimator errors: no sample is an outlier. (The spin
    kick's toe moves at 12.4 m/s relative to the body; a 10 m/s joint speed gate rejected it.)"""
    truth = make_mocap_scenario(case, seed=0).truth
    report = json.loads(str(clean_trajectory(truth).extras["clean_report"]))
    assert set(report["people"][0]["rejected"].values()) == {0}, report["people"][0]["rejected"]
