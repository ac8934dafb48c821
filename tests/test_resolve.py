"""Resolution for a Lambda target, over real tiny wheels in a local index or find-links dir."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from fakes import FakeFinder
from helpers import make_sdist, make_wheel, sha256_file
from indexserver import IndexServer
from pip_lambda_pack.candidates import tag_rank
from pip_lambda_pack.direct import wheel_path
from pip_lambda_pack.errors import HashMismatchError, NoWheelError, ResolutionError
from pip_lambda_pack.formats import FormatControl
from pip_lambda_pack.index import PackageFinder
from pip_lambda_pack.resolve import ResolvedPackage, resolve
from pip_lambda_pack.target import get_target

StartServer = Callable[..., IndexServer]


def _resolve(
    requirements: Sequence[str],
    source: Path | IndexServer,
    cache_dir: Path,
    *,
    target: str = "python3.12-x86_64",
    log: list[str] | None = None,
    constraints: Sequence[str] = (),
    **options: object,
) -> dict[str, ResolvedPackage]:
    if isinstance(source, IndexServer):
        finder = PackageFinder(index_urls=(source.url,), cache_dir=cache_dir)
    else:
        finder = PackageFinder(index_urls=(), find_links=(str(source),), cache_dir=cache_dir)
    with finder:
        return resolve(
            [Requirement(r) for r in requirements],
            target=get_target(target),
            finder=finder,
            constraints=[Requirement(c) for c in constraints],
            build_dir=cache_dir / "built",
            log=None if log is None else log.append,
            **options,  # type: ignore[arg-type]
        )


def _versions(resolved: dict[str, ResolvedPackage]) -> dict[str, str]:
    return {name: package.version for name, package in resolved.items()}


def test_resolves_from_metadata_files_without_fetching_wheels(
    wheelhouse: Path, index_server: StartServer, cache_dir: Path
) -> None:
    foo = make_wheel(wheelhouse, "foo", "1.0", requires=["Bar>=1"])
    make_wheel(wheelhouse, "bar", "1.0")
    make_wheel(wheelhouse, "bar", "2.0")
    server = index_server()
    resolved = _resolve(["foo"], server, cache_dir)
    assert list(resolved) == ["bar", "foo"]
    assert _versions(resolved) == {"bar": "2.0", "foo": "1.0"}
    package = resolved["foo"]
    assert (package.name, package.dependencies, package.extras, package.built_from_sdist) == (
        "foo",
        ("bar",),
        (),
        False,
    )
    assert package.link.url == f"{server.root}/files/{foo.name}"
    assert package.link.sha256 == sha256_file(foo)
    assert server.file_requests(".whl") == []
    assert sorted(server.file_requests(".metadata")) == [
        "/files/bar-2.0-py3-none-any.whl.metadata",
        "/files/foo-1.0-py3-none-any.whl.metadata",
    ]


def test_html_index_without_metadata_files_reads_the_wheels(
    wheelhouse: Path, index_server: StartServer, cache_dir: Path
) -> None:
    make_wheel(wheelhouse, "foo", "1.0", requires=["bar"])
    make_wheel(wheelhouse, "bar", "1.0")
    server = index_server(json=False, metadata=False)
    assert _versions(_resolve(["foo"], server, cache_dir)) == {"bar": "1.0", "foo": "1.0"}
    assert sorted(server.file_requests(".whl")) == [
        "/files/bar-1.0-py3-none-any.whl",
        "/files/foo-1.0-py3-none-any.whl",
    ]


@pytest.mark.parametrize(
    ("target", "chosen"),
    [("python3.12-x86_64", "1.0"), ("python3.13-x86_64", "1.0"), ("python3.12-arm64", None)],
)
def test_wheel_tags_are_those_of_the_target_not_the_host(
    tmp_path: Path, cache_dir: Path, target: str, chosen: str | None
) -> None:
    make_wheel(tmp_path, "fast", "1.0", tag="cp312-abi3-manylinux_2_34_x86_64")
    log: list[str] = []
    if chosen:
        assert _versions(_resolve(["fast"], tmp_path, cache_dir, target=target)) == {"fast": chosen}
        return
    with pytest.raises(NoWheelError) as caught:
        _resolve(["fast"], tmp_path, cache_dir, target=target, log=log)
    assert caught.value.message == (
        f"no file of fast fits {target} (newest: fast-1.0-cp312-abi3-manylinux_2_34_x86_64.whl, "
        f"incompatible tag cp312-abi3-manylinux_2_34_x86_64 for {target})"
    )
    assert caught.value.tip == (
        "see why each file was rejected with -v; pick another --target, "
        f"or put a wheel built for {target} in --find-links"
    )
    assert log == [
        f"skipping fast-1.0-cp312-abi3-manylinux_2_34_x86_64.whl from {tmp_path}: "
        f"incompatible tag cp312-abi3-manylinux_2_34_x86_64 for {target}"
    ]


def test_cp312_manylinux_2_34_wheel_is_for_312_only(tmp_path: Path, cache_dir: Path) -> None:
    make_wheel(tmp_path, "fast", "2.0", tag="cp312-cp312-manylinux_2_34_x86_64")
    make_wheel(tmp_path, "fast", "1.0", tag="cp311-cp311-manylinux_2_28_x86_64")
    make_wheel(tmp_path, "fast", "0.9", tag="cp311-cp311-manylinux_2_17_x86_64")
    log: list[str] = []
    assert _versions(_resolve(["fast"], tmp_path, cache_dir)) == {"fast": "2.0"}
    resolved = _resolve(["fast"], tmp_path, cache_dir, target="python3.11-x86_64", log=log)
    assert _versions(resolved) == {"fast": "0.9"}  # glibc 2.26 on Amazon Linux 2
    assert resolved["fast"].link.filename == "fast-0.9-cp311-cp311-manylinux_2_17_x86_64.whl"
    assert log[:2] == [  # in find-links (file name) order
        f"skipping fast-1.0-cp311-cp311-manylinux_2_28_x86_64.whl from {tmp_path}: "
        "incompatible tag cp311-cp311-manylinux_2_28_x86_64 for python3.11-x86_64",
        f"skipping fast-2.0-cp312-cp312-manylinux_2_34_x86_64.whl from {tmp_path}: "
        "incompatible tag cp312-cp312-manylinux_2_34_x86_64 for python3.11-x86_64",
    ]
    with pytest.raises(NoWheelError, match="no file of fast fits python3.11-arm64"):
        _resolve(["fast"], tmp_path, cache_dir, target="python3.11-arm64")


def test_best_ranked_wheel_of_a_version_is_chosen(tmp_path: Path, cache_dir: Path) -> None:
    make_wheel(tmp_path, "fast", "1.0", tag="py3-none-any")
    make_wheel(tmp_path, "fast", "1.0", tag="cp312-cp312-manylinux_2_17_x86_64")
    make_wheel(tmp_path, "fast", "1.0", tag="cp313-cp313-macosx_11_0_arm64")
    x86 = _resolve(["fast"], tmp_path, cache_dir)
    arm = _resolve(["fast"], tmp_path, cache_dir, target="python3.12-arm64")
    assert x86["fast"].link.filename == "fast-1.0-cp312-cp312-manylinux_2_17_x86_64.whl"
    assert arm["fast"].link.filename == "fast-1.0-py3-none-any.whl"


def test_requires_python_is_checked_against_the_target(
    wheelhouse: Path, index_server: StartServer, cache_dir: Path
) -> None:
    make_wheel(wheelhouse, "foo", "2.0", requires_python=">=3.13")
    make_wheel(wheelhouse, "foo", "1.0", requires_python=">=3.8")
    server = index_server()
    log: list[str] = []
    assert _versions(_resolve(["foo"], server, cache_dir, log=log)) == {"foo": "1.0"}
    assert (
        f"skipping foo-2.0-py3-none-any.whl from {server.url}: "
        "requires-python >=3.13 excludes 3.12.12"
    ) in log
    assert _versions(_resolve(["foo"], server, cache_dir, target="python3.13-x86_64")) == {
        "foo": "2.0"
    }


def test_requires_python_from_metadata_when_the_source_does_not_say(
    tmp_path: Path, cache_dir: Path
) -> None:
    make_wheel(tmp_path, "foo", "2.0", requires_python=">=3.13")
    make_wheel(tmp_path, "foo", "1.0")
    assert _versions(_resolve(["foo"], tmp_path, cache_dir)) == {"foo": "1.0"}
    with pytest.raises(ResolutionError) as caught:
        _resolve(["foo==2.0"], tmp_path, cache_dir)
    assert caught.value.message == (
        "foo 2.0 requires Python >=3.13, but python3.12-x86_64 runs 3.12.12"
    )


def test_yanked_files_only_for_an_exact_pin(
    wheelhouse: Path, index_server: StartServer, cache_dir: Path
) -> None:
    make_wheel(wheelhouse, "foo", "1.0")
    make_wheel(wheelhouse, "foo", "2.0")
    server = index_server(json=False, yanked={"foo-2.0-py3-none-any.whl": "broken"})
    log: list[str] = []
    assert _versions(_resolve(["foo"], server, cache_dir, log=log)) == {"foo": "1.0"}
    assert f"skipping foo-2.0-py3-none-any.whl from {server.url}: yanked: broken" in log
    assert _versions(_resolve(["foo==2.0"], server, cache_dir)) == {"foo": "2.0"}
    with pytest.raises(ResolutionError) as caught:
        _resolve(["foo>=1.5"], server, cache_dir)
    assert caught.value.message == (
        "no version of foo for python3.12-x86_64 matches foo>=1.5 (required by the requirements)"
    )


def test_pre_releases_only_when_asked_or_named(tmp_path: Path, cache_dir: Path) -> None:
    make_wheel(tmp_path, "foo", "1.0")
    make_wheel(tmp_path, "foo", "2.0b1")
    make_wheel(tmp_path, "beta", "0.1a1")
    log: list[str] = []
    assert _versions(_resolve(["foo"], tmp_path, cache_dir, log=log)) == {"foo": "1.0"}
    assert log == [
        f"skipping foo-2.0b1-py3-none-any.whl from {tmp_path}: pre-release",
        "pinned foo 1.0 (foo-1.0-py3-none-any.whl)",
    ]
    assert _versions(_resolve(["foo>=2.0b1"], tmp_path, cache_dir)) == {"foo": "2.0b1"}
    allowed = _resolve(["foo"], tmp_path, cache_dir, allow_prereleases=True)
    assert _versions(allowed) == {"foo": "2.0b1"}


def test_pre_releases_when_no_final_release_satisfies(tmp_path: Path, cache_dir: Path) -> None:
    """PEP 440 and pip: a pre-release is accepted when no final release satisfies."""
    make_wheel(tmp_path, "foo", "1.0")
    make_wheel(tmp_path, "foo", "2.0b1")
    make_wheel(tmp_path, "beta", "0.1a1")
    make_wheel(tmp_path, "beta", "0.1a2")
    make_wheel(tmp_path, "app", "1.0", requires=["beta"])
    log: list[str] = []
    assert _versions(_resolve(["app"], tmp_path, cache_dir, log=log)) == {
        "app": "1.0",
        "beta": "0.1a2",
    }
    assert not any("pre-release" in line for line in log)
    assert _versions(_resolve(["foo>1.0"], tmp_path, cache_dir)) == {"foo": "2.0b1"}
    assert _versions(_resolve(["foo", "beta"], tmp_path, cache_dir)) == {
        "beta": "0.1a2",
        "foo": "1.0",  # a final release satisfies foo: its pre-release stays out
    }
    with pytest.raises(ResolutionError) as caught:
        _resolve(["foo<1.0"], tmp_path, cache_dir)
    assert caught.value.message == (
        "no version of foo for python3.12-x86_64 matches foo<1.0 (required by the requirements)"
    )


def test_extras_add_their_dependencies(tmp_path: Path, cache_dir: Path) -> None:
    make_wheel(
        tmp_path,
        "foo",
        "1.0",
        extras=["fast"],
        requires=["baz", 'bar>=1; extra == "fast"'],
    )
    make_wheel(tmp_path, "bar", "1.0")
    make_wheel(tmp_path, "baz", "1.0")
    plain = _resolve(["foo"], tmp_path, cache_dir)
    assert _versions(plain) == {"baz": "1.0", "foo": "1.0"}
    assert (plain["foo"].dependencies, plain["foo"].extras) == (("baz",), ())
    fast = _resolve(["foo[Fast]"], tmp_path, cache_dir)
    assert _versions(fast) == {"bar": "1.0", "baz": "1.0", "foo": "1.0"}
    assert (fast["foo"].dependencies, fast["foo"].extras) == (("bar", "baz"), ("fast",))


def test_markers_are_evaluated_for_the_target(tmp_path: Path, cache_dir: Path) -> None:
    make_wheel(
        tmp_path,
        "app",
        "1.0",
        requires=[
            "always",
            'old; python_version < "3.12"',
            'armonly; platform_machine == "aarch64"',
            'hostonly; sys_platform == "darwin"',
        ],
    )
    for name in ("always", "old", "armonly", "hostonly", "rootarm"):
        make_wheel(tmp_path, name, "1.0")
    reqs = ["app", 'rootarm; platform_machine == "aarch64"']
    x86 = _resolve(reqs, tmp_path, cache_dir)
    assert list(x86) == ["always", "app"]
    assert x86["app"].dependencies == ("always",)
    arm = _resolve(reqs, tmp_path, cache_dir, target="python3.11-arm64")
    assert list(arm) == ["always", "app", "armonly", "old", "rootarm"]


def test_conflict_names_both_requirements_and_who_asked(tmp_path: Path, cache_dir: Path) -> None:
    make_wheel(tmp_path, "bar", "1.0", requires=["foo>=2"])
    make_wheel(tmp_path, "foo", "1.0")
    make_wheel(tmp_path, "foo", "2.0")
    with pytest.raises(ResolutionError) as caught:
        _resolve(["bar", "foo<2"], tmp_path, cache_dir)
    assert caught.value.message == (
        "foo>=2 (required by bar 1.0) conflicts with foo<2 (required by the requirements)"
    )
    assert caught.value.tip == "loosen one of these requirements or add a constraint"
    assert caught.value.exit_code == 2


def test_backtracks_to_a_version_that_fits(tmp_path: Path, cache_dir: Path) -> None:
    make_wheel(tmp_path, "bar", "2.0", requires=["foo>=2"])
    make_wheel(tmp_path, "bar", "1.0", requires=["foo"])
    make_wheel(tmp_path, "foo", "1.0")
    make_wheel(tmp_path, "foo", "2.0")
    assert _versions(_resolve(["bar", "foo<2"], tmp_path, cache_dir)) == {
        "bar": "1.0",
        "foo": "1.0",
    }


def test_constraints_narrow_without_adding(tmp_path: Path, cache_dir: Path) -> None:
    make_wheel(tmp_path, "foo", "1.0")
    make_wheel(tmp_path, "foo", "2.0")
    make_wheel(tmp_path, "unused", "1.0")
    resolved = _resolve(["foo"], tmp_path, cache_dir, constraints=["foo<2", "unused==1.0"])
    assert _versions(resolved) == {"foo": "1.0"}
    with pytest.raises(ResolutionError) as caught:
        _resolve(["foo"], tmp_path, cache_dir, constraints=["foo>3"])
    assert caught.value.message == (
        "no version of foo for python3.12-x86_64 matches foo (required by the requirements) "
        "with constraint >3"
    )


def test_hashes_limit_the_candidates(tmp_path: Path, cache_dir: Path) -> None:
    old = make_wheel(tmp_path, "foo", "1.0")
    make_wheel(tmp_path, "foo", "2.0")
    log: list[str] = []
    hashes = {"Foo": frozenset({sha256_file(old)})}
    resolved = _resolve(["foo"], tmp_path, cache_dir, hashes=hashes, log=log)
    assert _versions(resolved) == {"foo": "1.0"}
    assert f"skipping foo-2.0-py3-none-any.whl from {tmp_path}: hash not in --hash list" in log
    with pytest.raises(HashMismatchError) as caught:
        _resolve(["foo"], tmp_path, cache_dir, hashes={"foo": frozenset({"0" * 64})})
    assert caught.value.message == "no file of foo has a sha256 in its --hash list"
    assert caught.value.tip.startswith("refresh the hashes")


def test_project_with_no_files_anywhere(tmp_path: Path, cache_dir: Path) -> None:
    with pytest.raises(NoWheelError) as caught:
        _resolve(["nothing"], tmp_path, cache_dir)
    assert caught.value.message == (
        f"no files for nothing (looked in {tmp_path}) for python3.12-x86_64"
    )


def test_pure_sdist_is_built_when_no_wheel_fits(tmp_path: Path, cache_dir: Path) -> None:
    make_sdist(tmp_path, "purepkg", "1.0", requires=["dep"])
    make_wheel(tmp_path, "dep", "1.0")
    log: list[str] = []
    resolved = _resolve(["purepkg"], tmp_path, cache_dir, log=log)
    package = resolved["purepkg"]
    assert (package.version, package.built_from_sdist, package.dependencies) == (
        "1.0",
        True,
        ("dep",),
    )
    assert package.link.filename == "purepkg-1.0.tar.gz"
    assert any(line.startswith("building purepkg-1.0.tar.gz with ") for line in log), log
    target = get_target("python3.12-x86_64")
    with PackageFinder(index_urls=(), find_links=(str(tmp_path),), cache_dir=cache_dir) as f:
        wheel = wheel_path(package, target=target, finder=f, build_dir=cache_dir / "built")
    assert wheel.name == "purepkg-1.0-py3-none-any.whl"
    assert wheel.parent.name == f"2-{package.link.sha256}-python3.12-x86_64"


def test_sdist_ignored_when_a_matching_version_has_a_wheel(tmp_path: Path, cache_dir: Path) -> None:
    make_sdist(tmp_path, "mixed", "2.0", pure=False)
    make_wheel(tmp_path, "mixed", "1.0")
    resolved = _resolve(["mixed"], tmp_path, cache_dir)
    assert (resolved["mixed"].version, resolved["mixed"].built_from_sdist) == ("1.0", False)


def test_platform_specific_sdist_is_refused_with_the_ways_out(
    tmp_path: Path, cache_dir: Path
) -> None:
    make_sdist(tmp_path, "native", "2.0", pure=False)
    make_wheel(tmp_path, "native", "1.0", tag="cp312-cp312-manylinux_2_17_aarch64")
    with pytest.raises(NoWheelError) as caught:
        _resolve(["native==2.0"], tmp_path, cache_dir, target="python3.12-arm64")
    assert caught.value.message == (
        "native-2.0.tar.gz has no wheel for python3.12-arm64, and it builds a "
        "platform-specific wheel (native-2.0-cp312-cp312-linux_x86_64.whl) for another "
        "Python or machine"
    )
    assert caught.value.tip == (
        "require native==1.0 (the newest version with a wheel for python3.12-arm64), "
        "use another --target, or put a prebuilt wheel for python3.12-arm64 in --find-links"
    )


@pytest.mark.parametrize("name", ["python3.12-x86_64", "python3.11-arm64", "python3.14-x86_64"])
def test_the_string_tag_rank_is_the_targets(name: str) -> None:
    target = get_target(name)
    filenames = [
        "a-1.0-py3-none-any.whl",
        "a-1.0-py2.py3-none-any.whl",
        "a-1.0-1-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "a-1.0-cp311-abi3-manylinux_2_34_x86_64.whl",
        "a-1.0-cp311-cp311-manylinux_2_28_aarch64.whl",
        "a-1.0-CP312-CP312-MANYLINUX_2_28_X86_64.whl",
        "a-1.0-cp312-cp312-musllinux_1_2_x86_64.whl",
        "a-1.0-cp312-cp312-win_amd64.whl",
        "a-1.0-cp314-cp314t-manylinux_2_34_x86_64.whl",
        "a-1.0-pp310-pypy310_pp73-manylinux_2_17_x86_64.whl",
        "a-1.0-cp36-abi3-manylinux1_x86_64.manylinux_2_5_x86_64.whl",
    ]
    assert [tag_rank(target, f) for f in filenames] == [target.tag_rank(f) for f in filenames]


def test_the_resolver_needs_only_the_finder_protocol(tmp_path: Path) -> None:
    finder = FakeFinder()
    finder.add("app-1.0-py3-none-any.whl", requires=["lib>=1", "extra; python_version < '3'"])
    finder.add("lib-1.0-py3-none-any.whl")
    finder.add("lib-2.0-cp312-cp312-macosx_11_0_arm64.whl")  # not for Lambda: skipped
    finder.add("lib-1.5-cp312-cp312-manylinux2014_x86_64.whl")
    finder.add("lib-1.6.tar.gz")
    log: list[str] = []
    resolved = resolve(
        [Requirement("app")],
        target=get_target("python3.12-x86_64"),
        finder=finder,
        build_dir=tmp_path / "built",
        log=log.append,
    )
    assert _versions(resolved) == {"app": "1.0", "lib": "1.5"}
    assert resolved["lib"].link.filename == "lib-1.5-cp312-cp312-manylinux2014_x86_64.whl"
    assert resolved["app"].dependencies == ("lib",)
    assert finder.downloads == []  # metadata only: no file was needed to resolve
    assert finder.prefetched[:1] == ["app"]
    assert (
        "skipping lib-2.0-cp312-cp312-macosx_11_0_arm64.whl from https://fake.invalid/simple: "
        "incompatible tag cp312-cp312-macosx_11_0_arm64 for python3.12-x86_64"
    ) in log


def _fake_resolve(
    requirements: Sequence[str], finder: FakeFinder, tmp_path: Path, **options: object
) -> tuple[dict[str, ResolvedPackage], list[str]]:
    warnings: list[str] = []
    resolved = resolve(
        [Requirement(r) for r in requirements],
        target=get_target("python3.12-x86_64"),
        finder=finder,
        build_dir=tmp_path / "built",
        warn=warnings.append,
        **options,  # type: ignore[arg-type]
    )
    return resolved, warnings


def test_a_newer_sdist_only_release_passed_over_is_a_warning(tmp_path: Path) -> None:
    finder = FakeFinder()
    finder.add("lib-1.0-py3-none-any.whl")
    finder.add("lib-1.0.tar.gz")
    finder.add("lib-2.0.tar.gz")
    resolved, warnings = _fake_resolve(["lib"], finder, tmp_path)
    assert _versions(resolved) == {"lib": "1.0"}
    assert warnings == [
        "pinned lib 1.0, not 2.0: lib 2.0 has no wheel for python3.12-x86_64, only an sdist; "
        "to build it, require lib==2.0 or add --no-binary lib to the requirements "
        "(--prefer-binary: keep 1.0 without this warning)"
    ]
    assert _fake_resolve(["lib<2"], finder, tmp_path)[1] == []  # 2.0 was never wanted
    quiet = FormatControl(prefer_binary=True)
    assert _fake_resolve(["lib"], finder, tmp_path, formats=quiet)[1] == []
    only = FormatControl(only_binary=frozenset({"lib"}))
    assert _fake_resolve(["lib"], finder, tmp_path, formats=only)[1] == []


def test_only_binary_refuses_to_build(tmp_path: Path) -> None:
    finder = FakeFinder()
    finder.add("app-1.0-py3-none-any.whl", requires=["purepkg"])
    finder.add("purepkg-1.0.tar.gz")
    for formats in (FormatControl(only_binary=frozenset({":all:"})), _only("purepkg")):
        with pytest.raises(NoWheelError) as caught:
            _fake_resolve(["app"], finder, tmp_path, formats=formats)
        assert caught.value.message == (
            "no file of purepkg fits python3.12-x86_64 (newest: purepkg-1.0.tar.gz, an sdist, "
            "and --only-binary forbids building purepkg)"
        )
        assert caught.value.tip == (
            "take purepkg out of --only-binary to build it from its sdist, "
            "or put a wheel built for python3.12-x86_64 in --find-links"
        )
    assert finder.downloads == []  # refused before anything was fetched or built


def _only(*names: str) -> FormatControl:
    return FormatControl().with_option("--only-binary", ",".join(names), "r.txt:1")


def test_no_binary_builds_from_the_sdist(tmp_path: Path, cache_dir: Path) -> None:
    make_wheel(tmp_path, "purepkg", "1.0")
    make_sdist(tmp_path, "purepkg", "1.0")
    plain = _resolve(["purepkg"], tmp_path, cache_dir)["purepkg"]
    assert (plain.link.filename, plain.built_from_sdist) == ("purepkg-1.0-py3-none-any.whl", False)
    log: list[str] = []
    formats = FormatControl().with_option("--no-binary", "purepkg", "r.txt:1")
    built = _resolve(["purepkg"], tmp_path, cache_dir, formats=formats, log=log)["purepkg"]
    assert (built.link.filename, built.built_from_sdist) == ("purepkg-1.0.tar.gz", True)
    assert (
        f"skipping purepkg-1.0-py3-none-any.whl from {tmp_path}: "
        "a wheel, and --no-binary takes purepkg from its sdist"
    ) in log
