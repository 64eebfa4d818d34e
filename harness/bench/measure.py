"""Running the target's own commands on commits: tests, benchmark samples, profiles.

Every command runs in a sandbox of the bench's settings, on a scratch worktree of
the commit that is removed afterwards. Samples of all sides are interleaved round
by round, in a shuffled order, so drift of the machine hits every side alike.
"""

from __future__ import annotations

import json
import math
import random
import threading
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from ..config import DockerSandboxConfig
from ..gate.junit import build_report, wrap_command
from ..progress import Progress
from ..records import SandboxRequest, TestReport
from ..repo.store import RunStore
from ..repo.workspace import Workspace, worktree_name
from ..sandbox import get_sandbox
from ..sandbox.base import Sandbox
from .spec import BenchSpec

PROFILE_FILE = ".harness-profile.folded"


@dataclass
class Side:
    """One tree being measured: the baseline, a strategy, or the integration."""

    name: str
    commit: str
    samples: list[float] = field(default_factory=list)
    warmups: list[float] = field(default_factory=list)
    error: str | None = None
    started: float | None = None
    ended: float | None = None


class Runner:
    """Runs the bench's commands for one run, in sandboxes, on scratch worktrees."""

    def __init__(self, ws: Workspace, store: RunStore, spec: BenchSpec, progress: Progress,
                 clock: Callable[[], float]) -> None:
        self.ws = ws
        self.store = store
        self.spec = spec
        self.progress = progress
        self.clock = clock
        self.sandbox: Sandbox = get_sandbox(spec.sandbox)
        profile_cfg = spec.sandbox
        if isinstance(profile_cfg, DockerSandboxConfig):
            # The profiler reads the benchmark's memory: that capability and no other.
            profile_cfg = profile_cfg.model_copy(update={"cap_add": [*profile_cfg.cap_add, "SYS_PTRACE"]})
        self.profile_sandbox: Sandbox = get_sandbox(profile_cfg)
        self._n = 0
        self._lock = threading.Lock()
        self.dir = store.dir / "bench"
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)
        (self.dir / "harness").mkdir(exist_ok=True)

    def tree(self, commit: str, label: str):
        """A scratch worktree of `commit` for one with-block."""
        with self._lock:
            self._n += 1
            n = self._n
        name = f"bench-{label}-{n}"
        path = self.ws.root / "worktrees" / self.store.run_id / name
        return self.ws.scratch_worktree(worktree_name(self.store.run_id, path.name), path, commit)

    def _request(self, path: Path, argv: list[str], log: str, timeout: float,
                 labels: dict[str, str]) -> SandboxRequest:
        return SandboxRequest(workspace=path, harness_dir=self.dir / "harness", command=argv,
                              timeout_s=timeout, log_path=self.dir / "logs" / f"{log}.log",
                              labels={"harness.run": self.store.run_id, **labels})

    # --- tests -------------------------------------------------------------------------

    def test(self, commit: str, label: str) -> TestReport:
        cmd = self.spec.test_cmd
        with self.tree(commit, label) as path:
            res = self.sandbox.run(self._request(path, wrap_command(cmd), f"tests-{label}",
                                                 self.spec.test_timeout_s, {"harness.task": label}))
            return build_report(cmd, res, path, commit)

    # --- samples -----------------------------------------------------------------------

    def measure(self, sides: list[Side], phase: str) -> None:
        """Warm-ups, then `repeats` rounds; each round runs every side once, in a
        shuffled (seeded) order. A side whose command fails stops being sampled."""
        spec = self.spec
        rng = random.Random(f"{spec.seed}-{phase}")
        rounds = spec.warmups + spec.repeats
        with _trees(self, sides) as paths:
            for r in range(rounds):
                order = [s for s in sides if s.error is None]
                rng.shuffle(order)
                for side in order:
                    if side.started is None:
                        side.started = self.clock()
                    value = self._sample(side, paths[side.name])
                    side.ended = self.clock()
                    if value is None:
                        continue
                    (side.warmups if r < spec.warmups else side.samples).append(value)
                done = r + 1 - spec.warmups
                if done > 0:
                    self.progress(f"  {phase}: round {done}/{spec.repeats} "
                                  + " ".join(f"{s.name}={s.samples[-1]:,.0f}" for s in sides if s.samples))

    def _sample(self, side: Side, path: Path) -> float | None:
        res = self.sandbox.run(self._request(path, ["sh", "-c", self.spec.bench_cmd], f"bench-{side.name}",
                                             self.spec.bench_timeout_s, {"harness.task": side.name}))
        if res.exit_code != 0:
            side.error = f"benchmark exited {res.exit_code if res.exit_code is not None else res.reason}"
            return None
        value = parse_metric(res.output_tail, self.spec.metric)
        if value is None:
            side.error = "benchmark printed no JSON line with the metric"
        elif not math.isfinite(value) or value <= 0:
            side.error = f"benchmark printed {self.spec.metric} = {value}; comparisons need a positive finite value"
            return None
        return value

    # --- profiles ----------------------------------------------------------------------

    def profile(self, commit: str, label: str) -> tuple[str | None, str | None]:
        """Folded stacks of one benchmark run under the profiler, or (None, why)."""
        if not self.spec.profile_cmd:
            return None, "no profile_cmd in the spec"
        cmd = self.spec.profile_cmd.replace("{out}", PROFILE_FILE).replace("{bench}", self.spec.bench_cmd)
        with self.tree(commit, f"profile-{label}") as path:
            res = self.profile_sandbox.run(self._request(
                path, ["sh", "-c", cmd], f"profile-{label}", self.spec.bench_timeout_s * 2,
                {"harness.task": label}))
            out = path / PROFILE_FILE
            if res.exit_code != 0 or not out.is_file():
                tail = res.output_tail.strip().splitlines()[-1:] or [res.reason or ""]
                return None, f"profiler exited {res.exit_code}: {tail[0][:200]}"
            return out.read_text(errors="replace"), None


@contextmanager
def _trees(runner: Runner, sides: list[Side]) -> Iterator[dict[str, Path]]:
    """One scratch worktree per side for the whole measurement."""
    with ExitStack() as stack:
        yield {s.name: stack.enter_context(runner.tree(s.commit, f"m-{s.name}")) for s in sides}


def parse_metric(output: str, metric: str) -> float | None:
    """The metric from the last JSON object line of the output: its `metric` key,
    or `value` (with a matching `metric` name, when it names one)."""
    for line in reversed(output.strip().splitlines()):
        line = line.strip()
        if not (line.startswith("{") and line.endswith("}")):
            continue
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data.get(metric), (int, float)):
            return float(data[metric])
        if isinstance(data.get("value"), (int, float)) and data.get("metric", metric) == metric:
            return float(data["value"])
    return None
