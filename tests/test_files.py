"""retarget.files: outputs appear whole or not at all, with a new file's usual permissions."""

import os
import stat

import pytest

from retarget.files import atomic_write, replacing, write_json, write_text


def test_a_failed_write_leaves_the_earlier_file_and_no_temporary(tmp_path):
    path = tmp_path / "result.txt"
    write_text(path, "complete result")
    with pytest.raises(RuntimeError), atomic_write(path, "w") as stream:
        stream.write("half a res")
        raise RuntimeError("the disk is full")
    assert path.read_text() == "complete result"
    assert [p.name for p in tmp_path.iterdir()] == ["result.txt"]


def test_a_writer_that_takes_a_file_name_gets_one_beside_the_target(tmp_path):
    path = tmp_path / "new folder" / "scene.blend"
    with replacing(path, suffix=".blend") as temporary:
        assert temporary.parent == path.parent and temporary.suffix == ".blend"
        assert not path.exists()  # nothing appears until the block ends
        temporary.write_bytes(b"BLENDER")
    assert path.read_bytes() == b"BLENDER" and len(list(path.parent.iterdir())) == 1


def test_permissions_are_a_new_files_not_a_temporary_files(tmp_path):
    mask = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"b": 1, "a": [2]})
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644  # mkstemp gives 0600
    assert (tmp_path / "a.json").read_text() == '{\n "a": [\n  2\n ],\n "b": 1\n}'
