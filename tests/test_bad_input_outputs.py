"""The output rule (collapseguard.io.outputs) and umask-respecting atomic writes."""

from __future__ import annotations

import json
import os
import stat

import pytest

from collapseguard.errors import CollapseguardError
from collapseguard.io.atomic import write_text_atomic
from collapseguard.io.outputs import MARKER, check_output_file, claim_output_dir, read_marker


def test_claim_creates_folder_and_marker(tmp_path):
    out = claim_output_dir(tmp_path / "a" / "b", command="simulate run", settings={"n": 1, "t": (1, 2)})
    marker = json.loads((out / MARKER).read_text())
    assert marker["command"] == "simulate run" and marker["settings"] == {"n": 1, "t": [1, 2]}


def test_claim_accepts_empty_folder_and_same_settings(tmp_path):
    claim_output_dir(tmp_path, command="x", settings={"n": 1})
    (tmp_path / "results.parquet").write_text("ours")
    assert claim_output_dir(tmp_path, command="x", settings={"n": 1}) == tmp_path
    assert (tmp_path / "results.parquet").read_text() == "ours"


def test_claim_refuses_other_settings_naming_the_difference(tmp_path):
    claim_output_dir(tmp_path, command="x", settings={"n": 1})
    (tmp_path / "r").write_text("ours")
    with pytest.raises(CollapseguardError, match=r"n: 1 -> 2.*--overwrite"):
        claim_output_dir(tmp_path, command="x", settings={"n": 2})
    with pytest.raises(CollapseguardError, match="written by `collapseguard x`.*--overwrite"):
        claim_output_dir(tmp_path, command="y", settings={"n": 1})


def test_claim_refuses_unrelated_folder_unless_overwrite_and_deletes_nothing(tmp_path):
    (tmp_path / "thesis.tex").write_text("years of work")
    with pytest.raises(CollapseguardError, match=f"{tmp_path}.*did not write.*--overwrite"):
        claim_output_dir(tmp_path, command="x", settings={})
    assert not (tmp_path / MARKER).exists()
    claim_output_dir(tmp_path, command="x", settings={"k": 3}, overwrite=True)
    assert (tmp_path / "thesis.tex").read_text() == "years of work"
    assert read_marker(tmp_path)["settings"] == {"k": 3}


def test_claim_refuses_a_file(tmp_path):
    f = tmp_path / "f"
    f.write_text("data")
    with pytest.raises(CollapseguardError, match="not a folder"):
        claim_output_dir(f, command="x", settings={}, overwrite=True)


@pytest.mark.parametrize("where", ["same", "inside", "holds"])
def test_claim_refuses_inputs_even_with_overwrite(tmp_path, where):
    data = tmp_path / "data"
    data.mkdir()
    (data / "shard.txt").write_text("hello\n")
    out = {"same": data, "inside": data / "out", "holds": tmp_path}[where]
    inputs = [data / "shard.txt"] if where == "holds" else [data]
    with pytest.raises(CollapseguardError, match="would overwrite the input"):
        claim_output_dir(out, command="x", settings={}, overwrite=True, inputs=inputs)
    assert not (data / "out").exists()


def test_claim_sees_through_symlinks(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    link = tmp_path / "link"
    link.symlink_to(data)
    with pytest.raises(CollapseguardError, match="would overwrite the input"):
        claim_output_dir(link, command="x", settings={}, overwrite=True, inputs=[data])


def test_check_output_file(tmp_path):
    f = tmp_path / "scores.parquet"
    assert check_output_file(f) == f
    f.write_text("old")
    with pytest.raises(CollapseguardError, match=f"{f}: already exists; pass --overwrite"):
        check_output_file(f)
    assert check_output_file(f, overwrite=True) == f
    assert check_output_file(f, ours=lambda p: True) == f
    with pytest.raises(CollapseguardError, match="is a folder"):
        check_output_file(tmp_path, overwrite=True)


def test_check_output_file_refuses_inputs_by_path_and_inode(tmp_path):
    shard = tmp_path / "shard.parquet"
    shard.write_text("data")
    hard = tmp_path / "hardlink.parquet"
    os.link(shard, hard)
    saved = tmp_path / "saved_dataset"
    saved.mkdir()
    for out, inputs in [(shard, [shard]), (hard, [shard]), (tmp_path / "." / "shard.parquet", [shard]),
                        (saved / "scores.parquet", [saved])]:
        with pytest.raises(CollapseguardError, match="would overwrite the input"):
            check_output_file(out, overwrite=True, inputs=inputs)
    assert shard.read_text() == "data"


def test_atomic_writes_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        write_text_atomic(tmp_path / "a.txt", "x")
        assert stat.S_IMODE(os.stat(tmp_path / "a.txt").st_mode) == 0o640
        os.umask(0o002)
        write_text_atomic(tmp_path / "b.txt", "x")
        assert stat.S_IMODE(os.stat(tmp_path / "b.txt").st_mode) == 0o664
    finally:
        os.umask(old)


def test_a_failed_run_leaves_nothing_that_blocks_the_fix(tmp_path):
    from collapseguard.io.outputs import claimed_output_dir

    out = tmp_path / "a" / "b"
    with pytest.raises(RuntimeError), claimed_output_dir(out, command="x", settings={"n": 1}):
        raise RuntimeError("bad corpus")
    assert not (tmp_path / "a").exists()
    with claimed_output_dir(out, command="x", settings={"n": 2}):  # the corrected rerun
        (out / "r").write_text("ours")
    with pytest.raises(RuntimeError), claimed_output_dir(out, command="x", settings={"n": 2}):
        raise RuntimeError("killed on resume")
    assert (out / "r").read_text() == "ours" and read_marker(out)["settings"] == {"n": 2}


def test_a_marker_alone_does_not_block_other_settings(tmp_path):
    claim_output_dir(tmp_path, command="x", settings={"n": 1})
    assert claim_output_dir(tmp_path, command="y", settings={"n": 2}) == tmp_path
