"""The simple-API client against a real local index server and real tiny wheels."""

from __future__ import annotations

import dataclasses
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import make_sdist, make_wheel, metadata_text, sha256_file
from indexserver import IndexServer
from pip_lambda_pack.errors import HashMismatchError, IndexFetchError
from pip_lambda_pack.httpfetch import ACCEPT
from pip_lambda_pack.index import FileLink, PackageFinder
from pip_lambda_pack.rangezip import SIZE_TAIL
from pip_lambda_pack.wire import redact

StartServer = Callable[..., IndexServer]


def _finder(server: IndexServer | None, cache_dir: Path, **kwargs: object) -> PackageFinder:
    urls = (server.url,) if server else ()
    return PackageFinder(index_urls=urls, cache_dir=cache_dir, **kwargs)  # type: ignore[arg-type]


def test_json_page_gives_every_field(
    wheelhouse: Path, index_server: StartServer, cache_dir: Path
) -> None:
    wheel = make_wheel(wheelhouse, "foo", "1.0", requires_python=">=3.8")
    make_wheel(wheelhouse, "bar", "1.0")
    server = index_server(yanked={wheel.name: "broken build"})
    with _finder(server, cache_dir) as finder:
        links = finder.links("foo")
    assert links == [
        FileLink(
            filename="foo-1.0-py3-none-any.whl",
            url=f"{server.root}/files/foo-1.0-py3-none-any.whl",
            sha256=sha256_file(wheel),
            requires_python=">=3.8",
            yanked="broken build",
            metadata_sha256=_sha(metadata_text("foo", "1.0", requires_python=">=3.8")),
            has_metadata=True,
            size=wheel.stat().st_size,
            source=server.url,
        )
    ]
    assert server.requests == ["/simple/foo/"]
    assert server.accepts == [ACCEPT]


def test_html_page_when_the_index_has_no_json(
    wheelhouse: Path, index_server: StartServer, cache_dir: Path
) -> None:
    wheel = make_wheel(wheelhouse, "foo", "1.0", requires_python=">=3.8,<4")
    sdist = make_sdist(wheelhouse, "foo", "1.0")
    server = index_server(json=False, yanked={sdist.name: ""})
    with _finder(server, cache_dir) as finder:
        links = finder.links("foo")
    by_name = {link.filename: link for link in links}
    assert sorted(by_name) == ["foo-1.0-py3-none-any.whl", "foo-1.0.tar.gz"]
    whl, tgz = by_name[wheel.name], by_name[sdist.name]
    assert whl.url == f"{server.root}/files/{wheel.name}"
    assert whl.sha256 == sha256_file(wheel)
    assert whl.requires_python == ">=3.8,<4"  # &lt; unescaped
    assert (whl.yanked, whl.has_metadata, whl.size, whl.is_wheel) == (None, True, None, True)
    assert whl.metadata_sha256 == _sha(metadata_text("foo", "1.0", requires_python=">=3.8,<4"))
    assert (tgz.yanked, tgz.has_metadata, tgz.metadata_sha256, tgz.is_wheel) == (
        "",
        False,
        None,
        False,
    )


def test_unknown_project_is_no_files_and_names_are_normalised(
    wheelhouse: Path, index_server: StartServer, cache_dir: Path
) -> None:
    make_wheel(wheelhouse, "Foo_Bar", "1.0")
    server = index_server()
    with _finder(server, cache_dir) as finder:
        assert finder.links("nothing-here") == []
        assert [link.filename for link in finder.links("Foo.Bar")] == [
            "foo_bar-1.0-py3-none-any.whl"
        ]
        finder.links("foo-bar")  # memoised: no second request
    assert server.requests == ["/simple/nothing-here/", "/simple/foo-bar/"]


def test_metadata_comes_from_the_metadata_file_without_fetching_the_wheel(
    wheelhouse: Path, index_server: StartServer, cache_dir: Path
) -> None:
    make_wheel(wheelhouse, "foo", "1.0", requires=["bar>=1"])
    server = index_server()
    with _finder(server, cache_dir) as finder:
        (link,) = finder.links("foo")
        assert finder.metadata(link) == metadata_text("foo", "1.0", ["bar>=1"]).encode()
    assert server.requests == ["/simple/foo/", "/files/foo-1.0-py3-none-any.whl.metadata"]
    with _finder(server, cache_dir) as again:  # a new process: verified metadata is on disk
        assert again.metadata(link) == metadata_text("foo", "1.0", ["bar>=1"]).encode()
    assert len(server.requests) == 2


def test_metadata_from_ranges_of_the_wheel_when_the_index_has_no_metadata_files(
    wheelhouse: Path, index_server: StartServer, cache_dir: Path
) -> None:
    big = _big_wheel(wheelhouse)  # its central directory takes a second range request
    server = index_server(metadata=False)
    with _finder(server, cache_dir) as finder:
        (link,) = finder.links("big")
        assert finder.metadata(link) == metadata_text("big", "1.0").encode()
        assert finder.remote_size(link) == (big.stat().st_size, _unpacked(big))
    assert len(server.ranges_asked) == 3  # the tail, the rest of the directory, METADATA
    assert len(server.file_requests()) == 3  # and nothing else: no whole wheel
    assert not (cache_dir / "files").exists()
    server.requests.clear()
    with _finder(server, cache_dir) as again:  # both remembered under the wheel's sha256
        assert again.metadata(link) == metadata_text("big", "1.0").encode()
        assert again.remote_size(link) == (big.stat().st_size, _unpacked(big))
    assert server.requests == []


def test_metadata_from_the_downloaded_wheel_when_the_index_has_no_metadata_files(
    wheelhouse: Path, index_server: StartServer, cache_dir: Path
) -> None:
    wheel = make_wheel(wheelhouse, "foo", "1.0")
    server = index_server(metadata=False, ranges=False)
    with _finder(server, cache_dir) as finder:
        (link,) = finder.links("foo")
        assert not link.has_metadata
        assert finder.metadata(link) == metadata_text("foo", "1.0").encode()
        path = finder.download(link)
    digest = sha256_file(wheel)
    assert path == cache_dir / "files" / digest[:2] / digest / wheel.name
    assert path.read_bytes() == wheel.read_bytes()
    # a ranged request answered with the whole file (200) is closed unread, then downloaded
    assert server.file_requests() == ["/files/foo-1.0-py3-none-any.whl"] * 2
    assert [path for path, _ in server.ranges_asked] == ["/files/foo-1.0-py3-none-any.whl"]


def test_download_refuses_bytes_that_do_not_match_the_hash(
    wheelhouse: Path, index_server: StartServer, cache_dir: Path
) -> None:
    wheel = make_wheel(wheelhouse, "foo", "1.0")
    server = index_server()
    with _finder(server, cache_dir) as finder:
        (link,) = finder.links("foo")
        bad = dataclasses.replace(link, sha256="0" * 64)
        with pytest.raises(HashMismatchError) as caught:
            finder.download(bad)
    assert caught.value.message == (
        f"foo-1.0-py3-none-any.whl from {server.root}/files/foo-1.0-py3-none-any.whl "
        f"has sha256 {sha256_file(wheel)}, expected {'0' * 64}"
    )
    assert "check the index" in caught.value.tip
    assert "refresh the --hash" in caught.value.tip
    assert list((cache_dir / "files").rglob("*.whl")) == []  # nothing unverified cached


def test_metadata_file_with_the_wrong_hash_is_refused(
    wheelhouse: Path, index_server: StartServer, cache_dir: Path
) -> None:
    make_wheel(wheelhouse, "foo", "1.0")
    server = index_server()
    with _finder(server, cache_dir) as finder:
        (link,) = finder.links("foo")
        with pytest.raises(HashMismatchError, match=r"foo-1.0-py3-none-any.whl.metadata from"):
            finder.metadata(dataclasses.replace(link, metadata_sha256="1" * 64))
    assert not (cache_dir / "metadata").exists()


def test_find_links_directory_hashes_local_files_and_serves_them_in_place(
    tmp_path: Path, cache_dir: Path
) -> None:
    local = tmp_path / "local"
    local.mkdir()
    wheel = make_wheel(local, "foo", "1.0", requires=["bar"])
    sdist = make_sdist(local, "foo", "0.9")
    make_wheel(local, "bar", "1.0")
    (local / "README.txt").write_text("not a distribution")
    with PackageFinder(index_urls=(), find_links=(str(local),), cache_dir=cache_dir) as finder:
        links = finder.links("foo")
        assert [(link.filename, link.sha256, link.url, link.source) for link in links] == [
            (sdist.name, sha256_file(sdist), sdist.resolve().as_uri(), str(local)),
            (wheel.name, sha256_file(wheel), wheel.resolve().as_uri(), str(local)),
        ]
        assert finder.download(links[1]) == wheel.resolve()
        assert finder.metadata(links[1]) == metadata_text("foo", "1.0", ["bar"]).encode()
    assert not (cache_dir / "files").exists()


def test_a_local_wheel_is_hashed_once_across_processes_until_it_changes(
    tmp_path: Path, cache_dir: Path
) -> None:
    local = tmp_path / "local"
    local.mkdir()
    wheel = make_wheel(local, "foo", "1.0")
    with PackageFinder(index_urls=(), find_links=(str(local),), cache_dir=cache_dir) as finder:
        assert [link.sha256 for link in finder.links("foo")] == [sha256_file(wheel)]
    [record] = (cache_dir / "hashes").iterdir()
    assert record.read_text() == sha256_file(wheel)
    record.write_text("f" * 64)  # what a later process believes, while the file is unchanged
    with PackageFinder(index_urls=(), find_links=(str(local),), cache_dir=cache_dir) as finder:
        assert [link.sha256 for link in finder.links("foo")] == ["f" * 64]
    make_wheel(local, "foo", "1.0", files={"foo/__init__.py": "CHANGED = True\n"})
    with PackageFinder(index_urls=(), find_links=(str(local),), cache_dir=cache_dir) as finder:
        assert [link.sha256 for link in finder.links("foo")] == [sha256_file(wheel)]
    assert len(list((cache_dir / "hashes").iterdir())) == 2


def test_find_links_page_url(wheelhouse: Path, index_server: StartServer, cache_dir: Path) -> None:
    make_wheel(wheelhouse, "foo", "1.0")
    server = index_server(json=False)
    page = f"{server.url}/foo/"
    with PackageFinder(index_urls=(), find_links=(page,), cache_dir=cache_dir) as finder:
        (link,) = finder.links("foo")
        assert finder.links("bar") == []
    assert (link.url, link.source) == (f"{server.root}/files/foo-1.0-py3-none-any.whl", page)
    assert server.requests == ["/simple/foo/"]  # one fetch serves every project


def test_offline_uses_only_the_cache(
    wheelhouse: Path, index_server: StartServer, cache_dir: Path
) -> None:
    make_wheel(wheelhouse, "foo", "1.0")
    server = index_server()
    with _finder(server, cache_dir) as finder:
        links = finder.links("foo")
        finder.download(links[0])
        assert finder.links("missing") == []
    count = len(server.requests)
    with _finder(server, cache_dir, offline=True) as offline:
        assert offline.links("foo") == links
        assert offline.download(links[0]).is_file()
        assert offline.links("missing") == []  # the 404 is remembered too
        with pytest.raises(IndexFetchError) as caught:
            offline.links("bar")
    assert len(server.requests) == count
    assert caught.value.message == f"no cached copy of {server.url}/bar/ (offline)"
    assert caught.value.tip == "run once without --offline to fill the cache"


def test_cached_page_is_revalidated_with_its_etag(
    wheelhouse: Path, index_server: StartServer, cache_dir: Path
) -> None:
    make_wheel(wheelhouse, "foo", "1.0")
    server = index_server()
    with _finder(server, cache_dir) as finder:
        first = finder.links("foo")
    make_wheel(wheelhouse, "foo", "2.0")
    with _finder(server, cache_dir) as finder:
        second = finder.links("foo")
    assert [link.filename for link in first] == ["foo-1.0-py3-none-any.whl"]
    assert [link.filename for link in second] == [
        "foo-1.0-py3-none-any.whl",
        "foo-2.0-py3-none-any.whl",
    ]


def test_cached_page_is_used_without_asking_within_its_max_age(
    wheelhouse: Path, index_server: StartServer, cache_dir: Path
) -> None:
    make_wheel(wheelhouse, "foo", "1.0")
    server = index_server(max_age=600)
    with _finder(server, cache_dir) as finder:
        first = finder.links("foo")
    make_wheel(wheelhouse, "foo", "2.0")
    with _finder(server, cache_dir) as finder:
        assert finder.links("foo") == first  # fresh for 10 minutes, as the server said
    assert server.requests == ["/simple/foo/"]
    server.max_age = 0
    page = next((cache_dir / "pages").glob("*.json"))
    page.write_text(page.read_text().replace('"fresh_until": ', '"fresh_until": -'))
    with _finder(server, cache_dir) as finder:  # expired: asked again
        assert len(finder.links("foo")) == 2
    assert server.requests == ["/simple/foo/"] * 2


def test_server_errors_are_retried(
    wheelhouse: Path, index_server: StartServer, cache_dir: Path
) -> None:
    make_wheel(wheelhouse, "foo", "1.0")
    server = index_server(fail_next=2)
    with _finder(server, cache_dir) as finder:
        assert len(finder.links("foo")) == 1
    assert server.requests == ["/simple/foo/"] * 3


def test_server_errors_give_up_after_three_tries(
    wheelhouse: Path, index_server: StartServer, cache_dir: Path
) -> None:
    server = index_server(fail_next=5)
    with _finder(server, cache_dir) as finder, pytest.raises(IndexFetchError) as caught:
        finder.links("foo")
    assert caught.value.message == f"{server.url}/foo/ answered HTTP 503 after 3 tries"
    assert caught.value.exit_code == 1


def test_unreachable_index_names_the_url_without_the_password(cache_dir: Path) -> None:
    url = "http://alice:s3cret@127.0.0.1:9/simple"
    finder = PackageFinder(index_urls=(url,), cache_dir=cache_dir)
    with finder, pytest.raises(IndexFetchError) as caught:
        finder.links("foo")
    assert caught.value.message.startswith(
        "cannot fetch http://127.0.0.1:9/simple/foo/: "  # the login is sent, never shown
    )
    assert "s3cret" not in caught.value.message
    assert caught.value.tip == (
        "check the index URL and your network, or use --find-links with local wheels"
    )
    assert caught.value.__cause__ is not None


def test_download_many_fetches_in_parallel_and_keys_by_url(
    wheelhouse: Path, index_server: StartServer, cache_dir: Path
) -> None:
    wheels = [make_wheel(wheelhouse, f"pkg{i}", "1.0") for i in range(6)]
    server = index_server()
    with _finder(server, cache_dir) as finder:
        links = [finder.links(f"pkg{i}")[0] for i in range(6)]
        paths = finder.download_many(links + links[:2])
    assert sorted(paths) == sorted(link.url for link in links)
    for link, wheel in zip(links, wheels, strict=True):
        assert paths[link.url].read_bytes() == wheel.read_bytes()
    assert len(server.file_requests()) == 6


def test_redact_url() -> None:
    assert redact("https://u:p@host/simple") == "https://u:***@host/simple"
    assert redact("https://token@host/simple") == "https://***@host/simple"
    assert redact("https://host/simple") == "https://host/simple"


def _sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def test_a_file_url_simple_index_is_read_like_pip_reads_it(tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    wheel = make_wheel(files, "colors", "1.0")
    page = tmp_path / "simple" / "colors"
    page.mkdir(parents=True)
    digest = sha256_file(wheel)
    page.joinpath("index.html").write_text(
        f'<a href="../../files/{wheel.name}#sha256={digest}">{wheel.name}</a>\n'
    )
    index = (tmp_path / "simple").as_uri()
    with PackageFinder(index_urls=[index], cache_dir=tmp_path / "cache") as finder:
        links = finder.links("colors")
        assert [(link.filename, link.sha256) for link in links] == [(wheel.name, digest)]
        assert finder.download(links[0]) == wheel
        assert finder.links("missing") == []


# -- sizes of remote wheels from their central directory --------------------------------


def _big_wheel(wheelhouse: Path) -> Path:
    """A wheel whose central directory is larger than the first tail asked for."""
    files = {f"big/module_with_a_long_name_{i:04}.py": f"X = {i}\n" for i in range(1500)}
    return make_wheel(wheelhouse, "big", "1.0", files=files)


def _unpacked(wheel: Path) -> int:
    with zipfile.ZipFile(wheel) as archive:
        return sum(info.file_size for info in archive.infolist())


def test_remote_size_reads_the_central_directory_with_range_requests(
    wheelhouse: Path, index_server: StartServer, cache_dir: Path
) -> None:
    big, small = _big_wheel(wheelhouse), make_wheel(wheelhouse, "small", "1.0")
    server = index_server()
    with _finder(server, cache_dir) as finder:
        links = finder.links("big") + finder.links("small")
        sizes = finder.remote_sizes(links)
    assert sizes == {
        links[0].url: (big.stat().st_size, _unpacked(big)),
        links[1].url: (small.stat().st_size, _unpacked(small)),
    }
    with zipfile.ZipFile(big) as archive:
        start = archive.start_dir
    assert sorted(server.ranges_asked) == [
        (f"/files/{big.name}", f"bytes=-{SIZE_TAIL}"),
        (f"/files/{big.name}", f"bytes={start}-{big.stat().st_size - SIZE_TAIL - 1}"),
        (f"/files/{small.name}", f"bytes=-{SIZE_TAIL}"),
    ]
    assert len(server.file_requests(".whl")) == 3  # every file request was a ranged one
    server.requests.clear()
    with _finder(server, cache_dir) as again:  # cached by sha256
        assert again.remote_size(links[0]) == sizes[links[0].url]
    assert server.requests == []


def test_remote_size_is_none_when_the_server_ignores_ranges(
    wheelhouse: Path, index_server: StartServer, cache_dir: Path
) -> None:
    make_wheel(wheelhouse, "foo", "1.0")
    server = index_server(ranges=False)
    with _finder(server, cache_dir) as finder:
        [link] = finder.links("foo")
        assert finder.remote_size(link) is None
        finder.download(link)  # what the caller does instead
    assert [path for path, _ in server.ranges_asked] == [f"/files/{link.filename}"]


def test_remote_size_is_none_without_a_published_sha256(
    wheelhouse: Path, index_server: StartServer, cache_dir: Path
) -> None:
    make_wheel(wheelhouse, "foo", "1.0")
    server = index_server(hashes=False)
    with _finder(server, cache_dir) as finder:
        [link] = finder.links("foo")
        assert finder.remote_size(link) is None  # the lock needs the sha256: download it
    assert server.ranges_asked == []
