"""A private Docker daemon for tests that must kill or restart one without touching
the daemon other tests share: its socket, data root, exec root (where dockerd keeps
the containerd it starts, so the two containerds never meet) and pidfile all live
under one temporary root; no bridge and no iptables rules. Needs root."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path


class PrivateDockerd:
    """One private dockerd under `root`, to be killed and started again on the same
    roots; `destroy` leaves nothing of it behind."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = f"unix://{root}/docker.sock"
        self.proc: subprocess.Popen | None = None
        (root / "daemon.json").write_text("{}")  # never read the host's /etc/docker/daemon.json

    @property
    def args(self) -> list[str]:
        r = self.root
        return ["dockerd", "--config-file", f"{r}/daemon.json", "--host", self.url,
                "--data-root", f"{r}/data", "--exec-root", f"{r}/exec", "--pidfile", f"{r}/docker.pid",
                "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false"]

    def client(self):
        import docker

        return docker.DockerClient(base_url=self.url, timeout=60)

    def start(self) -> None:
        with open(self.root / "dockerd.log", "ab") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"private dockerd exited {self.proc.returncode}: {self.log_tail()}")
            try:
                self.client().ping()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"private dockerd did not answer: {self.log_tail()}") from None
                time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL: the daemon and its containerd go at once (live-restore is off, so
        the next start stops the containers they leave)."""
        assert self.proc is not None
        pidfile = self.root / "exec/containerd/containerd.pid"
        containerd = int(pidfile.read_text()) if pidfile.exists() else None
        self.proc.kill()
        self.proc.wait(timeout=30)
        if containerd is not None:
            _wait_until(lambda: _gone_or_zombie(containerd), "the private containerd to die")
            # An orphan's zombie can linger until init reaps it, and the next dockerd
            # takes a live-looking pid in this file for a containerd to reuse and waits
            # on its socket in vain.
            pidfile.unlink(missing_ok=True)

    def load_image(self, image: str) -> None:
        save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
        loaded = subprocess.run(["docker", "-H", self.url, "load", "-q"], stdin=save.stdout,
                                capture_output=True, text=True)
        save.stdout.close()
        assert save.wait() == 0 and loaded.returncode == 0, loaded.stderr

    def log_tail(self) -> str:
        try:
            return " | ".join((self.root / "dockerd.log").read_text(errors="replace").splitlines()[-5:])
        except OSError:
            return "(no log)"

    def destroy(self) -> None:
        """Remove its containers, stop it, kill whatever it started (containerd,
        shims and their containers, found by the root in their command line),
        unmount what it mounted under the root and delete the root."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                client = self.client()
                for c in client.containers.list(all=True):
                    c.remove(force=True)
            except Exception:
                pass
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        _kill_trees(_pids_mentioning(str(self.root)))
        for _ in range(10):
            mounts = _mounts_under(self.root)
            if not mounts:
                break
            for m in sorted(mounts, key=len, reverse=True):
                subprocess.run(["umount", "-l", m], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


def _gone_or_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _pids_mentioning(text: str) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if text.encode() in cmdline:
                found.append(int(entry.name))
    return found


def _kill_trees(pids: list[int]) -> None:
    """SIGKILL each pid and every descendant (a shim's container goes with it)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    todo, seen = list(pids), set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        todo += children.get(pid, [])
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _mounts_under(root: Path) -> list[str]:
    prefix = f"{root}/"
    with open("/proc/self/mountinfo") as fh:
        points = [line.split()[4] for line in fh]
    return [p for p in points if p == str(root) or p.startswith(prefix)]


def _wait_until(pred, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)
