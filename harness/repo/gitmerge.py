"""libgit2's in-memory merge, set up to give the answer of git's own (`ort`) merge.

`Repository.merge_trees` / `merge_commits` in pygit2 expose only the flags, the
file flags and the favor of libgit2's `git_merge_options`; three defaults left
there make libgit2 answer differently from `git merge` on real history:

- line matching: libgit2 uses Myers, git's merge uses histogram. libgit2 offers
  patience (`GIT_MERGE_FILE_DIFF_PATIENCE`), histogram's ancestor and the closest
  it has: with it the interleaved changelog merges agree with git's.
- rename limit: libgit2 gives up on inexact renames above 1,000 changed paths,
  git above 7,000 (`merge.renameLimit`, else `diff.renameLimit`, else 7,000).
- renames: libgit2 scores pairs with its own line-hash sampling, lower than git's
  for a rename with edits, so a rename git sees becomes modify/delete; and it
  will not merge the contents of a file both sides renamed alike.

So `GitMerger` fills `git_merge_options` itself, through pygit2's own cffi handle
(the one its methods use; pygit2 exposes no `rename_threshold`, `target_limit`
or `metric`, and libgit2 reads `merge.renameLimit` only from the repository's
config, which the harness does not write). Renames are found in Python as git's
ort finds them (identical content, then a unique basename at 75%, then the rest
at 50%, scored as git scores: similarity.py; only for files the other side
changed) and handed to libgit2 as a similarity metric that answers 100 for those
pairs. What libgit2 cannot do at all (directory rename detection) is found and
reported by dirrename.py, never papered over here.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import pygit2
from pygit2 import Index
from pygit2.ffi import C, ffi

from .similarity import Spans, git_similarity

RENAME_THRESHOLD = 50
"""git's default rename similarity (`-M50%`)."""
BASENAME_THRESHOLD = 75
"""git's score for a rename between files of the same, unique, name."""
GIT_RENAME_LIMIT = 7000
"""git's default `merge.renameLimit`."""
FILE_FLAGS = pygit2.enums.MergeFileFlag.DIFF_PATIENCE
FLAGS = pygit2.enums.MergeFlag.FIND_RENAMES

_GIT_EBUFS = -6
_NO_LIMIT = 2**31 - 1
_REGULAR = (0o100644, 0o100755)
_EMPTY_BLOB = pygit2.Oid(hex="e69de29bb2d1d6434b8b29ae775ad8c2e48c5391")


class Changes(NamedTuple):
    added: dict[str, tuple[pygit2.Oid, int]]
    deleted: dict[str, tuple[pygit2.Oid, int]]
    modified: set[str]


def entry(tree: pygit2.Tree, path: str) -> tuple[pygit2.Oid, int] | None:
    """(id, mode) of what `tree` holds at `path`, or None."""
    try:
        obj = tree[path]
    except KeyError:
        return None
    return obj.id, obj.filemode


def rename_limit(repo: pygit2.Repository) -> int:
    """The rename limit git would use in `repo`: `merge.renameLimit`, else
    `diff.renameLimit`, else 7,000."""
    config = repo.config
    for key in ("merge.renameLimit", "diff.renameLimit"):
        try:
            value = config.get_int(key)
        except (KeyError, ValueError, pygit2.GitError):
            continue
        if value > 0:
            return value
    return GIT_RENAME_LIMIT


class _Metric:
    """A `git_diff_similarity_metric` that scores as git does.

    Two ways: for a merge on a known base the renames are found first, in Python,
    exactly as git finds them (`GitMerger.renames`), and the metric only answers
    100 for those pairs and 0 for the rest (libgit2 then skips every file outside
    them without a call); for `merge_commits`, whose inner merges of several
    merge bases are out of sight, each pair is scored by git's measure.

    A signature handed to libgit2 is a cffi handle to a Python object, kept in
    `live` until libgit2 frees it (or the merge ends)."""

    def __init__(self) -> None:
        self.live: dict[Any, object] = {}
        self.cache: dict[bytes, Spans] = {}
        self.chunks: dict[bytes, int] = {}
        self.pairs: set[tuple[str, str, bytes]] | None = None
        """(source path, target path, target blob id) of the renames, when known."""
        self.named: set[str] = set()
        self.struct = ffi.new("git_diff_similarity_metric *")
        self._callbacks = (
            ffi.callback("int(void **, const git_diff_file *, const char *, void *)", self._file_sig,
                         error=_GIT_EBUFS),
            ffi.callback("int(void **, const git_diff_file *, const char *, size_t, void *)", self._buf_sig,
                         error=_GIT_EBUFS),
            ffi.callback("void(void *, void *)", self._free_sig),
            ffi.callback("int(int *, void *, void *, void *)", self._similarity, error=0),
        )
        (self.struct.file_signature, self.struct.buffer_signature,
         self.struct.free_signature, self.struct.similarity) = self._callbacks

    def _file_sig(self, out, file, path, payload) -> int:  # libgit2 never asks a merge for it
        return _GIT_EBUFS

    def _buf_sig(self, out, file, buf, size, payload) -> int:
        if file.mode not in _REGULAR or size == 0:
            return _GIT_EBUFS
        key = bytes(ffi.buffer(file.id.id, 20))
        sig: object
        if self.pairs is not None:
            path = ffi.string(file.path).decode("utf-8", "surrogateescape")
            if path not in self.named:
                return _GIT_EBUFS
            sig = (path, key)
        else:
            sig = self.cache.get(key)
            if sig is None:
                sig = self.cache[key] = Spans(ffi.buffer(buf, size)[:])
        handle = ffi.new_handle(sig)
        self.live[handle] = sig
        out[0] = handle
        return 0

    def _free_sig(self, sig, payload) -> None:
        self.live.pop(sig, None)

    def _similarity(self, score, a, b, payload) -> int:
        sa, sb = ffi.from_handle(a), ffi.from_handle(b)
        if self.pairs is not None:
            score[0] = 100 if (sa[0], sb[0], sb[1]) in self.pairs else 0
        else:
            score[0] = git_similarity(sa, sb, self.chunks)
        return 0


class GitMerger:
    """Merges of one repository with git's options; one per fold (it keeps the
    span hashes of the blobs it has seen, by blob id)."""

    def __init__(self, repo: pygit2.Repository) -> None:
        self.repo = repo
        self.limit = rename_limit(repo)
        self.metric = _Metric()
        self._renames: dict[tuple, dict[str, str]] = {}
        self._changes: dict[tuple[pygit2.Oid, pygit2.Oid], Changes] = {}

    def options(self, renames_known: bool = False) -> Any:
        """git_merge_options for a merge. When the renames were found beforehand
        (git's limit applied there, to the files that matter), libgit2's own
        limit, which counts every changed path, must not switch them off."""
        opts = ffi.new("git_merge_options *")
        pygit2.errors.check_error(C.git_merge_options_init(opts, C.GIT_MERGE_OPTIONS_VERSION))
        opts.flags = int(FLAGS)
        opts.file_flags = int(FILE_FLAGS)
        opts.rename_threshold = RENAME_THRESHOLD
        opts.target_limit = _NO_LIMIT if renames_known else self.limit
        opts.metric = self.metric.struct
        return opts

    def signature(self, blob_id: pygit2.Oid) -> Spans:
        key = blob_id.raw
        sig = self.metric.cache.get(key)
        if sig is None:
            sig = self.metric.cache[key] = Spans(self.repo[blob_id].data)
        return sig

    def changes(self, old: pygit2.Tree, new: pygit2.Tree) -> Changes:
        """The files added, deleted and modified from `old` to `new` (no renames)."""
        key = (old.id, new.id)
        found = self._changes.get(key)
        if found is None:
            found = Changes({}, {}, set())
            for d in old.diff_to_tree(new).deltas:
                if d.status == pygit2.enums.DeltaStatus.DELETED:
                    found.deleted[d.old_file.path] = (d.old_file.id, d.old_file.mode)
                elif d.status == pygit2.enums.DeltaStatus.ADDED:
                    found.added[d.new_file.path] = (d.new_file.id, d.new_file.mode)
                else:
                    found.modified.add(d.new_file.path)
            self._changes[key] = found
        return found

    def renames(self, old: pygit2.Tree, new: pygit2.Tree,
                sources: frozenset[str] | None = None) -> dict[str, str]:
        """{old path: new path} of the files renamed between two trees, found as
        git finds them: identical content first, then the pairs that score at
        least 50% by git's measure, best first, each file used once; no inexact
        pairs when deleted x added files pass the rename limit squared. With
        `sources`, only those old paths are scored (identical content is matched
        for all)."""
        key = (old.id, new.id, sources)
        if key not in self._renames:
            self._renames[key] = self._find_renames(old, new, sources)
        return dict(self._renames[key])

    def _find_renames(self, old: pygit2.Tree, new: pygit2.Tree,
                      sources: frozenset[str] | None) -> dict[str, str]:
        ch = self.changes(old, new)
        deleted = {p: f for p, f in ch.deleted.items() if f[1] in _REGULAR and f[0] != _EMPTY_BLOB}
        added = {p: f for p, f in ch.added.items() if f[1] in _REGULAR and f[0] != _EMPTY_BLOB}
        out: dict[str, str] = {}
        by_id: dict[pygit2.Oid, list[str]] = {}
        for path, f in sorted(deleted.items()):
            by_id.setdefault(f[0], []).append(path)
        for path, f in sorted(added.items()):
            found = by_id.get(f[0])
            if found:
                out[found.pop(0)] = path
        left_old = [p for p in deleted if p not in out and (sources is None or p in sources)]
        taken = set(out.values())
        left_new = [p for p in added if p not in taken]
        # git's first guess: a file whose name is unique on both sides moved
        # with it, if at least 75% alike
        names_old: dict[str, list[str]] = {}
        names_new: dict[str, list[str]] = {}
        for p in left_old:
            names_old.setdefault(p.rpartition("/")[2], []).append(p)
        for p in left_new:
            names_new.setdefault(p.rpartition("/")[2], []).append(p)
        guesses: dict[str, str] = {}  # old dir -> new dir, from the renames found so far
        for src, dst in out.items():
            guesses.setdefault(src.rpartition("/")[0], dst.rpartition("/")[0])

        def alike(src: str, dst: str) -> bool:
            return git_similarity(self.signature(deleted[src][0]), self.signature(added[dst][0]),
                                  self.metric.chunks) >= BASENAME_THRESHOLD

        for name, olds in names_old.items():
            news = names_new.get(name, [])
            if len(olds) == 1 and len(news) == 1 and alike(olds[0], news[0]):
                out[olds[0]] = news[0]
                guesses.setdefault(olds[0].rpartition("/")[0], news[0].rpartition("/")[0])
        taken = set(out.values())
        # then, as git does, a file whose name is not unique is looked for where
        # the other files of its directory went
        for src in left_old:
            folder, _, name = src.rpartition("/")
            if src in out or folder not in guesses:
                continue
            dst = f"{guesses[folder]}/{name}" if guesses[folder] else name
            if dst in added and dst not in taken and dst in left_new and alike(src, dst):
                out[src] = dst
                taken.add(dst)
        left_old = [p for p in left_old if p not in out]
        left_new = [p for p in left_new if p not in taken]
        if not left_old or not left_new or len(left_old) * len(left_new) > self.limit ** 2:
            return out
        scored = []
        for o in left_old:
            so = self.signature(deleted[o][0])
            for n in left_new:
                score = git_similarity(so, self.signature(added[n][0]), self.metric.chunks)
                if score >= RENAME_THRESHOLD:
                    scored.append((-score, n, o))
        used_new: set[str] = set()
        for _, n, o in sorted(scored):
            if o not in out and n not in used_new:
                out[o] = n
                used_new.add(n)
        return out

    def merge_renames(self, base: pygit2.Tree, ours: pygit2.Tree,
                      theirs: pygit2.Tree) -> tuple[dict[str, str], dict[str, str]]:
        """The renames of each side that matter to a merge, as git's ort finds
        them: only files the other side changed or deleted are looked for (for a
        file the other side left alone, rename or delete come out the same).

        Only `theirs` (in a fold, the agent's head) is diffed against the base;
        `ours` (the integration, whose changes grow with every fold) is looked up
        path by path, and diffed only when one of its renames matters."""
        t = self.changes(base, theirs)
        rel_o = frozenset(p for p in (*t.deleted, *t.modified) if entry(ours, p) is None)
        rel_t = frozenset(p for p in t.deleted if entry(ours, p) != entry(base, p))
        return (self.renames(base, ours, rel_o) if rel_o else {},
                self.renames(base, theirs, rel_t) if rel_t else {})

    def alike_base(self, base: pygit2.Tree, ours: pygit2.Tree, theirs: pygit2.Tree) -> pygit2.Tree | None:
        """`base` with the files both sides renamed to the same new name moved
        there, or None when there are none.

        libgit2 will not merge the contents of a file both sides renamed alike
        (it reports a conflict); git merges them at the new name. Merging on this
        base gives git's answer: each such file is then a plain three-way merge."""
        r_ours, r_theirs = self.merge_renames(base, ours, theirs)
        alike = {src: dst for src, dst in r_ours.items() if r_theirs.get(src) == dst}
        if not alike:
            return None
        index = pygit2.Index()
        index.read_tree(base)
        for src, dst in alike.items():
            entry = base[src]
            index.remove(src)
            index.add(pygit2.IndexEntry(dst, entry.id, entry.filemode))
        return self.repo[index.write_tree(self.repo)]

    def merge_trees(self, base: pygit2.Tree, ours: pygit2.Tree, theirs: pygit2.Tree) -> Index:
        """The merge of two trees on `base`, as an index (conflicts as stages)."""
        out = ffi.new("git_index **")
        trees = [ffi.new("git_tree **") for _ in range(3)]
        for ptr, tree in zip(trees, (base, ours, theirs)):
            ffi.buffer(ptr)[:] = tree._pointer[:]
        opts = self.options(renames_known=True)
        r_ours, r_theirs = self.merge_renames(base, ours, theirs)
        pairs = set()
        for rmap, side in ((r_ours, ours), (r_theirs, theirs)):
            if rmap:
                added = self.changes(base, side).added
                pairs.update((src, dst, added[dst][0].raw) for src, dst in rmap.items())
        self.metric.pairs = pairs
        self.metric.named = {p for pair in pairs for p in pair[:2]}
        try:
            err = C.git_merge_trees(out, self.repo._repo, trees[0][0], trees[1][0], trees[2][0], opts)
        finally:
            self.metric.live.clear()
            self.metric.pairs = None
        pygit2.errors.check_error(err)
        return Index.from_c(self.repo, out)

    def merge_commits(self, ours: pygit2.Commit | str, theirs: pygit2.Commit | str) -> Index:
        """The merge of two commits on their merge bases (a virtual base built
        from several, as git's recursive merge does). Raises pygit2.GitError when
        they have none."""
        ours, theirs = (c if isinstance(c, pygit2.Commit) else self.repo[c].peel(pygit2.Commit)
                        for c in (ours, theirs))
        out = ffi.new("git_index **")
        commits = [ffi.new("git_commit **") for _ in range(2)]
        for ptr, commit in zip(commits, (ours, theirs)):
            ffi.buffer(ptr)[:] = commit._pointer[:]
        opts = self.options()
        try:
            err = C.git_merge_commits(out, self.repo._repo, commits[0][0], commits[1][0], opts)
        finally:
            self.metric.live.clear()
            self.metric.pairs = None
        pygit2.errors.check_error(err)
        return Index.from_c(self.repo, out)
