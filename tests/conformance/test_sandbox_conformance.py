"""One conformance suite for every sandbox backend, through the Sandbox protocol.

What `local` cannot do, so those cases run for docker only:
- network isolation: the command shares the host's network;
- filesystem isolation: it sees the host's files, so /harness is not read-only and
  the shared .git of a worktree is visible;
- resource limits: no memory, CPU or pids limit, so no "oom" reason.
"""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time
import uuid

import pytest

from harness.sandbox.base import Sandbox
from sandboxutil import make_request, make_sandbox

BACKENDS = ["local", pytest.param("docker", marks=pytest.mark.docker)]


@pytest.fixture(params=BACKENDS)
def sandbox(request) -> Sandbox:
    sb = make_sandbox(request.param)
    sb.check()
    return sb


def sh(script: str) -> list[str]:
    return ["sh", "-c", script]


def test_is_a_sandbox(sandbox):
    assert isinstance(sandbox, Sandbox)
    assert sandbox.name in ("local", "docker")
    assert sandbox.isolates == (sandbox.name == "docker")


def test_model_route_round_trip(sandbox):
    """Open, seal and close a run's model route; closing twice is fine. Whether the
    route keeps a sandbox to its gateway is tests/docker/test_model_network.py's."""
    run_id = f"conf{uuid.uuid4().hex[:8]}"
    route = sandbox.open_model_route(run_id)
    try:
        assert route.bind_host and route.agent_host
        assert (route.network is None) == (not sandbox.isolates)
        sandbox.seal_model_route(run_id, 40000)
    finally:
        sandbox.close_model_route(run_id)
    sandbox.close_model_route(run_id)


@pytest.mark.parametrize("code", [0, 1, 7, 42])
def test_exit_code_is_data(sandbox, tmp_path, code):
    result = sandbox.run(make_request(tmp_path, sh(f"echo out; exit {code}")))
    assert result.exit_code == code
    assert not result.timed_out and result.reason is None
    assert result.duration_s > 0


def test_missing_command_is_data(sandbox, tmp_path):
    req = make_request(tmp_path, ["no-such-command-here"])
    result = sandbox.run(req)
    assert result.exit_code is None or result.exit_code != 0
    assert result.reason == "start_failed"
    assert "no-such-command-here" in req.log_path.read_text()


def test_output_is_merged_and_streamed(sandbox, tmp_path):
    req = make_request(tmp_path, sh("echo first; echo to-stderr >&2; sleep 4; echo second"))
    results = []
    runner = threading.Thread(target=lambda: results.append(sandbox.run(req)))
    runner.start()
    seen_early = False
    deadline = time.monotonic() + 30  # a loaded machine may be slow to start it
    while time.monotonic() < deadline and runner.is_alive():
        text = req.log_path.read_text() if req.log_path.exists() else ""
        if "first" in text and "to-stderr" in text and "second" not in text:
            seen_early = True
            break
        time.sleep(0.05)
    runner.join(30)
    assert seen_early, "output reached the log only after the command ended"
    text = req.log_path.read_text()
    assert text.index("first") < text.index("second")
    assert "to-stderr" in text
    assert results[0].exit_code == 0
    assert "second" in results[0].output_tail


def test_log_is_appended(sandbox, tmp_path):
    req = make_request(tmp_path, sh("echo one"))
    sandbox.run(req)
    sandbox.run(req.model_copy(update={"command": sh("echo two")}))
    assert req.log_path.read_text().splitlines()[-2:] == ["one", "two"]


def test_output_tail_is_bounded(sandbox, tmp_path):
    result = sandbox.run(make_request(tmp_path, sh("i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); done; echo END")))
    assert result.exit_code == 0
    assert 1000 < len(result.output_tail) <= 4096
    assert result.output_tail.rstrip().endswith("END")


def test_env_vars(sandbox, tmp_path):
    script = ('test "$FOO" = "bar baz" && test -f "$HARNESS_TASK_FILE" && '
              'test "$HARNESS_TASK_FILE" = "$HARNESS_DIR/task.json" && '
              'test "$(cd "$HARNESS_WORKSPACE" && pwd -P)" = "$(pwd -P)" && cat "$HARNESS_TASK_FILE"')
    result = sandbox.run(make_request(tmp_path, sh(script), env={"FOO": "bar baz"}))
    assert result.exit_code == 0, result.output_tail
    assert '"id": "t1"' in result.output_tail


def test_workspace_is_writable_and_is_the_cwd(sandbox, tmp_path):
    req = make_request(tmp_path, sh("cat given.txt && mkdir -p sub && echo made > sub/out.txt"))
    (req.workspace / "given.txt").write_text("from host\n")
    result = sandbox.run(req)
    assert result.exit_code == 0, result.output_tail
    assert "from host" in result.output_tail
    assert (req.workspace / "sub" / "out.txt").read_text() == "made\n"


def test_harness_dir_is_read_only(sandbox, tmp_path):
    if not sandbox.isolates:
        pytest.skip("local: no filesystem isolation (see module docstring)")
    req = make_request(tmp_path, sh('touch "$HARNESS_DIR/new" ; echo tried > "$HARNESS_DIR/task.json"'))
    result = sandbox.run(req)
    assert result.exit_code != 0
    assert not (req.harness_dir / "new").exists()
    assert '"t1"' in (req.harness_dir / "task.json").read_text()


def test_timeout_kills_the_whole_tree(sandbox, tmp_path):
    tag = random.randint(10**6, 10**7)  # unique per test run, so parallel runs do not meet
    script = f"sleep {tag} & sleep {tag + 1} & echo started; wait"
    limit = 2.0
    req = make_request(tmp_path, sh(script), timeout_s=limit)
    result = sandbox.run(req)
    assert result.timed_out and result.reason == "timeout"
    assert result.exit_code is None
    assert "started" in req.log_path.read_text()
    time.sleep(0.2)
    left = subprocess.run(["pgrep", "-f", f"sleep {tag}"], capture_output=True, text=True).stdout
    assert left.strip() == "", f"processes outlived the attempt: {left}"


def test_quick_command_is_not_held_to_the_timeout(sandbox, tmp_path):
    result = sandbox.run(make_request(tmp_path, ["true"], timeout_s=60))
    assert result.exit_code == 0 and not result.timed_out and result.reason is None


def test_silence_past_stall_s_stops_the_whole_tree_as_stalled(sandbox, tmp_path):
    """Output keeps an attempt alive; silence longer than stall_s stops it (long
    before its timeout), and nothing it started survives."""
    tag = random.randint(10**6, 10**7)
    script = (f"for i in 1 2 3 4 5 6; do echo tick $i; sleep 0.4; done; "
              f"sleep {tag} & echo quiet; wait; echo never")
    req = make_request(tmp_path, sh(script), timeout_s=300, stall_s=2.0)
    result = sandbox.run(req)
    assert result.reason == "stalled" and not result.timed_out and result.exit_code is None
    text = req.log_path.read_text()
    assert "tick 6" in text and "quiet" in text and "never" not in text  # 2.4s of ticks passed
    time.sleep(0.2)
    left = subprocess.run(["pgrep", "-f", f"sleep {tag}"], capture_output=True, text=True).stdout
    assert left.strip() == "", f"processes outlived the attempt: {left}"


def test_step_lines_are_the_trace(sandbox, tmp_path):
    script = ("echo '::harness-step:: read engine.py'; echo noise; "
              "printf '::harness-step::edit  engine.py\\n::harness-step::run tests'; exit 3")
    result = sandbox.run(make_request(tmp_path, sh(script), max_steps=3))
    assert result.exit_code == 3 and result.reason is None
    assert result.steps == 3
    assert result.trace == ["read engine.py", "edit  engine.py", "run tests"]  # last line had no newline


def test_a_step_past_max_steps_stops_the_command(sandbox, tmp_path):
    script = ("for i in 1 2 3; do echo \"::harness-step:: step $i\"; done; sleep 60; touch after")
    req = make_request(tmp_path, sh(script), timeout_s=120, max_steps=2)
    result = sandbox.run(req)
    assert result.reason == "steps" and result.exit_code is None and not result.timed_out
    assert result.steps == 3 and result.trace[-1] == "step 3"
    assert not (req.workspace / "after").exists()


def test_network_is_isolated(sandbox, tmp_path):
    if not sandbox.isolates:
        pytest.skip("local: no network isolation (see module docstring)")
    code = "import socket; socket.create_connection(('1.1.1.1', 53), timeout=3)"
    result = sandbox.run(make_request(tmp_path, ["python3", "-c", code]))
    assert result.exit_code not in (0, None)


def test_memory_limit(sandbox, tmp_path):
    if not sandbox.isolates:
        pytest.skip("local: no resource limits (see module docstring)")
    sb = make_sandbox("docker", memory="128m")
    result = sb.run(make_request(tmp_path, ["python3", "-c", "x = bytearray(512 * 2**20)"]))
    assert result.reason == "oom"


def test_run_as_invoking_user(sandbox, tmp_path):
    req = make_request(tmp_path, sh("echo x > owned.txt"))
    assert sandbox.run(req).exit_code == 0
    st = (req.workspace / "owned.txt").stat()
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())


def test_a_flood_past_the_log_cap_is_counted_not_kept(sandbox, tmp_path):
    """50 MB of output against a 1 MiB cap: the log holds the first MiB and one
    marker line naming the rest; the tail and the steps keep following the output."""
    cap, flood = 2**20, 50_000_000
    script = (f"echo '::harness-step:: before'; yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c {flood}; "
              "echo; echo '::harness-step:: after the cap'; echo LAST-LINE")
    req = make_request(tmp_path, sh(script), timeout_s=300, max_log_bytes=cap)
    result = sandbox.run(req)
    assert result.exit_code == 0 and result.reason is None
    assert result.steps == 2 and result.trace == ["before", "after the cap"]
    assert result.output_tail.endswith("::harness-step:: after the cap\nLAST-LINE\n")
    log = req.log_path.read_bytes()
    kept, sep, marker = log.rpartition(b"\n::harness-log-truncated:: ")
    assert sep and len(kept) == cap and marker.count(b"\n") == 1
    dropped = int(marker.split()[1])
    total = len("::harness-step:: before\n") + flood + len("\n::harness-step:: after the cap\nLAST-LINE\n")
    assert marker == f"dropped {dropped} bytes past the cap of {cap}\n".encode()
    assert cap + dropped == total
    assert b"LAST-LINE" not in log


def test_output_under_the_cap_has_no_marker(sandbox, tmp_path):
    req = make_request(tmp_path, sh("echo small"), max_log_bytes=6)
    assert sandbox.run(req).exit_code == 0
    assert req.log_path.read_bytes() == b"small\n"


def test_a_setsid_daemon_does_not_outlive_its_attempt(sandbox, tmp_path):
    """Daemons that leave the process group (setsid), one also with an emptied
    environment, detached from the output: all gone when the attempt ends."""
    tag = random.randint(10**6, 10**7)
    script = (f"setsid sleep {tag} </dev/null >/dev/null 2>&1 & "
              f"setsid env -i sleep {tag + 1} </dev/null >/dev/null 2>&1 & "
              f"sleep 0.5; echo started")
    req = make_request(tmp_path, sh(script), timeout_s=60)
    result = sandbox.run(req)
    assert result.exit_code == 0, result.output_tail
    assert "started" in result.output_tail
    time.sleep(0.2)
    left = subprocess.run(["pgrep", "-af", f"sleep {tag}"], capture_output=True, text=True).stdout
    assert left.strip() == "", f"processes outlived the attempt: {left}"
