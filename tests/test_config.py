"""Project config and requirements files."""

from __future__ import annotations

from pathlib import Path

import pytest

from pip_lambda_pack.config import find_config, load_project, shortcut_project, with_overrides
from pip_lambda_pack.errors import ConfigError
from pip_lambda_pack.formats import FormatControl
from pip_lambda_pack.requirements import IndexOptions, read_requirements

SHA_A = "a" * 64
SHA_B = "b" * 64


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_requirements_with_nested_files_constraints_hashes_and_index_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRIVATE_INDEX", "https://pkgs.example/simple")
    write(tmp_path / "base.txt", "six==1.16.0  # pinned\n")
    write(tmp_path / "constraints.txt", "urllib3<3\n")
    reqs = write(
        tmp_path / "requirements.txt",
        "# comment\n"
        "-r base.txt\n"
        "-c constraints.txt\n"
        "--extra-index-url ${PRIVATE_INDEX}\n"
        "-f wheels\n"
        "--pre\n"
        f"requests[socks]>=2.31 ; python_version >= '3.8' \\\n  --hash=sha256:{SHA_A} \\\n"
        f"  --hash=sha256:{SHA_B}\n",
    )
    parsed = read_requirements(reqs)
    assert parsed.requirements == (
        "six==1.16.0",
        'requests[socks]>=2.31; python_version >= "3.8"',
    )
    assert parsed.constraints == ("urllib3<3",)
    assert parsed.hashes == (("requests", (SHA_A, SHA_B)),)
    assert parsed.index == IndexOptions(
        extra_index_urls=("https://pkgs.example/simple",),
        find_links=(str(tmp_path / "wheels"),),
        pre=True,
    )


def test_pips_binary_options_and_trusted_host(tmp_path: Path) -> None:
    write(tmp_path / "more.txt", "--no-binary=Foo_Bar\n--prefer-binary\n")
    reqs = write(
        tmp_path / "requirements.txt",
        "--only-binary :all:\n-r more.txt\n--trusted-host pkgs.example:8443\nfoo-bar\nsix\n",
    )
    parsed = read_requirements(reqs)
    assert parsed.formats == FormatControl(
        only_binary=frozenset({":all:"}), no_binary=frozenset({"foo-bar"}), prefer_binary=True
    )
    assert parsed.index.trusted_hosts == ("pkgs.example:8443",)
    formats = parsed.formats
    assert (formats.wheels_allowed("six"), formats.sdists_allowed("six")) == (True, False)
    assert (formats.wheels_allowed("foo.bar"), formats.sdists_allowed("foo.bar")) == (False, True)


@pytest.mark.parametrize(
    ("options", "only", "no"),
    [
        ([("--no-binary", "a,b"), ("--only-binary", "b")], {"b"}, {"a"}),  # later one wins
        ([("--no-binary", "a"), ("--only-binary", ":all:")], {":all:"}, set()),
        ([("--only-binary", ":all:,a"), ("--only-binary", ":none:")], set(), set()),
        ([("--only-binary", ":all:,:none:,a")], {"a"}, set()),
    ],
)
def test_binary_options_exclude_each_other_as_in_pip(
    options: list[tuple[str, str]], only: set[str], no: set[str]
) -> None:
    formats = FormatControl()
    for option, value in options:
        formats = formats.with_option(option, value, "r.txt:1")
    assert (formats.only_binary, formats.no_binary) == (only, no)


def test_a_binary_option_without_a_value(tmp_path: Path) -> None:
    reqs = write(tmp_path / "requirements.txt", "--only-binary\nsix\n")
    with pytest.raises(ConfigError) as info:
        read_requirements(reqs)
    assert info.value.message == f"{reqs}:1: --only-binary needs a value"


def test_malformed_requirement_names_file_and_line(tmp_path: Path) -> None:
    reqs = write(tmp_path / "requirements.txt", "requests\n\nflask >=>= 2\n")
    with pytest.raises(ConfigError) as info:
        read_requirements(reqs)
    assert info.value.message.startswith(f"{reqs}:3: malformed requirement 'flask >=>= 2'")
    assert info.value.tip.startswith("write it as NAME[extras] SPECIFIER")


def test_missing_requirements_file_and_unsupported_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="requirements file not found"):
        read_requirements(tmp_path / "nope.txt")
    reqs = write(tmp_path / "r.txt", "--use-pep517\n")
    with pytest.raises(ConfigError, match=r"r.txt:1: unsupported option --use-pep517"):
        read_requirements(reqs)
    reqs = write(tmp_path / "r.txt", "--editable .\n")  # a tree with no static name
    with pytest.raises(ConfigError, match=r"r.txt:1: cannot tell the project name of "):
        read_requirements(reqs)


def test_bad_hash_and_direct_reference_are_refused(tmp_path: Path) -> None:
    reqs = write(tmp_path / "r.txt", "six --hash=md5:abc\n")
    with pytest.raises(ConfigError, match="unsupported hash 'md5:abc'"):
        read_requirements(reqs)
    reqs = write(tmp_path / "r.txt", "six @ git+https://example.com/six.git\n")
    with pytest.raises(ConfigError, match="git.https references are not supported"):
        read_requirements(reqs)


def test_paths_and_direct_references_become_file_urls(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "pyproject.toml").write_text('[project]\nname = "Shared_Lib"\n')
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "pkg-1.0-py3-none-any.whl").write_bytes(b"")
    lines = (
        "-e ./lib\n./dist/pkg-1.0-py3-none-any.whl ; python_version >= '3.8'\n"
        "six @ https://example.com/six-1.16.0-py2.py3-none-any.whl\nother @ ./lib\n"
    )
    reqs = read_requirements(write(tmp_path / "r.txt", lines))
    base = tmp_path.resolve().as_uri()
    assert reqs.requirements == (
        f"Shared_Lib @ {base}/lib",
        f'pkg @ {base}/dist/pkg-1.0-py3-none-any.whl ; python_version >= "3.8"',
        "six @ https://example.com/six-1.16.0-py2.py3-none-any.whl",
        f"other @ {base}/lib",
    )


def test_include_loop_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "a.txt", "-r b.txt\n")
    write(tmp_path / "b.txt", "-r a.txt\n")
    with pytest.raises(ConfigError, match="include each other"):
        read_requirements(tmp_path / "a.txt")


def make_project(root: Path, body: str, name: str = "lambda-pack.toml") -> Path:
    (root / "src").mkdir(parents=True, exist_ok=True)
    write(root / "reqs.txt", "six\n")
    return write(root / name, body)


def test_load_lambda_pack_toml(tmp_path: Path) -> None:
    config = make_project(
        tmp_path,
        'target = "python3.13-arm64"\nmax-layers = 3\n'
        '[functions.api]\nhandler = "app.handler"\ncode = "src"\nrequirements = "reqs.txt"\n'
        '[functions.jobs]\nhandler = "jobs.run"\ncode = "src"\n'
        'dependencies = ["attrs>=23"]\nweight = 2.5\n',
    )
    project = load_project(config)
    assert project.target == "python3.13-arm64"
    assert project.max_layers == 3
    assert project.store == ".lambda-pack/store"
    assert [f.name for f in project.functions] == ["api", "jobs"]
    api, jobs = project.functions
    assert api.code == (tmp_path / "src").resolve()
    assert api.requirements.requirements == ("six",)
    assert jobs.requirements.requirements == ("attrs>=23",)
    assert jobs.weight == 2.5
    assert project.lock_path == tmp_path.resolve() / "lambda-pack.lock"


def test_pyproject_table_is_found_from_a_subdirectory(tmp_path: Path) -> None:
    make_project(
        tmp_path,
        '[project]\nname = "x"\n[tool.lambda-pack.functions.api]\n'
        'handler = "app.handler"\ncode = "src"\n',
        name="pyproject.toml",
    )
    found = find_config(tmp_path / "src")
    assert found == tmp_path / "pyproject.toml"
    assert load_project(found).functions[0].name == "api"


def test_pyproject_without_our_table_is_not_a_config(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n')
    assert find_config(tmp_path) is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('target = "x"\n', "no functions configured"),
        ('[functions.api]\ncode = "src"\n', "functions.api.handler is missing"),
        (
            '[functions.api]\nhandler = "app"\ncode = "src"\n',
            "handler 'app' is not module.function",
        ),
        (
            '[functions.api]\nhandler = "app.h"\ncode = "missing"\n',
            "code directory not found",
        ),
        (
            '[functions."bad name"]\nhandler = "app.h"\ncode = "src"\n',
            "function name 'bad name' is not valid",
        ),
        ('max-layers = 0\n[functions.a]\nhandler = "a.b"\n', "max-layers must be a positive"),
        ("[functions\n", "not valid TOML"),
    ],
)
def test_config_errors(tmp_path: Path, body: str, message: str) -> None:
    config = make_project(tmp_path, body)
    with pytest.raises(ConfigError, match=message):
        load_project(config)


def test_shortcut_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    reqs = write(tmp_path / "requirements.txt", "six\n")
    project = shortcut_project(
        requirements=reqs,
        handler="app.handler",
        code=tmp_path / "src",
        name="src",
        root=tmp_path,
        target="python3.12-x86_64",
    )
    assert project.config_path is None
    assert project.functions[0].requirements.requirements == ("six",)
    changed = with_overrides(
        project, target="python3.10-arm64", index=IndexOptions(index_url="http://i/simple")
    )
    assert changed.target == "python3.10-arm64"
    assert changed.index.index_urls() == ("http://i/simple",)
    assert IndexOptions(no_index=True).index_urls() == ()


def test_planner_options(tmp_path: Path) -> None:
    config = make_project(
        tmp_path,
        'runtime-provided = "exclude"\nlatency-ms = 12\nbandwidth-mbps = 50\nfetch = "serial"\n'
        '[functions.a]\nhandler = "a.b"\ncode = "src"\n',
    )
    planner = load_project(config).planner
    assert planner.values == {
        "runtime-provided": "exclude",
        "latency-ms": 12.0,
        "bandwidth-mb-s": 50.0,  # read under its old name too
        "fetch": "serial",
    }
    assert planner.digest_form()["cache_mb"] is None  # every option in the lock's digest
    bad = make_project(tmp_path, 'runtime-provided = "maybe"\n[functions.a]\nhandler = "a.b"\n')
    with pytest.raises(ConfigError, match='runtime-provided must be "bundle" or "exclude"'):
        load_project(bad)


def test_function_lambda_settings_default_to_lambdas_own(tmp_path: Path) -> None:
    config = make_project(tmp_path, '[functions.a]\nhandler = "a.b"\ncode = "src"\n')
    project = load_project(config)
    spec = project.functions[0]
    assert (spec.memory, spec.timeout, spec.ephemeral_storage_mb) == (128, 3, 512)
    assert (spec.environment, spec.tags, spec.role, spec.description) == ((), (), None, "")
    assert spec.delivery == "layers"
    assert project.prefix == tmp_path.name[:40]  # the directory's name (pytest's is safe)


def test_function_lambda_settings_are_read(tmp_path: Path) -> None:
    config = make_project(
        tmp_path,
        'prefix = "shop"\n[functions.a]\nhandler = "a.b"\ncode = "src"\nmemory = 1024\n'
        'timeout = 900\nephemeral-storage-mb = 10240\ndescription = "orders"\n'
        'role = "arn:aws:iam::123456789012:role/service-role/run"\ndelivery = "shim"\n'
        '[functions.a.environment]\nZ = "1"\nLOG_LEVEL = "info"\n'
        '[functions.a.tags]\nteam = "data"\n',
    )
    project = load_project(config)
    spec = project.functions[0]
    assert project.prefix == "shop"
    assert (spec.memory, spec.timeout, spec.ephemeral_storage_mb) == (1024, 900, 10240)
    assert spec.environment == (("LOG_LEVEL", "info"), ("Z", "1"))
    assert spec.tags == (("team", "data"),)
    assert spec.role == "arn:aws:iam::123456789012:role/service-role/run"
    assert (spec.description, spec.delivery) == ("orders", "shim")


def test_default_prefix_is_the_directory_name_made_safe(tmp_path: Path) -> None:
    from pip_lambda_pack.lambda_settings import default_prefix

    assert default_prefix(tmp_path / "My Shop.v2") == "My-Shop-v2"
    assert default_prefix(tmp_path / "___") == "lambda-pack"


@pytest.mark.parametrize(
    ("settings", "message", "tip"),
    [
        (
            "memory = 64",
            "functions.a.memory must be an integer from 128 to 10240, not 64",
            "write memory = 128",
        ),
        ("memory = true", "memory must be an integer from 128 to 10240, not True", "memory"),
        (
            "timeout = 901",
            "functions.a.timeout must be an integer from 1 to 900, not 901",
            "write timeout = 3",
        ),
        (
            "ephemeral-storage-mb = 100",
            "ephemeral-storage-mb must be an integer from 512 to 10240",
            "write ephemeral-storage-mb = 512",
        ),
        (
            "environment = { A = 1 }",
            "functions.a.environment must be a table of strings",
            "environment = {",
        ),
        (
            'environment = { AWS_REGION = "x" }',
            "'AWS_REGION' is not a name Lambda accepts",
            "none of the variables Lambda sets",
        ),
        ('environment = { 1A = "x" }', "'1A' is not a name Lambda accepts", "letters"),
        (
            f'environment = {{ BIG = "{"x" * 4100}" }}',
            "environment is over Lambda's 4 KB",
            "move large",
        ),
        (
            'role = "admin"',
            "functions.a.role: 'admin' is not an IAM role ARN",
            'write role = "arn:aws:iam::123456789012:role/NAME"',
        ),
        (f'description = "{"d" * 257}"', "description must be a string of at most 256", "shorten"),
        ('tags = { "aws:x" = "1" }', "tag 'aws:x' is not one Lambda accepts", "keys of 1-128"),
        (
            'delivery = "zip"',
            'functions.a.delivery must be "layers" or "shim", not \'zip\'',
            'write delivery = "shim"',
        ),
    ],
)
def test_function_lambda_settings_errors(
    tmp_path: Path, settings: str, message: str, tip: str
) -> None:
    config = make_project(tmp_path, f'[functions.a]\nhandler = "a.b"\ncode = "src"\n{settings}\n')
    with pytest.raises(ConfigError) as info:
        load_project(config)
    assert message in info.value.message
    assert tip in info.value.tip


def test_prefix_must_fit_lambda_names(tmp_path: Path) -> None:
    config = make_project(tmp_path, 'prefix = "-x"\n[functions.a]\nhandler = "a.b"\n')
    with pytest.raises(ConfigError, match="prefix '-x' is not a Lambda name prefix"):
        load_project(config)
