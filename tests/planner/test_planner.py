"""make_plan and the strategy registry: every strategy keeps every constraint."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from planfixtures import RUNTIME, fleets, small_fleet

import pip_lambda_pack.planner
from pip_lambda_pack.errors import ConfigError
from pip_lambda_pack.planner import (
    DEFAULT_STRATEGY,
    STRATEGIES,
    Fleet,
    PlanParams,
    check_plan,
    layer_id,
    make_plan,
)
from pip_lambda_pack.planner import expected_time as expected_time


def test_unknown_strategy() -> None:
    with pytest.raises(ConfigError, match="unknown planning strategy 'magic'"):
        make_plan(small_fleet(), PlanParams(), "magic")


@settings(max_examples=150, deadline=None)
@given(
    fleet=fleets(),
    max_layers=st.integers(1, 6),
    strategy=st.sampled_from(sorted(STRATEGIES)),
    policy=st.sampled_from(["bundle", "exclude"]),
)
def test_every_strategy_keeps_every_constraint(
    fleet: Fleet, max_layers: int, strategy: str, policy: str
) -> None:
    params = PlanParams(max_layers=max_layers, runtime_provided=policy, cache_bytes=10**6)
    plan = make_plan(fleet, params, strategy)
    for name, function in fleet.functions.items():
        needed = {p for p in function.pins if policy == "bundle" or p.split("==")[0] not in RUNTIME}
        provided = [p for lid in plan.functions[name] for p in plan.layers[lid]]
        assert set(provided) >= needed
        assert strategy == "per-package" or len(plan.functions[name]) <= max_layers
        names = {fleet.packages[p].name for p in provided}
        assert len(names) == len(set(provided))  # one version per package
        extra = set(provided) - needed
        assert not {fleet.packages[p].name for p in extra} & RUNTIME  # never shadows the runtime
        assert sum(fleet.packages[p].unpacked_size for p in set(provided)) <= params.size_limit
    for lid, members in plan.layers.items():
        assert lid == layer_id(members)  # canonical: membership decides the id
    check_plan(fleet, plan, params)


def test_strategies_and_the_default() -> None:
    assert sorted(STRATEGIES) == [
        "expected-time",
        "nixery",
        "per-package",
        "popularity-topk",
        "single",
    ]
    assert DEFAULT_STRATEGY == "expected-time"


PLANNER = Path(pip_lambda_pack.planner.__file__).parent
ALLOWED = {"graph", "errors", "units"}  # the modules of pip_lambda_pack the planner may use
EDGE = {"os", "pathlib", "io", "json", "socket", "time", "urllib", "httpx", "subprocess"}


def imports(path: Path) -> list[tuple[int, str]]:
    """(relative level, module) of every import in a source file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(0, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or ""))
    return found


def test_the_planner_imports_only_the_pin_graph_errors_and_units() -> None:
    modules = sorted(PLANNER.glob("*.py"))
    assert {m.stem for m in modules} >= {"model", "fleet", "cost", "checks", "report"}
    for module in modules:
        for level, name in imports(module):
            top = name.split(".")[0]
            if level == 0:
                assert top != "pip_lambda_pack", f"{module.name} imports {name} absolutely"
                assert top not in EDGE, f"{module.name} imports {name}: I/O belongs at the edge"
            elif level == 2:
                assert top in ALLOWED, f"{module.name} imports ..{name}"
            else:
                assert level == 1, f"{module.name} imports from {'.' * level}{name}"
