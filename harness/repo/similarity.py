"""git's rename score (diffcore-delta), for telling renames apart as git does.

git cuts each file into chunks (a line, or 64 bytes of a longer one; a CR before
LF not counted in a text file), counts the bytes of each chunk by a 17-bit hash,
and scores a pair by the bytes of the source found again in the target over the
larger size. A pair whose sizes differ too much to reach 50% is not scored.
"""

from __future__ import annotations

from collections import Counter

_HASHBASE = 107927
_MASK = 0xFFFFFFFF


def _chunk_hash(chunk: bytes) -> int:
    a1 = a2 = 0
    for c in chunk:
        old = a1
        a1 = (((a1 << 7) ^ (a2 >> 25)) + c) & _MASK
        a2 = ((a2 << 7) ^ (old >> 25)) & _MASK
    return ((a1 + a2 * 9) & _MASK) % _HASHBASE


class Spans:
    """A blob cut as git's diffcore-delta cuts it: a chunk ends at a newline or
    after 64 bytes; a CR before LF is not counted in a text file.

    `chunks` counts bytes per chunk text. git counts them per 17-bit hash of the
    chunk, so two different chunks now and then count as the same one; that can
    only raise git's score, so a pair that falls just short of 50% on the exact
    chunks is scored again on git's hashes (`hashed`, made on demand)."""

    __slots__ = ("size", "chunks", "_hashed")

    def __init__(self, data: bytes) -> None:
        self.size = len(data)
        if b"\0" not in data[:8000]:
            data = data.replace(b"\r\n", b"\n")
        if b"\r" in data:  # splitlines would also cut at a lone CR
            pieces = data.split(b"\n")
            last = pieces.pop()
            lines = [line + b"\n" for line in pieces] + ([last] if last else [])
        else:
            lines = data.splitlines(keepends=True)
        chunks: dict[bytes, int] = {}
        for line, k in Counter(lines).items():
            if len(line) <= 64:
                chunks[line] = chunks.get(line, 0) + k * len(line)
                continue
            for i in range(0, len(line), 64):
                chunk = line[i:i + 64]
                chunks[chunk] = chunks.get(chunk, 0) + k * len(chunk)
        self.chunks = chunks
        self._hashed: dict[int, int] | None = None

    def hashed(self, memo: dict[bytes, int]) -> dict[int, int]:
        """{git's chunk hash: bytes}."""
        if self._hashed is None:
            out: dict[int, int] = {}
            for chunk, n in self.chunks.items():
                h = memo.get(chunk)
                if h is None:
                    h = memo[chunk] = _chunk_hash(chunk)
                out[h] = out.get(h, 0) + n
            self._hashed = out
        return self._hashed


def _copied(a: dict, b: dict) -> int:
    return sum(min(a[k], b[k]) for k in a.keys() & b.keys())


def git_similarity(a: Spans, b: Spans, memo: dict[bytes, int] | None = None) -> int:
    """git's rename score of two blobs in percent (0-100): the bytes of `a` found
    in `b` over the larger size; 0 when the sizes differ too much for 50% to be
    reachable (git does not look further then either)."""
    big, small = max(a.size, b.size), min(a.size, b.size)
    if big == 0 or 2 * (big - small) > big:
        return 0
    copied = _copied(a.chunks, b.chunks)
    if 2 * copied < big <= 2 * copied + big // 10:  # just short: git's hashes may reach 50%
        memo = {} if memo is None else memo
        copied = _copied(a.hashed(memo), b.hashed(memo))
    return copied * 100 // big


