"""Lambda runtime presets: tags, glibc and markers come from the target, never the host."""

from __future__ import annotations

import pytest
from packaging.markers import Marker
from packaging.tags import Tag

from pip_lambda_pack.errors import TargetError
from pip_lambda_pack.target import TARGETS, get_target, manylinux_platforms


def test_every_runtime_from_310_to_314_on_both_architectures() -> None:
    assert sorted(TARGETS) == sorted(
        f"python3.{minor}-{arch}" for minor in range(10, 15) for arch in ("x86_64", "arm64")
    )


def test_glibc_follows_the_os() -> None:
    assert get_target("python3.11-arm64").glibc == (2, 26)
    assert get_target("python3.12-x86_64").glibc == (2, 34)
    assert get_target("python3.14-x86_64").glibc == (2, 34)


def test_manylinux_platforms_with_legacy_aliases() -> None:
    x86 = list(manylinux_platforms((2, 26), "x86_64"))
    assert x86[0] == "manylinux_2_26_x86_64"
    assert x86.index("manylinux2014_x86_64") == x86.index("manylinux_2_17_x86_64") + 1
    assert x86[-2:] == ["manylinux_2_5_x86_64", "manylinux1_x86_64"]
    arm = list(manylinux_platforms((2, 34), "aarch64"))
    assert arm[-2:] == ["manylinux_2_17_aarch64", "manylinux2014_aarch64"]
    assert not any("2010" in p or "manylinux1" in p for p in arm)


def test_tag_order_prefers_exact_abi_then_abi3_then_pure() -> None:
    target = get_target("python3.12-x86_64")
    assert target.tags[0] == Tag("cp312", "cp312", "manylinux_2_34_x86_64")
    rank = target.tag_rank
    exact = rank("a-1-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
    abi3 = rank("a-1-cp39-abi3-manylinux_2_17_x86_64.whl")
    pure = rank("a-1-py3-none-any.whl")
    assert exact is not None and abi3 is not None and pure is not None
    assert exact < abi3 < pure


@pytest.mark.parametrize(
    ("target", "filename", "loads"),
    [
        ("python3.12-x86_64", "a-1-cp312-cp312-manylinux_2_34_x86_64.whl", True),
        ("python3.11-x86_64", "a-1-cp312-cp312-manylinux_2_34_x86_64.whl", False),
        ("python3.11-x86_64", "a-1-cp311-cp311-manylinux_2_28_x86_64.whl", False),
        ("python3.11-x86_64", "a-1-cp311-cp311-manylinux_2_26_x86_64.whl", True),
        ("python3.12-arm64", "a-1-cp312-cp312-manylinux_2_17_x86_64.whl", False),
        ("python3.12-arm64", "a-1-cp312-cp312-manylinux2014_aarch64.whl", True),
        ("python3.12-x86_64", "a-1-cp312-cp312-macosx_11_0_arm64.whl", False),
        ("python3.12-x86_64", "a-1-cp312-cp312-linux_x86_64.whl", False),
        ("python3.12-x86_64", "a-1-cp312-cp312-musllinux_1_2_x86_64.whl", False),
        ("python3.10-x86_64", "a-1-cp37-abi3-manylinux1_x86_64.whl", True),
        ("python3.13-x86_64", "a-1-py2.py3-none-any.whl", True),
        ("python3.13-x86_64", "not-a-wheel.tar.gz", False),
    ],
)
def test_wheel_compatibility_is_the_targets(target: str, filename: str, loads: bool) -> None:
    assert (get_target(target).tag_rank(filename) is not None) is loads


def test_markers_are_evaluated_for_the_target() -> None:
    arm = get_target("python3.10-arm64")
    marker = Marker('python_version < "3.11" and platform_machine == "aarch64"')
    assert arm.evaluate(marker)
    assert not get_target("python3.12-arm64").evaluate(marker)
    assert arm.evaluate(Marker('sys_platform == "linux" and extra == "s3"'), extra="s3")
    assert not arm.evaluate(Marker('extra == "s3"'))
    assert arm.evaluate(None)


def test_unknown_target_lists_the_known_ones() -> None:
    with pytest.raises(TargetError) as info:
        get_target("python3.9-x86_64")
    assert info.value.message == "unknown target 'python3.9-x86_64'"
    assert info.value.tip.startswith("use one of: python3.10-arm64, python3.10-x86_64")
    assert info.value.exit_code == 2
