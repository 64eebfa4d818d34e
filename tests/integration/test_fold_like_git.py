"""The fold gives git's answer: each case below is a small real history on which
libgit2's defaults differ from `git merge-tree --write-tree` (git's `ort` merge),
checked against git itself in the same test."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pygit2
import pytest

from gitutil import git
from harness.integrate.fold import fold
from harness.repo.gitmerge import GIT_RENAME_LIMIT, GitMerger, rename_limit
from harness.repo.similarity import Spans, git_similarity

SIG = pygit2.Signature("t", "t@example.com", 1_700_000_000, 0)
BLOB = pygit2.enums.FileMode.BLOB


def new_repo(path: Path) -> pygit2.Repository:
    git(path.parent, "init", "-q", "-b", "main", path.name)
    return pygit2.Repository(str(path))


def tree_of(repo: pygit2.Repository, files: dict[str, bytes | str]) -> pygit2.Oid:
    index = pygit2.Index()
    for name, data in files.items():
        index.add(pygit2.IndexEntry(name, repo.create_blob(data.encode() if isinstance(data, str) else data),
                                    BLOB))
    return index.write_tree(repo)


def commit(repo: pygit2.Repository, parents: list[str], files: dict[str, bytes | str] | None = None,
           edits: dict[str, bytes | str | None] | None = None, msg: str = "c") -> str:
    """A commit holding `files`, or its first parent's files with `edits` (None deletes)."""
    if files is None:
        index = pygit2.Index()
        index.read_tree(repo[parents[0]].peel(pygit2.Tree))
        for path, data in (edits or {}).items():
            if data is None:
                index.remove(path)
            else:
                blob = repo.create_blob(data.encode() if isinstance(data, str) else data)
                index.add(pygit2.IndexEntry(path, blob, BLOB))
        tree = index.write_tree(repo)
    else:
        tree = tree_of(repo, files)
    return str(repo.create_commit(None, SIG, SIG, msg, tree, [pygit2.Oid(hex=p) for p in parents]))


def git_answer(path: Path, ours: str, theirs: str) -> tuple[str, str | None, set[str]]:
    """("clean" | "conflict" | "refused", tree, conflicted paths) from git itself."""
    proc = subprocess.run(["git", "-C", str(path), "merge-tree", "--write-tree", "--name-only",
                           "--no-messages", ours, theirs], capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        return "refused", None, set()
    lines = proc.stdout.splitlines()
    return ("clean" if proc.returncode == 0 else "conflict"), lines[0], set(lines[1:]) - {""}


def fold_one(repo: pygit2.Repository, ours: str, theirs: str):
    return fold(repo, ours, [("t", theirs)]).steps[0]


def assert_like_git(path: Path, repo: pygit2.Repository, ours: str, theirs: str):
    """The fold of `theirs` onto `ours` gives git's answer; returns the step."""
    outcome, tree, paths = git_answer(path, ours, theirs)
    step = fold_one(repo, ours, theirs)
    if outcome == "clean":
        assert step.outcome == "folded" and step.tree == tree
    else:
        assert step.outcome == "conflicted"
        assert {p.path for p in step.conflict.paths} == paths
    return step


def libgit2_default(repo: pygit2.Repository, base: str, ours: str, theirs: str) -> pygit2.Index:
    tree = lambda c: repo[c].peel(pygit2.Tree)  # noqa: E731
    return repo.merge_trees(tree(base), tree(ours), tree(theirs))


# --- 1. line matching: an interleaved changelog ---------------------------------------


def _entry(tag: str, n: int) -> str:
    return f"-   Change {tag} to the parser. :pr:`{n}`\n    Second line of {tag}.\n"


def _section(version: str, status: str, entries: list[str]) -> str:
    return f"Version {version}\n-------------\n\n{status}\n\n" + "".join(entries)


def changelog_case(repo: pygit2.Repository) -> tuple[str, str, str]:
    """(base, ours, theirs): ours releases 2.0.0 and opens two sections above it;
    theirs adds an entry to 2.0.0."""
    olds = [_entry(f"b{i}", 100 + i) for i in range(12)]
    base = commit(repo, [], {"CHANGES.rst": "Changelog\n\n" + _section("2.0.0", "Unreleased", olds)})
    ours = commit(repo, [base], edits={"CHANGES.rst": "Changelog\n\n"
                  + _section("2.1.0", "Unreleased", [_entry("o1", 201), _entry("o2", 202)]) + "\n\n"
                  + _section("2.0.1", "Unreleased", [_entry("o3", 203), _entry("o4", 204)]) + "\n\n"
                  + _section("2.0.0", "Released 2026-01-01", olds[:11] + [_entry("o5", 205), _entry("o6", 206)])})
    theirs = commit(repo, [base], edits={"CHANGES.rst": "Changelog\n\n"
                    + _section("2.0.0", "Unreleased", [_entry("t1", 301)] + olds)})
    return base, ours, theirs


def test_interleaved_changelog_merges_as_git_does(tmp_path):
    """Ours releases 2.0.0 and opens two sections above it; theirs adds an entry
    to 2.0.0. Myers lines up the new sections' blank and underline lines with the
    old ones and conflicts; git (histogram) and patience put the entry under 2.0.0."""
    repo = new_repo(tmp_path / "r")
    base, ours, theirs = changelog_case(repo)
    assert libgit2_default(repo, base, ours, theirs).conflicts is not None  # the case is real
    step = assert_like_git(tmp_path / "r", repo, ours, theirs)
    text = repo[repo[step.tree]["CHANGES.rst"].id].data.decode()
    assert text.index("Change t1") > text.index("Version 2.0.0")


def test_a_task_with_two_dependencies_starts_from_gits_merge_of_them(tmp_path):
    """The base of a task that depends on two others is their merge, made the way the
    fold merges (Workspace.merged_base), so it is git's answer too."""
    from harness.repo.workspace import Workspace

    path = tmp_path / "r"
    repo = new_repo(path)
    base, ours, theirs = changelog_case(repo)
    assert libgit2_default(repo, base, ours, theirs).conflicts is not None  # libgit2's default conflicts
    repo.references.create("refs/heads/main", base)
    outcome, tree, _ = git_answer(path, ours, theirs)
    assert outcome == "clean"
    merged = Workspace(path).merged_base([ours, theirs], "dependencies")
    assert str(repo[merged].peel(pygit2.Commit).tree_id) == tree


# --- 2. rename limit: more than 1,000 changed paths ------------------------------------


@pytest.mark.parametrize("n", [1100, 7100])
def test_rename_is_found_among_more_than_a_thousand_changes(tmp_path, n):
    """libgit2 stops at 1,000 changed paths; git (which looks only for renames
    that matter, here one) finds it among 1,100 and among 7,100."""
    repo = new_repo(tmp_path / "r")
    doc = "".join(f"paragraph {i} of the guide\n" for i in range(30))
    files = {f"pkg/m{i}.py": f"x = {i}\n" for i in range(n)}
    base = commit(repo, [], {**files, "doc.txt": doc})
    ours = commit(repo, [base], edits={**{p: f"x = {i} + 1\n" for i, p in enumerate(files)},
                                       "doc.txt": None, "guide.txt": doc.replace("paragraph 3 ", "section 3 ")})
    theirs = commit(repo, [base], edits={"doc.txt": doc.replace("paragraph 20 ", "part 20 ")})
    assert libgit2_default(repo, base, ours, theirs).conflicts is not None  # libgit2 stops at 1,000
    step = assert_like_git(tmp_path / "r", repo, ours, theirs)
    guide = repo[repo[step.tree]["guide.txt"].id].data.decode()
    assert "section 3 " in guide and "part 20 " in guide


def test_rename_limit_is_gits_unless_configured(tmp_path):
    repo = new_repo(tmp_path / "r")
    assert rename_limit(repo) == GIT_RENAME_LIMIT == 7000
    git(tmp_path / "r", "config", "diff.renameLimit", "300")
    assert rename_limit(pygit2.Repository(str(tmp_path / "r"))) == 300
    git(tmp_path / "r", "config", "merge.renameLimit", "9000")
    assert rename_limit(pygit2.Repository(str(tmp_path / "r"))) == 9000


# --- 3. rename similarity scored as git scores it --------------------------------------


def _scored_file(n_short: int, changed: bool) -> str:
    long = "".join(f"# {'long unchanged documentation line number %d ' % i * 3}\n" for i in range(3))
    return long + "".join((f"y{i} = {i}0\n" if changed else f"x{i} = {i}\n") for i in range(n_short))


def test_rename_with_a_45_percent_edit_merges_as_git_does(tmp_path):
    """A file renamed with most of its short lines rewritten: git scores it by
    bytes (55% alike, a rename), libgit2 by lines (no rename: modify/delete)."""
    path = tmp_path / "r"
    repo = new_repo(path)
    old = _scored_file(36, changed=False)
    base = commit(repo, [], {"calc.py": old, "other.txt": "x\n"})
    ours = commit(repo, [base], edits={"calc.py": None, "lib/calc.py": _scored_file(36, changed=True)})
    theirs = commit(repo, [base], edits={"calc.py": old.replace("number 1 ", "number one ")})
    git(path, "update-ref", "refs/heads/ours", ours)
    score = git(path, "diff", "--name-status", "-M", base, ours).split()[0]
    assert score.startswith("R") and 50 <= int(score[1:]) < 60
    assert libgit2_default(repo, base, ours, theirs).conflicts is not None
    step = assert_like_git(path, repo, ours, theirs)
    assert "number one " in repo[repo[step.tree]["lib/calc.py"].id].data.decode()


def test_similarity_is_gits_own_score(tmp_path):
    """Our score of a pair is the one `git diff -M` prints, for renames around 50%."""
    path = tmp_path / "r"
    repo = new_repo(path)
    for n in (20, 30, 36, 40, 44):
        old, new = _scored_file(n, False), _scored_file(n, True) + "\r\n" * (n % 3)
        base = commit(repo, [], {"a.py": old})
        head = commit(repo, [base], edits={"a.py": None, "b.py": new})
        out = git(path, "diff", "--name-status", "-M1%", base, head).split()
        ours = git_similarity(Spans(old.encode()), Spans(new.encode()))
        assert out[0] == f"R{ours:03d}", (n, out, ours)


def test_similarity_matches_gits_chunk_hashes():
    """The exact-chunk shortcut never gives more than git's hashed count, and a
    pair just short of 50% is scored again on git's own hashes."""
    import random

    rng = random.Random(5)
    for _ in range(200):
        a = bytes(rng.choice(b"ab\r\n xyz" * 2 + b"\0") for _ in range(rng.randrange(1, 300)))
        b = bytes(rng.choice(b"ab\r\n xyz" * 2) for _ in range(rng.randrange(1, 300)))
        sa, sb = Spans(a), Spans(b)
        exact = sum(min(sa.chunks[k], sb.chunks[k]) for k in sa.chunks.keys() & sb.chunks.keys())
        memo: dict[bytes, int] = {}
        ha, hb = sa.hashed(memo), sb.hashed(memo)
        hashed = sum(min(ha[k], hb[k]) for k in ha.keys() & hb.keys())
        assert exact <= hashed
        assert sum(ha.values()) == sum(sa.chunks.values())


# --- 4. same-target renames, rename conflicts named as git names them -----------------

TEN = "".join(f"line {i}\n" for i in range(1, 11))


def test_both_sides_renaming_alike_merge_their_edits(tmp_path):
    """libgit2 will not merge the contents of a file both sides renamed to the
    same name; git does."""
    path = tmp_path / "r"
    repo = new_repo(path)
    base = commit(repo, [], {"validators.md": TEN, "x.txt": "x\n"})
    ours = commit(repo, [base], edits={"validators.md": None, "custom.md": TEN.replace("line 2", "two")})
    theirs = commit(repo, [base], edits={"validators.md": None, "custom.md": TEN.replace("line 9", "nine")})
    assert libgit2_default(repo, base, ours, theirs).conflicts is not None
    step = assert_like_git(path, repo, ours, theirs)
    text = repo[repo[step.tree]["custom.md"].id].data.decode()
    assert "two" in text and "nine" in text


def test_same_target_rename_conflict_is_a_content_conflict_at_the_new_name(tmp_path):
    path = tmp_path / "r"
    repo = new_repo(path)
    base = commit(repo, [], {"validators.md": TEN, "x.txt": "x\n"})
    ours = commit(repo, [base], edits={"validators.md": None, "custom.md": TEN.replace("line 5", "ours")})
    theirs = commit(repo, [base], edits={"validators.md": None, "custom.md": TEN.replace("line 5", "theirs")})
    step = assert_like_git(path, repo, ours, theirs)
    [p] = step.conflict.paths
    assert p.path == "custom.md" and p.kind == "content"
    assert "1to2" not in p.detail
    assert p.ours_text == "ours\n" and p.theirs_text == "theirs\n"


@pytest.mark.parametrize("side", ["ours", "theirs"])
def test_rename_conflict_is_named_by_its_new_path(tmp_path, side):
    path = tmp_path / "r"
    repo = new_repo(path)
    base = commit(repo, [], {"click/types.py": TEN, "x.txt": "x\n"})
    renamed = commit(repo, [base], edits={"click/types.py": None,
                                          "src/click/types.py": TEN.replace("line 4", "renamer")})
    edited = commit(repo, [base], edits={"click/types.py": TEN.replace("line 4", "editor")})
    ours, theirs = (renamed, edited) if side == "ours" else (edited, renamed)
    step = assert_like_git(path, repo, ours, theirs)
    [p] = step.conflict.paths
    assert p.path == "src/click/types.py" and p.ancestor_path == "click/types.py"
    assert p.detail.startswith("rename/modify")


def test_rename_delete_is_named_by_its_new_path(tmp_path):
    path = tmp_path / "r"
    repo = new_repo(path)
    base = commit(repo, [], {"a.txt": TEN, "x.txt": "x\n"})
    ours = commit(repo, [base], edits={"a.txt": None})
    theirs = commit(repo, [base], edits={"a.txt": None, "c.txt": TEN})
    step = assert_like_git(path, repo, ours, theirs)
    assert [(p.path, p.detail.split(":")[0]) for p in step.conflict.paths] == [("c.txt", "rename/delete")]


# --- directory renames: what libgit2 cannot do is said, not hidden ---------------------


def test_file_added_in_a_directory_the_other_side_renamed_is_reported(tmp_path):
    path = tmp_path / "r"
    repo = new_repo(path)
    files = {f"tests/pyright/m{i}.py": f"# module {i}\n" + TEN for i in range(4)}
    base = commit(repo, [], {**files, "README": "r\n"})
    ours = commit(repo, [base], edits={"tests/pyright/misc.py": "new = 1\n"})
    theirs = commit(repo, [base], edits={**{p: None for p in files},
                                         **{p.replace("pyright", "typechecking"): d for p, d in files.items()}})
    assert libgit2_default(repo, base, ours, theirs).conflicts is None  # libgit2: silently clean
    step = assert_like_git(path, repo, ours, theirs)
    assert step.conflict.not_attempted and "directory rename" in step.conflict.not_attempted[0]
    [p] = step.conflict.paths
    assert p.path == "tests/typechecking/misc.py" and p.ours_path == "tests/pyright/misc.py"
    assert "not attempted" in p.detail


def test_directory_emptied_without_renames_is_no_directory_rename(tmp_path):
    path = tmp_path / "r"
    repo = new_repo(path)
    base = commit(repo, [], {"old/a.py": TEN, "old/b.py": TEN + "b\n", "README": "r\n"})
    ours = commit(repo, [base], edits={"old/new.py": "n = 1\n"})
    theirs = commit(repo, [base], edits={"old/a.py": None, "old/b.py": None})
    step = assert_like_git(path, repo, ours, theirs)
    assert step.outcome == "folded"


# --- 4b. unrelated histories and long branches -----------------------------------------


class CountingRepository(pygit2.Repository):
    """A repository that counts the history walks the fold asks of libgit2."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.calls = {"walk": 0, "descendant_of": 0, "merge_base": 0}

    def walk(self, *args, **kwargs):
        self.calls["walk"] += 1
        return super().walk(*args, **kwargs)

    def descendant_of(self, *args, **kwargs):
        self.calls["descendant_of"] += 1
        return super().descendant_of(*args, **kwargs)

    def merge_base(self, *args, **kwargs):
        self.calls["merge_base"] += 1
        return super().merge_base(*args, **kwargs)


def _chain(repo: pygit2.Repository, parent: str | None, n: int, name: str) -> str:
    """`n` commits on `parent`, each adding a line to `name` (trees built by hand,
    so thousands take well under a second)."""
    head = parent
    tb_base = repo[parent].peel(pygit2.Tree) if parent else None
    text = ""
    for i in range(n):
        text += f"{name} {i}\n"
        tb = repo.TreeBuilder(tb_base) if tb_base is not None else repo.TreeBuilder()
        tb.insert(name, repo.create_blob(text.encode()), BLOB)
        head = str(repo.create_commit(None, SIG, SIG, f"{name} {i}", tb.write(),
                                      [pygit2.Oid(hex=head)] if head else []))
    return head


def test_unrelated_histories_are_refused_at_once(tmp_path):
    path = tmp_path / "r"
    new_repo(path)
    repo = CountingRepository(str(path))
    ours = _chain(repo, None, 300, "a.txt")
    theirs = _chain(repo, None, 300, "b.txt")
    assert git_answer(path, ours, theirs)[0] == "refused"
    step = fold_one(repo, ours, theirs)
    assert step.outcome == "conflicted" and step.conflict.unrelated
    assert step.conflict.paths == [] and step.conflict.merge_base is None
    assert "unrelated histories" in step.conflict.detail
    assert repo.calls == {"walk": 1, "descendant_of": 0, "merge_base": 0}


def test_long_branch_is_walked_once(tmp_path):
    """A head 3,000 commits ahead of its base, onto a base that also moved on
    3,000 commits: one history walk, no per-commit ancestry check."""
    path = tmp_path / "r"
    new_repo(path)
    repo = CountingRepository(str(path))
    base = commit(repo, [], {"README": "r\n"})
    head = _chain(repo, base, 3000, "branch.txt")
    onto = _chain(repo, base, 3000, "main.txt")
    step = assert_like_git(path, repo, onto, head)
    assert step.outcome == "folded"
    assert repo.calls["walk"] == 1 and repo.calls["descendant_of"] == 0 and repo.calls["merge_base"] == 0


def test_head_built_on_an_earlier_fold_needs_no_extra_walks(tmp_path):
    """A chain of folds where a later head is based on an earlier one: each head
    is walked once and the second merge is on the earlier head, as git would."""
    path = tmp_path / "r"
    new_repo(path)
    repo = CountingRepository(str(path))
    base = commit(repo, [], {"a.txt": TEN, "b.txt": TEN})
    first = commit(repo, [base], edits={"a.txt": TEN.replace("line 1\n", "one\n")})
    second = commit(repo, [first], edits={"b.txt": TEN.replace("line 9\n", "nine\n")})
    result = fold(repo, base, [("first", first), ("second", second)])
    assert [s.outcome for s in result.steps] == ["folded", "folded"]
    assert repo.calls["walk"] == 2 and repo.calls["descendant_of"] == 0
    tree = repo[result.tree]
    assert repo[tree["a.txt"].id].data.startswith(b"one\n") and b"nine\n" in repo[tree["b.txt"].id].data


def test_merger_handles_several_merge_bases_as_git(tmp_path):
    """A criss-cross history (two merge bases): the fold's virtual base gives git's tree."""
    path = tmp_path / "r"
    repo = new_repo(path)
    base = commit(repo, [], {"a.txt": TEN, "b.txt": TEN, "c.txt": TEN})
    x = commit(repo, [base], edits={"a.txt": TEN.replace("line 1\n", "x1\n")})
    y = commit(repo, [base], edits={"b.txt": TEN.replace("line 1\n", "y1\n")})
    xm = commit(repo, [x, y], edits={"b.txt": TEN.replace("line 1\n", "y1\n")})
    ym = commit(repo, [y, x], edits={"a.txt": TEN.replace("line 1\n", "x1\n")})
    x2 = commit(repo, [xm], edits={"c.txt": TEN.replace("line 5\n", "x5\n")})
    y2 = commit(repo, [ym], edits={"c.txt": TEN.replace("line 9\n", "y9\n")})
    assert len(git(path, "merge-base", "--all", x2, y2).split()) == 2
    assert_like_git(path, repo, x2, y2)
    assert GitMerger(repo).merge_commits(x2, y2).conflicts is None


def test_unrelated_head_is_one_clear_progress_line(tmp_path):
    path = tmp_path / "r"
    repo = new_repo(path)
    ours = commit(repo, [], {"a.txt": "a\n"})
    theirs = commit(repo, [], {"b.txt": "b\n"})
    lines: list[str] = []
    result = fold(repo, ours, [("stray", theirs)], progress=lines.append)
    assert result.unresolved[0].unrelated
    assert lines == [f"[1/1] stray: refusing to merge unrelated histories: {theirs[:10]} shares no "
                     f"commit with the integration {ours[:10]}"]
