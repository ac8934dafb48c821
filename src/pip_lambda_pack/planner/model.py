"""The planner's records: what it knows of wheels and functions, what it is asked, what it gives.

``PlanParams`` holds every setting of the planner; a field a user may set carries its
``Option`` (config key, the CLI flag ``--KEY``, what it accepts and how a value becomes the
field's), and ``PlanParams.from_options`` is the one place such values are read. Adding a
planner option is one field here and one flag in ``cli.py``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024  # bytes, function code plus all its layers
MB = 1_000_000
RUNTIME_POLICIES = ("bundle", "exclude")  # see runtime_provided.py
DEFAULT_POLICY = "bundle"

Group = frozenset[str]  # the pins of one layer while planning


@dataclass(frozen=True, slots=True, kw_only=True)
class Package:
    """What the planner knows of one pinned wheel."""

    id: str  # name==version
    name: str
    size: int  # compressed bytes (what a cold start transfers)
    unpacked_size: int
    downloads: int = 0  # PyPI downloads in the snapshot: the global popularity prior
    requires: tuple[str, ...] = ()  # pins this wheel depends on (for the nixery baseline)


@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionNeed:
    """One function: the pins of its whole closure and its share of cold starts."""

    pins: tuple[str, ...]
    weight: float = 1.0
    code_size: int = 0  # unzipped bytes of its own code


@dataclass(frozen=True, slots=True, kw_only=True)
class Fleet:
    """Every package and every function the plan must serve.

    ``top_downloads`` is the download count of the most downloaded project in the snapshot
    the packages' ``downloads`` come from: the scale of the PyPI prior (0 when no snapshot
    was used; the fleet's own most downloaded package then sets the scale).
    """

    packages: Mapping[str, Package]
    functions: Mapping[str, FunctionNeed]
    top_downloads: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerPlan:
    """Layers by id (sorted pins each) and each function's layers in merge order.

    ``warnings`` are findings a user should read (a layer shadowing the runtime's boto3 with
    an incompatible version, say); the plan is valid regardless.
    """

    strategy: str
    layers: Mapping[str, tuple[str, ...]]
    functions: Mapping[str, tuple[str, ...]]
    extras: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


# --- options: how a user sets a PlanParams field ------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Option:
    """A user-settable planner field: its config key (the CLI flag is ``--KEY``), what a
    valid value is, and how a user's value (``float`` for numbers) becomes the field's."""

    key: str
    wants: str  # for the error: 'a number >= 0', '"parallel" or "serial"'
    example: str  # a valid setting, for the tip
    valid: Callable[[object], bool]
    convert: Callable[[Any], Any]  # user value -> field value; None keeps the default
    choices: tuple[str, ...] = ()  # for the CLI flag of a choice
    aliases: tuple[str, ...] = ()  # older config keys still read, oldest first
    # in the lock's digest even when unset; False for options added later, so the digests of
    # locks written before they existed stay what they were
    digested_unset: bool = True

    @property
    def digest_name(self) -> str:
        """The name the lock's inputs digest holds it under: its first key's, so renaming
        a key does not make every lock stale."""
        return (self.aliases or (self.key,))[0].replace("-", "_")

    def given(self, values: Mapping[str, object]) -> object:
        """Its value among config keys (the key, else an old name), or None."""
        for key in (self.key, *reversed(self.aliases)):
            if values.get(key) is not None:
                return values[key]
        return None

    def read(self, value: object, where: str) -> Any:
        """The user's value, checked and normalised (numbers as float); ConfigError if bad."""
        if not self.valid(value):
            prefix = f"{where}: " if where else ""
            raise ConfigError(f"{prefix}{self.key} must be {self.wants}", f"write {self.example}")
        return float(value) if isinstance(value, int | float) else value


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _number_option(
    key: str,
    example: str,
    convert: Callable[[float], Any],
    aliases: tuple[str, ...] = (),
    digested_unset: bool = True,
) -> Option:
    return Option(
        key=key,
        wants="a number >= 0",
        example=example,
        valid=_number,
        convert=convert,
        aliases=aliases,
        digested_unset=digested_unset,
    )


def _choice_option(key: str, choices: tuple[str, ...], convert: Callable[[str], Any]) -> Option:
    wants = " or ".join(f'"{c}"' for c in choices)
    return Option(
        key=key,
        wants=wants,
        example=f'{key} = "{choices[0]}"',
        valid=lambda value: value in choices,
        convert=convert,
        choices=choices,
    )


def _settable(default: Any, option: Option) -> Any:
    return field(default=default, metadata={"option": option})


def _kept(value: Any) -> Any:
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanParams:
    """Constraints, transfer figures and cache model; defaults are Lambda's limits and the
    figures of docs/planner.md.

    ``usage`` is the hook for a store's own statistics: pin id -> observed share of cold
    starts that needed it; it replaces the fleet's estimate where it is higher.
    ``previous`` is the plan in use: the ``expected-time`` planner keeps its layers unless
    a fresh plan is cheaper by more than ``stability_gain`` (a fraction of expected time).
    """

    max_layers: int = 5
    size_limit: int = LAMBDA_UNZIPPED_LIMIT
    latency_s: float = _settable(  # per fetch
        0.030, _number_option("latency-ms", "latency-ms = 30", lambda ms: ms / 1e3)
    )
    bandwidth_bps: float = _settable(  # bytes per second; 0 keeps the default
        100e6,
        _number_option(
            "bandwidth-mb-s", "bandwidth-mb-s = 100", lambda v: v * 1e6 or None, ("bandwidth-mbps",)
        ),
    )
    cache_bytes: int = _settable(  # 0 keeps the default
        500 * MB, _number_option("cache-mb", "cache-mb = 500", lambda v: int(v * 1e6) or None)
    )
    horizon: float = _settable(  # cold starts a worker's cache lives for; 0 keeps the default
        400.0,
        _number_option(
            "worker-cold-starts", "worker-cold-starts = 400", lambda v: v or None, (), False
        ),
    )
    extract_bps: float = _settable(  # unpacked bytes per second a miss is unpacked at; 0: free
        0.0, _number_option("extract-mb-s", "extract-mb-s = 50", lambda v: v * 1e6, (), False)
    )
    parallel_fetch: bool = _settable(
        True, _choice_option("fetch", ("parallel", "serial"), lambda v: v == "parallel")
    )
    prior_weight: float = 0.001
    usage: Mapping[str, float] | None = None
    target: str = "python3.12-x86_64"
    runtime_provided: str = _settable(
        DEFAULT_POLICY, _choice_option("runtime-provided", RUNTIME_POLICIES, _kept)
    )
    previous: LayerPlan | None = None
    stability_gain: float = 0.05
    plan_effort: float = _settable(  # the local search's budget, a multiple of the default
        1.0, _number_option("plan-effort", "plan-effort = 1", _kept)
    )
    # per-function (max layers, size limit) where a function has its own: a shim-delivered
    # function loads its layers into /tmp, so neither Lambda limit applies to it
    limits: Mapping[str, tuple[int, int]] | None = None

    def layers_for(self, name: str) -> int:
        """The most layers function ``name`` may have."""
        own = (self.limits or {}).get(name)
        return own[0] if own else self.max_layers

    def size_for(self, name: str) -> int:
        """The unzipped bytes function ``name`` may need (its code and all its layers)."""
        own = (self.limits or {}).get(name)
        return own[1] if own else self.size_limit

    @classmethod
    def from_options(
        cls, options: Mapping[str, object], where: str = "", **given: Any
    ) -> PlanParams:
        """The parameters a user's settings describe: ``options`` by config key (None or
        missing: the default), checked (ConfigError naming ``where``); ``given`` are fields
        set directly (a None there also keeps the default)."""
        values = {name: value for name, value in given.items() if value is not None}
        for name, option in OPTIONS.items():
            raw = option.given(options)
            if raw is not None:
                converted = option.convert(option.read(raw, where))
                if converted is not None:
                    values[name] = converted
        return cls(**values)


OPTIONS: Mapping[str, Option] = {
    f.name: f.metadata["option"] for f in dataclasses.fields(PlanParams) if "option" in f.metadata
}  # PlanParams field -> how a user sets it
OPTION_KEYS: tuple[str, ...] = tuple(option.key for option in OPTIONS.values())

Strategy = Callable[[Fleet, PlanParams], LayerPlan]


# --- plans and fleets as values -----------------------------------------------------------


def layer_id(members: Iterable[str]) -> str:
    """A layer's plan id: a digest of its sorted pins, stable across runs and machines."""
    text = "\n".join(sorted(members))
    return "L" + hashlib.sha256(text.encode()).hexdigest()[:12]


def plan_from_groups(
    strategy: str,
    groups: Mapping[str, Sequence[Iterable[str]]],
    warnings: tuple[str, ...] = (),
) -> LayerPlan:
    """A plan from each function's layers given as groups of pins (ids are computed)."""
    layers: dict[str, tuple[str, ...]] = {}
    functions: dict[str, tuple[str, ...]] = {}
    for name, function_groups in sorted(groups.items()):
        ids = []
        for group in function_groups:
            members = tuple(sorted(group))
            if members:
                lid = layer_id(members)
                layers[lid] = members
                ids.append(lid)
        functions[name] = tuple(ids)
    return LayerPlan(
        strategy=strategy,
        layers=dict(sorted(layers.items())),
        functions=functions,
        warnings=warnings,
    )


def shares(fleet: Fleet) -> dict[str, float]:
    """Function -> its share of the fleet's cold starts (weights normalised to sum 1)."""
    total = sum(f.weight for f in fleet.functions.values())
    count = len(fleet.functions)
    return {
        name: (f.weight / total if total > 0 else 1.0 / count)
        for name, f in fleet.functions.items()
    }


def usage(fleet: Fleet) -> dict[str, float]:
    """Pin id -> summed weight of the functions that need it."""
    totals: dict[str, float] = dict.fromkeys(fleet.packages, 0.0)
    for function in fleet.functions.values():
        for pin in function.pins:
            totals[pin] += function.weight
    return totals


def layer_size(fleet: Fleet, plan: LayerPlan, lid: str) -> int:
    """Compressed bytes of one layer of the plan."""
    return sum(fleet.packages[p].size for p in plan.layers[lid])


def layer_users(plan: LayerPlan) -> dict[str, list[str]]:
    """Layer id -> the functions whose plan uses it, sorted."""
    users: dict[str, list[str]] = {lid: [] for lid in plan.layers}
    for name, ids in sorted(plan.functions.items()):
        for lid in ids:
            users[lid].append(name)
    return users
