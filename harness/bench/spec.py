"""The bench spec: what to measure, on what, with which strategies."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..config import Command, DockerSandboxConfig, SandboxConfig, Seconds, coerce_typed, read_toml
from ..errors import PlanError
from ..ids import id_problem
from ..sandbox import sandbox_override


class BenchSpec(BaseModel):
    """`[bench]` of a bench spec file. Paths are relative to the spec file."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    name: str
    target: str
    """A git repository, or a plain folder (a bundled example) made into one."""
    base: str = "HEAD"
    strategies: list[str] = Field(min_length=1)
    """Strategy files or globs of them."""
    test_cmd: Command
    bench_cmd: Command
    """Prints one JSON line holding the metric, e.g. {"value": 1234.5}."""
    metric: str
    unit: str = ""
    direction: Literal["higher", "lower"] = "higher"
    repeats: int = Field(default=10, ge=3, le=1000)
    """Samples per side after warm-ups."""
    warmups: int = Field(default=1, ge=0, le=100)
    profile_cmd: Command | None = None
    """Profiles one benchmark run; `{out}` is where folded stacks go."""
    sandbox: SandboxConfig = DockerSandboxConfig()
    max_parallel: int = Field(default=4, ge=1)
    timeout_s: Seconds = 600
    """Per agent attempt (at most a week)."""
    retries: int = Field(default=0, ge=0)
    stall_s: Seconds | None = None
    """An agent attempt silent for this long is stopped as stalled (retried when `retries` allows)."""
    bench_timeout_s: Seconds = 300
    test_timeout_s: Seconds = 600
    integrate: Literal["faster", "not-slower"] = "faster"
    """Which strategies are folded into the integration (fastest first) and gated:
    "faster", those measured significantly faster; "not-slower", every one whose
    tests pass unless it measured significantly slower (for gains each below the
    machine's noise that may add up; the integration is measured either way)."""
    min_effect: float = Field(default=0.01, ge=0)
    """Smallest relative change counted as a gain (beyond noise)."""
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    seed: int = 0

    _coerce = field_validator("sandbox", mode="before")(lambda cls, v: coerce_typed(v))


class LoadedSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: Path
    spec: BenchSpec
    raw: dict
    target: Path
    strategy_files: list[Path]


def load_spec(path: Path, *, sandbox: str | None = None, repeats: int | None = None) -> LoadedSpec:
    """Read and check a bench spec. Raises PlanError naming the file and field."""
    raw = read_toml(path)
    data = dict(raw.get("bench", {}))
    if repeats is not None:
        data["repeats"] = repeats
    try:
        spec = BenchSpec.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise PlanError(f"{path}: bench.{where}: {err['msg']}") from None
    spec = spec.model_copy(update={"sandbox": sandbox_override(spec.sandbox, sandbox)})
    base = path.parent
    files: list[Path] = []
    for pattern in spec.strategies:
        found = sorted(Path(p) for p in glob.glob(str(base / pattern)))
        if not found:
            raise PlanError(f"{path}: bench.strategies: no strategy file matches {pattern!r}")
        files += [f.resolve() for f in found if f.suffix == ".toml"]
    for f in files:  # each strategy runs as the task named by its file
        problem = id_problem(f.stem) or ("reserved for the integration" if f.stem == "integration" else None)
        if problem:
            raise PlanError(f"{path}: bench.strategies: {f.name} cannot name a task: {problem}")
    target = (base / spec.target).resolve()
    if not target.is_dir():
        raise PlanError(f"{path}: bench.target: no folder {spec.target}")
    return LoadedSpec(path=path.resolve(), spec=spec, raw=raw, target=target, strategy_files=files)

