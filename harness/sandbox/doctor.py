"""`harness doctor`: what this machine has and what earlier runs left behind.

Every check returns data (a Check); nothing here raises for a missing tool or a
daemon that is down, since reporting those is the point. Every `fix` is a command
that can be run as it stands and clears its warning.

Leftovers are found by where the harness puts things and by label, never by guessing,
and only those of runs that are not running: a run holds its writer lock
(`RunStore.writer`) while it goes, and whatever belongs to a run whose lock is held is
left alone. Containers and processes name their run by the run folder they mount or
carry in `HARNESS_DIR` (`<git dir>/harness/runs/<run>/...`).
"""

from __future__ import annotations

import fcntl
import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from ..ids import id_problem
from ..errors import HarnessError

from ..repo.runlog import list_raw
from ..repo.store import RunStore
from ..repo.workspace import Workspace
from . import images

MIN_FREE_GIB = 5.0


class Check(BaseModel):
    """One line of the doctor's report."""

    model_config = ConfigDict(frozen=True)

    name: str
    status: Literal["ok", "warn", "fail"]
    detail: str
    """What was found."""
    fix: str | None = None
    """How to fix it, when it is not ok."""
    items: list[str] = []
    """What a check found in numbers: leftover containers, worktrees."""


def doctor(repo: Path | None = None, *, fix_repo: str | None = None) -> list[Check]:
    """Run every check. With a repo (a git repository), also look for the leftovers of
    its runs. `fix_repo`: the `--repo` argument the fix commands need to name that
    repository (None when it is the current directory)."""
    checks = [_git(), _pygit2()]
    daemon = _daemon()
    checks.append(daemon)
    if daemon.status == "ok":
        checks += _images()
    checks.append(_disk(repo or Path.cwd()))
    ws = None
    if repo is not None:
        try:
            ws = Workspace(repo)
        except HarnessError as exc:
            checks.append(Check(name="leftover worktrees", status="ok", detail=f"not looked for: {exc}"))
    found = find_leftovers(ws, docker=daemon.status == "ok")
    repo_arg = f" --repo {shlex.quote(fix_repo)}" if fix_repo and ws else ""
    fix = f"harness clean --stale{repo_arg}"
    if ws is not None:
        checks.append(_interrupted(ws, repo_arg))
    checks.append(_containers(found, fix))
    if ws is not None:
        checks += _worktrees(found, fix)
        checks.append(_processes(found, fix))
    return checks


def _git() -> Check:
    try:
        out = subprocess.run(["git", "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return Check(name="git", status="fail", detail="git not found", fix="apt-get install git")
    return Check(name="git", status="ok", detail=out.strip().removeprefix("git version "))


def _pygit2() -> Check:
    try:
        import pygit2
    except ImportError:
        return Check(name="pygit2", status="fail", detail="not importable", fix="pip install pygit2")
    return Check(name="pygit2", status="ok", detail=f"{pygit2.__version__} (libgit2 {pygit2.LIBGIT2_VERSION})")


def _daemon() -> Check:
    try:
        from .docker import docker_client

        version = docker_client().version()
    except Exception as exc:  # any failure here is the finding
        text = str(exc).strip().splitlines()
        # No `fix`: starting a daemon is the machine owner's call (scripts/lib/docker-up.sh
        # of a harness checkout does it, as root); a fix is a command that works as printed.
        detail = text[0] if text else type(exc).__name__
        if "docker-up.sh" not in detail:
            detail += "; start it (scripts/lib/docker-up.sh in a harness checkout, as root), or use --sandbox local"
        return Check(name="docker daemon", status="fail", detail=detail)
    return Check(name="docker daemon", status="ok",
                 detail=f"{version.get('Version')} (API {version.get('ApiVersion')})")


def _images() -> list[Check]:
    checks = []
    for name in images.available():
        tag = images.image_tag(name)
        found = images.image_id(name)
        if found:
            checks.append(Check(name=f"image {name}", status="ok", detail=f"{tag} {found[:19]}"))
        else:
            checks.append(Check(name=f"image {name}", status="fail", detail=f"{tag} absent",
                                fix=f"harness image build {name}"))
    return checks


def _disk(path: Path) -> Check:
    usage = shutil.disk_usage(path if path.exists() else Path.cwd())
    free = usage.free / 2**30
    detail = f"{free:.1f} GiB free at {path}"
    if free < MIN_FREE_GIB:
        return Check(name="disk", status="warn",
                     detail=f"{detail}; each attempt needs a worktree and a container layer: free some space")
    return Check(name="disk", status="ok", detail=detail)


# --- leftovers ---------------------------------------------------------------------------

Owner = Literal["this", "orphan", "other", "live", "unknown"]


class Leftover(BaseModel):
    """One worktree, container or process a run left behind, and whose it is."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["worktree", "container", "process"]
    id: str
    """The worktree's path, the container's id, the process's pid."""
    name: str
    """How to show it: the path, the container's name, the pid and command."""
    run_id: str | None
    owner: Owner
    """`this`: a run of this repository that is not running (recorded, or its record
    gone); `orphan`: a labelled container whose run folder no longer exists, so no run
    anywhere can use it; `other`: a run of another repository that is not running
    (`repo`);
    `live`: a running run's, never touched; `unknown`: a labelled container that
    mounts no run folder (made by a tool or test that drives a sandbox directly), not
    the harness's to judge."""
    state: str = ""
    """The container's status, `uncommitted changes`, `checkout gone`, the run's record."""
    dirty: bool = False
    """A worktree holding changes nobody committed: removed only with --force."""
    interrupted: bool = False
    """Of a run whose process died mid-run: `harness resume` commits what its worktrees
    hold, so `clean --stale` keeps them even with --force (`clean RUN --force` drops them)."""
    repo: str | None = None
    """For `other`: the repository to run `harness clean --stale` in."""


class Leftovers(BaseModel):
    """What `find_leftovers` saw."""

    model_config = ConfigDict(frozen=True)

    worktrees: list[Leftover] = []
    containers: list[Leftover] = []
    processes: list[Leftover] = []
    docker: str | None = None
    """Why containers were not looked at (no daemon), or None."""

    def stale(self, kind: str) -> list[Leftover]:
        """Those `harness clean --stale` in this repository removes."""
        return [x for x in getattr(self, kind) if x.owner in ("this", "orphan")]


def find_leftovers(ws: Workspace | None, *, docker: bool = True) -> Leftovers:
    """The leftovers of runs that are not running: this repository's worktrees (by
    location: every run's, recorded or not), labelled containers (of any run, named
    by the run folder they mount) and local-sandbox processes (by the run folder in
    their `HARNESS_DIR`). Never raises for a daemon that is down."""
    containers, why = ([], "the Docker daemon is not reachable") if not docker else _find_containers(ws)
    return Leftovers(worktrees=_find_worktrees(ws) if ws else [], containers=containers,
                     processes=_find_processes(ws) if ws else [], docker=why)


def run_is_live(run_dir: Path) -> bool:
    """Whether a process holds the run's writer lock (the probe of `RunStore.holder`,
    for a run folder of any repository)."""
    try:
        fd = os.open(run_dir / "lock", os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _find_worktrees(ws: Workspace) -> list[Leftover]:
    out = []
    for run_id, found in ws.harness_worktrees().items():
        if id_problem(run_id):
            continue  # no run is called that: nothing the harness made
        store = RunStore(ws, run_id)
        live = store.holder() is not None
        record = _record_state(store)
        for path, _name in found:
            gone = not os.path.lexists(path)
            dirty = not live and not gone and ws.worktree_dirty(path)
            state = "checkout gone" if gone else "uncommitted changes" if dirty else record
            out.append(Leftover(kind="worktree", id=str(path), name=str(path), run_id=run_id,
                                owner="live" if live else "this", state=state, dirty=dirty,
                                interrupted=record == "interrupted"))
    return out


def _record_state(store: RunStore) -> str:
    if not store.exists():
        return "no record"
    try:
        return store.load().status
    except HarnessError:
        return "unreadable record"


def _find_containers(ws: Workspace | None) -> tuple[list[Leftover], str | None]:
    from .docker import RUN_LABEL, SANDBOX_LABEL, docker_client

    try:
        client = docker_client()
        seen = {}
        for label in (SANDBOX_LABEL, RUN_LABEL):
            for c in client.containers.list(all=True, filters={"label": label}, ignore_removed=True):
                seen[c.id] = c
    except Exception as exc:  # a daemon that went away is a finding, not a crash
        text = str(exc).strip().splitlines()
        return [], text[0] if text else type(exc).__name__
    runs = Path(os.path.abspath(ws.root / "runs")) if ws else None
    out = []
    for c in seen.values():
        source = next((m.get("Source") for m in c.attrs.get("Mounts", []) if m.get("Destination") == "/harness"),
                      None)
        run_dir = _run_dir_of(Path(source)) if source else None
        label = c.labels.get(RUN_LABEL)
        common = dict(kind="container", id=c.id, name=c.name, state=c.status)
        if run_dir is not None and runs is not None and run_dir.parent == runs:
            owner = "live" if run_is_live(run_dir) else "this"
            out.append(Leftover(run_id=run_dir.name, owner=owner, **common))
        elif source is None or not os.path.isdir(source):
            out.append(Leftover(run_id=run_dir.name if run_dir else label, owner="orphan", **common))
        elif run_dir is not None:
            owner = "live" if run_is_live(run_dir) else "other"
            git_dir = run_dir.parent.parent.parent
            repo = str(git_dir.parent if git_dir.name == ".git" else git_dir)
            out.append(Leftover(run_id=run_dir.name, owner=owner, repo=repo, **common))
        else:
            out.append(Leftover(run_id=label, owner="unknown", **common))
    return sorted(out, key=lambda x: (x.run_id or "", x.name)), None


def _run_dir_of(path: Path) -> Path | None:
    """The run folder (`<git dir>/harness/runs/<run>`) a path lies in, or None."""
    path = Path(os.path.abspath(path))
    for p in (path, *path.parents):
        if p.parent.name == "runs" and p.parent.parent.name == "harness":
            return p if not id_problem(p.name) else None
    return None


def _find_processes(ws: Workspace) -> list[Leftover]:
    """Processes whose environment marks them as a local-sandbox attempt (or gate
    run) of one of this repository's runs that is not running."""
    prefix = f"HARNESS_DIR={os.path.abspath(ws.root / 'runs')}/".encode()
    out, me = [], os.getpid()
    live: dict[str, bool] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as fh:
                marks = [e for e in fh.read().split(b"\0") if e.startswith(prefix)]
            if not marks:
                continue
            with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except OSError:
            continue  # gone, or not ours to read
        run_id = os.fsdecode(marks[0][len(prefix):]).split("/", 1)[0]
        if id_problem(run_id):
            continue
        if run_id not in live:
            live[run_id] = RunStore(ws, run_id).holder() is not None
        out.append(Leftover(kind="process", id=entry.name, name=f"{entry.name} {cmd[:60]}", run_id=run_id,
                            owner="live" if live[run_id] else "this"))
    return sorted(out, key=lambda x: (x.run_id or "", int(x.id)))


def _interrupted(ws: Workspace, repo_arg: str) -> Check:
    """Runs whose process died mid-run: `harness resume` keeps what their attempts left
    in their worktrees (which `clean` without --force never deletes) and finishes them."""
    runs = [e.run_id for e in list_raw(ws.root / "runs") if e.record is not None and e.record["status"] == "interrupted"]
    if not runs:
        return Check(name="interrupted runs", status="ok", detail="none")
    return Check(name="interrupted runs", status="warn",
                 detail=f"{len(runs)} run(s) whose process is gone; resume commits their attempts' work "
                        "to refs and runs what is left (`harness clean RUN --force` drops it instead)",
                 fix=" && ".join(f"harness resume {r}{repo_arg}" for r in runs), items=runs)


def _containers(found: Leftovers, fix: str) -> Check:
    name = "leftover containers"
    if found.docker:
        return Check(name=name, status="ok", detail=f"not looked for: {found.docker}")
    stale = found.stale("containers")
    other = [c for c in found.containers if c.owner == "other"]
    notes = _counts(found.containers, {"live": "of running runs", "unknown": "mounting no run folder"})
    if other:
        repos = sorted({c.repo for c in other if c.repo})
        notes.append(f"{len(other)} of runs not running in other repositories ({', '.join(repos[:3])}"
                     f"{' ...' if len(repos) > 3 else ''}: `harness doctor` there)")
    tail = f" ({'; '.join(notes)})" if notes else ""
    if not stale:
        return Check(name=name, status="ok", detail="none" + tail)
    items = [f"{c.name} run={c.run_id} {c.state}"
             f"{' (its run folder is gone)' if c.owner == 'orphan' else ''}" for c in stale]
    return Check(name=name, status="warn", detail=f"{len(stale)} of runs that are not running{tail}",
                 fix=fix, items=items)


def _worktrees(found: Leftovers, fix: str) -> list[Check]:
    stale = found.stale("worktrees")
    clean = [w for w in stale if not w.dirty]
    dirty = [w for w in stale if w.dirty and not w.interrupted]
    notes = _counts(found.worktrees, {"live": "of running runs"})
    tail = f" ({'; '.join(notes)})" if notes else ""
    checks = []
    if clean:
        checks.append(Check(name="leftover worktrees", status="warn",
                            detail=f"{len(clean)} of runs that are not running{tail}; their branches and "
                                   "refs stay", fix=fix,
                            items=[f"{w.name} run={w.run_id} ({w.state})" for w in clean]))
    else:
        checks.append(Check(name="leftover worktrees", status="ok", detail="none" + tail))
    if dirty:
        checks.append(Check(name="uncommitted work in leftover worktrees", status="warn",
                            detail=f"{len(dirty)} worktree(s) of runs that are not running hold changes "
                                   "nobody committed; look at them first: --force discards them",
                            fix=f"{fix} --force", items=[f"{w.name} run={w.run_id}" for w in dirty]))
    return checks


def _processes(found: Leftovers, fix: str) -> Check:
    stale = found.stale("processes")
    notes = _counts(found.processes, {"live": "of running runs"})
    tail = f" ({'; '.join(notes)})" if notes else ""
    if not stale:
        return Check(name="leftover processes", status="ok", detail="none" + tail)
    return Check(name="leftover processes", status="warn",
                 detail=f"{len(stale)} local-sandbox process(es) of runs that are not running{tail}",
                 fix=fix, items=[f"{p.name} run={p.run_id}" for p in stale])


def _counts(items: list[Leftover], kinds: dict[str, str]) -> list[str]:
    return [f"{n} {what}" for owner, what in kinds.items() if (n := sum(x.owner == owner for x in items))]


def remove_orphans(found: Leftovers) -> list[str]:
    """Remove the labelled containers whose run folder is gone (no run anywhere can use
    them), looking once more that it is still gone. Returns their names. Raises
    SandboxError when the daemon refuses."""
    orphans = [c for c in found.containers if c.owner == "orphan"]
    if not orphans:
        return []
    import docker

    from ..errors import SandboxError
    from .docker import docker_client

    client, removed = docker_client(), []
    for leftover in orphans:
        try:
            container = client.containers.get(leftover.id)
            source = next((m.get("Source") for m in container.attrs.get("Mounts", [])
                           if m.get("Destination") == "/harness"), None)
            if source is not None and os.path.isdir(source):
                continue
            container.remove(force=True)
            removed.append(leftover.name)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: being removed right now
                raise SandboxError(f"cannot remove container {leftover.name}: {exc}") from None
    return removed
