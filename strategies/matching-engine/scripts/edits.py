"""The edit steps every strategy script shares. Each strategy lists this file in
its `files`, so it sits next to the script in $HARNESS_DIR/context/ and the
script imports it from there.

Both steps check that the baseline text they change is there before writing,
and leave the file untouched (exit code 1) when it is not."""

import os
import sys
from pathlib import Path

ROOT = Path(os.environ.get("HARNESS_WORKSPACE", "."))


def engine_file(name: str) -> Path:
    """A module of the engine in the checkout being edited."""
    return ROOT / "engine" / name


def replace_each(target: Path, replacements: list[tuple[str, str]], done: str) -> int:
    """Replace each old text, which must occur exactly once, by its new text."""
    text = target.read_text()
    for old, new in replacements:
        if text.count(old) != 1:
            print(f"{target}: expected baseline text not found exactly once:\n{old}", file=sys.stderr)
            return 1
        text = text.replace(old, new)
    target.write_text(text)
    print(f"patched {target}: {done}")
    return 0


def rewrite(target: Path, expected: list[str], new: str, done: str) -> int:
    """Write `new` over the whole file, once every expected snippet is found in it."""
    text = target.read_text()
    missing = [snippet for snippet in expected if snippet not in text]
    if missing:
        print(f"{target}: not the expected baseline; missing:\n" + "\n---\n".join(missing), file=sys.stderr)
        return 1
    target.write_text(new)
    print(f"rewrote {target}: {done}")
    return 0
