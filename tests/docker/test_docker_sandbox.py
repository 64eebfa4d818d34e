"""The docker sandbox against the real daemon: what it keeps the agent from, and how
its containers are labelled, limited and removed."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from harness.config import DockerSandboxConfig
from harness.errors import SandboxError, SandboxUnavailable
from harness.sandbox import get_sandbox
from sandboxutil import make_request, require_docker

pytestmark = pytest.mark.docker


def sandbox(**options):
    require_docker()
    return get_sandbox(DockerSandboxConfig(**options))


def py(code: str) -> list[str]:
    return ["python3", "-c", code]


def host_addresses() -> set[str]:
    """This host's addresses a container could try: its outbound one and the
    bridge gateway, whichever exist."""
    found = set()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("1.1.1.1", 53))  # UDP connect sends nothing; it picks the route
            found.add(s.getsockname()[0])
    except OSError:
        pass
    try:
        found.add(socket.gethostbyname(socket.gethostname()))
    except OSError:
        pass
    found.add("172.17.0.1")
    found.discard("127.0.0.1")
    return found


# --- network ---------------------------------------------------------------------


def test_no_network(tmp_path):
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", 0))
    server.listen(8)
    server.settimeout(0.2)
    port = server.getsockname()[1]
    accepted = []

    def accept():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    targets = [("1.1.1.1", 53), ("8.8.8.8", 443), *((a, port) for a in host_addresses())]
    code = f"""
import socket, sys
reached = []
for host, port in {targets!r}:
    try:
        socket.create_connection((host, port), timeout=2).close()
        reached.append(f"{{host}}:{{port}}")
    except OSError as exc:
        print(host, port, "blocked:", exc)
try:
    socket.getaddrinfo("pypi.org", 443)
    reached.append("dns")
except OSError as exc:
    print("dns blocked:", exc)
ifaces = [line.split(":")[0].strip() for line in open("/proc/net/dev").readlines()[2:]]
print("interfaces", ifaces)
sys.exit(10 if reached else (11 if ifaces != ["lo"] else 0))
"""
    try:
        result = sandbox().run(make_request(tmp_path, py(code), timeout_s=60))
    finally:
        server.close()
    assert result.exit_code == 0, result.output_tail
    assert accepted == [], "the host server accepted a connection from the sandbox"


# --- filesystem --------------------------------------------------------------------


def test_cannot_see_host_files(tmp_path):
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("host only\n")
    host_name = Path("/etc/hostname").read_text().strip() if Path("/etc/hostname").exists() else ""
    script = (f'test ! -e {secret} && test ! -e {tmp_path} && test ! -e /var/run/docker.sock && '
              f'test "$(cat /etc/hostname)" != "{host_name}" && ls / && echo isolated')
    result = sandbox().run(make_request(tmp_path, ["sh", "-c", script]))
    assert result.exit_code == 0, result.output_tail
    assert "isolated" in result.output_tail


def test_worktree_cannot_reach_the_shared_git_dir(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e"}

    def git(*args, cwd=repo):
        subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env=env)

    git("init", "-q", "-b", "main")
    (repo / "a.txt").write_text("a\n")
    git("add", "a.txt")
    git("commit", "-q", "-m", "base")
    worktree = tmp_path / "wt"
    git("worktree", "add", "-q", "-b", "harness/r/t", str(worktree))
    gitdir = (worktree / ".git").read_text().split(":", 1)[1].strip()
    assert Path(gitdir).is_dir()  # on the host it resolves
    script = (f'cat a.txt && test -f .git && test ! -e {gitdir} && test ! -e {repo}/.git '
              '&& ! git status >/dev/null 2>&1 && echo sealed')
    result = sandbox().run(make_request(tmp_path, ["sh", "-c", script], workspace=worktree))
    assert result.exit_code == 0, result.output_tail
    assert "sealed" in result.output_tail


def test_root_is_read_only_workspace_and_tmp_are_not(tmp_path):
    script = ("for d in / /etc /usr /usr/local/bin /root /var /opt; do "
              "  if touch $d/probe 2>/dev/null; then echo WROTE $d; exit 9; fi; done; "
              "touch /workspace/ok /tmp/ok && echo x > $HOME/.probe && echo fine")
    req = make_request(tmp_path, ["sh", "-c", script])
    result = sandbox().run(req)
    assert result.exit_code == 0, result.output_tail
    assert (req.workspace / "ok").exists()


def test_tmp_allows_executables(tmp_path):
    script = "printf '#!/bin/sh\\necho ran\\n' > /tmp/x.sh && chmod +x /tmp/x.sh && /tmp/x.sh"
    result = sandbox().run(make_request(tmp_path, ["sh", "-c", script]))
    assert result.exit_code == 0 and "ran" in result.output_tail, result.output_tail


def test_no_capabilities_and_no_new_privileges(tmp_path):
    script = "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status"
    result = sandbox(user="1234:1234").run(make_request(tmp_path, ["sh", "-c", script]))
    assert result.exit_code == 0
    fields = dict(line.split(":\t") for line in result.output_tail.strip().splitlines())
    assert int(fields["CapEff"], 16) == 0 and int(fields["CapBnd"], 16) == 0
    assert fields["NoNewPrivs"].strip() == "1"


# --- limits ----------------------------------------------------------------------------


def test_fork_bomb_is_stopped_by_the_pids_limit(tmp_path):
    bomb = ("import os, sys\n"
            "while True:\n"
            "    try:\n"
            "        os.fork()\n"
            "    except OSError:\n"
            "        sys.exit(3)\n")
    result = sandbox(pids_limit=64).run(make_request(tmp_path, py(bomb), timeout_s=60))
    assert not result.timed_out  # the pids limit ended it, not the timeout
    assert result.exit_code not in (0, None) or result.reason is not None


def test_shell_fork_bomb_ends_at_the_timeout(tmp_path):
    # bash retries a failed fork, so this bomb never gives up: the pids limit holds it
    # and the timeout ends it, with every process of it gone.
    bomb = ["bash", "-c", "bomb() { bomb | bomb & }; bomb; sleep 300"]
    result = sandbox(pids_limit=64).run(make_request(tmp_path, bomb, timeout_s=5))
    assert result.timed_out and result.exit_code is None
    left = subprocess.run(["pgrep", "-fc", "bomb; sleep 300"], capture_output=True, text=True).stdout.strip()
    assert left in ("", "0")


def test_memory_hog_ends_with_oom(tmp_path):
    hog = "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 2**20))\n"
    result = sandbox(memory="96m").run(make_request(tmp_path, py(hog), timeout_s=60))
    assert result.reason == "oom", result
    assert result.exit_code is None and not result.timed_out


def test_limits_are_applied(docker_daemon, tmp_path, run_id):
    req = make_request(tmp_path, ["sleep", "20"], timeout_s=30, labels={"harness.run": run_id})
    sb = sandbox(memory="300m", cpus=0.5, pids_limit=77)
    thread = _in_background(sb, req)
    try:
        container = _wait_for_container(docker_daemon, run_id)
        container.reload()
        host = container.attrs["HostConfig"]
        assert host["Memory"] == 300 * 2**20 and host["MemorySwap"] == 300 * 2**20
        assert host["NanoCpus"] == 500_000_000 and host["PidsLimit"] == 77
        assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"] is True
        assert host["CapDrop"] == ["ALL"] and "no-new-privileges" in host["SecurityOpt"]
        mounts = {m["Destination"]: m for m in container.attrs["Mounts"]}
        assert set(mounts) == {"/workspace", "/harness"}
        assert mounts["/workspace"]["RW"] is True and mounts["/harness"]["RW"] is False
    finally:
        sb.cleanup(run_id)
        thread.join(30)


# --- ownership -----------------------------------------------------------------------------


def test_files_belong_to_the_invoking_user(tmp_path):
    req = make_request(tmp_path, ["sh", "-c", "mkdir d && echo x > d/f && id -u && id -g"])
    result = sandbox().run(req)
    assert result.exit_code == 0
    for path in (req.workspace / "d", req.workspace / "d" / "f"):
        assert (path.stat().st_uid, path.stat().st_gid) == (os.getuid(), os.getgid())
    assert result.output_tail.split() == [str(os.getuid()), str(os.getgid())]


def test_explicit_user(tmp_path):
    req = make_request(tmp_path, ["sh", "-c", "echo x > f && id -u && echo $HOME && touch $HOME/y"])
    req.workspace.chmod(0o777)  # 1234 may write there, as the invoking user could in real use
    result = sandbox(user="1234:1234").run(req)
    assert result.exit_code == 0, result.output_tail
    st = (req.workspace / "f").stat()
    assert (st.st_uid, st.st_gid) == (1234, 1234)
    assert result.output_tail.split()[:2] == ["1234", "/tmp"]


# --- labels, removal, keep ----------------------------------------------------------------------


def _in_background(sb, req) -> threading.Thread:
    """Run req in a thread; a test that removes the container under it expects SandboxError."""
    def run():
        try:
            sb.run(req)
        except SandboxError:
            pass

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _wait_for_container(client, run_id, timeout=30):
    """The running container of run_id (created is not enough: it may not have started)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = client.containers.list(filters={"label": f"harness.run={run_id}", "status": "running"})
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no running container labelled harness.run={run_id}")


def test_labels_while_running_and_removed_after(docker_daemon, tmp_path, run_id):
    labels = {"harness.run": run_id, "harness.task": "t1", "harness.attempt": "1"}
    req = make_request(tmp_path, ["sleep", "2"], labels=labels)
    results = []
    thread = threading.Thread(target=lambda: results.append(sandbox().run(req)))
    thread.start()
    container = _wait_for_container(docker_daemon, run_id)
    assert {k: container.labels[k] for k in labels} == labels
    assert container.labels["harness.sandbox"] == "docker"
    assert run_id in container.name
    thread.join(30)
    assert results[0].exit_code == 0
    assert results[0].image_id and results[0].image_id.startswith("sha256:")
    assert docker_daemon.containers.list(all=True, filters={"label": f"harness.run={run_id}"}) == []


def test_keep_then_cleanup(docker_daemon, tmp_path, run_id):
    sb = sandbox(keep=True)
    result = sb.run(make_request(tmp_path, ["sh", "-c", "echo kept; exit 4"], labels={"harness.run": run_id}))
    assert result.exit_code == 4
    kept = docker_daemon.containers.list(all=True, filters={"label": f"harness.run={run_id}"})
    assert len(kept) == 1 and kept[0].status == "exited"
    assert b"kept" in kept[0].logs()
    assert sb.cleanup(run_id) == [kept[0].name]
    assert docker_daemon.containers.list(all=True, filters={"label": f"harness.run={run_id}"}) == []


def test_cleanup_without_run_id_spares_running_containers(docker_daemon, tmp_path, run_id):
    sb = sandbox()
    req = make_request(tmp_path, ["sleep", "30"], timeout_s=60, labels={"harness.run": run_id})
    thread = _in_background(sb, req)
    try:
        running = _wait_for_container(docker_daemon, run_id)
        assert running.name not in sb.cleanup()
        assert docker_daemon.containers.get(running.id).status == "running"
    finally:
        sb.cleanup(run_id)
        thread.join(30)


def test_timeout_removes_the_container(docker_daemon, tmp_path, run_id):
    result = sandbox().run(make_request(tmp_path, ["sleep", "60"], timeout_s=1, labels={"harness.run": run_id}))
    assert result.timed_out
    assert docker_daemon.containers.list(all=True, filters={"label": f"harness.run={run_id}"}) == []


# --- errors -----------------------------------------------------------------------------


def test_missing_image_is_a_clear_error(tmp_path):
    require_docker()
    sb = get_sandbox(DockerSandboxConfig(image="harness/no-such-image:latest"))
    with pytest.raises(SandboxUnavailable, match="harness image build no-such-image"):
        sb.check()
    with pytest.raises(SandboxUnavailable, match="missing"):
        sb.run(make_request(tmp_path, ["true"]))


def test_missing_workspace_is_an_error(tmp_path):
    req = make_request(tmp_path, ["true"], workspace=tmp_path / "absent")
    with pytest.raises(SandboxError, match="not a directory"):
        sandbox().run(req)
    assert not (tmp_path / "absent").exists()


def test_daemon_down_is_sandbox_unavailable(monkeypatch, tmp_path):
    from harness.sandbox import docker as backend

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no.sock")
    with pytest.raises(SandboxUnavailable, match="not reachable"):
        get_sandbox(DockerSandboxConfig()).check()
    backend._clients.pop(f"unix://{tmp_path}/no.sock", None)
