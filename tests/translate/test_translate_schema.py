"""A plan's frames meet their declared contracts (shadowbill.translate.schema)."""

from __future__ import annotations

import pandas as pd
import pandera.errors
import pytest
from demo_companies import demo_company
from pandera.engines.pandas_engine import Engine

from shadowbill.demo.run import examples_dir
from shadowbill.snapshot.io import read_snapshot
from shadowbill.translate.plan import ASSIGNMENT_COLUMNS, UNMAPPED_COLUMNS, Plan
from shadowbill.translate.rollout import load_rollout
from shadowbill.translate.run import translate
from shadowbill.translate.schema import PlanAssignments, PlanUnmapped

pytestmark = pytest.mark.slow  # extracts a demo company


@pytest.fixture(scope="module", params=[2, 3])
def plan(request: pytest.FixtureRequest) -> Plan:
    snapshot = read_snapshot(demo_company(300, 8, 11).snapshot)
    return translate(snapshot, load_rollout(examples_dir() / "rollout.yaml"), request.param)


@pytest.mark.parametrize(
    ("model", "columns"),
    [(PlanAssignments, ASSIGNMENT_COLUMNS), (PlanUnmapped, UNMAPPED_COLUMNS)],
)
def test_each_contract_declares_the_pinned_columns(model, columns: dict[str, str]) -> None:
    declared = model.to_schema().columns
    assert list(declared) == list(columns)
    for name, dtype in columns.items():
        assert declared[name].dtype.check(Engine.dtype(pd.api.types.pandas_dtype(dtype))), name


def test_translation_meets_its_contracts_at_its_exit(plan: Plan) -> None:
    assert len(plan.assignments)
    PlanAssignments.validate(plan.assignments, lazy=True)
    PlanUnmapped.validate(plan.unmapped, lazy=True)


def test_a_subscription_mapped_twice_breaks_the_contract(plan: Plan) -> None:
    twice = pd.concat([plan.assignments, plan.assignments.head(1)], ignore_index=True)
    with pytest.raises(pandera.errors.SchemaError, match="subscription_id"):
        PlanAssignments.validate(twice)
