"""Atomic writes: the target holds the old bytes or the new ones, never a part, and no temp file stays."""

import pytest

from trainer.files import write_atomic, write_atomic_with


def test_text_and_bytes_replace_the_file_whole(tmp_path):
    target = tmp_path / "result.json"
    write_atomic(target, '{"test_top1": 81.5}\n')
    assert target.read_text() == '{"test_top1": 81.5}\n'
    write_atomic(target, b"\x00\x01", fsync=True)
    assert target.read_bytes() == b"\x00\x01"
    assert [path.name for path in tmp_path.iterdir()] == ["result.json"]


def test_a_reader_during_the_write_sees_the_old_file(tmp_path):
    target = tmp_path / "last.pt"
    target.write_bytes(b"old")
    seen = []

    def write(handle):
        handle.write(b"new, first half")
        handle.flush()
        seen.append(target.read_bytes())
        handle.write(b", second half")

    write_atomic_with(target, write, fsync=True)
    assert seen == [b"old"]
    assert target.read_bytes() == b"new, first half, second half"


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path):
    target = tmp_path / "metrics.jsonl"
    target.write_text('{"epoch": 1}\n')

    def fail_halfway(handle):
        handle.write(b'{"epoch": 2')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic_with(target, fail_halfway)
    assert target.read_text() == '{"epoch": 1}\n'
    assert [path.name for path in tmp_path.iterdir()] == ["metrics.jsonl"]
