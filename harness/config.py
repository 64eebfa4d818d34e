"""Configuration as data: plans, strategies, sandboxes and agents.

Every model forbids unknown keys so a typo in a plan is an error that names the
file, the task and the field, never a silently ignored setting.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from .errors import PlanError
from .ids import ID_PATTERN, id_problem

WEEK_S = 7 * 24 * 3600.0


def _git_id(value: str) -> str:
    problem = id_problem(value)
    if problem:
        raise PydanticCustomError("harness_id", problem)
    return value


def _command(value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise PydanticCustomError("empty_command", "an empty command; leave it out instead")
    return value


def _scope_glob(glob: str) -> str:
    """Scopes are matched against repo-relative paths: anything else never matches."""
    g = glob.strip()
    if not g:
        raise PydanticCustomError("write_scope", "an empty path glob")
    if g.startswith("/"):
        raise PydanticCustomError("write_scope", "{glob} is absolute; write it relative to the "
                                  "repository root", {"glob": repr(glob)})
    if ".." in g.split("/"):
        raise PydanticCustomError("write_scope", "{glob} leaves the repository ('..')", {"glob": repr(glob)})
    return glob


Id = Annotated[str, Field(pattern=ID_PATTERN), AfterValidator(_git_id)]
"""A run or task id: it names branches, refs and folders."""
Seconds = Annotated[float, Field(gt=0, le=WEEK_S, allow_inf_nan=False)]
"""A time limit: positive, finite, at most a week (an unbounded one is no limit)."""
Command = Annotated[str, AfterValidator(_command)]
WriteScope = list[Annotated[str, AfterValidator(_scope_glob)]]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class LocalSandboxConfig(_Config):
    """Run the agent as a plain subprocess in its worktree. Does not isolate."""

    type: Literal["local"] = "local"


class DockerSandboxConfig(_Config):
    """One locked-down container per attempt; the defaults are closed."""

    type: Literal["docker"] = "docker"
    image: str = "harness/python:latest"
    """Image to run; build the bundled ones with `harness image build`."""
    network: Literal["none", "bridge", "host"] = "none"
    """Network mode. An agent that calls an API opts in with "bridge"."""
    memory: str = "2g"
    """Memory limit (docker syntax); swap is not allowed on top of it."""
    cpus: float = 1.0
    """CPU quota in cores."""
    pids_limit: int = 512
    """Most processes and threads the container may hold at once."""
    read_only_root: bool = True
    """Mount the image's root filesystem read-only; /tmp is a tmpfs."""
    tmpfs_size: str = "512m"
    """Size of the tmpfs mounted at /tmp."""
    cap_add: list[str] = []
    """Capabilities added back after dropping all (e.g. SYS_PTRACE for a profiler)."""
    user: str | None = None
    """uid:gid to run as; default is the invoking user's, so files come back theirs."""
    keep: bool = False
    """Keep the container after the attempt for debugging."""


SandboxConfig = Annotated[Union[LocalSandboxConfig, DockerSandboxConfig], Field(discriminator="type")]


class CommandAgentConfig(_Config):
    """Run a command (a script or a CLI coding agent) in the sandbox."""

    type: Literal["command"] = "command"
    command: str | None = None
    """Shell command line, run with `sh -c` in the workspace."""


class BuiltinAgentConfig(_Config):
    """A small tool-calling loop over chat completions with one `bash` tool, run in the
    sandbox with the image's python3 (standard library only). It talks to the run's
    model gateway, so the plan needs a [model] table."""

    type: Literal["builtin"] = "builtin"
    model: Annotated[str, Field(min_length=1)] | None = None
    """Model to ask; unset: the task's [task.model] model ($HARNESS_MODEL)."""
    max_turns: int = Field(default=50, ge=1, le=10_000)
    """Most model calls; the attempt fails when the model has not submitted by then."""
    bash_timeout_s: Seconds = 120.0
    """Time limit of each `bash` call; the command's process group is killed past it and
    the model is told so."""
    max_output_bytes: int = Field(default=10_000, ge=256, le=10 * 2**20)
    """Most bytes of a command's output (stdout and stderr) handed back to the model;
    past it the middle is cut out."""
    system_prompt: str | None = None
    """Replaces the built-in system prompt (how to use `bash` and to submit)."""


CLI_AGENTS = ("claude-code", "codex", "aider", "mini-swe-agent", "opencode")
"""The third-party CLI agents the harness has a preset for (one adapter each in harness/agents/)."""


class CliAgentConfig(_Config):
    """A third-party coding-agent CLI, installed in the sandbox image
    (`harness image build python --with TYPE`), started headless on the task's prompt
    and pointed at the run's model gateway, so the plan needs a [model] table."""

    type: Literal["claude-code", "codex", "aider", "mini-swe-agent", "opencode"]
    model: Annotated[str, Field(min_length=1)] | None = None
    """Model the agent asks for; unset: the task's [task.model] model ($HARNESS_MODEL)."""
    args: list[str] = []
    """Extra arguments, appended to the preset's headless command line."""


AgentConfig = Annotated[Union[CommandAgentConfig, BuiltinAgentConfig, CliAgentConfig],
                        Field(discriminator="type")]


def coerce_typed(value: Any) -> Any:
    """Let a plan say `sandbox = "local"` as shorthand for `{type = "local"}`."""
    if isinstance(value, str):
        return {"type": value}
    return value


class ContextConfig(_Config):
    files: list[str] = []
    """Files (relative to the plan file) copied into $HARNESS_DIR/context/."""
    notes: list[str] = []
    """Notes handed to the agent in its task spec."""


class StrategyFile(_Config):
    """A declarative optimization strategy (strategies/<target>/<name>.toml)."""

    name: str
    description: str = ""
    prompt: str
    """What an LLM agent should do, in words."""
    command: str | None = None
    """A command that performs the strategy deterministically."""
    files: list[str] = []
    """Files (relative to the strategy file) copied into $HARNESS_DIR/context/."""
    write_scope: WriteScope = []
    """Path globs the strategy may change, relative to the repository root."""
    timeout_s: Seconds | None = None
    retries: int | None = Field(default=None, ge=0)
    stall_s: Seconds | None = None
    max_steps: int | None = Field(default=None, ge=1)
    env: dict[str, str] = {}
    model: TaskModelConfig | None = None
    """Model settings of the tasks that use this strategy (their own budget); a task's own win."""


class RunConfig(_Config):
    """The [run] table of a plan."""

    id: Id | None = None
    """Run id; default is generated from the time."""
    base: str = "HEAD"
    """Ref or commit every task starts from."""
    max_parallel: int = Field(default=4, ge=1, le=1024)
    """Most agents running at once."""
    sandbox: SandboxConfig = DockerSandboxConfig()
    agent: AgentConfig = CommandAgentConfig()
    timeout_s: Seconds = 600.0
    """Per-attempt time limit (at most a week); the whole process group (or container) is killed."""
    retries: int = Field(default=0, ge=0, le=20)
    """Extra attempts after a failed one."""
    backoff_s: float = Field(default=0.5, ge=0, le=3600, allow_inf_nan=False)
    """Wait before retry k is backoff_s * 2**(k-1)."""
    stall_s: Seconds | None = None
    """An attempt that prints nothing for this long is stopped and ends `stalled`
    (retried like a timeout). Unset: only the timeout applies."""
    max_steps: int | None = Field(default=None, ge=1)
    """Most steps an attempt may announce by printing `::harness-step:: <what>` lines;
    the next one stops it (failed, "step budget spent"). Unset: no limit."""
    keep_worktrees: Literal["failed", "all", "none"] = "failed"
    """Which attempts keep their checkout once their work is committed to a ref:
    `failed` (not succeeded: a person may want to look inside), `all`, or `none`.
    The work itself is always kept on the attempt's ref."""
    max_log_bytes: int = Field(default=64 * 2**20, gt=0)
    """Most bytes of an attempt's output kept in its log (default 64 MiB); past it the
    output is counted, not written, and the log ends with one line saying how much was
    dropped. The attempt goes on and its steps still count."""
    test_cmd: Command | None = None
    """Test command the gate runs on the merged result (not empty)."""
    test_timeout_s: Seconds = 1800.0
    """Time limit of each of the gate's test runs (at most a week; `harness gate
    --timeout` overrides it). Separate from `timeout_s`: a whole test suite on the
    merged result may take longer than one agent's attempt is given."""
    env: dict[str, str] = {}

    _coerce = field_validator("sandbox", "agent", mode="before")(lambda cls, v: coerce_typed(v))


class TaskConfig(_Config):
    """One [[task]] entry of a plan."""

    id: Id
    prompt: str = ""
    strategy: str | None = None
    """Strategy file (relative to the plan file); the task inherits its settings."""
    command: str | None = None
    """Command for the command agent."""
    write_scope: WriteScope | None = None
    """Path globs the task may change, relative to the repository root."""
    depends_on: list[str] = []
    context: ContextConfig = ContextConfig()
    timeout_s: Seconds | None = None
    retries: int | None = Field(default=None, ge=0, le=20)
    stall_s: Seconds | None = None
    max_steps: int | None = Field(default=None, ge=1)
    max_log_bytes: int | None = Field(default=None, gt=0)
    """This task's log cap in bytes; unset: the run's `max_log_bytes`."""
    sandbox: SandboxConfig | None = None
    agent: AgentConfig | None = None
    env: dict[str, str] = {}
    model: TaskModelConfig | None = None
    """This task's model settings ([task.model]): the model its agent is told to use, its own budget."""

    _coerce = field_validator("sandbox", "agent", mode="before")(lambda cls, v: coerce_typed(v))


class Plan(_Config):
    run: RunConfig = RunConfig()
    model: ModelConfig | None = None
    """The [model] table: with it, the run starts a model gateway its agents call."""
    task: list[TaskConfig] = Field(min_length=1)


@dataclass(frozen=True)
class ResolvedTask:
    """A task with its strategy's settings and the run's defaults filled in."""

    id: str
    prompt: str
    agent: AgentConfig
    sandbox: SandboxConfig
    timeout_s: float
    retries: int
    backoff_s: float
    write_scope: list[str]
    depends_on: list[str]
    context_files: list[Path]
    notes: list[str]
    env: dict[str, str]
    strategy: str | None = None
    order: int = 0
    stall_s: float | None = None
    max_steps: int | None = None
    max_log_bytes: int | None = None
    model: str | None = None
    """The model the agent is told to use ($HARNESS_MODEL), from the task or its strategy."""
    model_budget: dict[str, dict] | None = None
    """The task's own model budgets, `ModelBudgets`' JSON form (attempt and task limits
    from the task, else its strategy); None: the plan's. Kept as JSON so the saved
    plan (repo.run.save_plan) holds it as it holds every other field."""

    def model_budgets(self, plan_budgets: ModelBudgets) -> ModelBudgets:
        """The limits the gateway applies to this task's attempts: its own where set,
        else the plan's [model.budget] (the run's limit is always the plan's)."""
        own = ModelBudgets.model_validate(self.model_budget or {})
        return plan_budgets.model_copy(update={s: getattr(own, s) for s in ("attempt", "task")
                                               if getattr(own, s) != BudgetLimit()})


@dataclass
class ResolvedPlan:
    path: Path | None
    run: RunConfig
    tasks: dict[str, ResolvedTask] = field(default_factory=dict)
    raw: dict = field(default_factory=dict)

    @cached_property
    def model(self) -> ModelConfig | None:
        """The plan's [model] table, from the plan as written (it is not resolved
        further, and a saved plan keeps it there)."""
        data = self.raw.get("model")
        return ModelConfig.model_validate(data) if data else None

    def ancestors(self, tid: str) -> set[str]:
        """Every task `tid` waits for, directly or through others."""
        out: set[str] = set()
        todo = list(self.tasks[tid].depends_on)
        while todo:
            t = todo.pop()
            if t not in out:
                out.add(t)
                todo += self.tasks[t].depends_on
        return out

    def dependents(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {t: [] for t in self.tasks}
        for t in self.tasks.values():
            for d in t.depends_on:
                out[d].append(t.id)
        return out


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a dict. Raises PlanError naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(f"{path}: cannot read: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(f"{path}: not valid TOML: {exc}") from None


def _describe(path: Path, data: dict[str, Any], exc: ValidationError) -> str:
    """One line naming the file, the task (by id when it has one) and the field."""
    err = exc.errors()[0]
    loc = list(err["loc"])
    where = ".".join(str(p) for p in loc)
    if len(loc) >= 2 and loc[0] == "task" and isinstance(loc[1], int):
        tasks = data.get("task") or []
        tid = tasks[loc[1]].get("id") if loc[1] < len(tasks) and isinstance(tasks[loc[1]], dict) else None
        field = ".".join(str(p) for p in loc[2:]) or "(entry)"
        where = f"task {tid!r} field {field}" if tid else f"task #{loc[1] + 1} field {field}"
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{path}: {where}: {err['msg']}{more}"


_M = TypeVar("_M", bound=BaseModel)


def _load(path: Path, model: type[_M]) -> _M:
    data = read_toml(path)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise PlanError(_describe(path, data, exc)) from None


def load_plan(path: Path) -> Plan:
    """Read and validate a plan file. Raises PlanError naming file, task and field."""
    return _load(path, Plan)


def load_strategy(path: Path) -> StrategyFile:
    """Read and validate a strategy file. Raises PlanError."""
    return _load(path, StrategyFile)



# --- the model gateway -----------------------------------------------------------------

_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


def _base_url(value: str) -> str:
    if not value.startswith(("http://", "https://")) or len(value.split("://", 1)[1].strip("/")) == 0:
        raise PydanticCustomError("base_url", "{url} is not an http(s) URL", {"url": repr(value)})
    return value.rstrip("/")


class UpstreamConfig(_Config):
    """One model server the gateway forwards to (an [[model.upstream]] entry)."""

    name: Id
    """Short name, used in records and errors."""
    protocol: Literal["openai", "anthropic"]
    """`openai` serves /chat/completions and /responses; `anthropic` serves /messages."""
    base_url: Annotated[str, AfterValidator(_base_url)]
    """URL the endpoint is appended to, version included: `https://api.openai.com/v1`,
    `https://api.anthropic.com/v1`."""
    api_key_env: str = Field(pattern=_ENV_NAME)
    """Environment variable (on the host) holding the real key; it never reaches a sandbox."""
    models: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    """Model names this upstream serves; shell-style globs allowed (`claude-*`). A request
    goes to the first upstream, in plan order, that serves its `model`."""
    input_price_per_mtok: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    """Price in USD per million input tokens (cache reads and writes count as input)."""
    output_price_per_mtok: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    """Price in USD per million output tokens."""
    max_concurrency: int = Field(default=16, ge=1, le=10_000)
    """Most calls in flight at this upstream; the rest wait in a queue fair across attempts."""
    timeout_s: Seconds = 600.0
    """Per-call limit: the whole answer for a plain call; the longest silence for a stream."""
    retries: int = Field(default=3, ge=0, le=20)
    """Extra tries after a 429, a 5xx, a connection error or a timeout."""
    backoff_s: float = Field(default=0.5, ge=0, le=600, allow_inf_nan=False)
    """Wait before retry k is backoff_s * 2**(k-1) (with jitter), unless Retry-After says otherwise."""
    max_backoff_s: float = Field(default=60.0, ge=0, le=3600, allow_inf_nan=False)
    """Longest wait before a retry, Retry-After included."""
    breaker_failures: int = Field(default=5, ge=1, le=1000)
    """Consecutive failed tries (5xx, connection error, timeout) that open the circuit."""
    breaker_cooldown_s: float = Field(default=30.0, gt=0, le=3600, allow_inf_nan=False)
    """How long an open circuit fails calls fast before letting one through again."""

    def serves(self, model: str) -> bool:
        from fnmatch import fnmatchcase

        return any(m == model or fnmatchcase(model, m) for m in self.models)


class BudgetLimit(_Config):
    """A spending limit; unset fields are no limit."""

    tokens: int | None = Field(default=None, ge=1)
    """Most input plus output tokens."""
    cost_usd: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """Most cost in USD, from the upstreams' prices."""


class ModelBudgets(_Config):
    """Limits per attempt, per task (all its attempts) and per run."""

    attempt: BudgetLimit = BudgetLimit()
    task: BudgetLimit = BudgetLimit()
    run: BudgetLimit = BudgetLimit()


class ModelConfig(_Config):
    """The [model] table of a plan: the upstreams the run's gateway may use, and budgets."""

    upstream: list[UpstreamConfig] = Field(min_length=1)
    budget: ModelBudgets = ModelBudgets()
    max_concurrency: int | None = Field(default=None, ge=1, le=100_000)
    """Most calls in flight across every upstream; unset: only each upstream's own cap."""

    @field_validator("upstream")
    @classmethod
    def _unique(cls, ups: list[UpstreamConfig]) -> list[UpstreamConfig]:
        names: set[str] = set()
        models: dict[str, str] = {}
        for u in ups:
            if u.name in names:
                raise PydanticCustomError("upstream", "two upstreams named {name}", {"name": repr(u.name)})
            names.add(u.name)
            for m in u.models:
                if m in models:
                    raise PydanticCustomError("upstream", "model {m} is served by both {a} and {b}",
                                              {"m": repr(m), "a": repr(models[m]), "b": repr(u.name)})
                models[m] = u.name
        return ups

    def upstream_for(self, model: str) -> UpstreamConfig | None:
        """The upstream serving `model` (the first that matches), or None."""
        return next((u for u in self.upstream if u.serves(model)), None)

    def named(self, name: str) -> UpstreamConfig:
        """The upstream called `name`. Raises PlanError naming the known ones."""
        for u in self.upstream:
            if u.name == name:
                return u
        known = ", ".join(u.name for u in self.upstream)
        raise PlanError(f"model: unknown upstream {name!r} (known: {known})")

    def keys(self, environ: dict[str, str]) -> dict[str, str]:
        """Each upstream's real key, by upstream name, read from `environ`. Raises
        PlanError naming the first upstream whose variable is unset or empty."""
        out = {}
        for u in self.upstream:
            key = environ.get(u.api_key_env, "")
            if not key.strip():
                raise PlanError(f"model: upstream {u.name!r}: environment variable {u.api_key_env} "
                                f"is not set (it holds the upstream's API key)")
            out[u.name] = key.strip()
        return out


def load_model_config(data: dict[str, Any], source: str = "plan") -> ModelConfig:
    """Validate a [model] table. Raises PlanError in one line naming `source` and the field."""
    try:
        return ModelConfig.model_validate(data)
    except ValidationError as exc:
        raise PlanError(_describe(Path(source), data, exc).replace(f"{source}: ", f"{source}: model.", 1)) from None


class TaskModelConfig(_Config):
    """A task's or a strategy's [model] settings."""

    model: Annotated[str, Field(min_length=1)] | None = None
    """The model the agent is told to use ($HARNESS_MODEL); some upstream must serve it."""
    budget: TaskModelBudget = Field(default_factory=lambda: TaskModelBudget())
    """Limits that replace the plan's [model.budget] attempt and task limits for this task."""


class TaskModelBudget(_Config):
    """A task's own limits: per attempt and for the task (all its attempts)."""

    attempt: BudgetLimit = BudgetLimit()
    task: BudgetLimit = BudgetLimit()


for _m in (TaskModelConfig, StrategyFile, TaskConfig, Plan):
    _m.model_rebuild()
