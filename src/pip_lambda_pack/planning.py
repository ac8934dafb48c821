"""Pipeline stage 2, pins -> plan: the planner's inputs made from the project (its fleet,
parameters, the shim's limits, observed usage) and its limits checked against a lock.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from .config import PlannerOptions, Project
from .errors import ConfigError
from .graph import PinGraph, pin_graph
from .lock import Lock
from .planner import DEFAULT_STRATEGY, LayerPlan, PlanParams, check_fleet, check_plan, make_plan
from .planner.checks import size_problems
from .planner.fleet import fleet_from_data, fleet_from_pins
from .planner.model import Fleet
from .popularity import pypi_downloads


def strategy_of(project: Project) -> str:
    return project.strategy or DEFAULT_STRATEGY


def with_observed_usage(project: Project, graph: PinGraph, params: PlanParams) -> PlanParams:
    """``params`` with the store's observed usage (what ``serve`` recorded of the project's
    functions' cold starts), so the plan follows real traffic; unchanged without one."""
    from .serve.record import observed_usage

    usage = observed_usage(project.store, project.root, graph.functions)
    return replace(params, usage=usage) if usage else params


def plan_params(project: Project, previous: LayerPlan | None = None) -> PlanParams:
    """The planner's parameters: the project's settings over the documented defaults."""
    params = planner_params(project.planner, project.max_layers, project.target, previous)
    limits = shim_limits(project)
    return replace(params, limits=limits) if limits else params


SHIM_MAX_LAYERS = 64  # the shim reads any number; the cost model picks how many pay
SHIM_MARGIN_MB = 64  # of /tmp kept free (plus a tenth): a layer's zip while it unpacks, and
# the handler's own files


def shim_size_limit(ephemeral_storage_mb: int) -> int:
    """The unzipped bytes a shim-delivered function may need: its /tmp less a margin."""
    mib = 1024 * 1024
    return int(ephemeral_storage_mb * 0.9 * mib) - SHIM_MARGIN_MB * mib


def shim_limits(project: Project) -> dict[str, tuple[int, int]]:
    """(max layers, size limit) of each shim-delivered function: /tmp's, not Lambda's."""
    return {
        spec.name: (
            max(SHIM_MAX_LAYERS, project.max_layers),
            shim_size_limit(spec.ephemeral_storage_mb),
        )
        for spec in project.functions
        if spec.delivery == "shim"
    }


def planner_params(
    options: PlannerOptions,
    max_layers: int | None = None,
    target: str | None = None,
    previous: LayerPlan | None = None,
) -> PlanParams:
    """Planner settings (config or flags; None for a default) as the planner's parameters."""
    return PlanParams.from_options(
        options.values, max_layers=max_layers, target=target, previous=previous
    )


def locked_plan(lock: Lock) -> LayerPlan:
    """The plan a lock file holds."""
    return LayerPlan(
        strategy=lock.strategy,
        layers=lock.layers,
        functions={name: f.layers for name, f in lock.functions.items()},
    )


def code_sizes(project: Project) -> dict[str, int]:
    """Bytes of each function's own code, for the unzipped size limit."""
    return {
        spec.name: sum(
            path.stat().st_size
            for path in spec.code.rglob("*")
            if path.is_file() and "__pycache__" not in path.parts
        )
        for spec in project.functions
    }


def fleet_of(project: Project, graph: PinGraph) -> Fleet:
    """The planner's view of the project: its pins, the functions' weights and code sizes,
    and the PyPI prior of the shipped snapshot."""
    weights = {spec.name: spec.weight for spec in project.functions}
    return fleet_from_pins(graph, pypi_downloads(), weights, code_sizes(project))


def load_fleet(path: Path) -> Fleet:
    """Read a ``lambda-pack-fleet/1`` file (see docs/design.md) for ``plan --fleet``."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"fleet file not found: {path}", "check the --fleet path") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not JSON: {exc}", "pass a lambda-pack-fleet/1 file") from None
    return fleet_from_data(data, str(path), pypi_downloads())


def plan_fleet(project: Project, fleet: Fleet, previous: LayerPlan | None = None) -> LayerPlan:
    """Plan the project's fleet; ``previous`` keeps layers stable where it pays."""
    return make_plan(fleet, plan_params(project, previous), strategy_of(project))


def check_lock_limits(project: Project, lock: Lock) -> None:
    """PlanError if the locked plan breaks a limit of the project (offline)."""
    fleet = fleet_of(project, pin_graph(lock.closures()))
    check_fleet(fleet, plan_params(project))
    check_plan(fleet, locked_plan(lock), plan_params(project))


def over_limit(fleet: Fleet, plan: LayerPlan, params: PlanParams) -> tuple[str, ...]:
    """What the plan's layers and code make of each function over the size limit."""
    pins = {
        name: [p for lid in ids for p in plan.layers[lid]] for name, ids in plan.functions.items()
    }
    return tuple(size_problems(fleet, pins, params).values())


def size_of(fleet: Fleet, name: str, pins: Sequence[str]) -> int:
    """Unzipped bytes of a function's code and these pins."""
    return fleet.functions[name].code_size + sum(fleet.packages[p].unpacked_size for p in pins)


def renamed_plan(plan: LayerPlan, ids: Mapping[str, str]) -> LayerPlan:
    """The plan with each layer id replaced by ``ids[id]`` (in its warnings too)."""
    warnings = []
    for warning in plan.warnings:
        for old, new in ids.items():
            warning = warning.replace(old, new)
        warnings.append(warning)
    return dataclasses.replace(
        plan,
        layers={ids[lid]: members for lid, members in sorted(plan.layers.items())},
        functions={
            name: tuple(ids[lid] for lid in found) for name, found in plan.functions.items()
        },
        warnings=tuple(warnings),
    )
