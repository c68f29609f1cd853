"""clean_trajectory as a component: outputs and their documentation, presets, the command line,
and the bad inputs of the issue (never NaN/inf leaking, never a crash, clear errors)."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inference.training.synth.clip import default_camera, motions_to_trajectory
from inference.training.synth.motion import generate_motion
from inference.training.synth.noise import make_scenario
from retarget import metrics
from retarget.clean import CLEAN_KEYS, CleanError, clean_trajectory
from retarget.clean import pipeline as clean_module
from retarget.clean.gaps import ABSENT, BRIDGED, HELD, INTERPOLATED, MEASURED
from retarget.contract import read_trajectory, write_trajectory

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def scenario():
    """A noisy walk towards the camera, with a 0.8 s gap (all joints) on top of the model's."""
    scenario = make_scenario("walk", 30.0, seed=21, duration_s=6.0, direction="towards")
    poses = scenario.raw.poses3d.copy()
    poses[60:85] = np.nan
    return dataclasses.replace(scenario, raw=scenario.raw.replace(poses3d=poses))


@pytest.fixture(scope="module")
def cleaned(scenario):
    return clean_trajectory(scenario.raw)


def test_outputs_have_the_documented_keys_shapes_and_types(scenario, cleaned):
    num, people, joints = scenario.raw.poses3d.shape[:3]
    extras = cleaned.extras
    assert set(CLEAN_KEYS) <= set(extras)
    for key in CLEAN_KEYS:
        assert f"``{key}``" in clean_module.__doc__, f"{key} is documented"
    channels = [str(c) for c in extras["contact_channels"]]
    assert channels == ["lank", "rank", "ltoe", "rtoe"]
    expected = {
        "raw_poses3d": ((num, people, joints, 3), np.float32),
        "filled": ((num, people, joints), np.uint8),
        "rejected": ((num, people, joints), np.bool_),
        "swapped": ((num, people), np.bool_),
        "world_from_camera": ((4, 4), np.float64),
        "contacts": ((num, people, 4), np.bool_),
        "contact_weights": ((num, people, 4), np.float32),
        "contact_targets": ((num, people, 4, 3), np.float32),
        "contact_clearance": ((people, 4), np.float32),
    }
    for key, (shape, dtype) in expected.items():
        assert extras[key].shape == shape and extras[key].dtype == dtype, key
    np.testing.assert_array_equal(extras["raw_poses3d"], scenario.raw.poses3d)
    assert np.isfinite(cleaned.poses3d).all(), "a person seen throughout is finite throughout"
    rotation = extras["world_from_camera"][:3, :3]
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-9)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    params = json.loads(str(extras["clean_params"]))
    assert params["preset"] == "default" and params["params"]["body_cutoff_hz"] == 6.0
    report = json.loads(str(extras["clean_report"]))
    assert report["people"][0]["rejected"]["trend"] > 0 and report["floor"]["method"] == "ransac"


def test_filled_flags_follow_the_raw_gaps(scenario, cleaned):
    raw_present = np.isfinite(scenario.raw.poses3d).all(axis=-1)
    filled, rejected = cleaned.extras["filled"], cleaned.extras["rejected"]
    assert (filled[~raw_present] != MEASURED).all()
    assert (rejected <= raw_present).all(), "only present samples can be rejected"
    assert ((filled == MEASURED) == (raw_present & ~rejected)).all()
    assert {INTERPOLATED, BRIDGED} <= set(np.unique(filled).tolist())


def test_contact_outputs_are_consistent(cleaned):
    extras = cleaned.extras
    contacts, weights = extras["contacts"], extras["contact_weights"]
    targets, rows = extras["contact_targets"], extras["contact_intervals"]
    assert len(rows) > 4 and (weights[contacts] == 1.0).all()
    assert np.isnan(targets[weights == 0]).all() and np.isfinite(targets[weights > 0]).all()
    rebuilt = np.zeros_like(contacts)
    for person, channel, start, stop in rows:
        rebuilt[start:stop, person, channel] = True
        planted = targets[start:stop, person, channel]
        np.testing.assert_allclose(planted, planted[:1].repeat(len(planted), 0))
        assert planted[0, 2] == pytest.approx(extras["contact_clearance"][person, channel])
    np.testing.assert_array_equal(rebuilt, contacts)


def test_file_round_trip_and_recleaning_start_from_the_raw_data(tmp_path, scenario, cleaned):
    path = write_trajectory(tmp_path / "clean.npz", cleaned)
    back = read_trajectory(path)
    np.testing.assert_array_equal(back.poses3d, cleaned.poses3d)
    assert set(CLEAN_KEYS) <= set(back.extras)
    again = clean_trajectory(back, "default")
    np.testing.assert_allclose(again.poses3d, cleaned.poses3d, atol=1e-3)
    strong = clean_trajectory(back, "strong")
    direct = clean_trajectory(scenario.raw, "strong")
    np.testing.assert_allclose(strong.poses3d, direct.poses3d, atol=1e-3)


def test_presets_differ_as_documented(scenario):
    """strong < default < fast in output roughness (at 60 fps, where the 0.4 x Nyquist cap lets
    "fast" use its 9 Hz; the foot lock is off to compare the smoothing alone)."""
    dance = make_scenario("dance", 60.0, seed=5, duration_s=4.0).raw

    def roughness(preset):
        poses = clean_trajectory(dance, preset, lock_feet=False).poses3d[:, 0].astype(float)
        relative = poses - poses[:, :1]
        return np.linalg.norm(np.diff(relative, 2, axis=0), axis=-1).mean()

    assert roughness("strong") < roughness("default") < roughness("fast")
    assert roughness("dance") == roughness("fast")
    raw = scenario.raw.poses3d[:, 0].astype(float)
    untouched = clean_trajectory(scenario.raw, "none").poses3d[:, 0].astype(float)
    present = np.isfinite(raw).all(axis=-1)
    np.testing.assert_allclose(untouched[present], raw[present], atol=1e-3)
    assert np.isfinite(untouched).all(), "'none' still fills the gaps"


def test_parameters_are_checked():
    trajectory = make_scenario("sit", 30.0, seed=2, duration_s=2.0).raw
    with pytest.raises(CleanError, match="unknown cleaning preset 'silky'"):
        clean_trajectory(trajectory, "silky")
    with pytest.raises(CleanError, match="unknown clean parameter"):
        clean_trajectory(trajectory, cutoff=3.0)
    with pytest.raises(CleanError, match="body_cutoff_hz must be a positive number"):
        clean_trajectory(trajectory, body_cutoff_hz=-1.0)
    out = clean_trajectory(trajectory, body_cutoff_hz=3.0, lock_feet=False)
    assert json.loads(str(out.extras["clean_params"]))["params"]["body_cutoff_hz"] == 3.0


def test_variable_frame_rate_clip_cleans_as_well_as_a_regular_one(rng):
    regular = np.arange(240) / 30.0
    jittered = np.sort(regular + rng.uniform(-0.01, 0.01, 240))
    errors = []
    for times in (regular, jittered):
        scenario = make_scenario("walk", 30.0, seed=8, duration_s=8.0, frame_times=times)
        poses = clean_trajectory(scenario.raw).poses3d[:, 0].astype(float)
        present = np.isfinite(scenario.raw.poses3d[:, 0]).all(axis=-1)
        truth = scenario.truth.poses3d[:, 0].astype(float)
        errors.append(metrics.mpjpe(np.where(present[..., None], poses, np.nan), truth))
    assert errors[1] < 1.1 * errors[0]


def test_two_people_share_one_floor():
    motions = [
        generate_motion("walk", 4.0, 30.0, seed=0, start_xy=(-1.0, 0.0)),
        generate_motion("run", 4.0, 30.0, seed=1, start_xy=(5.0, 2.0), heading_deg=90.0),
    ]
    camera = default_camera(motions, distance_m=7.0)
    cleaned = clean_trajectory(motions_to_trajectory(motions, camera))
    up_true = camera[2, :3]
    up_est = cleaned.extras["world_from_camera"][2, :3]
    assert np.degrees(np.arccos(np.clip(up_true @ up_est, -1, 1))) < 1.0
    assert np.isfinite(cleaned.poses3d).all()
    report = json.loads(str(cleaned.extras["clean_report"]))
    assert len(report["people"]) == 2 and all(p["contacts"] > 3 for p in report["people"])


# --------------------------------------------------------------------------- bad input


def _tiny(num_frames: int):
    motion = generate_motion("walk", num_frames / 30.0, 30.0, seed=4)
    return motions_to_trajectory([motion], default_camera([motion]))


@pytest.mark.parametrize("num_frames", [1, 2, 3, 7])
def test_tiny_clips_come_out_finite(num_frames):
    trajectory = _tiny(num_frames)
    out = clean_trajectory(trajectory)
    assert out.poses3d.shape == trajectory.poses3d.shape
    assert np.isfinite(out.poses3d).all()
    error = np.linalg.norm(out.poses3d - trajectory.poses3d, axis=-1)
    assert error.mean() < 30.0


def test_constant_pose_stays_put():
    motion = generate_motion("sit", 0.1, 30.0, seed=4)  # standing, both feet flat
    trajectory = motions_to_trajectory([motion], default_camera([motion]))
    trajectory = trajectory.replace(
        poses3d=trajectory.poses3d[:1], poses2d=trajectory.poses2d[:1],
        uncertainty=trajectory.uncertainty[:1], boxes=trajectory.boxes[:1],
        frame_times=trajectory.frame_times[:1],
    )  # fmt: skip
    still = trajectory.replace(
        poses3d=np.repeat(trajectory.poses3d, 90, axis=0),
        poses2d=np.repeat(trajectory.poses2d, 90, axis=0),
        uncertainty=np.repeat(trajectory.uncertainty, 90, axis=0),
        boxes=np.repeat(trajectory.boxes, 90, axis=0),
        frame_times=np.arange(90) / 30.0,
    )
    out = clean_trajectory(still)
    assert np.isfinite(out.poses3d).all()
    assert np.abs(out.poses3d - still.poses3d).max() < 20.0
    assert not out.extras["rejected"].any()


def test_missing_people_frames_and_impossible_values():
    motions = [generate_motion("walk", 3.0, 30.0, seed=s, start_xy=(s, 0.0)) for s in range(3)]
    trajectory = motions_to_trajectory(motions, default_camera(motions))
    poses = trajectory.poses3d.copy()
    poses[:, 1] = np.nan  # person 1 never seen
    poses[:40, 2] = np.nan  # person 2 only in a few frames ...
    poses[44:, 2] = np.nan
    poses[10, 0, 5] = np.inf  # an infinite joint
    poses[11, 0, 6, 2] = -500.0  # a joint behind the camera
    out = clean_trajectory(trajectory.replace(poses3d=poses))
    assert not np.isinf(out.poses3d).any()
    assert np.isnan(out.poses3d[:, 1]).all() and (out.extras["filled"][:, 1] == ABSENT).all()
    assert np.isfinite(out.poses3d[40:44, 2]).all()
    assert np.isnan(out.poses3d[:40, 2]).all() and np.isnan(out.poses3d[44:, 2]).all()
    assert np.isfinite(out.poses3d[:, 0]).all()
    assert out.extras["filled"][10, 0, 5] != MEASURED and out.extras["rejected"][11, 0, 6]
    report = json.loads(str(out.extras["clean_report"]))
    assert any("person 1" in warning for warning in report["warnings"])
    with pytest.raises(CleanError, match="no 3D joint"):
        clean_trajectory(trajectory.replace(poses3d=np.full_like(poses, np.nan)))


def test_frame_times_are_checked():
    trajectory = _tiny(10)
    with pytest.raises(CleanError, match="increase strictly"):
        clean_trajectory(trajectory.replace(frame_times=np.zeros(10)))
    times = np.arange(10) / 30.0
    times[5] = times[4]
    with pytest.raises(CleanError, match="frame 5"):
        clean_trajectory(trajectory.replace(frame_times=times))
    shifted = clean_trajectory(trajectory.replace(frame_times=np.arange(10) / 30.0 - 100.0))
    np.testing.assert_allclose(shifted.poses3d, clean_trajectory(trajectory).poses3d, atol=1e-3)


def test_held_joint_at_the_start_of_the_span():
    trajectory = _tiny(60)
    poses = trajectory.poses3d.copy()
    poses[:12, 0, 20] = np.nan  # left wrist appears late
    out = clean_trajectory(trajectory.replace(poses3d=poses))
    assert (out.extras["filled"][:12, 0, 20] == HELD).all()
    assert np.isfinite(out.poses3d).all()


@pytest.mark.slow
def test_a_1000_second_clip():
    scenario = make_scenario("walk", 30.0, seed=3, duration_s=1000.0, turn_deg_per_s=8.0)
    out = clean_trajectory(scenario.raw)
    assert np.isfinite(out.poses3d).all()
    report = json.loads(str(out.extras["clean_report"]))
    assert report["runtime_s"] < 60.0


# --------------------------------------------------------------------------- command line


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "retarget", *args], cwd=REPO, capture_output=True, text=True
    )


@pytest.mark.slow
def test_command_line_cleans_a_file(tmp_path, scenario):
    source = write_trajectory(tmp_path / "raw.npz", scenario.raw)
    target = tmp_path / "out" / "clean.npz"
    result = _run("clean", str(source), "-o", str(target), "--preset", "strong",
                  "--set", "body_cutoff_hz=3", "--set", "lock_feet=false")  # fmt: skip
    assert result.returncode == 0, result.stderr
    params = json.loads(str(read_trajectory(target).extras["clean_params"]))
    assert params["preset"] == "strong"
    assert params["params"]["body_cutoff_hz"] == 3.0 and params["params"]["lock_feet"] is False
    bad = _run("clean", str(source), "-o", str(target), "--preset", "silky")
    assert bad.returncode == 2 and "unknown cleaning preset" in bad.stderr
    missing = _run("clean", str(tmp_path / "nope.npz"), "-o", str(target))
    assert missing.returncode == 2 and "not found" in missing.stderr
    wrong = _run("clean", str(source), "-o", str(target), "--set", "smooth=maybe")
    assert wrong.returncode == 2 and "true or false" in wrong.stderr
