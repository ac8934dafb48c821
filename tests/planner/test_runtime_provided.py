"""Runtime-provided packages and the shadowing warnings."""

from __future__ import annotations

import pytest
from planfixtures import package

from pip_lambda_pack.errors import ConfigError
from pip_lambda_pack.planner import Fleet, FunctionNeed, PlanParams, make_plan
from pip_lambda_pack.planner.runtime_provided import (
    incompatible,
    provided_version,
    runtime_packages,
    shadow_warning,
)


def test_every_python_runtime_ships_the_sdk_and_its_dependencies() -> None:
    for target in (
        "python3.10-x86_64",
        "python3.11-arm64",
        "python3.12-x86_64",
        "python3.13-arm64",
    ):
        shipped = runtime_packages(target)
        for name in (
            "boto3",
            "botocore",
            "s3transfer",
            "jmespath",
            "urllib3",
            "python-dateutil",
            "six",
        ):
            assert name in shipped, (target, name)


def test_names_are_canonicalised_and_unknown_targets_ship_nothing() -> None:
    assert provided_version("python3.12-x86_64", "Python_Dateutil") == "2.9.0.post0"
    assert provided_version("python3.12-x86_64", "numpy") is None
    assert runtime_packages("custom-x86_64") == {}


def test_incompatible_means_another_major_or_for_the_sdk_another_minor() -> None:
    assert incompatible("urllib3", "2.0.4", "1.26.19")
    assert not incompatible("urllib3", "1.26.16", "1.26.19")
    assert incompatible("botocore", "1.31.0", "1.34.145")
    assert not incompatible("botocore", "1.34.100", "1.34.145")
    assert incompatible("six", "not a version", "1.16.0")


def test_shadow_warnings_name_the_place_the_pin_and_the_runtime_copy() -> None:
    assert shadow_warning("python3.12-x86_64", "urllib3==2.2.0", "layer Labc", "bundle") == (
        "layer Labc ships urllib3==2.2.0, shadowing the python3.12 runtime's urllib3 1.26.19"
    )
    assert shadow_warning("python3.12-x86_64", "urllib3==2.0.4", "function f", "exclude") == (
        "function f pins urllib3==2.0.4 but runtime-provided = exclude gives it the "
        "python3.12 runtime's urllib3 1.26.19"
    )
    assert shadow_warning("python3.12-x86_64", "urllib3==1.26.16", "layer L", "bundle") is None
    assert shadow_warning("python3.12-x86_64", "botocore==1.31.0", "layer L", "bundle")


def test_shadowing_what_botocore_imports_follows_what_the_runtimes_botocore_accepts() -> None:
    # botocore 1.34 on Python 3.10+: urllib3>=1.25.4,!=2.2.0,<3
    for target in ("python3.11-x86_64", "python3.12-arm64"):
        assert shadow_warning(target, "urllib3==2.8.0", "layer L", "bundle") is None
        assert shadow_warning(target, "urllib3==2.2.0", "layer L", "bundle")
        assert shadow_warning(target, "urllib3==3.0.0", "layer L", "bundle")
        assert shadow_warning(target, "jmespath==1.1.0", "layer L", "bundle") is None
        assert shadow_warning(target, "jmespath==2.0.0", "layer L", "bundle")
    assert shadow_warning("python3.12-x86_64", "numpy==1.26.0", "layer L", "bundle") is None


def test_runtime_provided_exclude_leaves_the_sdk_out_and_warns() -> None:
    packages = {
        p.id: p for p in (package("boto3==1.20.0"), package("urllib3==2.0.4"), package("a==1"))
    }
    fleet = Fleet(
        packages=packages,
        functions={"f": FunctionNeed(pins=("a==1", "boto3==1.20.0", "urllib3==2.0.4"))},
    )
    excluded = make_plan(fleet, PlanParams(runtime_provided="exclude"))
    assert [excluded.layers[lid] for lid in excluded.functions["f"]] == [("a==1",)]
    assert excluded.warnings == (
        "function f pins boto3==1.20.0 but runtime-provided = exclude gives it the "
        "python3.12 runtime's boto3 1.34.145",
        "function f pins urllib3==2.0.4 but runtime-provided = exclude gives it the "
        "python3.12 runtime's urllib3 1.26.19",
    )
    bundled = make_plan(fleet, PlanParams(runtime_provided="bundle"))
    assert len(bundled.warnings) == 1  # botocore 1.34 accepts urllib3 2.0.4
    assert "shadowing the python3.12 runtime's boto3 1.34.145" in bundled.warnings[0]
    with pytest.raises(ConfigError, match="runtime-provided = 'maybe' is not a policy"):
        make_plan(fleet, PlanParams(runtime_provided="maybe"))
