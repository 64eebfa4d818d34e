"""Hostile output through a real `harness run`: an agent that floods its output, and
one that leaves a daemon behind. The run must finish with a typed status, keep the
log within its cap (with the marker), and leave the user's repository alone."""

from __future__ import annotations

import random
import subprocess
import time
from pathlib import Path

import pytest

from gitutil import harness, make_repo, snapshot, write_plan
from harness.records import RunRecord, TaskStatus
from sandboxutil import require_docker

FLOOD = 500_000_000
CAP = 2**20
MARK = b"\n::harness-log-truncated:: "


@pytest.mark.parametrize("backend", ["local", pytest.param("docker", marks=pytest.mark.docker)])
def test_a_500_mb_flood_ends_typed_with_a_capped_log(backend, tmp_path):
    if backend == "docker":
        require_docker()
    repo = make_repo(tmp_path / "repo")
    plan = write_plan(tmp_path / "plan.toml", f"""
        [run]
        sandbox = "{backend}"
        id = "flood"
        timeout_s = 900
        max_log_bytes = {CAP}

        [[task]]
        id = "flood"
        command = "yes flood-flood-flood | head -c {FLOOD}; echo; echo '::harness-step:: done'; echo > flooded.txt; echo LAST"
    """)
    before = snapshot(repo)
    proc = harness("run", str(plan), "--repo", str(repo), "--json", timeout=1200)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    record = RunRecord.model_validate_json(proc.stdout)
    task = record.tasks["flood"]
    assert task.status == TaskStatus.succeeded
    attempt = task.attempts[-1]
    assert attempt.steps == 1 and attempt.output_tail.endswith("LAST\n")
    log = Path(attempt.log_path).read_bytes()
    kept, sep, marker = log.rpartition(MARK)
    assert sep and len(kept) == CAP
    dropped = int(marker.split()[1])
    assert CAP + dropped == FLOOD + len("\n::harness-step:: done\nLAST\n")
    assert snapshot(repo) == before


def test_a_setsid_daemon_is_gone_after_a_local_run(tmp_path):
    repo = make_repo(tmp_path / "repo")
    tag = random.randint(10**6, 10**7)
    plan = write_plan(tmp_path / "plan.toml", f"""
        [run]
        sandbox = "local"
        id = "daemon"

        [[task]]
        id = "daemon"
        command = "setsid sleep {tag} </dev/null >/dev/null 2>&1 & setsid env -i sleep {tag + 1} </dev/null >/dev/null 2>&1 & sleep 0.3; echo x > x.txt"
    """)
    before = snapshot(repo)
    proc = harness("run", str(plan), "--repo", str(repo), "--json")
    assert proc.returncode == 0, proc.stderr
    assert RunRecord.model_validate_json(proc.stdout).tasks["daemon"].status == TaskStatus.succeeded
    time.sleep(0.2)
    left = subprocess.run(["pgrep", "-af", f"sleep {tag}"], capture_output=True, text=True).stdout
    assert left.strip() == "", f"processes outlived the run: {left}"
    assert snapshot(repo) == before
