"""The pipeline end to end: resolve -> plan -> lock (stage 3, here), and lock -> layers.

The stages live beside it: ``pinning`` (requirements -> pins), ``planning`` (pins ->
plan), ``building`` (lock -> layers and manifest); ``settings`` holds what they share.
This module decides when a lock is fresh, plans it again or resolves again, and writes it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .building import bytecode_record, layer_digests
from .config import Project
from .errors import LockError
from .graph import Pin, PinGraph, pin_graph
from .lock import (
    Lock,
    LockedFunction,
    input_parts,
    inputs_digest,
    planner_staleness,
    read_lock,
    resolution_staleness,
    write_lock,
)
from .manifest import short_id
from .pinning import resolve_project
from .planner import LayerPlan, get_strategy, make_plan
from .planner.report import plan_to_json
from .planner.runtime_provided import closures as needs
from .planner.runtime_provided import runtime_warnings
from .planning import (
    fleet_of,
    locked_plan,
    over_limit,
    plan_params,
    renamed_plan,
    size_of,
    strategy_of,
    with_observed_usage,
)
from .settings import FinderPool, Settings
from .target import get_target
from .units import plural


def check_settings(project: Project) -> None:
    """ConfigError or TargetError for a setting no stage could use, before any stage runs."""
    get_target(project.target)
    get_strategy(strategy_of(project))


@dataclass(frozen=True, slots=True, kw_only=True)
class ShownLock:
    """The lock ``graph`` and ``plan`` show: ``warnings`` name each function over the size
    limit (then the lock was planned with the limit lifted and never written)."""

    lock: Lock
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # the plan's own warnings (see LayerPlan.warnings)


def lock_project(project: Project, settings: Settings, finders: FinderPool) -> Lock:
    """Resolve, plan and write ``lambda-pack.lock``; returns the lock.

    The lock in place lends its plan (for stable layers) only when it was planned with the
    same settings for the same target.
    """
    closures = resolve_project(project, settings, finders)
    previous = _previous_plan(project, _readable_lock(project, settings))
    return _write(project, plan_lock(project, closures, previous), settings)


def current_lock(project: Project, settings: Settings, finders: FinderPool) -> Lock:
    """The lock file when it is fresh; otherwise resolve again (or, when only the planner
    settings changed, plan its wheels again) and rewrite it. PlanError over a limit."""
    return _refresh(project, settings, finders, write=True, lenient=False).lock


def shown_lock(
    project: Project, settings: Settings, finders: FinderPool, *, write: bool = True
) -> ShownLock:
    """``current_lock`` for ``graph`` and ``plan``: a function over the size limit is shown
    (with a warning saying by how much and what is largest), not refused, and such a lock
    is not written. ``write=False`` (a dry run with ad-hoc planner settings) never writes."""
    return _refresh(project, settings, finders, write=write, lenient=True)


def _refresh(
    project: Project, settings: Settings, finders: FinderPool, *, write: bool, lenient: bool
) -> ShownLock:
    name = project.lock_path.name
    existing = read_lock(project.lock_path) if project.lock_path.is_file() else None
    kept = "" if write else f" ({name} is left as it is)"
    stale = (
        resolution_staleness(existing, project, strategy_of(project))
        if existing is not None
        else "no lock"
    )
    if existing is not None and stale is None:
        if planner_staleness(existing, project, strategy_of(project)) is None:
            if write and existing.inputs != inputs_digest(project, strategy_of(project)):
                existing = _restamp(project, existing, settings)
            settings.log(f"using {name} (fresh)")
            return ShownLock(lock=existing, warnings=_lock_warnings(project, existing, lenient))
        settings.say(f"{name} was planned with other planner settings; planning again{kept}")
        shown = plan_lock(project, existing.closures(), None, lenient=lenient)
    else:
        if existing is not None:
            settings.say(f"{name} is stale ({stale}); resolving again{kept}")
        closures = resolve_project(project, settings, finders)
        shown = plan_lock(project, closures, _previous_plan(project, existing), lenient=lenient)
    if shown.warnings and write:
        settings.say(f"not writing {name}: a function is over Lambda's size limit")
    elif write:
        _write(project, shown, settings)
    return shown


def _restamp(project: Project, lock: Lock, settings: Settings) -> Lock:
    """The lock rewritten for changed build options (bytecode, exclude) alone: the same
    wheels and plan, nothing resolved or planned again."""
    strategy = strategy_of(project)
    lock = dataclasses.replace(
        lock,
        inputs=inputs_digest(project, strategy),
        input_parts=input_parts(project, strategy),
        bytecode=bytecode_record(project, settings),
    )
    write_lock(lock, project.lock_path)
    settings.say(
        f"{project.lock_path.name}: bytecode or exclude changed; updated, nothing resolved"
    )
    return lock


def _lock_warnings(project: Project, lock: Lock, lenient: bool) -> tuple[str, ...]:
    if not lenient:
        return ()
    fleet = fleet_of(project, pin_graph(lock.closures()))
    return over_limit(fleet, locked_plan(lock), plan_params(project))


def plan_lock(
    project: Project,
    closures: Mapping[str, Sequence[Pin]],
    previous: LayerPlan | None = None,
    *,
    lenient: bool = False,
) -> ShownLock:
    """The lock of these closures, planned with the project's settings (not written).

    PlanError when a function is over the size limit, unless ``lenient``: then the plan is
    made with the limit lifted to the largest function and the warnings say what is over.
    """
    graph = pin_graph(closures)
    fleet = fleet_of(project, graph)
    params = with_observed_usage(project, graph, plan_params(project, previous))
    if lenient:
        largest = max(size_of(fleet, name, pins) for name, pins in needs(fleet, params).items())
        own = {n: (k, max(size, largest)) for n, (k, size) in (params.limits or {}).items()}
        lifted = dataclasses.replace(
            params, size_limit=max(params.size_limit, largest), limits=own or None
        )
        plan = make_plan(fleet, lifted, strategy_of(project))
    else:
        plan = make_plan(fleet, params, strategy_of(project))
    lock = lock_of(project, closures, graph, plan)
    return ShownLock(lock=lock, warnings=over_limit(fleet, plan, params), notes=plan.warnings)


def lock_of(
    project: Project, closures: Mapping[str, Sequence[Pin]], graph: PinGraph, plan: LayerPlan
) -> Lock:
    """The lock record of a resolution and its plan."""
    return Lock(
        target=project.target,
        inputs=inputs_digest(project, strategy_of(project)),
        input_parts=input_parts(project, strategy_of(project)),
        strategy=strategy_of(project),
        max_layers=project.max_layers,
        wheels={pin.id: pin for pins in closures.values() for pin in pins},
        functions={
            name: LockedFunction(pins=graph.functions[name], layers=ids)
            for name, ids in plan.functions.items()
        },
        layers=plan.layers,
    )


def _write(project: Project, shown: ShownLock, settings: Settings) -> Lock:
    for warning in shown.notes:
        settings.say(f"warning: {warning}")
    lock = dataclasses.replace(shown.lock, bytecode=bytecode_record(project, settings))
    write_lock(lock, project.lock_path)
    counts = f"{plural(len(lock.wheels), 'wheel')}, {plural(len(lock.layers), 'layer')}"
    settings.say(f"wrote {project.lock_path.name}: {counts}")
    return lock


def _readable_lock(project: Project, settings: Settings) -> Lock | None:
    """The lock file in place, if there is one and it is readable."""
    if not project.lock_path.is_file():
        return None
    try:
        return read_lock(project.lock_path)
    except LockError as exc:
        settings.log(f"ignoring the old lock: {exc}")
        return None


def _previous_plan(project: Project, lock: Lock | None) -> LayerPlan | None:
    """The lock's plan when it was made for the same target with the same settings."""
    if lock is None or lock.target != project.target:
        return None
    if planner_staleness(lock, project, strategy_of(project)) is not None:
        return None
    return locked_plan(lock)


def plan_report(
    project: Project, shown: ShownLock, settings: Settings, finders: FinderPool
) -> dict[str, Any]:
    """``plan_to_json`` of the shown lock's plan, each layer named by its zip's id.

    The zips are built (into the layer cache, as ``build`` would) to learn their sha256, so
    what ``plan`` prints is what ``build`` writes, ``manifest.json`` and the templates name.
    """
    lock = shown.lock
    graph = pin_graph(lock.closures())
    fleet = fleet_of(project, graph)
    params = with_observed_usage(project, graph, plan_params(project))
    plan = locked_plan(lock)
    plan = dataclasses.replace(plan, warnings=runtime_warnings(fleet, plan, params))
    ids = {
        lid: short_id(sha) for lid, sha in layer_digests(project, lock, settings, finders).items()
    }
    named = renamed_plan(plan, ids)
    report = plan_to_json(named, fleet, params)
    report["warnings"] = [*report["warnings"], *shown.warnings]
    return report
