"""libgit2's in-memory merge, set up to give the answer of git's own (`ort`) merge.

`Repository.merge_trees` / `merge_commits` in pygit2 expose only the flags, the
file flags and the favor of libgit2's `git_merge_options`; three defaults left
there make libgit2 answer differently from `git merge` on real history:

- line matching: libgit2 uses Myers, git's merge uses histogram. libgit2 offers
  patience (`GIT_MERGE_FILE_DIFF_PATIENCE`), histogram's ancestor and the closest
  it has: with it the interleaved changelog merges agree with git's.
- rename limit: libgit2 gives up on inexact renames above 1,000 changed paths,
  git above 7,000 (`merge.renameLimit`, else `diff.renameLimit`, else 7,000).
- rename similarity: libgit2 scores pairs with its own line-hash sampling, lower
  than git's for a rename with edits, so a rename git sees becomes modify/delete.
  Here the score is git's (diffcore-delta: bytes of the source found again in the
  target, in chunks of a line or 64 bytes, over the larger size), with git's 50%.

So these functions fill `git_merge_options` themselves (through pygit2's own cffi
handle, the one its methods use) and pass a similarity metric computed as git
does. What libgit2 cannot do at all (directory rename detection) is reported by
conflict_record.py, never papered over here.
"""

from __future__ import annotations

from typing import Any

import pygit2
from pygit2 import Index
from pygit2.ffi import C, ffi

RENAME_THRESHOLD = 50
"""git's default rename similarity (`-M50%`)."""
GIT_RENAME_LIMIT = 7000
"""git's default `merge.renameLimit`."""
FILE_FLAGS = pygit2.enums.MergeFileFlag.DIFF_PATIENCE
FLAGS = pygit2.enums.MergeFlag.FIND_RENAMES

_HASHBASE = 107927
_GIT_EBUFS = -6
_REGULAR = (0o100644, 0o100755)
_MASK = 0xFFFFFFFF


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


def span_hashes(data: bytes) -> tuple[int, dict[int, int]]:
    """(size, {chunk hash: bytes}) of a blob, as git's diffcore-delta counts it: a
    chunk ends at a newline or after 64 bytes; a CR before LF is not counted in a
    text file."""
    text = b"\0" not in data[:8000]
    counts: dict[int, int] = {}
    a1 = a2 = n = 0
    size = len(data)
    for i, c in enumerate(data):
        if text and c == 13 and i + 1 < size and data[i + 1] == 10:
            continue
        old = a1
        a1 = (((a1 << 7) ^ (a2 >> 25)) + c) & _MASK
        a2 = ((a2 << 7) ^ (old >> 25)) & _MASK
        n += 1
        if n < 64 and c != 10:
            continue
        h = ((a1 + a2 * 9) & _MASK) % _HASHBASE
        counts[h] = counts.get(h, 0) + n
        a1 = a2 = n = 0
    if n:
        h = ((a1 + a2 * 9) & _MASK) % _HASHBASE
        counts[h] = counts.get(h, 0) + n
    return size, counts


def git_similarity(a: tuple[int, dict[int, int]], b: tuple[int, dict[int, int]]) -> int:
    """git's rename score of two span-hashed blobs, in percent (0-100): the bytes
    of `a` found in `b` over the larger size; 0 when the sizes differ too much for
    50% to be reachable (git does not look further then either)."""
    (sa, ha), (sb, hb) = a, b
    big, small = max(sa, sb), min(sa, sb)
    if big == 0 or 2 * (big - small) > big:
        return 0
    if len(hb) < len(ha):
        ha, hb = hb, ha
    copied = sum(min(n, hb[h]) for h, n in ha.items() if h in hb)
    return copied * 100 // big


class _Metric:
    """A `git_diff_similarity_metric` whose signatures are git's span hashes.

    A signature handed to libgit2 is a cffi handle to a Python tuple; the tuples
    are kept in `live` until libgit2 frees them (or the merge ends)."""

    def __init__(self) -> None:
        self.live: dict[Any, tuple[int, dict[int, int]]] = {}
        self.cache: dict[bytes, tuple[int, dict[int, int]]] = {}
        self.struct = ffi.new("git_diff_similarity_metric *")
        self._callbacks = (
            ffi.callback("int(void **, const git_diff_file *, const char *, void *)", self._file_sig),
            ffi.callback("int(void **, const git_diff_file *, const char *, size_t, void *)", self._buf_sig),
            ffi.callback("void(void *, void *)", self._free_sig),
            ffi.callback("int(int *, void *, void *, void *)", self._similarity),
        )
        (self.struct.file_signature, self.struct.buffer_signature,
         self.struct.free_signature, self.struct.similarity) = self._callbacks

    def _file_sig(self, out, file, path, payload) -> int:  # libgit2 never asks a merge for it
        return _GIT_EBUFS

    def _buf_sig(self, out, file, buf, size, payload) -> int:
        if file.mode not in _REGULAR or size == 0:
            return _GIT_EBUFS
        key = bytes(ffi.buffer(file.id.id, 20))
        sig = self.cache.get(key)
        if sig is None:
            sig = self.cache[key] = span_hashes(ffi.buffer(buf, size)[:])
        handle = ffi.new_handle(sig)
        self.live[handle] = sig
        out[0] = handle
        return 0

    def _free_sig(self, sig, payload) -> None:
        self.live.pop(sig, None)

    def _similarity(self, score, a, b, payload) -> int:
        score[0] = git_similarity(ffi.from_handle(a), ffi.from_handle(b))
        return 0


class GitMerger:
    """Merges of one repository with git's options; one per fold (it keeps the
    span hashes of the blobs it has seen, by blob id)."""

    def __init__(self, repo: pygit2.Repository) -> None:
        self.repo = repo
        self.limit = rename_limit(repo)
        self.metric = _Metric()

    def options(self) -> Any:
        opts = ffi.new("git_merge_options *")
        pygit2.errors.check_error(C.git_merge_options_init(opts, C.GIT_MERGE_OPTIONS_VERSION))
        opts.flags = int(FLAGS)
        opts.file_flags = int(FILE_FLAGS)
        opts.rename_threshold = RENAME_THRESHOLD
        opts.target_limit = self.limit
        opts.metric = self.metric.struct
        return opts

    def merge_trees(self, base: pygit2.Tree, ours: pygit2.Tree, theirs: pygit2.Tree) -> Index:
        """The merge of two trees on `base`, as an index (conflicts as stages)."""
        out = ffi.new("git_index **")
        trees = [ffi.new("git_tree **") for _ in range(3)]
        for ptr, tree in zip(trees, (base, ours, theirs)):
            ffi.buffer(ptr)[:] = tree._pointer[:]
        opts = self.options()
        try:
            err = C.git_merge_trees(out, self.repo._repo, trees[0][0], trees[1][0], trees[2][0], opts)
        finally:
            self.metric.live.clear()
        pygit2.errors.check_error(err)
        return Index.from_c(self.repo, out)

    def merge_commits(self, ours: pygit2.Commit, theirs: pygit2.Commit) -> Index:
        """The merge of two commits on their merge bases (a virtual base built
        from several, as git's recursive merge does). Raises pygit2.GitError when
        they have none."""
        out = ffi.new("git_index **")
        commits = [ffi.new("git_commit **") for _ in range(2)]
        for ptr, commit in zip(commits, (ours, theirs)):
            ffi.buffer(ptr)[:] = commit._pointer[:]
        opts = self.options()
        try:
            err = C.git_merge_commits(out, self.repo._repo, commits[0][0], commits[1][0], opts)
        finally:
            self.metric.live.clear()
        pygit2.errors.check_error(err)
        return Index.from_c(self.repo, out)
