"""Throwaway targets for the benchmarks: a repository of many files, a no-op plan."""

from __future__ import annotations

import subprocess
from pathlib import Path


def make_target(path: Path, n_files: int = 400) -> str:
    """A repository of `n_files` source files in nested folders; returns HEAD."""
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    for i in range(n_files):
        f = path / f"src/pkg{i % 20}/sub{i % 7}/mod{i}.py"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("".join(f"def f{j}(x):\n    return x + {i * j}\n\n" for j in range(20)))
    env = ["-c", "user.name=perf", "-c", "user.email=perf@localhost"]
    subprocess.run(["git", *env, "-C", str(path), "add", "-A"], check=True)
    subprocess.run(["git", *env, "-C", str(path), "commit", "-q", "-m", "base"], check=True)
    return subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()


def noop_plan(path: Path, n_tasks: int, max_parallel: int) -> Path:
    """A plan of `n_tasks` agents that do nothing, in the local sandbox."""
    tasks = "".join(f'[[task]]\nid = "t{i}"\ncommand = "true"\n' for i in range(n_tasks))
    path.write_text(f'[run]\nsandbox = "local"\nmax_parallel = {max_parallel}\n{tasks}')
    return path
