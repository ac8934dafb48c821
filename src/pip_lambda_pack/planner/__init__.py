"""The layer planner: a fleet of functions in, layers and each function's layer list out.

Pure: a ``Fleet`` and ``PlanParams`` in (``fleet.py`` makes fleets, ``model.py`` holds the
records and options), a ``LayerPlan`` out; nothing here reads a file, the network or the
clock. A strategy is a function ``(Fleet, PlanParams) -> LayerPlan``; ``make_plan`` runs one
and ``checks.py`` checks that the plan keeps every constraint. The default strategy,
``expected-time`` (``expected_time.py``), minimises the expected cold-start time of
``cost.py``'s model; ``baselines.py`` holds the others it is measured against,
``runtime_provided.py`` what the Lambda runtime ships, ``report.py`` the plan as people read
it. See docs/planner.md.
"""

from __future__ import annotations

import dataclasses

from ..errors import ConfigError
from .baselines import plan_nixery, plan_per_package, plan_popularity_topk, plan_single
from .checks import UNBOUNDED, check_fleet, check_plan
from .expected_time import plan_expected_time
from .model import (
    Fleet,
    FunctionNeed,
    LayerPlan,
    Package,
    PlanParams,
    Strategy,
    layer_id,
    plan_from_groups,
)

STRATEGIES: dict[str, Strategy] = {
    "expected-time": plan_expected_time,
    "single": plan_single,
    "popularity-topk": plan_popularity_topk,
    "nixery": plan_nixery,
    "per-package": plan_per_package,
}
DEFAULT_STRATEGY = "expected-time"

__all__ = [
    "DEFAULT_STRATEGY",
    "STRATEGIES",
    "UNBOUNDED",
    "Fleet",
    "FunctionNeed",
    "LayerPlan",
    "Package",
    "PlanParams",
    "check_fleet",
    "check_plan",
    "get_strategy",
    "layer_id",
    "make_plan",
    "plan_from_groups",
]


def get_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ConfigError(
            f"unknown planning strategy {name!r}", "use one of: " + ", ".join(STRATEGIES)
        ) from None


def make_plan(
    fleet: Fleet,
    params: PlanParams,
    strategy: str = DEFAULT_STRATEGY,
    *,
    previous: LayerPlan | None = None,
) -> LayerPlan:
    """Plan the fleet with ``strategy`` and check every constraint.

    ``previous`` (or ``params.previous``) is the plan in use, for stability.
    """
    if previous is not None:
        params = dataclasses.replace(params, previous=previous)
    check_fleet(fleet, params)
    plan = get_strategy(strategy)(fleet, params)
    check_plan(fleet, plan, params)
    return plan
