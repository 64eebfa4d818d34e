"""Benchmark: folding N agent branches in memory vs a `git merge` loop in a worktree,
and the fold's agreement with git's own merge on a real history.

Both fold the same branches of the same repository in the same run. The loop is
what one would script by hand: `git merge --no-ff --no-edit` per branch in a
scratch worktree, `git merge --abort` on a conflict. Run through `scripts/perf
integrate` or `PYTHONPATH=tools python -m perf integrate`.

The agreement check replays every two-parent merge of a repository through the
fold and through `git merge-tree --write-tree` (git's `ort` merge) and counts
where they agree; run it on a clone you can write objects to:
`PYTHONPATH=tools python -m perf.integrate agree PATH [--limit N] [--newest]`.
"""

from __future__ import annotations

import os
import random
import subprocess
import tempfile
import time
from pathlib import Path

import pygit2

from harness.integrate.integrator import fold

LINES = 50
_ENV = {**os.environ, "GIT_AUTHOR_NAME": "perf", "GIT_AUTHOR_EMAIL": "perf@localhost",
        "GIT_COMMITTER_NAME": "perf", "GIT_COMMITTER_EMAIL": "perf@localhost"}


def build_target(path: Path, n_files: int = 400) -> tuple[pygit2.Repository, str, list[str]]:
    """A repository of `n_files` files of 50 lines in nested folders, one commit."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    repo = pygit2.Repository(str(path))
    index = pygit2.Index()
    files = []
    for i in range(n_files):
        name = f"src/pkg{i % 16}/sub{i % 5}/mod{i}.py"
        text = "".join(f"value_{i}_{j} = {i * j}  # line {j}\n" for j in range(LINES))
        index.add(pygit2.IndexEntry(name, repo.create_blob(text.encode()), pygit2.enums.FileMode.BLOB))
        files.append(name)
    sig = pygit2.Signature("perf", "perf@localhost", 1_700_000_000, 0)
    base = repo.create_commit("refs/heads/main", sig, sig, "base", index.write_tree(repo), [])
    subprocess.run(["git", "-C", str(path), "reset", "-q", "--hard"], check=True)
    return repo, str(base), files


def make_branches(repo: pygit2.Repository, base: str, files: list[str], n: int,
                  conflict_rate: float = 0.1, seed: int = 7) -> tuple[list[tuple[str, str]], int]:
    """N branches of one commit each on `base`, changing 1-3 files. About
    `conflict_rate` of them rewrite a line an earlier branch changed; the others
    keep clear (two lines or more) of every line changed so far. Returns the
    (name, commit) pairs and how many were made to conflict."""
    rng = random.Random(seed)
    base_commit = repo[base].peel(pygit2.Commit)
    used: dict[str, set[int]] = {}
    earlier: list[tuple[str, int]] = []
    heads, planted = [], 0
    for k in range(n):
        edits: list[tuple[str, int]] = []
        if earlier and k >= 3 and rng.random() < conflict_rate:
            edits.append(rng.choice(earlier))
            planted += 1
        while len(edits) < rng.randint(1, 3):
            path, line = rng.choice(files), rng.randrange(LINES)
            if any(abs(line - u) <= 2 for u in used.get(path, ())) or any(p == path for p, _ in edits):
                continue
            edits.append((path, line))
        index = pygit2.Index()
        index.read_tree(base_commit.tree)
        for path, line in edits:
            lines = repo[base_commit.tree[path].id].data.decode().splitlines(True)
            lines[line] = f"changed_by_agent_{k} = {k}\n"
            index.add(pygit2.IndexEntry(path, repo.create_blob("".join(lines).encode()),
                                        pygit2.enums.FileMode.BLOB))
            used.setdefault(path, set()).add(line)
            earlier.append((path, line))
        sig = pygit2.Signature("agent", "agent@localhost", 1_700_000_100 + k, 0)
        name = f"agent{k:03d}"
        commit = repo.create_commit(f"refs/heads/perf/{name}", sig, sig, f"agent {k}",
                                    index.write_tree(repo), [base_commit.id])
        heads.append((name, str(commit)))
    return heads, planted


def git_merge_loop(repo_path: Path, base: str, branches: list[str], scratch: Path) -> tuple[float, int]:
    """`git merge` each branch in a scratch worktree; returns (seconds, conflicts)."""
    subprocess.run(["git", "-C", str(repo_path), "worktree", "add", "-q", "--detach", str(scratch), base],
                   check=True, env=_ENV)
    conflicts = 0
    t0 = time.perf_counter()
    for b in branches:
        proc = subprocess.run(["git", "-C", str(scratch), "merge", "-q", "--no-ff", "--no-edit",
                               f"perf/{b}"], capture_output=True, env=_ENV)
        if proc.returncode != 0:
            conflicts += 1
            subprocess.run(["git", "-C", str(scratch), "merge", "--abort"], check=True,
                           capture_output=True, env=_ENV)
    seconds = time.perf_counter() - t0
    subprocess.run(["git", "-C", str(repo_path), "worktree", "remove", "--force", str(scratch)],
                   check=True, capture_output=True)
    return seconds, conflicts


def bench_integrate(ns=(10, 100, 300), n_files: int = 400, conflict_rate: float = 0.1,
                    repeats: int = 3) -> list[dict]:
    """Time the harness's fold of N branches (median of `repeats`) and a `git merge`
    loop over the same branches, for each N. Prints a table and returns its rows.
    Both write loose objects to the same disk, whose speed drifts; the median keeps
    one slow burst from deciding the figure."""
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="harness-perf-integrate-") as tmp:
        path = Path(tmp) / "repo"
        repo, base, files = build_target(path, n_files)
        heads, planted = make_branches(repo, base, files, max(ns), conflict_rate)
        print(f"integrating N branches (1-3 files each, ~{conflict_rate:.0%} conflicting) "
              f"of a repository of {n_files} files x {LINES} lines")
        print(f"{'N':>5} {'harness s':>10} {'git s':>8} {'ratio':>7} {'harness ms/br':>14} "
              f"{'git ms/br':>10} {'conflicts h/g':>14}")
        for i, n in enumerate(ns):
            subset = heads[:n]
            times = []
            for rep in range(repeats):
                # a fresh run id per repeat, so every repeat writes new objects
                t0 = time.perf_counter()
                result = fold(pygit2.Repository(str(path)), base, subset, run_id=f"perf{i}-{rep}")
                times.append(time.perf_counter() - t0)
            harness_s = sorted(times)[len(times) // 2]
            git_s, git_conflicts = git_merge_loop(path, base, [b for b, _ in subset], Path(tmp) / f"loop{i}")
            row = {"n": n, "harness_s": harness_s, "git_s": git_s, "ratio": git_s / harness_s,
                   "harness_ms_per_branch": 1000 * harness_s / n, "git_ms_per_branch": 1000 * git_s / n,
                   "harness_conflicts": len(result.unresolved), "git_conflicts": git_conflicts}
            rows.append(row)
            print(f"{n:>5} {harness_s:>10.3f} {git_s:>8.2f} {row['ratio']:>6.1f}x "
                  f"{row['harness_ms_per_branch']:>14.2f} {row['git_ms_per_branch']:>10.1f} "
                  f"{len(result.unresolved):>7}/{git_conflicts:<6}")
        print(f"ratio = git time / harness time (harness: median of {repeats}); "
              f"{planted} of {max(ns)} branches were made to conflict")
    rows.append(bench_long_branch())
    return rows


def bench_long_branch(n: int = 3000, repeats: int = 5) -> dict:
    """One merge of a head `n` commits ahead of its base onto a base that moved
    `n` commits too: the fold (median of `repeats`) vs `git merge-tree
    --write-tree` on the same commits, process start included."""
    with tempfile.TemporaryDirectory(prefix="harness-perf-long-") as tmp:
        path = Path(tmp) / "repo"
        subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
        repo = pygit2.Repository(str(path))
        sig = pygit2.Signature("perf", "perf@localhost", 1_700_000_000, 0)
        tb = repo.TreeBuilder()
        tb.insert("README", repo.create_blob(b"r\n"), pygit2.enums.FileMode.BLOB)
        base = repo.create_commit(None, sig, sig, "base", tb.write(), [])
        tips = []
        for name in ("branch.txt", "main.txt"):
            head, text = base, ""
            for i in range(n):
                text += f"{name} {i}\n"
                tb = repo.TreeBuilder(repo[head].tree)
                tb.insert(name, repo.create_blob(text.encode()), pygit2.enums.FileMode.BLOB)
                head = repo.create_commit(None, sig, sig, f"{name} {i}", tb.write(), [head])
            tips.append(str(head))
        branch, main = tips
        fold_s, git_s = [], []
        for rep in range(repeats):
            t0 = time.perf_counter()
            step = fold(pygit2.Repository(str(path)), main, [("long", branch)], run_id=f"long{rep}").steps[0]
            t1 = time.perf_counter()
            subprocess.run(["git", "-C", str(path), "merge-tree", "--write-tree", main, branch],
                           check=True, capture_output=True)
            t2 = time.perf_counter()
            fold_s.append(t1 - t0)
            git_s.append(t2 - t1)
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    row = {"n": n, "fold_ms": 1000 * med(fold_s), "git_ms": 1000 * med(git_s), "outcome": step.outcome}
    row["ratio"] = row["git_ms"] / row["fold_ms"]
    print(f"one merge of a branch {n} commits ahead onto a base {n} commits on: fold {row['fold_ms']:.1f} ms, "
          f"git merge-tree {row['git_ms']:.1f} ms (with its process start), ratio {row['ratio']:.2f}x "
          f"(git time / fold time; median of {repeats})")
    return row


def git_merge_tree(path: Path, ours: str, theirs: str) -> tuple[str, str | None, set[str]]:
    """git's answer: ("clean", tree, {}), ("conflict", tree, {paths}) or
    ("refused", None, {}) (unrelated histories and other fatal errors)."""
    proc = subprocess.run(["git", "-C", str(path), "merge-tree", "--write-tree", "--name-only",
                           "--no-messages", ours, theirs], capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        return "refused", None, set()
    lines = proc.stdout.splitlines()
    if proc.returncode == 0:
        return "clean", lines[0], set()
    return "conflict", lines[0], {line for line in lines[1:] if line}


def fold_answer(repo: pygit2.Repository, ours: str, theirs: str) -> tuple[str, str | None, set[str]]:
    """The fold's answer, in the same form as `git_merge_tree`."""
    step = fold(repo, ours, [("merge", theirs)]).steps[0]
    if step.outcome in ("folded", "empty"):
        return "clean", step.tree, set()
    if step.conflict is None or step.conflict.unrelated:
        return "refused", None, set()
    paths = set()
    for p in step.conflict.paths:
        paths.add(p.path)
        sides = {p.ours_path, p.theirs_path}
        if p.kind == "rename" and None not in sides and len(sides) == 2 and p.ancestor_path not in sides:
            paths |= {p.ours_path, p.theirs_path}  # rename/rename (1to2): git lists all three
    return "conflict", None, paths


def agreement(path: Path, limit: int | None = None, newest: bool = False, show: bool = True) -> dict:
    """Replay the two-parent merges of the repository at `path` (all refs; the
    oldest first unless `newest`, at most `limit`) through the fold and `git
    merge-tree --write-tree`. Prints the counts, every disagreement and the time
    per merge on each side (git's includes its process start); returns them."""
    out = subprocess.run(["git", "-C", str(path), "rev-list", "--all", "--min-parents=2", "--max-parents=2",
                          "--parents"] + ([] if newest else ["--reverse"]),
                         capture_output=True, text=True, check=True).stdout.split("\n")
    merges = [line.split() for line in out if line][:limit]
    repo = pygit2.Repository(str(path))
    counts = {"same tree": 0, "both clean, different tree": 0, "git clean, fold conflicted": 0,
              "git conflicted, fold clean": 0, "both conflicted, same paths": 0,
              "both conflicted, other paths": 0, "both refused": 0, "refused by one": 0}
    disagreements: list[str] = []
    fold_s: list[float] = []
    git_s: list[float] = []
    slow: list[tuple[float, float, str]] = []
    for merge, ours, theirs in merges:
        t0 = time.perf_counter()
        g = git_merge_tree(path, ours, theirs)
        t1 = time.perf_counter()
        h = fold_answer(repo, ours, theirs)
        t2 = time.perf_counter()
        git_s.append(t1 - t0)
        fold_s.append(t2 - t1)
        slow.append((t2 - t1, t1 - t0, merge))
        if g[0] == h[0] == "clean":
            key = "same tree" if g[1] == h[1] else "both clean, different tree"
        elif g[0] == h[0] == "conflict":
            key = "both conflicted, same paths" if g[2] == h[2] else "both conflicted, other paths"
        elif g[0] == h[0] == "refused":
            key = "both refused"
        elif "refused" in (g[0], h[0]):
            key = "refused by one"
        else:
            key = "git clean, fold conflicted" if g[0] == "clean" else "git conflicted, fold clean"
        counts[key] += 1
        if key not in ("same tree", "both conflicted, same paths", "both refused"):
            line = (f"{merge[:10]} ({ours[:10]} + {theirs[:10]}): {key}; git {g[0]} {sorted(g[2])[:5]}, "
                    f"fold {h[0]} {sorted(h[2])[:5]}")
            disagreements.append(line)
            if show:
                print(line, flush=True)
    n = len(merges)
    med = lambda xs: sorted(xs)[len(xs) // 2] if xs else 0.0  # noqa: E731
    result = {"merges": n, "counts": counts, "disagreements": disagreements,
              "fold_median_ms": 1000 * med(fold_s), "git_median_ms": 1000 * med(git_s),
              "fold_max_ms": 1000 * max(fold_s, default=0), "git_max_ms": 1000 * max(git_s, default=0),
              "slowest": sorted(slow, reverse=True)[:5]}
    if show:
        print(f"{n} two-parent merges of {path}")
        for k, v in counts.items():
            print(f"  {k:<30} {v}")
        print(f"  time per merge: fold median {result['fold_median_ms']:.1f} ms (max "
              f"{result['fold_max_ms']:.0f}), git merge-tree median {result['git_median_ms']:.1f} ms "
              f"(max {result['git_max_ms']:.0f}, with its process start)")
        print("  slowest folds: " + ", ".join(f"{m[:10]} {1000 * f:.0f} ms (git {1000 * g:.0f})"
                                             for f, g, m in result["slowest"]))
    return result


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(prog="python -m perf.integrate")
    sub = ap.add_subparsers(dest="cmd")
    agree = sub.add_parser("agree", help="replay a repository's merges through the fold and git")
    agree.add_argument("path", type=Path)
    agree.add_argument("--limit", type=int)
    agree.add_argument("--newest", action="store_true")
    args = ap.parse_args()
    if args.cmd == "agree":
        agreement(args.path, args.limit, args.newest)
    else:
        bench_integrate()
