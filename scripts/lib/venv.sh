# Sourced by the scripts: make .venv with the project and its test extras, once.
# Re-installs when pyproject.toml changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${HARNESS_VENV:-$ROOT/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "scripts: creating virtualenv $VENV" >&2
  python3 -m venv "$VENV"
fi
stamp="$VENV/.installed-$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"
if [ ! -e "$stamp" ]; then
  echo "scripts: installing harness and its test extras into $VENV" >&2
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >&2
  # The distribution was called `harness` before it became `harness-agents` (that name
  # on the package index is another project). pip treats the two as different
  # packages, so an old editable install would linger beside the new one.
  if "$VENV/bin/python" -m pip show -q harness >/dev/null 2>&1; then
    "$VENV/bin/python" -m pip uninstall -q -y --disable-pip-version-check harness >&2
  fi
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT[test]" >&2
  rm -f "$VENV"/.installed-* && touch "$stamp"
fi
export PATH="$VENV/bin:$PATH"
