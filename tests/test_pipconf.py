"""pip's configuration as our records (read by pip's own parser), and the HTTP client built from
it: CA bundle, client certificate, trusted hosts, timeout; end to end over TLS through pip."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import trustme

from indexserver import IndexServer
from pip_lambda_pack.formats import FormatControl
from pip_lambda_pack.pip_plugin import LambdaPackCommand, pip_options
from pip_lambda_pack.pipconf import DEFAULT_TIMEOUT, NetworkOptions, PipOptions, http_client
from pip_lambda_pack.requirements import IndexOptions
from projects import HOST_TARGET, fill_wheelhouse, run


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No machine pip configuration: a home of our own and no PIP_* variables."""
    for name in list(os.environ):
        if name.startswith("PIP_") or "PROXY" in name.upper():
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(home / "xdg"))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # and no /etc/pip.conf
    return home


def parse(*args: str) -> PipOptions:
    command = LambdaPackCommand(name="lambda-pack", summary="test")
    values, rest = command.parser.parse_args(list(args))
    assert rest[:1] == ["lock"]
    return pip_options(values)


def test_pip_conf_env_and_pip_options_become_records(
    isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text(
        "[global]\nindex-url = https://mirror.example/simple\n"
        "extra-index-url =\n    https://a.example/simple\n    https://b.example/simple\n"
        "trusted-host = a.example b.example:8443\ncert = /ca.pem\ntimeout = 4\n"
        "[lambda-pack]\nclient-cert = /me.pem\nfind-links = wheels\n"
    )
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    monkeypatch.setenv("PIP_RETRIES", "2")
    monkeypatch.chdir(tmp_path)
    assert parse("--proxy", "http://proxy.example:3128", "lock", "--target", "x") == PipOptions(
        index=IndexOptions(
            index_url="https://mirror.example/simple",
            extra_index_urls=("https://a.example/simple", "https://b.example/simple"),
            find_links=(str(tmp_path / "wheels"),),
        ),
        network=NetworkOptions(
            cert="/ca.pem",
            client_cert="/me.pem",
            trusted_hosts=("a.example", "b.example:8443"),
            proxy="http://proxy.example:3128",
            timeout=4.0,
            retries=2,
        ),
    )


def test_pips_binary_options_come_from_pip_conf_and_env(
    isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nonly-binary = :all:\nprefer-binary = true\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    monkeypatch.setenv("PIP_NO_BINARY", "Foo_Bar")
    assert parse("lock").formats == FormatControl(
        only_binary=frozenset({":all:"}), no_binary=frozenset({"foo-bar"}), prefer_binary=True
    )
    later = FormatControl().with_option("--only-binary", "foo-bar", "r.txt:1")
    merged = parse("lock").formats.then(later)  # a requirements file's options come last
    assert (merged.only_binary, merged.no_binary) == ({":all:", "foo-bar"}, set())


def test_pips_defaults_say_pypi_and_nothing_else(isolated: Path) -> None:
    options = parse("lock")
    assert options.index == IndexOptions()
    assert (options.network.cert, options.network.proxy, options.network.trusted_hosts) == (
        None,
        None,
        (),
    )


def test_timeout_is_pips_or_ours() -> None:
    with http_client(NetworkOptions()) as client:
        assert client.timeout == DEFAULT_TIMEOUT
    with http_client(NetworkOptions(timeout=7)) as client:
        assert client.timeout == httpx.Timeout(7.0)


# -- TLS -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _serve_tls(server: ThreadingHTTPServer, context: ssl.SSLContext) -> threading.Thread:
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return thread


class TlsIndexServer(IndexServer):
    """The test index over HTTPS, optionally requiring a client certificate from ``ca``."""

    def __init__(self, directory: Path, ca: trustme.CA, *, client_cert: bool) -> None:
        super().__init__(directory)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(self.context)
        if client_cert:
            ca.configure_trust(self.context)
            self.context.verify_mode = ssl.CERT_REQUIRED

    def __enter__(self) -> TlsIndexServer:
        from indexserver import _Handler

        handler = type("Handler", (_Handler,), {"index": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = _serve_tls(self._httpd, self.context)
        return self

    @property
    def root(self) -> str:
        return super().root.replace("http://", "https://")


@pytest.fixture
def tls_index(wheelhouse: Path, ca: trustme.CA) -> Iterator[TlsIndexServer]:
    fill_wheelhouse(wheelhouse)
    with TlsIndexServer(wheelhouse, ca, client_cert=True) as server:
        yield server


def test_ca_bundle_and_client_certificate(
    tls_index: TlsIndexServer, ca: trustme.CA, tmp_path: Path
) -> None:
    ca_pem, me_pem = tmp_path / "ca.pem", tmp_path / "me.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    ca.issue_cert("client.example").private_key_and_cert_chain_pem.write_to_path(str(me_pem))
    url = tls_index.url + "/greet/"
    with http_client(NetworkOptions(cert=str(ca_pem), client_cert=str(me_pem))) as client:
        assert client.get(url).status_code == 200
    with http_client(NetworkOptions()) as client, pytest.raises(httpx.ConnectError):
        client.get(url)  # our CA is not in the default bundle
    with http_client(NetworkOptions(cert=str(ca_pem))) as client, pytest.raises(httpx.HTTPError):
        client.get(url)  # the server wants a client certificate


def test_trusted_host_skips_verification_there_only(
    wheelhouse: Path, ca: trustme.CA, tmp_path: Path
) -> None:
    fill_wheelhouse(wheelhouse)
    with TlsIndexServer(wheelhouse, ca, client_cert=False) as server:
        host = server.root.removeprefix("https://")
        with http_client(NetworkOptions(trusted_hosts=(host,))) as client:
            assert client.get(server.url + "/greet/").status_code == 200
        other = NetworkOptions(trusted_hosts=("other.example",))
        with http_client(other) as client, pytest.raises(httpx.ConnectError):
            client.get(server.url + "/greet/")


def test_pip_lambda_pack_locks_from_a_tls_index_with_pips_cert_and_client_cert(
    tls_index: TlsIndexServer, ca: trustme.CA, tmp_path: Path, isolated: Path
) -> None:
    ca_pem, me_pem = tmp_path / "ca.pem", tmp_path / "me.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    ca.issue_cert("client.example").private_key_and_cert_chain_pem.write_to_path(str(me_pem))
    root = tmp_path / "project"
    (root / "fn").mkdir(parents=True)
    (root / "fn" / "app.py").write_text("def handler(event, context):\n    return event\n")
    (root / "lambda-pack.toml").write_text(
        f'target = "{HOST_TARGET}"\n[functions.fn]\nhandler = "app.handler"\ncode = "fn"\n'
        'dependencies = ["greet"]\n'
    )
    env = {
        **os.environ,
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_INDEX_URL": tls_index.url,
        "PIP_CERT": str(ca_pem),
        "PIP_CLIENT_CERT": str(me_pem),
        "LAMBDA_PACK_CACHE_DIR": str(tmp_path / "cache"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "pip", "lambda-pack", "lock"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "/files/greet-1.0-py3-none-any.whl" in tls_index.requests


def test_trusted_host_in_a_requirements_file_is_honoured(
    wheelhouse: Path, ca: trustme.CA, tmp_path: Path
) -> None:
    fill_wheelhouse(wheelhouse)
    root = tmp_path / "project"
    (root / "fn").mkdir(parents=True)
    (root / "fn" / "app.py").write_text("def handler(event, context):\n    return event\n")
    (root / "lambda-pack.toml").write_text(
        f'target = "{HOST_TARGET}"\n[functions.fn]\nhandler = "app.handler"\ncode = "fn"\n'
        'requirements = "requirements.txt"\n'
    )
    with TlsIndexServer(wheelhouse, ca, client_cert=False) as server:
        host = server.root.removeprefix("https://")
        (root / "requirements.txt").write_text(f"-i {server.url}\ngreet\n")
        untrusted = run(root, "lock")
        (root / "requirements.txt").write_text(f"-i {server.url}\n--trusted-host {host}\ngreet\n")
        locked = run(root, "lock")
        built = run(root, "build", "--out", "dist")
    assert untrusted.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
    assert locked.returncode == 0, locked.stderr
    assert built.returncode == 0, built.stderr
    assert "/files/greet-1.0-py3-none-any.whl" in server.requests
