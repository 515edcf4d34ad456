"""Audit: one JSON object per line, on disk as soon as it is written."""

import json

import pytest

from pipeline.errors import UserError
from stages.audit import AuditLog


def test_each_line_is_on_disk_before_close(tmp_path):
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path)
    audit.write(json.dumps({"seq": 0}))
    assert path.read_text() == '{"seq": 0}\n'       # a run killed now still leaves a valid file
    audit.write(json.dumps({"seq": 1}))
    audit.close()
    assert [json.loads(line)["seq"] for line in path.read_text().splitlines()] == [0, 1]


def test_unwritable_path_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="cannot write the audit file"):
        AuditLog(tmp_path / "no" / "such" / "dir" / "audit.jsonl")
