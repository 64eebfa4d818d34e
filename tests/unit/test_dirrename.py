"""Directory renames are counted from file renames as git's ort counts them."""

from harness.integrate.dirrename import directory_renames


def test_directory_goes_where_most_of_its_files_went():
    renames = {"src/a.py": "lib/a.py", "src/b.py": "lib/b.py", "src/c.py": "other/c.py"}
    assert directory_renames(renames) == {"src": "lib"}


def test_a_tie_is_no_directory_rename():
    assert directory_renames({"src/a.py": "lib/a.py", "src/b.py": "other/b.py"}) == {}


def test_parents_vote_while_the_trailing_names_agree():
    renames = {"tests/pyright/x/a.py": "tests/typing/x/a.py"}
    assert directory_renames(renames) == {"tests/pyright/x": "tests/typing/x",
                                          "tests/pyright": "tests/typing"}


def test_a_move_to_the_top_level_and_a_file_renamed_in_place():
    assert directory_renames({"pkg/a.py": "a.py"}) == {"pkg": ""}
    assert directory_renames({"pkg/a.py": "pkg/b.py"}) == {}
