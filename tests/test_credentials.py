"""Index credentials: used for requests, never written to the lock, the cache or the output."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from indexserver import IndexServer
from pip_lambda_pack.credentials import IndexCredentials, check_index_url, public_url
from pip_lambda_pack.errors import ConfigError
from projects import fill_wheelhouse, run, write_project

PASSWORD = "s3cret-PW"


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stderr
    return result


def _private_project(root: Path, wheelhouse: Path, index_url: str) -> Path:
    fill_wheelhouse(wheelhouse)
    write_project(root, wheelhouse)
    config = (root / "lambda-pack.toml").read_text()
    config = config.replace("no-index = true\n", f'index-url = "{index_url}"\n')
    (root / "lambda-pack.toml").write_text(config.replace(f'find-links = ["{wheelhouse}"]\n', ""))
    return root


def _files_holding(root: Path, secret: str) -> list[str]:
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and secret.encode() in path.read_bytes()
    )


def test_no_password_in_the_lock_graph_logs_or_cache(tmp_path: Path, wheelhouse: Path) -> None:
    with IndexServer(wheelhouse, auth=("user", PASSWORD)) as server:
        url = server.url.replace("http://", f"http://user:{PASSWORD}@")
        root = _private_project(tmp_path / "p", wheelhouse, url)
        locked = ok(run(root, "lock", "-v"))
        graph = ok(run(root, "graph", "--format", "json"))
        built = ok(run(root, "build", "--out", "dist", "-v"))
        assert all(server.authorized), "every request carried the credentials"
    lock = (root / "lambda-pack.lock").read_text()
    assert f'url = "{server.root}/files/greet-1.0-py3-none-any.whl"' in lock
    for output in (locked, graph, built):
        assert PASSWORD not in output.stdout + output.stderr
    assert _files_holding(root, PASSWORD) == ["lambda-pack.toml"]  # not the lock, cache, dist


def test_credentials_come_back_from_netrc(tmp_path: Path, wheelhouse: Path) -> None:
    with IndexServer(wheelhouse, auth=("user", PASSWORD)) as server:
        root = _private_project(tmp_path / "p", wheelhouse, server.url)
        netrc = tmp_path / "netrc"
        netrc.write_text(f"machine 127.0.0.1 login user password {PASSWORD}\n")
        netrc.chmod(0o600)
        ok(run(root, "lock", env={"NETRC": str(netrc)}))
        refused = run(root, "build", "--out", "dist", env={"NETRC": str(tmp_path / "none")})
        ok(run(root, "build", "--out", "dist", env={"NETRC": str(netrc)}))
    assert refused.returncode != 0 and "401" in refused.stderr
    host = server.root.removeprefix("http://")
    assert refused.stderr.strip().splitlines()[-1] == (
        f"TIP: check the login for {host}: in the index URL (user:password@, "
        "percent-encoded), in .netrc, or in keyring"
    )
    assert PASSWORD not in refused.stderr
    assert _files_holding(root, PASSWORD) == []


def test_an_unencoded_slash_in_the_password_is_one_error(tmp_path: Path, wheelhouse: Path) -> None:
    root = _private_project(tmp_path / "p", wheelhouse, "http://user:sec/ret@127.0.0.1:9/simple")
    result = run(root, "lock")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert lines == [
        "ERROR: index URL http://***@127.0.0.1:9/simple has a '/', '?' or '#' in its user "
        "name or password",
        "TIP: percent-encode them (/ as %2F, ? as %3F, # as %23, @ as %40), or leave them "
        "out of the URL and put them in .netrc or keyring",
    ]
    assert "sec" not in result.stderr


@pytest.mark.parametrize(
    ("url", "public"),
    [
        ("https://user:pw@host/simple/", "https://host/simple/"),
        ("https://TOKEN@host:8443/simple/", "https://host:8443/simple/"),
        ("https://host/f.whl?token=abc&v=1", "https://host/f.whl?v=1"),
        ("https://host/f.whl?X-Amz-Signature=abc", "https://host/f.whl"),
        ("https://host/f.whl#sha256=00", "https://host/f.whl#sha256=00"),
        ("file:///tmp/w/f.whl", "file:///tmp/w/f.whl"),
    ],
)
def test_public_url(url: str, public: str) -> None:
    assert public_url(url) == public


def test_credentials_by_host_from_the_configured_urls(tmp_path: Path) -> None:
    found = IndexCredentials(
        ["https://alice:p%40ss@idx.example/simple", "https://TOKEN@other.example:8443/s"],
        netrc_path=tmp_path / "none",
    )
    assert found.for_url("https://idx.example/files/a.whl") == ("alice", "p@ss")
    assert found.for_url("https://other.example:8443/s/a/") == ("TOKEN", "")
    assert found.for_url("https://other.example/s/a/") is None  # another port, another origin
    assert found.for_url("https://elsewhere.example/") is None


@pytest.mark.parametrize(
    "url",
    [
        "https://user:sec/ret@idx.example/simple",
        "https://user/x:secret@idx.example/simple",
        "https://user:se?cret@idx.example/simple",
        "https://user:a/b/c@idx.example/simple",
    ],
)
def test_a_login_cut_short_by_an_unencoded_character(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_index_url(url)
    assert caught.value.message.startswith("index URL https://***@idx.example/simple has a '/'")
    assert "sec" not in caught.value.message


@pytest.mark.parametrize(
    "url",
    ["https://idx.example/simple/@scope/", "https://u:p%2Fq@idx.example/simple", "/tmp/wheels"],
)
def test_urls_that_are_fine(url: str) -> None:
    check_index_url(url)
