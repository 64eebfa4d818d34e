"""One root for the harness's own errors.

Results (a failing agent, a conflict, a red gate) are data, not exceptions. These
classes are for bad input and for the harness's own breakage. Each subclass also
mixes in the builtin base a caller would naturally catch.
"""

from __future__ import annotations


class HarnessError(Exception):
    """Root of every error the harness raises on purpose."""

    exit_code = 1


class UsageError(HarnessError, ValueError):
    """Bad input: a malformed plan, an unknown ref, a cycle. Exit code 2."""

    exit_code = 2


class PlanError(UsageError):
    """A plan or strategy file that cannot be read or fails validation."""


class RepoError(UsageError):
    """Not a git repository, an unknown ref, a ref that moved under us."""


class SandboxUnavailable(HarnessError, RuntimeError):
    """The sandbox backend cannot run at all (daemon down, image missing). Exit code 2."""

    exit_code = 2


class SandboxError(HarnessError, RuntimeError):
    """The sandbox backend broke while running an attempt."""


class ImageBuildError(HarnessError, RuntimeError):
    """A sandbox image could not be built."""


class GitError(HarnessError, RuntimeError):
    """A git operation of the harness's own failed."""


class LandRefused(HarnessError, RuntimeError):
    """A compare-and-swap land found the target ref moved since gating."""


class RecordError(HarnessError, ValueError):
    """A run's record or event log cannot be read (truncated, not JSON, not a record)."""


class RunBusy(HarnessError, RuntimeError):
    """Another process is writing the run (it is still going, or integrating). Exit code 2."""

    exit_code = 2


class Cancelled(HarnessError, RuntimeError):
    """A signal stopped the work (exit code 130 for SIGINT, 143 for SIGTERM)."""

    def __init__(self, message: str, signal_name: str | None = None) -> None:
        super().__init__(message)
        self.exit_code = 143 if signal_name == "SIGTERM" else 130
