"""The planner's records: layer ids, and PlanParams read from a user's options."""

from __future__ import annotations

import pytest

from pip_lambda_pack.errors import ConfigError
from pip_lambda_pack.planner import PlanParams, layer_id
from pip_lambda_pack.planner.model import OPTION_KEYS


def test_layer_ids_depend_only_on_the_pins() -> None:
    assert layer_id(["b==1", "a==1"]) == layer_id(["a==1", "b==1"])
    assert layer_id(["a==1"]) != layer_id(["a==2"])


def test_every_option_is_read_in_the_fields_unit() -> None:
    assert OPTION_KEYS == (
        "latency-ms",
        "bandwidth-mb-s",
        "cache-mb",
        "worker-cold-starts",
        "extract-mb-s",
        "fetch",
        "runtime-provided",
        "plan-effort",
    )
    params = PlanParams.from_options(
        {
            "latency-ms": 20,
            "bandwidth-mb-s": 50.5,
            "cache-mb": 300,
            "worker-cold-starts": 80,
            "extract-mb-s": 40,
            "fetch": "serial",
            "runtime-provided": "exclude",
            "plan-effort": 3,
        },
        max_layers=3,
        target="python3.11-arm64",
    )
    assert params == PlanParams(
        max_layers=3,
        target="python3.11-arm64",
        latency_s=0.02,
        bandwidth_bps=50.5e6,
        cache_bytes=300_000_000,
        horizon=80.0,
        extract_bps=40e6,
        parallel_fetch=False,
        runtime_provided="exclude",
        plan_effort=3.0,
    )


def test_unset_options_and_zero_sizes_keep_the_defaults() -> None:
    given = {"latency-ms": None, "bandwidth-mb-s": 0, "cache-mb": 0}
    assert PlanParams.from_options(given, max_layers=None, previous=None) == PlanParams()
    assert PlanParams.from_options({"latency-ms": 0}).latency_s == 0.0  # zero latency is a value


@pytest.mark.parametrize(
    ("options", "message", "tip"),
    [
        ({"latency-ms": -1}, "x.toml: latency-ms must be a number >= 0", "write latency-ms = 30"),
        ({"cache-mb": True}, "x.toml: cache-mb must be a number >= 0", "write cache-mb = 500"),
        (
            {"fetch": "both"},
            'x.toml: fetch must be "parallel" or "serial"',
            'write fetch = "parallel"',
        ),
        (
            {"runtime-provided": "maybe"},
            'x.toml: runtime-provided must be "bundle" or "exclude"',
            'write runtime-provided = "bundle"',
        ),
    ],
)
def test_a_bad_option_names_the_key_and_a_valid_setting(
    options: dict[str, object], message: str, tip: str
) -> None:
    with pytest.raises(ConfigError) as info:
        PlanParams.from_options(options, "x.toml")
    assert (info.value.message, info.value.tip) == (message, tip)


def test_an_old_key_is_still_read_and_the_new_one_wins() -> None:
    assert PlanParams.from_options({"bandwidth-mbps": 20}).bandwidth_bps == 20e6
    both = {"bandwidth-mbps": 20, "bandwidth-mb-s": 30}
    assert PlanParams.from_options(both).bandwidth_bps == 30e6
