"""``pip lambda-pack`` through real pip (this venv's, 23 and 26) in fresh venvs.

Each fresh venv gets its own pip and our wheel (so the .pth hook is installed the way users get
it); our runtime dependencies come from the test venv through a path entry, so nothing but the
pip wheels needs the network. Every run is isolated from the machine's pip configuration.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from indexserver import IndexServer
from pip_lambda_pack import __version__
from projects import HOST_TARGET, fill_wheelhouse

ROOT = Path(__file__).resolve().parents[1]
DEPS = sysconfig.get_paths()["purelib"]  # the test venv's site-packages: our dependencies
PIPS = [
    pytest.param(None, id="pip-of-test-venv"),
    pytest.param("pip==23.3.2", id="pip-23", marks=pytest.mark.network),
    pytest.param("pip>=26,<27", id="pip-26", marks=pytest.mark.network),
]


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment minus pip's config, proxies and the test venv, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PIP_") and "PROXY" not in k.upper() and k != "VIRTUAL_ENV"
    }
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CONFIG_DIRS=str(home / "xdg"),
        XDG_CACHE_HOME=str(home / ".cache"),
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
    )
    env.update(extra)
    return env


def sh(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="session")
def our_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pip-lambda-pack built once per session, the way it is published."""
    out = tmp_path_factory.mktemp("our-wheel")
    sh(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
       "-w", out, ROOT)  # fmt: skip
    return next(out.glob("pip_lambda_pack-*.whl"))


def fresh_venv(where: Path, pip: str | None, our_wheel: Path) -> Path:
    """A venv with ``pip`` (a requirement, or None for the test venv's) and our wheel."""
    sh(sys.executable, "-m", "venv", "--without-pip", where)
    python = where / "bin" / "python"
    site = sh(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    Path(site, "_test_deps.pth").write_text(DEPS + "\n")
    env = clean_env(where / "home")
    if pip is not None:
        wheels = where / "pip-wheel"
        sh(sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
           "-d", wheels, pip)  # fmt: skip
        pip_wheel = next(wheels.glob("pip-*.whl"))
        sh(python, pip_wheel / "pip", "install", "-q", "--no-index", pip_wheel, env=env)
    sh(python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", our_wheel, env=env)
    return python


@pytest.fixture(scope="session", params=PIPS)
def venv_python(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, our_wheel: Path
) -> Path:
    return fresh_venv(tmp_path_factory.mktemp("venv"), request.param, our_wheel)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """One function, no index configured: where packages come from is pip's business."""
    root = tmp_path / "project"
    (root / "fn").mkdir(parents=True)
    (root / "fn" / "app.py").write_text("def handler(event, context):\n    return event\n")
    (root / "lambda-pack.toml").write_text(
        f'target = "{HOST_TARGET}"\n\n[functions.fn]\nhandler = "app.handler"\ncode = "fn"\n'
        'dependencies = ["greet"]\n'
    )
    return root


@pytest.fixture
def wheels(wheelhouse: Path) -> Path:
    fill_wheelhouse(wheelhouse)
    return wheelhouse


def pip(python: Path, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "-m", "pip", *args],
        cwd=cwd,
        env=clean_env(cwd.parent / "home", LAMBDA_PACK_CACHE_DIR=str(cwd / ".cache"), **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_pip_help_lists_the_command_and_its_help_is_ours(venv_python: Path, tmp_path: Path) -> None:
    listing = ok(pip(venv_python, tmp_path, "help"))
    assert (
        "  lambda-pack                 Build Lambda layers for serverless functions.\n" in listing
    )
    usage = ok(pip(venv_python, tmp_path, "lambda-pack", "--help"))
    assert usage.startswith("usage: pip lambda-pack [-h] [-V] COMMAND ...")
    assert "check" in ok(pip(venv_python, tmp_path, "help", "lambda-pack"))
    version = pip(venv_python, tmp_path, "lambda-pack", "--version")
    assert ok(version) == f"pip lambda-pack {__version__}\n"  # ours, not pip's


def test_the_hook_is_inert_until_pip_builds_its_command_table(venv_python: Path) -> None:
    code = (
        "import sys, json; before = sorted(m for m in sys.modules if 'lambda' in m); "
        "import pip._internal.commands as c; "
        "print(json.dumps([before, c.commands_dict['lambda-pack'].module_path, "
        "'pip_lambda_pack' in sys.modules, [type(f).__name__ for f in sys.meta_path]]))"
    )
    out = sh(venv_python, "-c", code, env=clean_env(venv_python.parents[1] / "home"))
    before, module, imported, finders = json.loads(out)
    assert before == ["_pip_lambda_pack_hook"]
    assert module == "pip_lambda_pack.pip_plugin"
    assert imported is False
    assert "CommandTableFinder" not in finders


def test_a_pip_without_a_command_table_is_left_alone(tmp_path: Path, our_wheel: Path) -> None:
    python = fresh_venv(tmp_path / "venv", None, our_wheel)
    fake = tmp_path / "fake" / "pip" / "_internal" / "commands"
    fake.mkdir(parents=True)
    for folder in (fake, fake.parent, fake.parent.parent):
        (folder / "__init__.py").touch()
    (fake / "__init__.py").write_text("commands = {}\n")
    env = clean_env(tmp_path / "home", PYTHONPATH=str(tmp_path / "fake"))
    result = subprocess.run(
        [str(python), "-c", "import pip._internal.commands as c; print(c.commands)"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "{}\n", "")


def test_pip_index_settings_apply_under_the_project_and_flags(
    venv_python: Path, project: Path, wheels: Path, tmp_path: Path
) -> None:
    with IndexServer(wheels) as from_pip, IndexServer(wheels) as from_flag:
        ok(pip(venv_python, project, "lambda-pack", "lock", PIP_INDEX_URL=from_pip.url))
        assert "/simple/greet/" in from_pip.requests
        lock = (project / "lambda-pack.lock").read_text()
        assert 'name = "greet"' in lock
        # pip's index is where files come from, not an input: the lock stays fresh under
        # pip-lambda-pack, which does not read pip's configuration
        check = subprocess.run(
            [sys.executable, "-m", "pip_lambda_pack", "check"],
            cwd=project,
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, check.stderr
        (project / "lambda-pack.lock").unlink()
        from_pip.requests.clear()
        args = ("lambda-pack", "lock", "--index-url", from_flag.url)
        ok(pip(venv_python, project, *args, PIP_INDEX_URL=from_pip.url))
        assert from_pip.requests == []
        assert "/simple/greet/" in from_flag.requests


def test_project_config_wins_over_pip_config(
    venv_python: Path, project: Path, wheels: Path
) -> None:
    config = project / "lambda-pack.toml"
    with IndexServer(wheels) as from_pip, IndexServer(wheels) as from_project:
        config.write_text(f'index-url = "{from_project.url}"\n' + config.read_text())
        ok(pip(venv_python, project, "lambda-pack", "lock", PIP_INDEX_URL=from_pip.url))
        assert from_pip.requests == []
        assert "/simple/greet/" in from_project.requests


class _ForwardProxy(BaseHTTPRequestHandler):
    """A plain HTTP forward proxy that sends every absolute URL to one upstream server."""

    upstream = ""
    seen: list[str] = []  # noqa: RUF012 - set per server by `forward_proxy`

    def do_GET(self) -> None:
        self.seen.append(self.path)
        parts = urllib.parse.urlsplit(self.path)
        url = self.upstream + parts.path + (f"?{parts.query}" if parts.query else "")
        request = urllib.request.Request(url, headers={"Accept": self.headers.get("Accept", "*/*")})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=10) as response:
                status, body, ctype = response.status, response.read(), response.headers
        except urllib.error.HTTPError as exc:
            status, body, ctype = exc.code, exc.read(), exc.headers
        self.send_response(status)
        self.send_header("Content-Type", ctype.get("Content-Type", "text/plain"))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def forward_proxy(wheels: Path) -> Iterator[tuple[str, list[str]]]:
    """``(proxy URL, URLs it was asked for)``; it serves the wheelhouse for any host."""
    with IndexServer(wheels) as index:
        seen: list[str] = []
        handler = type("Proxy", (_ForwardProxy,), {"upstream": index.root, "seen": seen})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}", seen
        finally:
            server.shutdown()
            server.server_close()
            thread.join()


def test_pip_conf_proxy_timeout_and_retries_reach_the_index(
    venv_python: Path, project: Path, forward_proxy: tuple[str, list[str]]
) -> None:
    proxy, seen = forward_proxy
    pip_conf = project.parent / "pip.conf"
    pip_conf.write_text(
        "[global]\nindex-url = http://packages.lambda-pack.invalid/simple\ntimeout = 7\n"
        f"[lambda-pack]\nproxy = {proxy}\nretries = 1\n"
    )
    ok(pip(venv_python, project, "lambda-pack", "lock", PIP_CONFIG_FILE=str(pip_conf)))
    assert "http://packages.lambda-pack.invalid/simple/greet/" in seen
    assert any(url.endswith("/files/greet-1.0-py3-none-any.whl") for url in seen)


def test_pip_options_before_the_command_count_too(
    venv_python: Path, project: Path, forward_proxy: tuple[str, list[str]]
) -> None:
    proxy, seen = forward_proxy
    args = ("--proxy", proxy, "lambda-pack", "lock", "-v")
    out = ok(
        pip(venv_python, project, *args, PIP_INDEX_URL="http://pkgs.lambda-pack.invalid/simple")
    )
    assert "http://pkgs.lambda-pack.invalid/simple/greet/" in seen
    assert "wrote lambda-pack.lock" in out
