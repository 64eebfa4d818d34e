"""Every bad input: one clear line on stderr, exit 2, and the repo exactly as it was."""

from __future__ import annotations

import pytest

from gitutil import git, harness, make_repo, snapshot, write_plan
from harness.errors import UsageError
from harness.integrate.forecast import forecast_run
from harness.repo.run import Run
from harness.gate.gate import gate_run
from harness.integrate.integrator import integrate_run

GOOD_TASK = '[[task]]\nid = "a"\ncommand = "echo a > a.txt"\n'

CASES = {
    "unknown base ref": ('[run]\nsandbox = "local"\nbase = "no-such-branch"\n' + GOOD_TASK,
                         "unknown ref 'no-such-branch'"),
    "not toml": ("[run\nsandbox = local", "not valid TOML"),
    "bad field": ('[run]\nsandbox = "local"\n[[task]]\nid = "a"\ncommand = "x"\ntimeout_s = "soon"\n',
                  "task 'a' field timeout_s"),
    "unknown field": ('[run]\nsandbox = "local"\n[[task]]\nid = "a"\ncommand = "x"\nretires = 2\n',
                      "task 'a' field retires"),
    "bad run field": ('[run]\nsandbox = "local"\nmax_parallel = 0\n' + GOOD_TASK, "run.max_parallel"),
    "zero stall": ('[run]\nsandbox = "local"\nstall_s = 0\n' + GOOD_TASK, "run.stall_s"),
    "zero steps": ('[run]\nsandbox = "local"\n[[task]]\nid = "a"\ncommand = "x"\nmax_steps = 0\n',
                   "task 'a' field max_steps"),
    "unknown strategy": ('[run]\nsandbox = "local"\n[[task]]\nid = "a"\nstrategy = "nope.toml"\n',
                         "no strategy file nope.toml"),
    "duplicate ids": ('[run]\nsandbox = "local"\n' + GOOD_TASK + GOOD_TASK, "duplicate task id 'a'"),
    "cycle": ('[run]\nsandbox = "local"\n[[task]]\nid = "a"\ncommand = "x"\ndepends_on = ["b"]\n'
              '[[task]]\nid = "b"\ncommand = "x"\ndepends_on = ["a"]\n', "dependency cycle"),
    "missing dependency": ('[run]\nsandbox = "local"\n[[task]]\nid = "a"\ncommand = "x"\n'
                           'depends_on = ["ghost"]\n', "no task 'ghost'"),
    "no command": ('[run]\nsandbox = "local"\n[[task]]\nid = "a"\n', "needs a command"),
    "no tasks": ('[run]\nsandbox = "local"\n', "task"),
    "bad task id": ('[run]\nsandbox = "local"\n[[task]]\nid = "a/b"\ncommand = "x"\n', "field id"),
    # ids git refuses in refs/heads/harness/<run>/<task> or refs/harness/<run>/<task>/<n>
    **{f"task id {tid}": (f'[run]\nsandbox = "local"\n[[task]]\nid = "{tid}"\ncommand = "x"\n',
                          f"task {tid!r} field id: git refuses it in a ref name")
       for tid in ("a.", "a..b", "x.lock", "b.lock")},
    "run id a..b": ('[run]\nsandbox = "local"\nid = "a..b"\n' + GOOD_TASK, "run.id: git refuses it"),
    "run id x.lock": ('[run]\nsandbox = "local"\nid = "x.lock"\n' + GOOD_TASK, "run.id: git refuses it"),
    "task id integration": ('[run]\nsandbox = "local"\n[[task]]\nid = "integration"\ncommand = "x"\n',
                            "task 'integration' field id: reserved"),
    # time limits: finite and bounded, or no limit is enforced at all
    "run timeout inf": ('[run]\nsandbox = "local"\ntimeout_s = inf\n' + GOOD_TASK, "run.timeout_s: Input should be a finite"),
    "run timeout nan": ('[run]\nsandbox = "local"\ntimeout_s = nan\n' + GOOD_TASK, "run.timeout_s: Input should be a finite"),
    "run timeout over a week": ('[run]\nsandbox = "local"\ntimeout_s = 604801\n' + GOOD_TASK,
                                "run.timeout_s: Input should be less than or equal to 604800"),
    "run stall inf": ('[run]\nsandbox = "local"\nstall_s = inf\n' + GOOD_TASK, "run.stall_s: Input should be a finite"),
    "run backoff inf": ('[run]\nsandbox = "local"\nbackoff_s = inf\n' + GOOD_TASK, "run.backoff_s: Input should be a finite"),
    "run backoff nan": ('[run]\nsandbox = "local"\nbackoff_s = nan\n' + GOOD_TASK, "run.backoff_s: Input should be a finite"),
    "task timeout inf": ('[run]\nsandbox = "local"\n[[task]]\nid = "a"\ncommand = "x"\ntimeout_s = inf\n',
                         "task 'a' field timeout_s: Input should be a finite"),
    "task timeout -inf": ('[run]\nsandbox = "local"\n[[task]]\nid = "a"\ncommand = "x"\ntimeout_s = -inf\n',
                          "task 'a' field timeout_s: Input should be a finite"),
    "task stall nan": ('[run]\nsandbox = "local"\n[[task]]\nid = "a"\ncommand = "x"\nstall_s = nan\n',
                       "task 'a' field stall_s: Input should be a finite"),
    # write scopes are repo-relative paths; anything else never matches
    **{f"write scope {glob!r}": (f'[run]\nsandbox = "local"\n[[task]]\nid = "a"\ncommand = "x"\n'
                                 f'write_scope = ["src/**", {glob!r}]\n', f"task 'a' field write_scope.1: {why}")
       for glob, why in (("/etc/**", "'/etc/**' is absolute"), ("../**", "'../**' leaves the repository"),
                         ("src/../../x", "'src/../../x' leaves the repository"), ("", "an empty path glob"),
                         ("  ", "an empty path glob"))},
    "empty test_cmd": ('[run]\nsandbox = "local"\ntest_cmd = ""\n' + GOOD_TASK, "run.test_cmd: an empty command"),
    "blank test_cmd": ('[run]\nsandbox = "local"\ntest_cmd = " \\t "\n' + GOOD_TASK, "run.test_cmd: an empty command"),
}


def _assert_one_clean_line(proc, expected: str, plan=None):
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("harness: ")
    assert expected in lines[0]
    if plan is not None and "TOML" not in expected and "strategy" not in expected:
        assert str(plan) in lines[0] or "unknown ref" in lines[0]
    assert "Traceback" not in proc.stderr


def _assert_untouched(repo, before):
    assert snapshot(repo) == before
    assert not (repo / ".git" / "harness").exists()
    assert not (repo / ".git" / "worktrees").exists()
    assert git(repo, "for-each-ref", "refs/heads/harness", "refs/harness") == ""


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_plan_exits_2_and_creates_nothing(tmp_path, case):
    body, expected = CASES[case]
    repo = make_repo(tmp_path / "repo")
    plan = write_plan(tmp_path / "plan.toml", body)
    before = snapshot(repo)
    proc = harness("run", str(plan), "--repo", str(repo))
    _assert_one_clean_line(proc, expected, plan)
    _assert_untouched(repo, before)


def test_not_a_git_repository(tmp_path):
    plan = write_plan(tmp_path / "plan.toml", '[run]\nsandbox = "local"\n' + GOOD_TASK)
    target = tmp_path / "plain"
    target.mkdir()
    proc = harness("run", str(plan), "--repo", str(target))
    _assert_one_clean_line(proc, "not a git repository")
    assert list(target.iterdir()) == []


def test_missing_plan_file(tmp_path):
    repo = make_repo(tmp_path / "repo")
    proc = harness("run", str(tmp_path / "absent.toml"), "--repo", str(repo))
    _assert_one_clean_line(proc, "no such file")


def test_existing_run_id(tmp_path):
    repo = make_repo(tmp_path / "repo")
    plan = write_plan(tmp_path / "plan.toml", '[run]\nsandbox = "local"\nid = "dup"\n' + GOOD_TASK)
    assert harness("run", str(plan), "--repo", str(repo)).returncode == 0
    before = snapshot(repo)
    refs = git(repo, "for-each-ref")
    record = (repo / ".git/harness/runs/dup/record.json").read_bytes()
    proc = harness("run", str(plan), "--repo", str(repo))
    _assert_one_clean_line(proc, "run 'dup' exists already")
    assert snapshot(repo) == before
    assert git(repo, "for-each-ref") == refs
    assert (repo / ".git/harness/runs/dup/record.json").read_bytes() == record


def test_unknown_run_for_show_and_clean(tmp_path):
    repo = make_repo(tmp_path / "repo")
    for cmd in ("show", "clean"):
        _assert_one_clean_line(harness(cmd, "nope", "--repo", str(repo)), "unknown run 'nope'")


@pytest.mark.parametrize("line,expected", [
    ('write_scope = ["/etc/**"]', "write_scope.0: '/etc/**' is absolute"),
    ('write_scope = ["engine/*.py", "../**"]', "write_scope.1: '../**' leaves the repository"),
    ("timeout_s = inf", "timeout_s: Input should be a finite number"),
    ("stall_s = nan", "stall_s: Input should be a finite number"),
])
def test_bad_strategy_file_is_named_and_creates_nothing(tmp_path, line, expected):
    repo = make_repo(tmp_path / "repo")
    strategy = tmp_path / "strategies" / "fast.toml"
    strategy.parent.mkdir()
    strategy.write_text(f'name = "fast"\nprompt = "go"\ncommand = "true"\n{line}\n')
    plan = write_plan(tmp_path / "plan.toml", '[run]\nsandbox = "local"\n[[task]]\nid = "a"\n'
                      'strategy = "strategies/fast.toml"\n')
    before = snapshot(repo)
    proc = harness("run", str(plan), "--repo", str(repo))
    _assert_one_clean_line(proc, expected)
    assert str(strategy) in proc.stderr
    _assert_untouched(repo, before)


@pytest.mark.parametrize("run_id", ["a..b", "x.lock", "../runs/X", "r."])
def test_bad_run_id_option_creates_nothing(tmp_path, run_id):
    repo = make_repo(tmp_path / "repo")
    plan = write_plan(tmp_path / "plan.toml", '[run]\nsandbox = "local"\n' + GOOD_TASK)
    before = snapshot(repo)
    _assert_one_clean_line(harness("run", str(plan), "--repo", str(repo), "--run-id", run_id),
                           f"invalid run id {run_id!r}")
    _assert_untouched(repo, before)


def _harness_state(repo) -> dict:
    """Everything a harness command could write: the user's part, every ref (the
    harness's too), the run store's files byte for byte, and git's worktree list."""
    store = repo / ".git" / "harness"
    files = {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}
    return {"user": snapshot(repo), "refs": git(repo, "for-each-ref", "--format=%(refname) %(objectname)"),
            "store": files, "worktrees": git(repo, "worktree", "list", "--porcelain")}


@pytest.fixture
def integrated(tmp_path):
    """A repository with a real run `X`, integrated; `../runs/X` once reached it."""
    repo = make_repo(tmp_path / "repo")
    plan = write_plan(tmp_path / "plan.toml", '[run]\nsandbox = "local"\nid = "X"\ntest_cmd = "true"\n'
                      + GOOD_TASK)
    assert harness("run", str(plan), "--repo", str(repo)).returncode == 0
    assert harness("integrate", "X", "--repo", str(repo)).returncode == 0
    return repo


RUN_ID_COMMANDS = {
    "show": ("show", "{id}"),
    "show task": ("show", "{id}", "a"),
    "clean": ("clean", "{id}", "--force"),
    "integrate": ("integrate", "{id}"),
    "gate": ("gate", "{id}", "--test-cmd", "true"),
    "conflicts": ("conflicts", "{id}"),
    "bench report": ("bench", "report", "{id}"),
    "bench compare first": ("bench", "compare", "{id}", "X"),
    "bench compare second": ("bench", "compare", "X", "{id}"),
}


@pytest.mark.parametrize("command", sorted(RUN_ID_COMMANDS))
def test_every_command_refuses_a_bad_run_id_and_touches_nothing(integrated, command):
    repo = integrated
    before = _harness_state(repo)
    for run_id in ("../runs/X", "a..b", "x.lock", "X."):
        args = [a.replace("{id}", run_id) for a in RUN_ID_COMMANDS[command]]
        proc = harness(*args, "--repo", str(repo))
        _assert_one_clean_line(proc, f"invalid run id {run_id!r}")
        assert proc.stdout == ""
        assert _harness_state(repo) == before, (command, run_id)


def test_library_entry_points_refuse_a_bad_run_id(integrated):
    before = _harness_state(integrated)
    for call in (lambda r: integrate_run(Run.open(integrated, r)),
                 lambda r: gate_run(Run.open(integrated, r), test_cmd="true"),
                 lambda r: forecast_run(Run.open(integrated, r))):
        for run_id in ("../runs/X", "X.lock"):
            with pytest.raises(UsageError, match="invalid run id"):
                call(run_id)
    assert _harness_state(integrated) == before


@pytest.mark.parametrize("test_cmd", ["", "  ", "\t"])
def test_gate_refuses_an_empty_test_command(integrated, test_cmd):
    """Once silently replaced by the plan's test_cmd; now refused before any test runs."""
    before = _harness_state(integrated)
    proc = harness("gate", "X", "--test-cmd", test_cmd, "--repo", str(integrated))
    _assert_one_clean_line(proc, "--test-cmd is empty")
    assert _harness_state(integrated) == before
