"""Model bundles: save/load round trips and one clear error per kind of bad bundle."""

import gzip
import io
import pickle
import shutil
import tarfile

import numpy as np
import pytest
import torch

from inference.model import (
    BUNDLE_FILES,
    BundleError,
    BundleFileMissingError,
    CheckpointCorruptError,
    CheckpointMismatchError,
    MetrabsModel,
    ModelConfig,
    TensorFlowModelError,
    UnsafePickleError,
    load_bundle,
    save_bundle,
)
from inference.model.bundle import describe_checkpoint_backbone, read_restricted_pickle
from inference.model.config import dump_yaml_subset
from inference.model.testing import deterministic_state_dict, make_test_crops

CONFIG = ModelConfig(
    backbone="efficientnetv2-b0", proc_side=64, backbone_width_mult=0.25, backbone_depth_mult=0.34
)
JOINTS = ["pelvis", "lhip", "rhip", "spine", "head"]
SKELETONS = {
    "mini": {"indices": [0, 3, 4], "names": ["pelvis", "spine", "head"], "edges": [[0, 1], [1, 2]]}
}


@pytest.fixture(scope="module")
def model():
    model = MetrabsModel(CONFIG, JOINTS, [[0, 1], [0, 2], [0, 3], [3, 4]])
    model.load_state_dict(deterministic_state_dict(model))
    return model.eval()


@pytest.fixture()
def bundle_dir(tmp_path, model):
    return save_bundle(model, tmp_path / "bundle", skeleton_infos=SKELETONS)


def _outputs(model):
    crops = torch.from_numpy(make_test_crops(2, 64, seed=5))
    intrinsics = torch.tensor([[[60.0, 0, 32], [0, 60, 32], [0, 0, 1]]]).repeat(2, 1, 1)
    with torch.no_grad():
        return model(crops, intrinsics).poses3d.numpy()


def test_folder_round_trip(bundle_dir, model):
    assert sorted(p.name for p in bundle_dir.iterdir()) == sorted(BUNDLE_FILES)
    bundle = load_bundle(bundle_dir)
    assert bundle.config == CONFIG
    assert bundle.joint_names == tuple(JOINTS)
    assert bundle.joint_edges.tolist() == [[0, 1], [0, 2], [0, 3], [3, 4]]
    np.testing.assert_array_equal(bundle.joint_transform_matrix, np.eye(5))
    assert bundle.skeleton_infos["mini"]["indices"].tolist() == [0, 3, 4]
    assert bundle.skeleton_infos["mini"]["names"] == ["pelvis", "spine", "head"]
    assert not bundle.model.training
    np.testing.assert_array_equal(_outputs(bundle.model), _outputs(model))


def test_tar_gz_round_trip(tmp_path, model):
    archive = save_bundle(model, tmp_path / "mini_model.tar.gz")
    with tarfile.open(archive) as tar:  # the official layout: one folder inside the archive
        assert sorted(tar.getnames())[0] == "mini_model"
    bundle = load_bundle(archive)
    assert bundle.path == archive
    np.testing.assert_array_equal(_outputs(bundle.model), _outputs(model))


def test_missing_path_and_missing_file(tmp_path, bundle_dir):
    with pytest.raises(BundleFileMissingError, match="No model bundle at"):
        load_bundle(tmp_path / "nowhere")
    (bundle_dir / "joint_info.npz").unlink()
    with pytest.raises(BundleFileMissingError, match=r"lacks joint_info\.npz.*ckpt\.pt"):
        load_bundle(bundle_dir)


def test_truncated_checkpoint(bundle_dir):
    ckpt = bundle_dir / "ckpt.pt"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointCorruptError, match="truncated or damaged"):
        load_bundle(bundle_dir)


def test_truncated_archive(tmp_path, model):
    archive = save_bundle(model, tmp_path / "m.tar.gz")
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(CheckpointCorruptError, match="incomplete"):
        load_bundle(archive)


def test_checkpoint_of_another_backbone_size(tmp_path, model):
    folder = save_bundle(model, tmp_path / "b")
    config = ModelConfig(backbone="efficientnetv2-s", proc_side=64)
    (folder / "config.yaml").write_text(dump_yaml_subset(config.to_mapping()))
    with pytest.raises(CheckpointMismatchError) as info:
        load_bundle(folder)
    message = str(info.value)
    assert "config describes efficientnetv2-s" in message
    assert "missing" in message and "config.yaml that came with this ckpt.pt" in message


def test_backbone_is_recognised_from_keys():
    for name in ("efficientnetv2-s", "efficientnetv2-m", "efficientnetv2-l", "resnet50"):
        with torch.device("meta"):
            keys = list(MetrabsModel(ModelConfig(backbone=name), ["a"]).state_dict())
        assert describe_checkpoint_backbone(keys) == name


def test_tensorflow_savedmodel_folder(tmp_path):
    folder = tmp_path / "metrabs_eff2l_y4"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"\x08\x01")
    with pytest.raises(TensorFlowModelError, match="TensorFlow SavedModel.*PyTorch"):
        load_bundle(folder)


class _Exploit:
    def __reduce__(self):
        return (shutil.rmtree, ("/nonexistent-target",))


def test_code_in_skeleton_infos_is_refused_not_run(bundle_dir, tmp_path):
    marker = tmp_path / "marker"
    payload = pickle.dumps({"x": _Exploit()}).replace(b"/nonexistent-target", str(marker).encode())
    marker.mkdir()
    (bundle_dir / "skeleton_infos.pkl").write_bytes(payload)
    with pytest.raises(UnsafePickleError, match=r"shutil\.rmtree.*tampered"):
        load_bundle(bundle_dir)
    assert marker.exists()


def test_object_arrays_in_skeleton_infos_are_refused():
    with pytest.raises(UnsafePickleError, match="Python objects"):
        read_restricted_pickle(pickle.dumps({"s": np.array([{"a": 1}], dtype=object)}))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy_arrays_and_scalars_in_skeleton_infos_are_admitted(protocol):
    value = {
        "s": {
            "indices": np.arange(3),
            "names": np.array(["a", "b", "c"]),
            "edges": np.array([[0, 1]]),
            "scale": np.float32(2.5),
        }
    }
    loaded = read_restricted_pickle(pickle.dumps(value, protocol=protocol))
    np.testing.assert_array_equal(loaded["s"]["indices"], [0, 1, 2])
    assert loaded["s"]["names"].tolist() == ["a", "b", "c"] and loaded["s"]["scale"] == 2.5


def test_checkpoint_with_code_is_refused(bundle_dir):
    buffer = io.BytesIO()
    torch.save({"backbone.weight": torch.zeros(1), "evil": _Exploit()}, buffer)
    (bundle_dir / "ckpt.pt").write_bytes(buffer.getvalue())
    with pytest.raises(CheckpointCorruptError, match="refused for safety"):
        load_bundle(bundle_dir)


def test_plain_file_that_is_not_an_archive(tmp_path):
    path = tmp_path / "ckpt.pt.gz"
    path.write_bytes(gzip.compress(b"not a tar"))
    with pytest.raises(BundleError, match="not a .tar.gz archive"):
        load_bundle(path)


def test_fused_model_cannot_be_saved(tmp_path):
    fused = MetrabsModel(CONFIG, JOINTS).prepare_for_inference("cpu")
    with pytest.raises(BundleError, match="fused"):
        save_bundle(fused, tmp_path / "x")
