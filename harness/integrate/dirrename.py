"""Directory renames: what git's merge does that libgit2's cannot, found and named.

When one side moves every file out of a directory `d/` (mostly into `e/`) and the
other side adds a file under `d/`, git's `ort` merge sees a directory rename and,
with its default `merge.directoryRenames=conflict`, puts the new file at `e/...`
and reports a "file location" conflict there. libgit2 has no directory rename
detection: it leaves the file in `d/` and calls the merge clean. Rather than a
tree that silently differs from git's, the fold reports such a path as a conflict
whose record says directory rename detection was not attempted.
"""

from __future__ import annotations

from dataclasses import dataclass

import pygit2

from ..records import PathConflict
from ..repo.gitmerge import GitMerger

NOT_ATTEMPTED = "directory rename detection (git's merge.directoryRenames)"


@dataclass(frozen=True)
class MissedMove:
    """A file added by `adder` in `old_dir`, which `renamer` renamed to `new_dir`."""

    path: str
    new_path: str
    old_dir: str
    new_dir: str
    renamer: str
    adder: str
    blob: pygit2.Oid

    def conflict(self) -> PathConflict:
        theirs = self.adder == "theirs"
        return PathConflict(
            path=self.new_path, kind="rename",
            ours_id=None if theirs else str(self.blob), theirs_id=str(self.blob) if theirs else None,
            ours_path=None if theirs else self.path, theirs_path=self.path if theirs else None,
            detail=f"directory rename not attempted: {self.path} was added by {self.adder} in "
                   f"{self.old_dir or '.'}/, which {self.renamer} renamed to {self.new_dir or '.'}/; "
                   f"git would move it to {self.new_path} and report a file location conflict")


def _parent(path: str) -> str:
    return path.rpartition("/")[0]


def _is_dir(tree: pygit2.Tree, path: str) -> bool:
    if not path:
        return True
    try:
        return tree[path].filemode == pygit2.enums.FileMode.TREE
    except KeyError:
        return False


def directory_renames(renames: dict[str, str]) -> dict[str, str]:
    """{old dir: new dir} implied by file renames, counted as git counts them: a
    rename `a/b/f -> x/b/f` votes for `a/b -> x/b` and, the trailing names being
    equal, for `a -> x`; each old directory goes where most of its files went
    (a tie is no rename)."""
    votes: dict[str, dict[str, int]] = {}
    for old, new in renames.items():
        o, n = old.split("/")[:-1], new.split("/")[:-1]
        while o:
            od, nd = "/".join(o), "/".join(n)
            if od == nd:
                break
            votes.setdefault(od, {})
            votes[od][nd] = votes[od].get(nd, 0) + 1
            if not n or o[-1] != n[-1]:
                break
            o, n = o[:-1], n[:-1]
    out: dict[str, str] = {}
    for od, targets in votes.items():
        ranked = sorted(targets.items(), key=lambda kv: -kv[1])
        if len(ranked) == 1 or ranked[0][1] > ranked[1][1]:
            out[od] = ranked[0][0]
    return out


def _gone(base: pygit2.Tree, renamer: pygit2.Tree, path: str) -> list[str]:
    """The directories above `path`, deepest first, that the base has and the
    renaming side no longer has."""
    gone, parent = [], _parent(path)
    while parent:
        if _is_dir(base, parent) and not _is_dir(renamer, parent):
            gone.append(parent)
        parent = _parent(parent)
    return gone


def missed_moves(merger: GitMerger, base: pygit2.Tree, ours: pygit2.Tree,
                 theirs: pygit2.Tree) -> list[MissedMove]:
    """The files git's merge would move into a renamed directory (and report as a
    file location conflict), which libgit2's merge leaves where they were.

    Only `theirs` (in a fold, the agent's head) is diffed whole: the files ours
    added are looked for only inside the directories theirs removed."""
    found: list[MissedMove] = []
    t = merger.changes(base, theirs)
    # theirs added files in directories ours removed
    candidates = [(p, blob, g) for p, (blob, _) in t.added.items() if (g := _gone(base, ours, p))]
    found += _moves(merger, base, ours, "ours", "theirs", candidates)
    # ours added files in directories theirs removed
    removed = {g for p in t.deleted for g in _gone(base, theirs, p)}
    candidates = []
    seen: set[str] = set()
    for d in sorted(removed):
        if not _is_dir(ours, d):
            continue
        for delta in base[d].diff_to_tree(ours[d]).deltas:
            path = f"{d}/{delta.new_file.path}"
            if delta.status == pygit2.enums.DeltaStatus.ADDED and path not in seen:
                seen.add(path)
                candidates.append((path, delta.new_file.id, _gone(base, theirs, path)))
    found += _moves(merger, base, theirs, "theirs", "ours", candidates)
    return found


def _moves(merger: GitMerger, base: pygit2.Tree, renamer: pygit2.Tree, renamer_name: str,
           adder_name: str, candidates: list[tuple[str, pygit2.Oid, list[str]]]) -> list[MissedMove]:
    if not candidates:
        return []
    roots = tuple(sorted({g[-1] + "/" for _, _, g in candidates}))
    sources = frozenset(p for p in merger.changes(base, renamer).deleted if p.startswith(roots))
    dirs = directory_renames(merger.renames(base, renamer, sources))
    out = []
    for path, blob, gone in candidates:
        old_dir = next((g for g in gone if g in dirs), None)
        if old_dir is None:
            continue
        new_dir = dirs[old_dir]
        rest = path[len(old_dir) + 1:]
        new_path = f"{new_dir}/{rest}" if new_dir else rest
        out.append(MissedMove(path=path, new_path=new_path, old_dir=old_dir, new_dir=new_dir,
                              renamer=renamer_name, adder=adder_name, blob=blob))
    return out
