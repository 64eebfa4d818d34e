"""From a plan file to validated, resolved tasks, checked before anything is created."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

from ..config import (BudgetLimit, CommandAgentConfig, Plan, ResolvedPlan, ResolvedTask, StrategyFile,
                      TaskModelConfig, load_plan, load_strategy)
from ..errors import PlanError, UsageError
from ..sandbox import sandbox_override


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def resolve_plan(path: Path, *, sandbox: str | None = None, max_parallel: int | None = None,
                 keep_sandboxes: bool = False) -> ResolvedPlan:
    """Load, validate and resolve a plan. Raises PlanError / UsageError, creates nothing."""
    plan = load_plan(path)
    return resolve(plan, path, sandbox=sandbox, max_parallel=max_parallel,
                   keep_sandboxes=keep_sandboxes)


def resolve(plan: Plan, path: Path | None, *, sandbox: str | None = None,
            max_parallel: int | None = None, keep_sandboxes: bool = False,
            environ: dict[str, str] | None = None) -> ResolvedPlan:
    """Resolve a validated plan: strategies read, defaults filled in, the graph and the
    [model] table checked (every key variable set in `environ`, default the process's).
    Raises PlanError / UsageError, creates nothing."""
    run = plan.run
    updates: dict = {}
    if max_parallel is not None:
        if max_parallel < 1:
            raise UsageError("--max-parallel must be at least 1")
        updates["max_parallel"] = max_parallel
    if sandbox is not None:
        updates["sandbox"] = sandbox_override(run.sandbox, sandbox)
    if updates:
        run = run.model_copy(update=updates)
    base_dir = path.parent if path else Path.cwd()
    where = str(path) if path else "plan"
    out = ResolvedPlan(path=path, run=run, raw=plan.model_dump(mode="json"))
    for order, t in enumerate(plan.task):
        if t.id in out.tasks:
            raise PlanError(f"{where}: duplicate task id {t.id!r}")
        if t.id == "integration":
            raise PlanError(f"{where}: task 'integration' field id: reserved, harness/<run>/integration "
                            "is the run's integration branch")
        strat: StrategyFile | None = None
        strat_dir = base_dir
        if t.strategy:
            spath = (base_dir / t.strategy).resolve()
            if not spath.is_file():
                raise PlanError(f"{where}: task {t.id!r} field strategy: no strategy file {t.strategy}")
            strat, strat_dir = load_strategy(spath), spath.parent
        command = t.command or (strat.command if strat else None)
        agent = t.agent or run.agent
        if isinstance(agent, CommandAgentConfig) and command:
            agent = agent.model_copy(update={"command": command})
        if isinstance(agent, CommandAgentConfig) and not agent.command:
            raise PlanError(f"{where}: task {t.id!r} field command: the command agent needs a command")
        files = [(strat_dir / f) for f in (strat.files if strat else [])]
        files += [(base_dir / f) for f in t.context.files]
        for f in files:
            if not f.is_file():
                raise PlanError(f"{where}: task {t.id!r}: context file {f} not found")
        names = [f.name for f in files]
        if len(set(names)) != len(names):
            raise PlanError(f"{where}: task {t.id!r}: two context files share a name")
        task_sandbox = t.sandbox or run.sandbox
        if sandbox is not None:
            task_sandbox = sandbox_override(task_sandbox, sandbox)
        if keep_sandboxes and "keep" in type(task_sandbox).model_fields:  # backends that can keep theirs
            task_sandbox = task_sandbox.model_copy(update={"keep": True})
        out.tasks[t.id] = ResolvedTask(
            id=t.id,
            prompt=t.prompt or (strat.prompt if strat else ""),
            agent=agent,
            sandbox=task_sandbox,
            timeout_s=t.timeout_s or (strat.timeout_s if strat and strat.timeout_s else run.timeout_s),
            retries=t.retries if t.retries is not None else (
                strat.retries if strat and strat.retries is not None else run.retries),
            backoff_s=run.backoff_s,
            stall_s=_first(t.stall_s, strat.stall_s if strat else None, run.stall_s),
            max_steps=_first(t.max_steps, strat.max_steps if strat else None, run.max_steps),
            max_log_bytes=_first(t.max_log_bytes, run.max_log_bytes),
            write_scope=t.write_scope if t.write_scope is not None else (strat.write_scope if strat else []),
            depends_on=list(t.depends_on),
            context_files=files,
            notes=list(t.context.notes),
            env={**run.env, **(strat.env if strat else {}), **t.env},
            strategy=strat.name if strat else None,
            order=order,
            **_task_model(t.model, strat.model if strat else None),
        )
    _check_graph(out, where)
    _check_model(plan, out, where, os.environ if environ is None else environ)
    return out


def _task_model(own: TaskModelConfig | None, strat: TaskModelConfig | None) -> dict:
    """A task's model name and own budgets: the task's where it sets them, else its strategy's."""
    model = (own.model if own else None) or (strat.model if strat else None)
    budget = {}
    for scope in ("attempt", "task"):
        for cfg in (own, strat):
            limit = getattr(cfg.budget, scope) if cfg is not None else BudgetLimit()
            if limit != BudgetLimit():
                budget[scope] = limit.model_dump(mode="json", exclude_none=True)
                break
    return {"model": model, "model_budget": budget or None}


def _check_model(plan: Plan, out: ResolvedPlan, where: str, environ) -> None:
    """A plan's model settings are usable before anything is made: the [model] table
    is there when a task asks for a model, each upstream's key variable is set, each
    model a task names is served, and the tasks share one sandbox backend (the gateway
    listens where that backend's agents reach it)."""
    model = plan.model
    for t in out.tasks.values():
        if t.agent.type == "builtin":  # it talks to nothing but the run's gateway
            if model is None:
                raise PlanError(f"{where}: task {t.id!r} field agent: a builtin agent needs the plan's "
                                "[model] table (its only way to a model)")
            if t.agent.model is None and t.model is None:
                raise PlanError(f"{where}: task {t.id!r} field agent.model: a builtin agent needs a model "
                                "(agent.model, or the task's [task.model] model)")
            if t.agent.model is not None and model.upstream_for(t.agent.model) is None:
                served = "; ".join(f"{u.name}: {', '.join(u.models)}" for u in model.upstream)
                raise PlanError(f"{where}: task {t.id!r} field agent.model: unknown upstream for model "
                                f"{t.agent.model!r} (served: {served})")
        if t.model is None and t.model_budget is None:
            continue
        if model is None:
            raise PlanError(f"{where}: task {t.id!r} field model: the plan has no [model] table")
        if t.model is not None and model.upstream_for(t.model) is None:
            served = "; ".join(f"{u.name}: {', '.join(u.models)}" for u in model.upstream)
            raise PlanError(f"{where}: task {t.id!r} field model.model: unknown upstream for model "
                            f"{t.model!r} (served: {served})")
    if model is None:
        return
    try:
        model.keys(dict(environ))
    except PlanError as exc:
        raise PlanError(f"{where}: {exc}") from None
    kinds = {t.sandbox.type: t.id for t in out.tasks.values()}
    if len(kinds) > 1:
        raise PlanError(f"{where}: model: a run with a [model] table runs every task in one sandbox backend "
                        f"(the gateway listens where that backend's agents reach it); found "
                        + ", ".join(f"{k} (task {tid!r})" for k, tid in kinds.items()))


def _first(*values):
    """The first value that is set: the task's, then its strategy's, then the run's."""
    return next((v for v in values if v is not None), None)


def _check_graph(plan: ResolvedPlan, where: str) -> None:
    for t in plan.tasks.values():
        for d in t.depends_on:
            if d not in plan.tasks:
                raise PlanError(f"{where}: task {t.id!r} field depends_on: no task {d!r}")
            if d == t.id:
                raise PlanError(f"{where}: task {t.id!r} depends on itself")
    state: dict[str, int] = {}

    def visit(tid: str, path: list[str]) -> None:
        if state.get(tid) == 2:
            return
        if state.get(tid) == 1:
            cycle = path[path.index(tid):] + [tid]
            raise PlanError(f"{where}: dependency cycle: {' -> '.join(cycle)}")
        state[tid] = 1
        for d in plan.tasks[tid].depends_on:
            visit(d, path + [tid])
        state[tid] = 2

    for tid in plan.tasks:
        visit(tid, [])
