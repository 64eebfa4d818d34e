"""The one versioning policy of every record (harness/versioning.py), on the run
record and as the run store applies it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.records import RunRecord, TaskStatus

FIXTURES = Path(__file__).parent / "fixtures"


def test_old_record_stays_readable():
    """A version-1 record written before later optional fields existed still loads."""
    data = json.loads((FIXTURES / "record_v1.json").read_text())
    record = RunRecord.model_validate(data)
    assert record.schema_version == 1
    assert record.tasks["a"].status == TaskStatus.succeeded
    assert record.merge is None and record.gate is None and record.worktrees == []
    again = RunRecord.model_validate_json(record.model_dump_json())
    assert again == record


def test_records_read_keys_from_newer_writers_and_refuse_newer_versions(tmp_path):
    """The one versioning policy (harness.records), as the run store applies it."""
    from gitutil import make_repo
    from harness.errors import RecordError
    from harness.repo.store import RunStore
    from harness.repo.workspace import Workspace

    data = json.loads((FIXTURES / "record_v1.json").read_text())
    assert RunRecord.model_validate({**data, "added_later": [1]}) == RunRecord.model_validate(data)
    store = RunStore(Workspace(make_repo(tmp_path / "repo")), data["run_id"])
    store.dir.mkdir(parents=True)
    store.record_path.write_text(json.dumps({**data, "added_later": [1]}))
    assert store.load().run_id == data["run_id"]
    store.record_path.write_text(json.dumps({**data, "schema_version": 99}))
    with pytest.raises(RecordError, match="schema_version 99 is newer than this harness reads"):
        store.load()
