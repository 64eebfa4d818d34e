"""What became of each branch (harness/fates.py), as `status`, `show` and `--json`
show it after a real run, integrate and gate: no branch whose work is not in the
integration reads as plainly succeeded."""

from __future__ import annotations

import json

from gitutil import git, harness, make_repo, write_plan

TEST = "grep -qv broken flag.txt"  # red once the breaker's flag is folded


def test_status_show_and_json_give_each_branch_its_fate(tmp_path):
    repo = make_repo(tmp_path / "repo", {"shared.txt": "base\n", "flag.txt": "ok\n"})
    plan = write_plan(tmp_path / "plan.toml", f'''
        [run]
        sandbox = "local"
        id = "f"
        max_parallel = 1
        retries = 0
        test_cmd = "{TEST}"

        [[task]]
        id = "clean"
        command = "echo new > clean.txt"

        [[task]]
        id = "first"
        command = "echo first > shared.txt"

        [[task]]
        id = "second"
        command = "echo second > shared.txt"

        [[task]]
        id = "breaker"
        command = "echo broken > flag.txt"

        [[task]]
        id = "failing"
        command = "exit 3"
        ''')
    assert harness("run", str(plan), "--repo", str(repo)).returncode == 1  # `failing` fails
    listed = harness("status", "--repo", str(repo)).stdout
    assert "1 failed, 4 succeeded" in listed and "branches" not in listed  # nothing integrated yet
    assert json.loads(harness("show", "f", "clean", "--repo", str(repo), "--json").stdout)["branch_fate"] \
        == {"fate": "not_integrated", "detail": "no integration yet"}

    assert harness("integrate", "f", "--repo", str(repo), "--order", "plan").returncode == 0
    git(repo, "branch", "release")
    gated = harness("gate", "f", "--repo", str(repo), "--land", "release")
    assert gated.returncode == 0, gated.stderr
    assert git(repo, "show", "release:clean.txt") == "new"

    shown = harness("show", "f", "--repo", str(repo), "--json")
    fates = {t: f["fate"] for t, f in json.loads(shown.stdout)["branch_fates"].items()}
    assert fates == {"clean": "landed", "first": "landed", "second": "conflicted",
                     "breaker": "rejected_by_gate", "failing": "no_branch"}

    table = {line.split()[0]: line.split() for line in harness("show", "f", "--repo", str(repo)).stdout.splitlines()
             if line.split() and line.split()[0] in fates}
    # the agent's own status, then its branch's fate
    assert table["second"][1] == "succeeded" and table["second"][4] == "conflicted" and "shared.txt" in table["second"]
    assert table["breaker"][1] == "succeeded" and table["breaker"][4] == "rejected_by_gate"
    assert table["clean"][4] == "landed" and table["failing"][1] == "failed"

    listed = harness("status", "--repo", str(repo)).stdout
    assert "1 failed, 4 succeeded; branches: 2 landed, 1 conflicted, 1 rejected_by_gate" in listed

    one = harness("show", "f", "second", "--repo", str(repo))
    assert "fate    conflicted: shared.txt (with first)" in one.stdout
    assert json.loads(harness("show", "f", "breaker", "--repo", str(repo), "--json").stdout)["branch_fate"]["fate"] \
        == "rejected_by_gate"
