"""Weights manager: registry, cache, install/verify/resolve, and the ``weights`` command line.

Downloads go to an HTTP server on 127.0.0.1 started by the tests (``test_download.LocalServer``);
the registry URLs are redirected to it with a registry override file, and the cache lives in
``tmp_path``. Nothing here reaches the internet.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import pytest
from test_download import Behaviour, LocalServer, file_member, make_tar, payload, refused_url

from inference import weights
from inference.download import DownloadOptions
from inference.weights import (
    BUNDLE_FILES,
    DEFAULT_POSE_MODEL,
    ModelIntegrityError,
    ModelNotFoundError,
    ModelOfflineError,
    RegistryError,
    cache_dir,
    download_model,
    get_entry,
    install_from_file,
    installed_path,
    load_registry,
    resolve_model,
    verify_model,
)

REPO = Path(__file__).resolve().parents[1]
OFFICIAL = DEFAULT_POSE_MODEL
FAST = DownloadOptions(timeout_s=2.0, chunk_size=16 << 10, retry_wait_s=0.01, progress_interval_s=0)


@functools.cache
def bundle_contents(seed: int = 0) -> dict[str, bytes]:
    """The files of a tiny bundle that loads (an install loads it before trusting it); each seed
    gives other weights, so other bytes."""
    import torch

    from inference.model import MetrabsModel, ModelConfig, save_bundle

    config = ModelConfig(backbone="efficientnetv2-b0", proc_side=32, backbone_width_mult=0.25,
                         backbone_depth_mult=0.25)  # fmt: skip
    torch.manual_seed(seed)
    model = MetrabsModel(config, ["lhip", "rhip"], [[0, 1]])
    with tempfile.TemporaryDirectory() as folder:
        saved = save_bundle(model, Path(folder) / "bundle")
        return {name: (saved / name).read_bytes() for name in BUNDLE_FILES}


def bundle_tarball(path: Path, folder: str | None = OFFICIAL, seed: int = 0) -> Path:
    prefix = f"{folder}/" if folder else ""
    members = [file_member(prefix + n, c) for n, c in bundle_contents(seed).items()]
    return make_tar(path, members)


@pytest.fixture
def server():
    srv = LocalServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("METRABS_MOCAP_CACHE", str(folder))
    return folder


def registry_file(tmp_path: Path, models: list[dict]) -> Path:
    path = tmp_path / "registry.json"
    path.write_text(json.dumps({"models": models}))
    return path


@pytest.fixture
def official(server, tmp_path, cache):
    """Registry whose official entry downloads a stand-in bundle from the local server."""
    archive = bundle_tarball(tmp_path / "official.tar.gz")
    server.files["official.tar.gz"] = archive.read_bytes()
    registry = load_registry(
        registry_file(tmp_path, [{"name": OFFICIAL, "url": server.url("official.tar.gz")}])
    )
    return registry, archive


# ------------------------------------------------------------------------------------------------
# Registry and cache


def test_builtin_registry_facts():
    registry = load_registry()
    entry = registry[OFFICIAL]
    assert entry.urls[0] == "https://bit.ly/metrabs_l_pt"  # the official README's link
    assert entry.archive and entry.kind == "pose_bundle" and entry.source == "remote"
    assert entry.sha256 is None and entry.size is None  # not published: never invented
    assert "non-commercial" in entry.license
    project = registry["metrabs_small_synth"]
    assert project.source == "project" and project.project_path == "models/metrabs_small_synth"
    for name, side in (("yolox_nano", 416), ("yolox_tiny", 416), ("yolox_s", 640)):
        det = registry[name]
        assert det.kind == "detector" and det.license == "Apache-2.0" and det.input_size == side
        assert det.urls == (
            f"https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0/{name}.pth",
        )


def test_registry_override_merges_adds_and_rejects(tmp_path, monkeypatch):
    path = registry_file(
        tmp_path,
        [
            {"name": OFFICIAL, "url": "http://127.0.0.1:1/x.tar.gz", "sha256": "ab" * 32},
            {
                "name": "my_model",
                "kind": "detector",
                "description": "d",
                "license": "MIT",
                "urls": ["http://127.0.0.1:1/m.pth"],
                "filename": "m.pth",
            },
        ],
    )
    registry = load_registry(path)
    entry = registry[OFFICIAL]
    assert entry.urls == ("http://127.0.0.1:1/x.tar.gz",) and entry.sha256 == "ab" * 32
    assert entry.license == weights.load_registry()[OFFICIAL].license  # untouched fields kept
    assert registry["my_model"].filename == "m.pth"
    monkeypatch.setenv("METRABS_MOCAP_REGISTRY", str(path))
    assert "my_model" in load_registry()
    for bad, message in (
        ({"name": OFFICIAL, "colour": "red"}, "unknown fields"),
        ({"name": "x", "kind": "detector"}, "missing"),
        (
            {
                "name": "../x",
                "kind": "detector",
                "description": "",
                "license": "",
                "project_path": "a",
            },
            "slashes",
        ),
        ({"name": OFFICIAL, "kind": "car"}, "kind must be"),
    ):
        with pytest.raises(RegistryError, match=message):
            load_registry(registry_file(tmp_path, [bad]))


def test_unknown_name_lists_known_ones():
    with pytest.raises(ModelNotFoundError, match="Known models: .*metrabs_small_synth"):
        get_entry("nope")


def test_cache_dir_env_and_platform_default(monkeypatch, tmp_path):
    monkeypatch.setenv("METRABS_MOCAP_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    assert cache_dir(tmp_path / "o") == tmp_path / "o"
    monkeypatch.delenv("METRABS_MOCAP_CACHE")
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "metrabs_mocap"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "metrabs_mocap"
    monkeypatch.setattr(sys, "platform", "darwin")
    assert cache_dir() == Path.home() / "Library" / "Caches" / "metrabs_mocap"
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert cache_dir() == tmp_path / "local" / "metrabs_mocap" / "Cache"


# ------------------------------------------------------------------------------------------------
# Download, install, verify


def test_download_installs_bundle_records_hash_and_is_idempotent(official, server, cache):
    registry, archive = official
    events = []
    path = download_model(registry[OFFICIAL], options=FAST, progress=events.append)
    assert path == cache / "models" / OFFICIAL
    for name, content in bundle_contents().items():
        assert (path / name).read_bytes() == content  # the tarball's top folder is stripped
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    record = weights.recorded_hash(cache, OFFICIAL)
    assert record["sha256"] == digest and record["size"] == archive.stat().st_size
    manifest = json.loads((cache / "manifests" / f"{OFFICIAL}.json").read_text())
    assert manifest["download_sha256"] == digest and sorted(manifest["files"]) == sorted(
        BUNDLE_FILES
    )
    assert not (
        cache / "downloads" / f"{OFFICIAL}.tar.gz"
    ).exists()  # archive removed after unpacking
    kinds = [e["event"] for e in events]
    assert kinds[0] == "download_start" and "hash_recorded" in kinds and kinds[-1] == "installed"
    assert all(e["name"] == OFFICIAL for e in events)

    n_requests = len(server.requests)
    assert download_model(registry[OFFICIAL], options=FAST) == path
    assert len(server.requests) == n_requests  # already installed: no network
    assert installed_path(registry[OFFICIAL]) == path
    result = verify_model(registry[OFFICIAL])
    assert result.status == "ok" and result.problems == () and "recorded" in result.hash_source


def test_verify_detects_tampered_and_missing_files(official, cache):
    registry, _ = official
    path = download_model(registry[OFFICIAL], options=FAST)
    ckpt = bytearray((path / "ckpt.pt").read_bytes())
    ckpt[100] ^= 1  # same size, one bit flipped
    (path / "ckpt.pt").write_bytes(bytes(ckpt))
    (path / "config.yaml").unlink()
    result = verify_model(registry[OFFICIAL])
    assert result.status == "failed"
    assert set(result.problems) == {
        "ckpt.pt: SHA-256 differs from the one recorded at install",
        "config.yaml: missing",
    }


def test_published_hash_rejects_corrupted_download(server, tmp_path, cache):
    archive = bundle_tarball(tmp_path / "b.tar.gz")
    server.files["b.tar.gz"] = archive.read_bytes()
    server.behaviour["b.tar.gz"] = Behaviour(corrupt=True)
    good = hashlib.sha256(archive.read_bytes()).hexdigest()
    registry = load_registry(
        registry_file(tmp_path, [{"name": OFFICIAL, "url": server.url("b.tar.gz"), "sha256": good}])
    )
    with pytest.raises(ModelIntegrityError, match="corrupted"):
        download_model(registry[OFFICIAL], options=FAST)
    assert installed_path(registry[OFFICIAL]) is None
    assert not any((cache / "downloads").iterdir())  # neither .part nor the bad file is kept
    assert not (cache / "models" / OFFICIAL).exists()
    server.behaviour["b.tar.gz"] = Behaviour()  # the server is fixed: the same call succeeds
    assert verify_model(registry[OFFICIAL]).status == "not_installed"
    download_model(registry[OFFICIAL], options=FAST)
    assert verify_model(registry[OFFICIAL]).hash_source == "published"


def test_recorded_hash_guards_later_downloads(official, server, cache):
    registry, _ = official
    download_model(registry[OFFICIAL], options=FAST)
    server.behaviour["official.tar.gz"] = Behaviour(corrupt=True)
    with pytest.raises(
        ModelIntegrityError, match="recorded at first download.*--forget-recorded-hash"
    ):
        download_model(registry[OFFICIAL], force=True, options=FAST)
    assert weights.forget_recorded_hash(cache, OFFICIAL)
    assert weights.recorded_hash(cache, OFFICIAL) is None


def test_interrupted_download_resumes(official, server, cache):
    registry, archive = official
    server.behaviour["official.tar.gz"] = Behaviour(drops=1)
    events = []
    download_model(registry[OFFICIAL], options=FAST, progress=events.append)
    assert [e["event"] for e in events].count("resume") == 1
    assert sum(server.bodies) == archive.stat().st_size  # nothing sent twice
    assert verify_model(registry[OFFICIAL]).status == "ok"


def test_offline_gives_manual_steps_and_keeps_the_part(tmp_path, cache):
    url = refused_url("official.tar.gz")
    registry = load_registry(registry_file(tmp_path, [{"name": OFFICIAL, "urls": [url, url]}]))
    with pytest.raises(ModelOfflineError) as info:
        download_model(registry[OFFICIAL], options=FAST)
    message = str(info.value)
    assert "No network" in message and url in message
    assert str(cache / "downloads" / f"{OFFICIAL}.tar.gz") in message
    assert f"weights download {OFFICIAL} --model" in message and "--model /path/to/" in message
    assert info.value.exit_code == 4


def test_second_url_is_used_when_the_first_fails(server, tmp_path, cache):
    archive = bundle_tarball(tmp_path / "b.tar.gz")
    server.files["b.tar.gz"] = archive.read_bytes()
    urls = [refused_url(), server.url("missing.tar.gz"), server.url("b.tar.gz")]
    registry = load_registry(registry_file(tmp_path, [{"name": OFFICIAL, "urls": urls}]))
    path = download_model(registry[OFFICIAL], options=FAST)
    assert sorted(p.name for p in path.iterdir()) == sorted(BUNDLE_FILES)


def test_part_from_another_url_is_not_glued_without_a_hash(server, tmp_path, cache):
    archive = bundle_tarball(tmp_path / "b.tar.gz")
    data = archive.read_bytes()
    server.files["b.tar.gz"] = data
    good = server.url("b.tar.gz")
    registry = load_registry(
        registry_file(tmp_path, [{"name": OFFICIAL, "urls": [refused_url(), good]}])
    )
    downloads = cache / "downloads"
    downloads.mkdir(parents=True)
    part = downloads / f"{OFFICIAL}.tar.gz.part"
    part.write_bytes(b"x" * 1000)  # left by an earlier run against another server
    download_model(registry[OFFICIAL], options=FAST)
    assert weights.recorded_hash(cache, OFFICIAL)["sha256"] == hashlib.sha256(data).hexdigest()
    assert server.requests == [("b.tar.gz", None)]

    # a .part from the same URL is resumed
    part.write_bytes(data[:5000])
    (downloads / f"{OFFICIAL}.tar.gz.part.url").write_text(good)
    download_model(registry[OFFICIAL], force=True, options=FAST)
    assert server.requests[-1] == ("b.tar.gz", "bytes=5000-")
    assert sorted(p.name for p in downloads.iterdir()) == []


def test_a_url_serving_other_bytes_falls_back_to_the_mirror(server, tmp_path, cache):
    """The first URL answers with something else (a link shortener's page): with the hash known,
    the next URL is tried instead of giving up."""
    archive = bundle_tarball(tmp_path / "b.tar.gz")
    server.files["b.tar.gz"] = archive.read_bytes()
    server.files["page.html"] = b"<html>Click here to continue</html>"
    good = hashlib.sha256(archive.read_bytes()).hexdigest()
    entry = {"name": OFFICIAL, "urls": [server.url("page.html"), server.url("b.tar.gz")],
             "sha256": good}  # fmt: skip
    registry = load_registry(registry_file(tmp_path, [entry]))
    path = download_model(registry[OFFICIAL], options=FAST)
    assert (path / "ckpt.pt").read_bytes() == bundle_contents()["ckpt.pt"]
    server.files["b.tar.gz"] = b"also wrong"
    with pytest.raises(ModelIntegrityError, match="corrupted"):
        download_model(registry[OFFICIAL], force=True, options=FAST)


@pytest.mark.slow
def test_a_cache_that_is_not_a_folder_is_a_clear_error(tmp_path):
    cache = tmp_path / "cache"
    cache.write_text("a file where the cache folder should be")
    code, events, stderr = run_cli("download", OFFICIAL, cache=cache)
    assert code == 1 and events[-1]["event"] == "error"
    assert "cannot use the model cache" in events[-1]["message"] and "Traceback" not in stderr


def test_file_copied_into_downloads_is_installed_without_network(tmp_path, cache):
    registry = load_registry(registry_file(tmp_path, [{"name": OFFICIAL, "url": refused_url()}]))
    (cache / "downloads").mkdir(parents=True)
    bundle_tarball(cache / "downloads" / f"{OFFICIAL}.tar.gz")
    path = download_model(registry[OFFICIAL], options=FAST)
    assert (path / "ckpt.pt").read_bytes() == bundle_contents()["ckpt.pt"]


def test_install_from_manual_file_checks_published_hash(tmp_path, cache):
    good = bundle_tarball(tmp_path / "good.tar.gz")
    wrong = bundle_tarball(tmp_path / "wrong.tar.gz", seed=7)
    digest = hashlib.sha256(good.read_bytes()).hexdigest()
    registry = load_registry(
        registry_file(tmp_path, [{"name": OFFICIAL, "url": refused_url(), "sha256": digest}])
    )
    with pytest.raises(ModelIntegrityError, match="not the expected.*it was not used"):
        install_from_file(registry[OFFICIAL], wrong)
    assert wrong.exists() and installed_path(registry[OFFICIAL]) is None  # user's file untouched
    path = install_from_file(registry[OFFICIAL], good)
    assert verify_model(registry[OFFICIAL]).status == "ok" and path.name == OFFICIAL


def test_archive_without_bundle_or_with_escaping_member_is_not_installed(server, tmp_path, cache):
    server.files["partial.tar.gz"] = make_tar(
        tmp_path / "p.tar.gz", [file_member("x/ckpt.pt", b"w"), file_member("x/readme", b"r")]
    ).read_bytes()
    server.files["evil.tar.gz"] = make_tar(
        tmp_path / "e.tar.gz", [file_member("../../evil", b"x")]
    ).read_bytes()
    for name, message in (
        ("partial", "expected the files ckpt.pt, config.yaml"),
        ("evil", r"'\.\.'"),
    ):
        registry = load_registry(
            registry_file(tmp_path, [{"name": OFFICIAL, "url": server.url(f"{name}.tar.gz")}])
        )
        with pytest.raises(ModelIntegrityError, match=message):
            download_model(registry[OFFICIAL], options=FAST)
        assert installed_path(registry[OFFICIAL]) is None
        weights.forget_recorded_hash(cache, OFFICIAL)
    assert not (tmp_path / "evil").exists() and not (cache / "evil").exists()
    assert [p.name for p in (cache / "models").iterdir()] == []  # no staging left behind


def checkpoint_bytes(size: int = 50_000, seed: int = 3) -> bytes:
    """A stand-in torch checkpoint: a zip archive, as ``torch.save`` writes them."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data/0", payload(size, seed))
    return buffer.getvalue()


def test_detector_weights_are_a_single_file(server, tmp_path, cache):
    blob = checkpoint_bytes()
    server.files["yolox_s.pth"] = blob
    registry = load_registry(
        registry_file(tmp_path, [{"name": "yolox_s", "url": server.url("yolox_s.pth")}])
    )
    path = download_model(registry["yolox_s"], options=FAST)
    assert path == cache / "models" / "yolox_s" / "yolox_s.pth" and path.read_bytes() == blob
    assert resolve_model("yolox_s", registry=registry) == path
    assert verify_model(registry["yolox_s"]).status == "ok"


def test_a_cut_checkpoint_is_neither_installed_nor_trusted(server, tmp_path, cache):
    """A server that sends no size and closes early leaves a shorter file that looks complete;
    with no published hash it must not become the trusted one."""
    server.files["yolox_s.pth"] = checkpoint_bytes()[:30_000]
    registry = load_registry(
        registry_file(tmp_path, [{"name": "yolox_s", "url": server.url("yolox_s.pth")}])
    )
    with pytest.raises(ModelIntegrityError, match="not a complete torch checkpoint"):
        download_model(registry["yolox_s"], options=FAST)
    assert weights.recorded_hash(cache, "yolox_s") is None
    assert installed_path(registry["yolox_s"]) is None


# ------------------------------------------------------------------------------------------------
# resolve_model (the --model argument)


def test_resolve_name_folder_tarball_and_errors(official, tmp_path, cache):
    registry, archive = official
    with pytest.raises(ModelNotFoundError, match=f"not installed.*weights download {OFFICIAL}"):
        resolve_model(OFFICIAL, registry=registry)
    path = resolve_model(OFFICIAL, registry=registry, download=True, options=FAST)
    assert resolve_model(OFFICIAL, registry=registry) == path

    assert resolve_model(str(path), registry=registry) == path.resolve()  # a folder: as is
    extracted = resolve_model(archive, registry=registry)  # a tarball: unpacked once
    assert extracted.name == OFFICIAL and extracted.parent.parent == cache / "extracted"
    assert (extracted / "skeleton_infos.pkl").read_bytes() == bundle_contents()[
        "skeleton_infos.pkl"
    ]
    stamp = (extracted / "ckpt.pt").stat().st_mtime_ns
    assert resolve_model(archive, registry=registry) == extracted
    assert (extracted / "ckpt.pt").stat().st_mtime_ns == stamp  # not unpacked again
    flat = bundle_tarball(tmp_path / "flat.tgz", folder=None)  # files at the archive's top
    assert sorted(p.name for p in resolve_model(flat, registry=registry).iterdir()) == sorted(
        BUNDLE_FILES
    )
    with pytest.raises(ModelNotFoundError, match="neither a known model"):
        resolve_model(tmp_path / "nothing_here", registry=registry)


def test_resolve_refuses_unsafe_user_tarball(tmp_path, cache):
    archive = make_tar(tmp_path / "evil.tar.gz", [file_member("/etc/evil", b"x")])
    with pytest.raises(ModelIntegrityError, match="absolute path"):
        resolve_model(archive)
    assert not any(p for p in (cache / "extracted").iterdir())


def test_project_model_resolves_to_the_repository_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(weights.registry, "REPO_ROOT", tmp_path)
    with pytest.raises(ModelNotFoundError, match="missing"):
        resolve_model("metrabs_small_synth")
    folder = tmp_path / "models" / "metrabs_small_synth"
    folder.mkdir(parents=True)
    assert resolve_model("metrabs_small_synth") == folder
    assert verify_model(get_entry("metrabs_small_synth")).problems == tuple(
        f"{name}: missing" for name in BUNDLE_FILES
    )
    for name in BUNDLE_FILES:
        (folder / name).write_bytes(b"x")
    assert verify_model(get_entry("metrabs_small_synth")).status == "ok"
    # a bundled detector is one weight file
    assert verify_model(get_entry("yolox_synth")).status == "not_installed"
    weight = tmp_path / "models" / "yolox_synth" / "yolox_synth.pth"
    weight.parent.mkdir()
    weight.write_bytes(b"x")
    assert resolve_model("yolox_synth") == weight
    assert verify_model(get_entry("yolox_synth")).status == "ok"


# ------------------------------------------------------------------------------------------------
# Command line, as a real subprocess


def run_cli(*args: str, cache: Path, registry: Path | None = None) -> tuple[int, list[dict], str]:
    env = {**os.environ, "METRABS_MOCAP_CACHE": str(cache), "PYTHONPATH": str(REPO)}
    env.pop("METRABS_MOCAP_REGISTRY", None)
    if registry is not None:
        env["METRABS_MOCAP_REGISTRY"] = str(registry)
    proc = subprocess.run(
        [sys.executable, "-m", "inference", "weights", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    events = [json.loads(line) for line in proc.stdout.splitlines()]  # stdout: JSON lines only
    assert all(isinstance(e["time"], float) for e in events)
    return (
        proc.returncode,
        [{k: v for k, v in e.items() if k != "time"} for e in events],
        proc.stderr,
    )


@pytest.mark.slow
def test_cli_list(tmp_path):
    code, events, stderr = run_cli("list", cache=tmp_path / "c")
    assert code == 0, stderr
    by_name = {e["name"]: e for e in events}
    assert set(by_name) == {e.name for e in weights.BUILTIN_MODELS}
    assert all(e["event"] == "model" for e in events)
    # nothing is downloaded into the fresh cache; only the models shipped in the repo are there
    installed = {name for name, e in by_name.items() if e["installed"]}
    assert installed == {"metrabs_small_synth", "yolox_synth"}
    assert by_name[OFFICIAL]["hash_source"].startswith("not published")


@pytest.mark.slow
def test_cli_download_path_verify_round_trip(server, tmp_path):
    archive = bundle_tarball(tmp_path / "b.tar.gz")
    server.files["b.tar.gz"] = archive.read_bytes()
    server.behaviour["b.tar.gz"] = Behaviour(drops=1)
    reg = registry_file(tmp_path, [{"name": OFFICIAL, "url": server.url("b.tar.gz")}])
    cache = tmp_path / "c"

    code, events, stderr = run_cli(
        "download", OFFICIAL, "--timeout", "5", "--no-detector", cache=cache, registry=reg
    )
    assert code == 0, stderr
    kinds = [e["event"] for e in events]
    for kind in (
        "download_start",
        "progress",
        "retry",
        "resume",
        "download_done",
        "installed",
        "path",
    ):
        assert kind in kinds
    progress = [e for e in events if e["event"] == "progress"]
    assert progress[-1]["downloaded"] == progress[-1]["total"] == archive.stat().st_size
    installed = cache / "models" / OFFICIAL
    assert events[-1] == {"event": "path", "name": OFFICIAL, "path": str(installed)}
    assert "Installed" in stderr  # logs go to stderr

    code, events, _ = run_cli("path", OFFICIAL, cache=cache, registry=reg)
    assert code == 0 and events == [{"event": "path", "name": OFFICIAL, "path": str(installed)}]
    code, events, _ = run_cli("verify", OFFICIAL, cache=cache, registry=reg)
    assert code == 0 and events[0]["status"] == "ok"

    (installed / "joint_info.npz").write_bytes(b"tampered")
    code, events, stderr = run_cli("verify", cache=cache, registry=reg)  # all installed models
    # the bundled project models are checked too, and pass
    names = [e.get("name") for e in events]
    assert code == 6 and names == [OFFICIAL, "metrabs_small_synth", "yolox_synth", None]
    assert "joint_info.npz: size 8" in events[0]["problems"][0] and "joint_info.npz" in stderr
    assert events[1]["status"] == events[2]["status"] == "ok"
    assert events[3] == {"event": "verify_summary", "checked": 3, "failed": [OFFICIAL]}


@pytest.mark.slow
def test_cli_offline_message_and_exit_codes(tmp_path):
    reg = registry_file(tmp_path, [{"name": OFFICIAL, "url": refused_url("o.tar.gz")}])
    cache = tmp_path / "c"
    code, events, stderr = run_cli("download", OFFICIAL, cache=cache, registry=reg)
    assert code == 4, stderr
    assert events[-1]["event"] == "error" and events[-1]["kind"] == "ModelOfflineError"
    assert events[-1]["exit_code"] == 4
    assert "To install" in stderr and str(cache / "downloads") in stderr

    manual = bundle_tarball(tmp_path / "manual.tar.gz")
    code, events, _ = run_cli("path", "--model", str(manual), cache=cache, registry=reg)
    assert code == 0 and Path(events[-1]["path"]).parent.parent == cache / "extracted"
    code, events, _ = run_cli(
        "download", OFFICIAL, "--model", str(manual), cache=cache, registry=reg
    )
    assert code == 0 and events[-1]["path"] == str(cache / "models" / OFFICIAL)

    code, events, _ = run_cli("path", "yolox_s", cache=cache, registry=reg)
    assert code == 3 and "not installed" in events[-1]["message"]
    code, events, _ = run_cli("download", "no_such_model", cache=cache, registry=reg)
    assert code == 3 and "Unknown model" in events[-1]["message"]
    code, _, _ = run_cli("path", cache=cache, registry=reg)
    assert code == 2
    code, _, _ = run_cli("frobnicate", cache=cache, registry=reg)
    assert code == 2


@pytest.mark.slow
def test_cli_module_imports_no_torch():
    code = (
        "import sys, inference.weights, inference.download; "
        "sys.exit(1 if 'torch' in sys.modules or 'numpy' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, timeout=60).returncode == 0


def test_tarball_detection_by_content(tmp_path):
    archive = bundle_tarball(tmp_path / "bundle.download")  # odd extension, tar.gz inside
    assert weights.resolve._is_tarball(archive) and tarfile.is_tarfile(archive)
    (tmp_path / "w.pth").write_bytes(b"PK\x03\x04")
    assert not weights.resolve._is_tarball(tmp_path / "w.pth")


# ------------------------------------------------------------------------------------------------
# What an install trusts, and what an analysis checks


@pytest.mark.slow
def test_downloading_a_pose_model_brings_a_person_detector_unless_one_is_installed(
    server, tmp_path
):
    archive = bundle_tarball(tmp_path / "b.tar.gz")
    server.files["b.tar.gz"] = archive.read_bytes()
    detector = server.files["yolox_s.pth"] = checkpoint_bytes()
    reg = registry_file(tmp_path, [{"name": OFFICIAL, "url": server.url("b.tar.gz")},
                                   {"name": "yolox_s", "url": server.url("yolox_s.pth")}])  # fmt: skip
    cache = tmp_path / "c"
    code, events, stderr = run_cli("download", OFFICIAL, cache=cache, registry=reg)
    assert code == 0, stderr
    assert (cache / "models" / "yolox_s" / "yolox_s.pth").read_bytes() == detector
    assert [e["name"] for e in events if e["event"] == "installed"] == [OFFICIAL, "yolox_s"]
    assert events[-1]["event"] == "path" and events[-1]["name"] == OFFICIAL  # the model's folder

    # Another YOLOX already there: nothing more is downloaded.
    other = tmp_path / "c2"
    code, *_ = run_cli("download", "yolox_s", cache=other, registry=reg)
    requests = len(server.requests)
    code, events, _ = run_cli("download", OFFICIAL, cache=other, registry=reg)
    assert code == 0 and len(server.requests) == requests + 1  # the pose model only


@pytest.mark.slow
def test_a_detector_that_cannot_be_had_leaves_the_pose_model_installed_with_a_warning(
    server, tmp_path
):
    archive = bundle_tarball(tmp_path / "b.tar.gz")
    server.files["b.tar.gz"] = archive.read_bytes()
    reg = registry_file(tmp_path, [{"name": OFFICIAL, "url": server.url("b.tar.gz")},
                                   {"name": "yolox_s", "url": refused_url("yolox_s.pth")}])  # fmt: skip
    code, events, _ = run_cli("download", OFFICIAL, cache=tmp_path / "c", registry=reg)
    assert code == 0 and (tmp_path / "c" / "models" / OFFICIAL / "ckpt.pt").is_file()
    warning = next(e for e in events if e["event"] == "warning")
    assert warning["name"] == "yolox_s" and "HOG" in warning["message"]


def test_a_manual_install_that_does_not_load_is_refused_and_not_trusted(tmp_path, cache):
    contents = dict(bundle_contents())
    contents["ckpt.pt"] = checkpoint_bytes()  # a zip archive, but not this config's weights
    wrong = make_tar(tmp_path / "wrong.tar.gz",
                     [file_member(f"{OFFICIAL}/{n}", c) for n, c in contents.items()])  # fmt: skip
    entry = load_registry()[OFFICIAL]
    with pytest.raises(ModelIntegrityError, match="not a usable MeTRAbs model"):
        weights.install_from_file(entry, wrong)
    assert weights.recorded_hash(cache, OFFICIAL) is None and installed_path(entry) is None
    right = bundle_tarball(tmp_path / "right.tar.gz")  # now the right file, no flags needed
    assert weights.install_from_file(entry, right) == cache / "models" / OFFICIAL


@pytest.mark.slow
def test_an_unpacked_release_folder_installs_under_its_name(tmp_path, cache):
    folder = tmp_path / "unpacked" / OFFICIAL
    folder.mkdir(parents=True)
    for name, content in bundle_contents().items():
        (folder / name).write_bytes(content)
    code, events, stderr = run_cli("download", OFFICIAL, "--model", str(folder), "--no-detector",
                                   cache=cache)  # fmt: skip
    assert code == 0, stderr
    assert events[-1] == {
        "event": "path",
        "name": OFFICIAL,
        "path": str(cache / "models" / OFFICIAL),
    }
    assert verify_model(load_registry()[OFFICIAL]).status == "ok"
    assert weights.default_pose_model() == OFFICIAL  # the add-on's Automatic now takes it


def test_changed_bytes_of_an_installed_model_are_caught_before_it_is_used(official, cache):
    registry, _ = official
    path = download_model(registry[OFFICIAL], options=FAST)
    assert resolve_model(OFFICIAL, registry=registry) == path
    checkpoint = path / "ckpt.pt"
    data = bytearray(checkpoint.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 8] = bytes(8)  # 8 bytes in the middle
    checkpoint.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="ckpt.pt changed.*--force"):
        resolve_model(OFFICIAL, registry=registry)


def test_the_model_id_hashes_every_byte(tmp_path, cache):
    first = tmp_path / "a.pt"
    data = bytearray(payload(5_000_000, 1))
    first.write_bytes(bytes(data))
    data[2_500_000:2_500_008] = bytes(8)  # outside the first and last MiB
    second = tmp_path / "b.pt"
    second.write_bytes(bytes(data))
    assert weights.model_digest(first) != weights.model_digest(second)
    full = hashlib.sha256(second.read_bytes()).hexdigest()
    assert weights.model_digest(second) == f"sha256:{full[:32]}"
    # remembered by size and mtime: a rewrite in place is hashed again
    second.write_bytes(first.read_bytes())
    assert weights.model_digest(second) == weights.model_digest(first)
