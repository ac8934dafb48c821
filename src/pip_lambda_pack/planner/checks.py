"""The constraints every plan keeps, checked after every strategy (docs/planner.md,
"Constraints"): closure covered, at most ``max_layers`` layers (``per-package`` excepted),
one version per package, the unzipped size limit, no runtime-provided wheel over-fetched."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from ..errors import PlanError
from ..units import human_size, limit_size
from .model import Fleet, LayerPlan, PlanParams
from .runtime_provided import closures, is_provided

UNBOUNDED = frozenset({"per-package"})  # strategies that ignore max-layers (benchmarks only)


def check_fleet(fleet: Fleet, params: PlanParams) -> None:
    """Reject a function whose closure alone is over the size limit, naming its big wheels."""
    problems = size_problems(fleet, closures(fleet, params), params)
    if problems:
        raise PlanError(
            next(iter(problems.values())),
            "drop or slim the largest dependencies, split the function, or set "
            f'delivery = "shim" in [functions.{next(iter(problems))}] to load its layers into /tmp',
        )


def size_problems(
    fleet: Fleet, pins: Mapping[str, Iterable[str]], params: PlanParams
) -> dict[str, str]:
    """Function -> what is wrong, for each function whose code and ``pins`` unzip to more
    than the size limit: by how much, and its largest wheels. Sorted by function name."""
    problems = {}
    for name, members in sorted(pins.items()):
        unique = set(members)
        total = fleet.functions[name].code_size
        total += sum(fleet.packages[p].unpacked_size for p in unique)
        limit = params.size_for(name)
        if total > limit:
            biggest = sorted(unique, key=lambda p: (-fleet.packages[p].unpacked_size, p))[:3]
            listed = ", ".join(
                f"{p} ({human_size(fleet.packages[p].unpacked_size)})" for p in biggest
            )
            problems[name] = (
                f"function {name} needs {human_size(total)} unzipped, "
                f"{human_size(total - limit)} over the "
                f"{limit_size(limit)} limit; largest: {listed}"
            )
    return problems


def check_plan(fleet: Fleet, plan: LayerPlan, params: PlanParams) -> None:
    """Raise PlanError if the plan misses a pin, breaks max layers or the size limit, mixes
    versions or over-fetches a runtime-provided package. ``per-package`` may exceed
    max layers (it is the benchmarks' floor, never deployed)."""
    needs = closures(fleet, params)
    for name in sorted(fleet.functions):
        problem = _plan_problem(fleet, plan, params, name, needs[name])
        if problem:
            raise PlanError(
                f"the {plan.strategy} plan for function {name} {problem}",
                "use another --strategy or raise --max-layers",
            )


def _plan_problem(
    fleet: Fleet, plan: LayerPlan, params: PlanParams, name: str, needed: Sequence[str]
) -> str:
    ids = plan.functions.get(name, ())
    provided = [pin for lid in ids for pin in plan.layers[lid]]
    unique = set(provided)
    missing = set(needed) - unique
    unpacked = fleet.functions[name].code_size
    unpacked += sum(fleet.packages[p].unpacked_size for p in unique)
    if missing:
        return f"misses {', '.join(sorted(missing))}"
    if len(ids) > params.layers_for(name) and plan.strategy not in UNBOUNDED:
        return f"uses {len(ids)} layers, over the limit of {params.layers_for(name)}"
    if len({fleet.packages[p].name for p in unique}) != len(unique):
        return "has two versions of one package"
    if unpacked > params.size_for(name):
        return f"needs {human_size(unpacked)} unzipped, over {limit_size(params.size_for(name))}"
    extra = sorted(p for p in unique - set(needed) if is_provided(fleet, params, p))
    if extra:
        return f"receives {extra[0]}, which it does not need, over the runtime's copy"
    return ""
