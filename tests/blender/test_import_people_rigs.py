"""Several people onto several of the user's rigs in one import (issue 19): each person onto the
rig chosen for it (an FBX-like Mixamo rig and an Auto-Rig Pro-named rig), or a new rig, each with
its own take; one undo step from the panel; the same from the headless command line. Every input
is checked before the scene changes."""

import subprocess
import sys

import bpy
import numpy as np
import pytest

from inference.training.synth.clip import default_camera, motions_to_trajectory
from inference.training.synth.motion import generate_motion
from retarget import metrics
from retarget.contract import write_trajectory
from tests.blender.test_retarget import REPO, build_armature, direction_errors, read_back
from tests.blender.test_retarget_rigs import (
    FBX_ROTATION,
    FBX_SCALE,
    fbx_like,
    give_user_animation,
    user_rig_state,
)
from tests.test_solve_rigs import autorigpro_like, canonical_rest, mixamo_like


@pytest.fixture
def two_walkers(tmp_path):
    """Two people walking side by side, their world joints exact (the file carries the camera
    pose): the trajectory file and each person's world joints ``(T, J, 3)`` by track id."""
    motions = [
        generate_motion("walk", 2.0, 30.0, seed=61, start_xy=(-1.2, 0.0), turn_deg_per_s=10.0),
        generate_motion("walk", 2.0, 30.0, seed=62, start_xy=(1.2, 0.5), heading_deg=20.0),
    ]
    camera = default_camera(motions)
    trajectory = motions_to_trajectory(motions, camera)
    trajectory = trajectory.replace(extras={"world_from_camera": camera})
    path = write_trajectory(tmp_path / "pair.npz", trajectory)
    return path, {int(t): m.joints for t, m in zip(trajectory.track_ids, motions, strict=True)}


def hero_and_villain():
    hero = build_armature(fbx_like(mixamo_like(canonical_rest(1.8), rng=np.random.default_rng(61))),
                          "Hero")  # fmt: skip
    hero.rotation_euler, hero.scale = FBX_ROTATION, (FBX_SCALE,) * 3
    villain = build_armature(autorigpro_like(canonical_rest(1.6), rng=np.random.default_rng(62)),
                             "Villain", location=(3.0, 0.0, 0.0))  # fmt: skip
    bpy.context.view_layer.update()
    return hero, villain


def _check(extension, obj, world) -> dict:
    rigmaps, scene = extension.retarget.solve.rigmaps, extension.metrabs_blender.scene
    mapping = rigmaps.resolve_rig_map("auto", *scene.bone_hierarchy(obj))[0]
    joints, quaternions = read_back(obj, mapping, len(world), extension)
    errors = direction_errors(joints, world)
    return {"median": float(np.median(errors)), "p95": float(np.percentile(errors, 95)),
            "sign_flips": metrics.sign_flips(quaternions)}  # fmt: skip


def test_two_people_onto_two_rigs_in_one_import(api, extension, two_walkers):
    path, world = two_walkers
    hero, villain = hero_and_villain()
    give_user_animation(hero)
    before = {obj.name: user_rig_state(obj) for obj in (hero, villain)}
    objects = set(bpy.data.objects)
    results = api.import_people(path, targets={1: villain, 0: "Hero"})
    assert [(r.track_id, r.armature, r.generated) for r in results] == [
        (1, villain, False), (0, hero, False)
    ]  # fmt: skip
    assert set(bpy.data.objects) == objects  # nothing generated
    assert {r.action.name for r in results} == {"Hero pair P0 take 1", "Villain pair P1 take 1"}
    assert hero.animation_data.action.name == "Hero pair P0 take 1"
    assert villain.animation_data.action.name == "Villain pair P1 take 1"
    assert {obj.name: user_rig_state(obj) for obj in (hero, villain)} == before
    assert "preset mixamo" in results[1].report and "preset autorigpro" in results[0].report
    for obj, track_id in ((hero, 0), (villain, 1)):
        measured = _check(extension, obj, world[track_id])
        print(obj.name, measured)
        assert measured["median"] <= 2.0 and measured["p95"] <= 8.0, (obj.name, measured)
        assert measured["sign_flips"] == 0


def test_a_rig_for_one_a_new_rig_for_the_other(api, extension, two_walkers):
    path, world = two_walkers
    hero, _villain = hero_and_villain()
    results = api.import_trajectory(path, targets={0: hero, 1: None})
    assert [(r.track_id, r.generated) for r in results] == [(0, False), (1, True)]
    generated = results[1].armature
    assert generated.name == "MeTRAbs pair P1" and hero.animation_data.action == results[0].action
    # the new rig stands where the camera saw its person; the hero starts where it stands
    bpy.context.scene.frame_set(bpy.context.scene.frame_start)
    head = np.array(generated.matrix_world @ generated.pose.bones["head"].head)
    np.testing.assert_allclose(head, world[1][0, 15], atol=1e-3)  # smpl+head_30: head is 15
    assert _check(extension, hero, world[0])["p95"] <= 8.0


def test_refusals_leave_the_scene_as_it_was(api, extension, two_walkers):
    path, _world = two_walkers
    hero, villain = hero_and_villain()
    mesh = bpy.data.objects.new("body", bpy.data.meshes.new("body"))
    bpy.context.scene.collection.objects.link(mesh)
    flat = build_armature(mixamo_like(canonical_rest()), "Flat")
    flat.scale = (1.0, 0.0, 1.0)
    bpy.context.view_layer.update()
    state = (set(bpy.data.objects), set(bpy.data.actions), bpy.context.scene.render.fps)
    cases = [
        ({0: hero, 1: hero}, "Hero is the target of people 0 and 1"),
        ({0: hero, 7: villain}, "No person with track id 7"),
        ({0: hero, 1: mesh}, "'body' is a mesh, not an armature"),
        ({0: hero, 1: flat}, "'Flat' has a zero scale"),
        ({0: "Nobody"}, "No object named 'Nobody'"),
    ]
    for targets, message in cases:
        with pytest.raises(api.MocapError, match=message):
            api.import_trajectory(path, targets=targets)
        assert (set(bpy.data.objects), set(bpy.data.actions), bpy.context.scene.render.fps) == state
    with pytest.raises(api.MocapError, match="either target"):
        api.import_trajectory(path, target=hero, targets={1: villain})
    with pytest.raises(api.MocapError, match="Tick one person to put onto Villain"):
        api.import_people(path, [0, 1], target=villain, targets={})  # both without -> refused

    with pytest.raises(api.MocapError, match="without a rig of their own to put onto Villain"):
        api.import_people(path, [0, 1], target=villain, targets={0: hero, 1: flat})


def test_the_panel_puts_each_ticked_person_on_their_rig_in_one_undo_step(
    api, extension, two_walkers
):
    path, _world = two_walkers
    hero, villain = hero_and_villain()
    settings = bpy.context.scene.metrabs
    api.load_results(path)
    for person in settings.people:
        person.target = hero if person.track_id == 0 else villain
    settings.clean_preset, settings.use_camera, settings.use_review_markers = "OFF", False, False
    bpy.ops.ed.undo_push(message="before import")
    actions = set(bpy.data.actions.keys())
    assert bpy.ops.metrabs.import_results("EXEC_DEFAULT", True) == {"FINISHED"}
    new = set(bpy.data.actions.keys()) - actions
    assert new == {"Hero pair P0 take 1", "Villain pair P1 take 1"}
    bpy.ops.ed.undo()
    assert set(bpy.data.actions.keys()) == actions
    assert (
        bpy.data.objects["Hero"].animation_data is None
        or not bpy.data.objects["Hero"].animation_data.action
    )


@pytest.mark.slow
def test_headless_people_onto_rigs_of_another_file(two_walkers, tmp_path):
    path, _world = two_walkers
    hero_and_villain()
    rigs = tmp_path / "rigs.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(rigs))
    out = tmp_path / "shot.blend"
    command = [sys.executable, "-m", "metrabs_blender", str(path), "--out", str(out),
               "--target", f"{rigs}:0=Hero,1=Villain", "--limb-ik", "fk"]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "preset mixamo" in done.stderr and "preset autorigpro" in done.stderr
    bpy.ops.wm.open_mainfile(filepath=str(out))
    assert bpy.data.objects["Hero"].animation_data.action.name == "Hero pair P0 take 1"
    assert bpy.data.objects["Villain"].animation_data.action.name == "Villain pair P1 take 1"
    again = [*command[:5], str(tmp_path / "bad.blend")]
    bad = subprocess.run([*again, "--target", f"{rigs}:0=Hero,1=Nobody"], cwd=REPO,
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 1 and "no object 'Nobody'" in bad.stderr
    assert not (tmp_path / "bad.blend").exists()

    mixed = subprocess.run([*command, "--person", "0"], cwd=REPO, capture_output=True, text=True)
    assert mixed.returncode == 2 and "--person picks the person" in mixed.stderr
