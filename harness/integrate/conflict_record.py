"""From a conflicted in-memory merge to a ConflictRecord.

libgit2 lists a conflict per path as (ancestor, ours, theirs) index entries; with
rename detection one renamed file is spread over several such entries (the source
path holding only the ancestor, the target path only our or their side). Those are
put back together here with the two sides' own rename maps, so a rename conflict
is one PathConflict naming its source and both targets.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import pygit2

from ..records import ConflictRecord, PathConflict
from ..repo.gitmerge import GitMerger
from .hunks import conflict_hunks, is_binary

Entry = pygit2.IndexEntry | None
Triple = tuple[Entry, Entry, Entry]


def renames(repo: pygit2.Repository, old_tree: pygit2.Tree, new_tree: pygit2.Tree,
            merger: GitMerger | None = None, sources: frozenset[str] | None = None) -> dict[str, str]:
    """{old path: new path} of the files renamed between two trees, as git's
    merge finds them (the same similarity the merge itself used); with
    `sources`, only renames from those paths (and identical-content ones)."""
    return (merger or GitMerger(repo)).renames(old_tree, new_tree, sources)


def _path(t: Triple) -> str:
    return next(e.path for e in t if e is not None)


def _group(triples: list[Triple], links: dict[str, set[str]]) -> list[list[Triple]]:
    """Put together the triples whose paths are linked by a rename of either side."""
    parent: dict[str, str] = {}

    def find(p: str) -> str:
        while parent.setdefault(p, p) != p:
            parent[p] = parent[parent[p]]
            p = parent[p]
        return p

    paths = {_path(t) for t in triples}
    for p in paths:
        for q in links.get(p, ()):
            if q in paths:
                parent[find(p)] = find(q)
    groups: dict[str, list[Triple]] = {}
    for t in triples:
        groups.setdefault(find(_path(t)), []).append(t)
    return sorted(groups.values(), key=lambda g: min(_path(t) for t in g))


def classify(repo: pygit2.Repository, triples: Iterable[Triple], base: pygit2.Tree | None,
             ours: pygit2.Tree, theirs: pygit2.Tree, merger: GitMerger | None = None) -> list[PathConflict]:
    """One PathConflict per conflicting file (a rename counts as one file)."""
    triples = list(triples)
    merger = merger or GitMerger(repo)
    paths = frozenset(e.path for t in triples for e in t if e is not None)
    r_ours = renames(repo, base, ours, merger, paths) if base is not None else {}
    r_theirs = renames(repo, base, theirs, merger, paths) if base is not None else {}
    links: dict[str, set[str]] = {}
    for rmap in (r_ours, r_theirs):
        for src, dst in rmap.items():
            links.setdefault(src, set()).add(dst)
            links.setdefault(dst, set()).add(src)
    out = []
    for group in _group(triples, links):
        if len(group) == 1 and not _renamed(group[0], r_ours, r_theirs):
            out.append(_plain(repo, group[0]))
        else:
            out.append(_rename(repo, group, r_ours, r_theirs))
    return out


def _renamed(t: Triple, r_ours: dict[str, str], r_theirs: dict[str, str]) -> bool:
    paths = {e.path for e in t if e is not None}
    return len(paths) > 1 or bool(paths & (set(r_ours) | set(r_ours.values())
                                           | set(r_theirs) | set(r_theirs.values())))


def _blob(repo: pygit2.Repository, e: Entry) -> bytes | None:
    return repo[e.id].data if e is not None else None


def _plain(repo: pygit2.Repository, t: Triple) -> PathConflict:
    a, o, th = t
    if a is None:
        kind, detail = "add/add", "added on both sides"
    elif o is None or th is None:
        kind = "modify/delete"
        detail = "deleted by ours, modified by theirs" if o is None else "modified by ours, deleted by theirs"
    else:
        kind, detail = "content", ""
    return _with_text(repo, PathConflict(path=_path(t), kind=kind, detail=detail,
                                         ancestor_id=_id(a), ours_id=_id(o), theirs_id=_id(th),
                                         ancestor_path=a.path if a else None,
                                         ours_path=o.path if o else None,
                                         theirs_path=th.path if th else None), a, o, th)


def _rename(repo: pygit2.Repository, group: list[Triple], r_ours: dict[str, str],
            r_theirs: dict[str, str]) -> PathConflict:
    """A rename conflict spread over several triples: find the source (the
    ancestor side) and where each side put it."""
    anc = [t[0] for t in group if t[0] is not None]
    ours = {t[1].path: t[1] for t in group if t[1] is not None}
    theirs = {t[2].path: t[2] for t in group if t[2] is not None}
    sources = sorted({e.path for e in anc})
    src = next((s for s in sources if s in r_ours or s in r_theirs), sources[0] if sources else None)
    o_path = r_ours.get(src, src) if src else None
    t_path = r_theirs.get(src, src) if src else None
    o = ours.get(o_path) if o_path else None
    th = theirs.get(t_path) if t_path else None
    a = next((e for e in anc if e.path == src), None)
    targets_o = {d: s for s, d in r_ours.items()}
    targets_t = {d: s for s, d in r_theirs.items()}
    path, kind = src, "rename"
    if src in r_ours and src in r_theirs and o_path == t_path:
        # renamed alike on both sides: no rename conflict; git merges the contents
        # at the new name and reports a content conflict there
        detail = f"content conflict in {o_path}, renamed from {src} on both sides"
        path, kind = o_path, "content"
    elif src in r_ours and src in r_theirs:
        detail = f"rename/rename (1to2): {src} -> {o_path} (ours), {t_path} (theirs)"
    elif src and (src in r_ours or src in r_theirs):
        # git (and `git status`) names a one-sided rename conflict by its new path
        side, other = ("ours", "theirs") if src in r_ours else ("theirs", "ours")
        dst = o_path if side == "ours" else t_path
        path = dst
        other_side = theirs if side == "ours" else ours
        other_src = (targets_t if side == "ours" else targets_o).get(dst)
        at_dst = other_side.get(dst)
        if other_src is not None:
            detail = f"rename/rename (2to1): {src} (by {side}) and {other_src} (by {other}) -> {dst}"
        elif at_dst is not None:
            detail = f"rename/add: {src} -> {dst} by {side}, {dst} added by {other}"
        elif other_side.get(src) is None:
            detail = f"rename/delete: {src} -> {dst} by {side}, deleted by {other}"
        else:
            detail = f"rename/modify: {src} -> {dst} by {side}, modified by {other}"
        if at_dst is not None:  # the other side's file at the rename target
            if side == "ours":
                th = at_dst
            else:
                o = at_dst
    else:
        paths = sorted({_path(t) for t in group})
        detail = "rename conflict involving " + ", ".join(paths)
    path = path or (o.path if o else th.path if th else _path(group[0]))
    pc = PathConflict(path=path, kind=kind, detail=detail, ancestor_id=_id(a), ours_id=_id(o),
                      theirs_id=_id(th), ancestor_path=src, ours_path=o.path if o else None,
                      theirs_path=th.path if th else None)
    return _with_text(repo, pc, a, o, th)


def _id(e: Entry) -> str | None:
    return str(e.id) if e is not None else None


def _with_text(repo: pygit2.Repository, pc: PathConflict, a: Entry, o: Entry, th: Entry) -> PathConflict:
    blobs = [_blob(repo, e) for e in (a, o, th)]
    if any(is_binary(b) for b in blobs):
        update = {"kind": "binary"} if pc.kind == "content" else {}
        return pc.model_copy(update={**update, "detail": pc.detail or "binary file changed on both sides"})
    h = conflict_hunks(*blobs)
    return pc.model_copy(update={"ours_ranges": h.ours_ranges, "theirs_ranges": h.theirs_ranges,
                                 "ours_text": h.ours_text, "theirs_text": h.theirs_text,
                                 "base_text": h.base_text})


def conflict_record(repo: pygit2.Repository, index: pygit2.Index, *, run_id: str, task_id: str,
                    ours: pygit2.Oid, theirs: pygit2.Oid, base: pygit2.Oid | None = None,
                    touched: Mapping[str, list[str]] | None = None,
                    merger: GitMerger | None = None, base_tree: pygit2.Tree | None = None) -> ConflictRecord:
    """The ConflictRecord of a conflicted merge of `theirs` (an agent head) into
    `ours` (the integration so far). `base` is their merge base when the caller
    knows it (else it is computed), `base_tree` the tree merged on when it is not
    the base's own; `touched` maps a path to the tasks whose fold
    changed it, for `other_tasks`."""
    if base is None:
        try:
            base = repo.merge_base(ours, theirs)
        except pygit2.GitError:
            base = None
    if base_tree is None and base is not None:
        base_tree = repo[base].peel(pygit2.Tree)
    paths = classify(repo, list(index.conflicts or ()), base_tree,
                     repo[ours].peel(pygit2.Tree), repo[theirs].peel(pygit2.Tree), merger)
    others: list[str] = []
    for pc in paths:
        for p in (pc.path, pc.ours_path, pc.ancestor_path):
            for t in (touched or {}).get(p or "", ()):
                if t not in others:
                    others.append(t)
    return ConflictRecord(run_id=run_id, task_id=task_id, ours_commit=str(ours),
                          theirs_commit=str(theirs),
                          merge_base=str(base) if base is not None else None, paths=paths,
                          other_tasks=others,
                          detail=f"{len(paths)} conflicting path(s): "
                                 + ", ".join(p.path for p in paths[:10]))


def unrelated_record(*, run_id: str, task_id: str, ours: str, theirs: str) -> ConflictRecord:
    """The record of a head that shares no commit with the integration: nothing
    was merged (git refuses such a merge too)."""
    return ConflictRecord(run_id=run_id, task_id=task_id, ours_commit=ours, theirs_commit=theirs,
                          unrelated=True,
                          detail=f"refusing to merge unrelated histories: {theirs[:10]} shares no "
                                 f"commit with the integration {ours[:10]}")
