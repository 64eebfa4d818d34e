"""The plan's [model] surface: a task's and a strategy's own budgets resolved against the
plan's, kept through the saved plan, and what is refused before a run is made."""

from __future__ import annotations

import textwrap

import pytest

from gitutil import make_repo
from harness.config import BudgetLimit
from harness.errors import PlanError
from harness.repo.run import load_plan, save_plan
from harness.repo.store import RunStore
from harness.repo.workspace import Workspace
from harness.run.lifecycle import prepare_run
from harness.run.plan import resolve_plan

MODEL = textwrap.dedent('''
    [[model.upstream]]
    name = "oa"
    protocol = "openai"
    base_url = "http://127.0.0.1:9/v1"
    api_key_env = "MP_KEY"
    models = ["gpt-*"]

    [model.budget.attempt]
    tokens = 1000
    [model.budget.task]
    tokens = 5000
    [model.budget.run]
    cost_usd = 3.0
    ''')


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv("MP_KEY", "sk-plan-test")


def _plan(tmp_path, body, model=MODEL, run='[run]\nsandbox = "local"\n'):
    (tmp_path / "s.toml").write_text(textwrap.dedent('''
        name = "s"
        prompt = "p"
        command = "true"
        [model]
        model = "gpt-4o"
        budget = { attempt = { tokens = 300 }, task = { cost_usd = 0.5 } }
        '''))
    path = tmp_path / "plan.toml"
    path.write_text(run + model + textwrap.dedent(body))
    return path


def test_a_tasks_budget_wins_over_its_strategys_scope_by_scope_and_the_run_limit_is_the_plans(tmp_path, key):
    plan = resolve_plan(_plan(tmp_path, '''
        [[task]]
        id = "plain"
        command = "true"
        [[task]]
        id = "strat"
        strategy = "s.toml"
        [[task]]
        id = "both"
        strategy = "s.toml"
        [task.model]
        model = "gpt-5"
        budget = { attempt = { tokens = 42 } }
        '''))
    base = plan.model.budget
    plain, strat, both = (plan.tasks[t] for t in ("plain", "strat", "both"))
    assert plain.model is None and plain.model_budgets(base) == base
    assert strat.model == "gpt-4o"
    assert strat.model_budgets(base).attempt == BudgetLimit(tokens=300)
    assert strat.model_budgets(base).task == BudgetLimit(cost_usd=0.5)
    assert both.model == "gpt-5"
    assert both.model_budgets(base).attempt == BudgetLimit(tokens=42)
    assert both.model_budgets(base).task == BudgetLimit(cost_usd=0.5)  # the strategy's, the task set none
    assert both.model_budgets(base).run == BudgetLimit(cost_usd=3.0)


def test_the_saved_plan_keeps_the_model_table_and_each_tasks_budget(tmp_path, key):
    repo = make_repo(tmp_path / "repo")
    ws, store, plan, record, _ = prepare_run(_plan(tmp_path, '[[task]]\nid = "a"\nstrategy = "s.toml"\n'), repo,
                                             run_id="saved")
    store.reserve()
    save_plan(store, plan)
    again = load_plan(RunStore(Workspace(repo), "saved"), record)
    assert again.model == plan.model and again.model is not None
    assert again.tasks["a"].model_budgets(again.model.budget) == plan.tasks["a"].model_budgets(plan.model.budget)


@pytest.mark.parametrize("body,model,expect", [
    ('[[task]]\nid = "a"\ncommand = "true"\n[task.model]\nmodel = "llama"\n', MODEL,
     "task 'a' field model.model: unknown upstream for model 'llama'"),
    ('[[task]]\nid = "a"\ncommand = "true"\n[task.model]\nbudget = { attempt = { tokens = 1 } }\n', "",
     "task 'a' field model: the plan has no [model] table"),
    ('[[task]]\nid = "a"\ncommand = "true"\n[[task]]\nid = "b"\ncommand = "true"\nsandbox = "docker"\n', MODEL,
     "one sandbox backend"),
    ('[[task]]\nid = "a"\ncommand = "true"\n', MODEL.replace('"MP_KEY"', '"MP_NOT_SET"'),
     "environment variable MP_NOT_SET is not set"),
    ('[[task]]\nid = "a"\ncommand = "true"\n', MODEL.replace("tokens = 1000", "tokens = 0"),
     "model.budget.attempt.tokens"),
])
def test_bad_model_settings_are_one_plan_error(tmp_path, key, body, model, expect):
    with pytest.raises(PlanError) as err:
        resolve_plan(_plan(tmp_path, body, model))
    assert expect in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith(str(tmp_path / "plan.toml"))
