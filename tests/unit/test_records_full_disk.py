"""The records file on a disk that fills up: whole lines, every lost record counted, one log
line for the failure and one for the count.

A full disk is reproduced without root two ways: a write that stops after a byte budget and
then fails with ENOSPC, as a nearly full file system does (a short write, then the error),
and a real file size limit (RLIMIT_FSIZE, EFBIG) in a child process.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from sagellm_users._metrics import RecordsWriter, records_file
from tests.records import disk_with, steady_record


def test_a_full_disk_keeps_whole_lines_and_counts_the_lost_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "records.jsonl"
    line_size = len(orjson.dumps(steady_record(request_id=1).to_json())) + 1
    monkeypatch.setattr(records_file, "_write", disk_with(3 * line_size + line_size // 2))
    writer = RecordsWriter(path)
    with caplog.at_level(logging.ERROR, logger="sagellm_users"):
        for i in range(1, 11):
            writer.write(steady_record(request_id=i))  # never raises
        writer.close()
    data = path.read_bytes()
    assert data.endswith(b"\n"), "the half-written fourth line was cut off again"
    assert [orjson.loads(line)["id"] for line in data.splitlines()] == [1, 2, 3]
    assert (writer.written, writer.lost) == (3, 7)
    assert writer.error == "No space left on device"
    errors = [r.getMessage() for r in caplog.records]
    assert len(errors) == 2, errors  # the first failure, then the count: not one per record
    assert "No space left on device" in errors[0]
    assert "7 record(s) could not be written" in errors[1]


def test_space_that_comes_back_is_used_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "records.jsonl"
    writer = RecordsWriter(path)
    monkeypatch.setattr(records_file, "_write", disk_with(10))
    writer.write(steady_record(request_id=1))
    monkeypatch.setattr(records_file, "_write", os.write)  # someone freed space
    writer.write(steady_record(request_id=2))
    writer.close()
    assert [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()] == [2]
    assert (writer.written, writer.lost) == (1, 1)


def test_a_file_that_cannot_be_opened_loses_records_without_raising(tmp_path: Path) -> None:
    """A worker opens its file on the first write: a failure then is a lost record, not an
    exception out of the recording of every request."""
    writer = RecordsWriter(tmp_path / "records.jsonl")
    (tmp_path / "records.jsonl").mkdir()  # taken by a directory after the options were checked
    writer.write(steady_record(request_id=1))
    writer.write(steady_record(request_id=2))
    assert (writer.written, writer.lost) == (0, 2)
    assert writer.error is not None and "cannot be written: Is a directory" in writer.error


CHILD = """
import resource, sys
from sagellm_users._metrics import RecordsWriter
from tests.records import disk_with, steady_record
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), int(sys.argv[2])))
writer = RecordsWriter(sys.argv[1])
for i in range(1, 201):
    writer.write(steady_record(request_id=i))
writer.close()
print(writer.written, writer.lost, writer.error)
"""


def test_a_file_size_limit_in_a_real_process(tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes the kernel cut a write short at the limit, then fail with EFBIG
    (Python ignores SIGXFSZ, which would otherwise kill the process)."""
    path = tmp_path / "records.jsonl"
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(16 * 1024)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    written, lost, error = result.stdout.split(maxsplit=2)
    assert int(written) + int(lost) == 200 and int(lost) > 0
    assert error.strip() == "File too large"
    data = path.read_bytes()
    assert data.endswith(b"\n") and len(data) <= 16 * 1024
    assert len(data.splitlines()) == int(written)
    assert all(orjson.loads(line) for line in data.splitlines())
    assert result.stderr.count("could not be written") == 2  # once, then the count
