"""Staging a worktree's entries from disk into an index, for the host-side commit.

Entries are read with lstat and raw byte names, never through git's discovery:
names that are not UTF-8 go in byte for byte, symlinks are committed as links
(never followed), directories are walked entry by entry, and anything named
`.git` (in any case) at any depth is left out, as are fifos, sockets, devices and
files over MAX_FILE_BYTES (a sparse `truncate -s 20G` would otherwise become a 20 GB
blob in the user's repository, read long after the attempt's time limit).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pygit2
from pygit2.enums import FileMode


MAX_FILE_BYTES = 100 * 2**20
"""The largest file an attempt may commit (what big git hosts refuse, too)."""


def _is_git_name(name: bytes) -> bool:
    return name.lower() == b".git"


def show_path(raw: bytes) -> str:
    """A raw path for records and messages: UTF-8, odd bytes shown as `\\xNN`."""
    return raw.decode("utf-8", "backslashreplace")


def stage_entry(wt: pygit2.Repository, index: pygit2.Index, root: Path, rel: bytes,
                left_out: list[bytes]) -> None:
    """Put the worktree entry `rel` (bytes, repo-relative) into `index` as it is on
    disk now: a file, a symlink, every file of a directory, or nothing when gone."""
    if any(_is_git_name(part) for part in rel.split(b"/")):
        left_out.append(rel)
        return
    full = os.path.join(os.fsencode(root), rel)
    try:
        st = os.lstat(full)
    except FileNotFoundError:
        _unstage(index, rel)
        return
    if stat.S_ISDIR(st.st_mode):
        _unstage(index, rel)
        with os.scandir(full) as entries:
            names = sorted(e.name for e in entries)
        for name in names:
            child = rel + b"/" + name
            if _is_git_name(name):
                left_out.append(child)
            elif not wt.path_is_ignored(os.fsdecode(child)):
                stage_entry(wt, index, root, child, left_out)
        return
    if stat.S_ISLNK(st.st_mode):
        oid, mode = wt.create_blob(os.readlink(full)), FileMode.LINK
    elif stat.S_ISREG(st.st_mode) and st.st_size > MAX_FILE_BYTES:
        left_out.append(rel)
        return
    elif stat.S_ISREG(st.st_mode):
        with open(full, "rb") as fh:
            oid = wt.create_blob_fromiobase(fh)
        mode = FileMode.BLOB_EXECUTABLE if st.st_mode & stat.S_IXUSR else FileMode.BLOB
    else:
        left_out.append(rel)
        return
    _unstage_below(index, rel)
    index.add(pygit2.IndexEntry(rel, oid, mode))


def _unstage(index: pygit2.Index, rel: bytes) -> None:
    try:
        index.remove(os.fsdecode(rel))
    except (OSError, pygit2.GitError):
        pass


def _unstage_below(index: pygit2.Index, rel: bytes) -> None:
    """A file replacing a directory: drop the directory's entries first."""
    try:
        index.remove_directory(os.fsdecode(rel))
    except (OSError, pygit2.GitError):
        pass
