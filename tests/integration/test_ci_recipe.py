"""The CI recipe works as a target repository would use it: the composite action at
the root of this checkout (action.yml) run step by step the way the GitHub runner runs
a composite action's `run:` steps, on a scratch target repository holding nothing of
ours but a plan.

What the runner does and this test does too: each step's `${{ inputs.* }}` and
`${{ github.* }}` expressions are replaced by their values before the script runs;
the script runs as `bash --noprofile --norc -eo pipefail FILE` in the workspace, with
the step's `env:` and the variables GitHub sets (CI, GITHUB_*, RUNNER_TEMP); lines a
step appends to $GITHUB_PATH and $GITHUB_ENV reach the later steps, those in
$GITHUB_OUTPUT become its outputs. The harness is installed by the action's own step
into a fresh venv from this checkout, so the package index must be reachable.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

import harness
from gitutil import git, make_repo

ROOT = Path(harness.__file__).resolve().parents[1]
ACTION = ROOT / "action.yml"
EXAMPLE = ROOT / "examples/ci/github-actions.yml"
EXPR = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")

APP = "def add(a, b):\n    return a + b\n"
CHECK = "import app\nassert app.add(2, 3) == 5, 'add is broken'\nprint('ok')\n"
PLAN = """\
[run]
sandbox = "local"
test_cmd = "python3 check.py"

[[task]]
id = "notes"
command = "echo '# notes' > NOTES.md"

[[task]]
id = "mul"
command = "printf 'def mul(a, b):\\\\n    return a * b\\\\n' > mul.py"

[[task]]
id = "breaker"
command = "printf 'def add(a, b):\\\\n    return a - b\\\\n' > app.py"
"""


def _expand(text: str, context: dict[str, dict[str, str]]) -> str:
    """Replace `${{ a.b }}` (and `${{ steps.ID.outputs.NAME }}`) as the runner does;
    any other expression fails the test, so the action stays within what this
    test can run."""
    def value(match: re.Match) -> str:
        expr = match.group(1)
        parts = expr.split(".")
        if parts[0] == "steps" and len(parts) == 4 and parts[2] == "outputs":
            return context["steps"].get(parts[1], {}).get(parts[3], "")
        assert len(parts) == 2 and parts[0] in ("inputs", "github"), f"expression not understood: {expr}"
        assert parts[1] in context[parts[0]], f"unknown {expr}"
        return context[parts[0]][parts[1]]

    return EXPR.sub(value, text)


def run_action(workspace: Path, runner_temp: Path, with_: dict[str, str]) -> tuple[int, dict[str, str], str]:
    """Run action.yml's steps in `workspace` with these inputs; returns (exit code of
    the last step run, the action's outputs, everything the steps printed)."""
    action = yaml.safe_load(ACTION.read_text())
    assert action["runs"]["using"] == "composite"
    inputs = {name: str(spec.get("default", "")) for name, spec in action["inputs"].items()}
    assert set(with_) <= set(inputs), f"no such inputs: {set(with_) - set(inputs)}"
    inputs.update(with_)
    missing = [n for n, spec in action["inputs"].items() if spec.get("required") and not inputs[n]]
    assert not missing, missing
    github = {"action_path": str(ROOT), "workspace": str(workspace), "run_id": "4242", "run_attempt": "1"}
    context: dict = {"inputs": inputs, "github": github, "steps": {}}
    files = runner_temp / "_runner_file_commands"
    files.mkdir(parents=True)
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": os.environ.get("HOME", str(runner_temp)), "CI": "true", "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(workspace), "GITHUB_RUN_ID": "4242", "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_REPOSITORY": "example/target", "GITHUB_ACTION_PATH": str(ROOT),
        "RUNNER_TEMP": str(runner_temp), "RUNNER_OS": "Linux",
        # this machine's way to the package index (its certificates, its mirrors)
        **{k: v for k, v in os.environ.items() if k.startswith("PIP_")},
    }
    printed, code = "", 0
    for n, step in enumerate(action["runs"]["steps"]):
        assert step.get("shell") == "bash" and "run" in step and "if" not in step and "uses" not in step, step
        step_env = {k: _expand(str(v), context) for k, v in (step.get("env") or {}).items()}
        script = files / f"step{n}.sh"
        script.write_text(_expand(step["run"], context))
        commands = {name: files / f"{name}_{n}" for name in ("GITHUB_PATH", "GITHUB_ENV", "GITHUB_OUTPUT")}
        for path in commands.values():
            path.touch()
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], cwd=workspace,
                              env={**env, **step_env, **{k: str(v) for k, v in commands.items()}},
                              capture_output=True, text=True, timeout=1200)
        printed += f"--- {step['name']} (exit {proc.returncode})\n{proc.stdout}{proc.stderr}"
        for line in reversed(commands["GITHUB_PATH"].read_text().splitlines()):
            env["PATH"] = f"{line}:{env['PATH']}"
        env.update(_key_values(commands["GITHUB_ENV"].read_text()))
        if step.get("id"):
            context["steps"][step["id"]] = _key_values(commands["GITHUB_OUTPUT"].read_text())
        code = proc.returncode
        if code != 0:
            break
    outputs = {name: _expand(str(spec["value"]), context) for name, spec in action["outputs"].items()}
    return code, outputs, printed


def _key_values(text: str) -> dict[str, str]:
    """`NAME=value` lines (and `NAME<<EOF` blocks) of $GITHUB_ENV / $GITHUB_OUTPUT;
    a later line wins, as on the runner."""
    out: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, end = line.split("<<", 1)
            block = []
            for more in lines:
                if more == end:
                    break
                block.append(more)
            out[name] = "\n".join(block)
        elif "=" in line:
            name, value = line.split("=", 1)
            out[name] = value
    return out


def _target(path: Path, plan: str, check: str = CHECK) -> Path:
    """A target repository as a workflow's checkout has it: its code, its tests, a plan."""
    repo = make_repo(path, {"app.py": APP, "check.py": check, "harness/plan.toml": plan})
    git(repo, "config", "user.name", "ci")
    git(repo, "config", "user.email", "ci@example.com")
    return repo


def test_the_action_installs_the_harness_runs_integrates_gates_and_lands(tmp_path):
    repo = _target(tmp_path / "target", PLAN)
    base = git(repo, "rev-parse", "main")
    code, outputs, printed = run_action(repo, tmp_path / "runner", {
        "plan": "harness/plan.toml", "land": "main", "sandbox": "local", "image": "",
        "python": sys._base_executable})
    assert code == 0, printed
    assert "harness, version" in printed and "no sandbox image to build" in printed
    assert outputs["run-id"] == "ci-4242-1" and outputs["green"] == "true"

    report = json.loads(Path(outputs["report"]).read_text())
    assert Path(outputs["report"]) == repo / "harness-gate.json"
    assert report["status"] == "green" and report["culprits"] == ["breaker"]
    assert report["landed_ref"] == "refs/heads/main"
    main = git(repo, "rev-parse", "main")
    assert main == report["tested_commit"] != base
    assert git(repo, "rev-parse", "harness/ci-4242-1/integration") == main
    files = git(repo, "ls-tree", "-r", "--name-only", "main").splitlines()
    assert {"NOTES.md", "mul.py", "app.py"} <= set(files)
    assert git(repo, "show", "main:app.py") == APP.strip()  # the breaker was bisected out
    # The installed harness is this checkout's distribution, not the one on PATH here.
    venv = tmp_path / "runner/harness-venv"
    shown = subprocess.run([str(venv / "bin/python"), "-m", "pip", "show", "harness-agents"],
                           capture_output=True, text=True)
    assert shown.returncode == 0 and "Name: harness-agents" in shown.stdout


def test_a_red_gate_fails_the_job_and_lands_nothing(tmp_path):
    broken = CHECK.replace("== 5", "== 6")  # the target's own tests fail on every commit
    repo = _target(tmp_path / "target", PLAN, check=broken)
    base = git(repo, "rev-parse", "main")
    code, outputs, printed = run_action(repo, tmp_path / "runner", {
        "plan": "harness/plan.toml", "land": "main", "sandbox": "local", "image": "", "run-id": "red",
        "python": sys._base_executable})
    assert code == 1, printed
    assert "::error::the gate of run red is red" in printed
    assert outputs["green"] == "false" and outputs["run-id"] == "red"
    assert json.loads(Path(outputs["report"]).read_text())["status"] == "red"
    assert git(repo, "rev-parse", "main") == base


def test_the_example_workflow_only_uses_the_action():
    """The example needs no file of ours in the target: it checks out, sets up Python,
    and `uses:` this repository's action with inputs the action has."""
    workflow = yaml.safe_load(EXAMPLE.read_text())
    inputs = set(yaml.safe_load(ACTION.read_text())["inputs"])
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    assert not [s for s in steps if "run" in s], "the example runs no script of its own"
    ours = [s for s in steps if not s["uses"].startswith("actions/")]
    assert len(ours) == 1 and set(ours[0]["with"]) <= inputs and "plan" in ours[0]["with"]
    text = EXAMPLE.read_text()
    assert "examples/ci" not in text and "pip install" not in text
    assert not (ROOT / "examples/ci/gate.sh").exists()
