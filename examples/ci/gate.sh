#!/usr/bin/env bash
# Run a plan, integrate its branches, gate the merged result; exit non-zero when red.
#
#   examples/ci/gate.sh PLAN [LAND_REF]
#
# Environment (all optional):
#   REPO=.            the target repository
#   RUN_ID=ci-...     run id (default: from the time and the shell's pid)
#   SANDBOX=          docker or local (default: the plan's)
#   RERUN_FAILED=1    run failing tests once more before bisecting (flaky tests)
#   PUSH_REMOTE=      after a land, push LAND_REF there (e.g. origin)
#   OUT=gate.json     where the GateReport goes
#
# Exit: 0 green (and landed if asked), 1 red or land refused, 2 bad input.
set -euo pipefail
plan=${1:?usage: gate.sh PLAN [LAND_REF]}
land=${2:-}
repo=${REPO:-.}
run_id=${RUN_ID:-ci-$(date +%Y%m%d-%H%M%S)-$$}
out=${OUT:-gate.json}
sandbox_args=()
[ -n "${SANDBOX:-}" ] && sandbox_args=(--sandbox "$SANDBOX")

# 1. Agents. Exit 1 means some tasks failed: the gate still judges the rest.
set +e
harness run "$plan" --repo "$repo" --run-id "$run_id" "${sandbox_args[@]}"
rc=$?
set -e
if [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; then
  echo "gate.sh: harness run failed (exit $rc)" >&2
  exit "$rc"
fi

# 2. Fold the succeeded branches into harness/<run>/integration (conflicting ones stay out).
harness integrate "$run_id" --repo "$repo"

# 3. Gate: tests on the merged tree, culprits bisected out, land only when green.
gate_args=(gate "$run_id" --repo "$repo" --json "${sandbox_args[@]}")
if [ -n "$land" ]; then
  # The gate refuses to land on a branch that is checked out (its tree would then
  # look reverted). A CI checkout is throwaway: detach it so LAND_REF may move.
  if [ "$(git -C "$repo" symbolic-ref -q --short HEAD || true)" = "${land#refs/heads/}" ]; then
    git -C "$repo" checkout -q --detach
  fi
  gate_args+=(--land "$land")
fi
[ "${RERUN_FAILED:-0}" = 1 ] && gate_args+=(--rerun-failed)
set +e
harness "${gate_args[@]}" > "$out"
rc=$?
set -e
harness show "$run_id" --repo "$repo" >&2 || true
if [ "$rc" -ne 0 ]; then
  echo "gate.sh: gate of run $run_id is red or could not land (exit $rc); report in $out" >&2
  exit "$rc"
fi
if [ -n "$land" ] && [ -n "${PUSH_REMOTE:-}" ]; then
  git -C "$repo" push "$PUSH_REMOTE" "$land"
fi
echo "gate.sh: run $run_id is green" >&2
