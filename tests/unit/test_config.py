from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import DockerSandboxConfig, LocalSandboxConfig
from harness.errors import PlanError
from harness.run.plan import resolve_plan
from harness.repo.workspace import scope_matcher

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize("globs,path,ok", [
    (["src/**"], "src/a/b.py", True),
    (["src/**"], "srcx/a.py", False),
    (["src/*.py"], "src/a.py", True),
    (["src/*.py"], "src/a/b.py", False),
    (["**/*.md"], "README.md", True),
    (["**/*.md"], "docs/x/y.md", True),
    (["docs/"], "docs/a/b", True),
    (["a?.txt"], "ab.txt", True),
    (["a?.txt"], "a/.txt", False),
    ([], "anything/at/all", True),
    (["x.txt", "y/**"], "y/z", True),
])
def test_scope_matcher(globs, path, ok):
    assert scope_matcher(globs)(path) is ok


def test_plan_defaults_and_overrides(tmp_path):
    (tmp_path / "p.toml").write_text("""
[run]
timeout_s = 30
retries = 1
env = { A = "1" }

[[task]]
id = "x"
command = "true"

[[task]]
id = "y"
command = "true"
timeout_s = 5
retries = 0
sandbox = { type = "docker", memory = "256m", network = "bridge" }
env = { B = "2" }
""")
    plan = resolve_plan(tmp_path / "p.toml", max_parallel=7)
    assert plan.run.max_parallel == 7
    x, y = plan.tasks["x"], plan.tasks["y"]
    assert (x.timeout_s, x.retries) == (30, 1)
    assert (y.timeout_s, y.retries) == (5, 0)
    assert isinstance(x.sandbox, DockerSandboxConfig) and x.sandbox.network == "none"
    assert y.sandbox.memory == "256m" and y.sandbox.network == "bridge"
    assert y.env == {"A": "1", "B": "2"}
    local = resolve_plan(tmp_path / "p.toml", sandbox="local")
    assert all(isinstance(t.sandbox, LocalSandboxConfig) for t in local.tasks.values())
    kept = resolve_plan(tmp_path / "p.toml", keep_sandboxes=True)
    assert kept.tasks["y"].sandbox.keep is True


def test_validation_error_names_file_task_and_field(tmp_path):
    (tmp_path / "p.toml").write_text('[[task]]\nid = "first"\ncommand = "x"\n'
                                     '[[task]]\nid = "second"\ncommand = "x"\nsandbox = { type = "vm" }\n')
    with pytest.raises(PlanError) as err:
        resolve_plan(tmp_path / "p.toml")
    msg = str(err.value)
    assert str(tmp_path / "p.toml") in msg and "task 'second'" in msg and "sandbox" in msg


SPEC = '''[bench]
name = "x"
target = "t"
strategies = ["s/*.toml"]
test_cmd = "true"
bench_cmd = "true"
metric = "m"
'''


@pytest.mark.parametrize("extra,strategy,expected", [
    ("timeout_s = inf", "fast", "bench.timeout_s: Input should be a finite number"),
    ("bench_timeout_s = nan", "fast", "bench.bench_timeout_s: Input should be a finite number"),
    ("test_timeout_s = 1e12", "fast", "bench.test_timeout_s: Input should be less than or equal to 604800"),
    ("stall_s = inf", "fast", "bench.stall_s: Input should be a finite number"),
    ('profile_cmd = " "', "fast", "bench.profile_cmd: an empty command"),
    ("", "a..b", "bench.strategies: a..b.toml cannot name a task: git refuses it"),
    ("", "integration", "bench.strategies: integration.toml cannot name a task: reserved"),
])
def test_bench_spec_limits_commands_and_strategy_names(tmp_path, extra, strategy, expected):
    from harness.bench.spec import load_spec

    (tmp_path / "t").mkdir()
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / f"{strategy}.toml").write_text('name = "n"\nprompt = "p"\n')
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC + extra + "\n")
    with pytest.raises(PlanError) as err:
        load_spec(spec)
    assert str(err.value).startswith(f"{spec}: ") and expected in str(err.value)
    spec.write_text(SPEC.replace('test_cmd = "true"', 'test_cmd = ""'))
    with pytest.raises(PlanError, match="bench.test_cmd: an empty command"):
        load_spec(spec)
