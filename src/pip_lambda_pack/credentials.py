"""Index credentials: kept out of every URL we record, found again when a request is made.

A URL that is written to the lock, printed (``graph``, ``-v``) or cached goes through
``public_url`` first: no user info, no secret query values. Requests get their basic auth
from ``IndexCredentials``, as pip's does: the user info of the configured index and
find-links URLs (our options, the project's config, pip.conf), matched by host and port;
then ``.netrc`` (``$NETRC`` or ``~/.netrc``); after a 401, ``keyring`` when it is installed.
"""

from __future__ import annotations

import netrc
import os
import re
import threading
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from .errors import ConfigError
from .wire import SECRET_QUERY_KEYS, WireError, check_login

_USERINFO = re.compile(r"(https?://)([^/?#@\s\"'<>]+)@")
Login = tuple[str, str]


def public_url(url: str) -> str:
    """``url`` without user info and without query parameters that carry secrets."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(key, value) for key, value in pairs if not _is_secret(key)]
    query = urlencode(kept) if len(kept) != len(pairs) else parts.query
    if netloc == parts.netloc and query == parts.query:
        return url  # unchanged, byte for byte
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _is_secret(key: str) -> bool:
    return any(word in key.lower() for word in SECRET_QUERY_KEYS)  # wire.redact's rule


def check_index_url(url: str) -> None:
    """ConfigError for an index URL whose user info holds an unencoded ``/``, ``?`` or ``#``
    (``wire.check_login``'s rule and words, as for a store URL), never showing the password."""
    try:
        check_login(url)
    except WireError as exc:
        raise ConfigError(
            f"index {exc.message}",
            f"{exc.tip}, or leave them out of the URL and put them in .netrc or keyring",
        ) from None


def _host(url: str) -> str:
    """The ``host[:port]`` a request goes to, lowercased, without user info."""
    return urlsplit(url).netloc.rpartition("@")[2].lower()


class IndexCredentials:
    """The basic-auth login for a request URL, from the first source that has one.

    ``urls`` are the configured index and find-links URLs; ``remember`` adds the user info
    of a URL met later (an absolute link on a page). ``netrc_path`` None: ``$NETRC``, else
    ``~/.netrc``. Thread-safe; each host is looked up in .netrc and keyring once.
    """

    def __init__(self, urls: Iterable[str] = (), *, netrc_path: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._by_host: dict[str, Login | None] = {}
        self._keyring: set[str] = set()
        self._netrc_path = netrc_path
        for url in urls:
            self.remember(url)

    def remember(self, url: str) -> None:
        """Keep the user info of ``url`` (if any) for requests to its host."""
        userinfo, at, _ = urlsplit(url).netloc.rpartition("@")
        if at:
            user, _, password = userinfo.partition(":")
            with self._lock:
                self._by_host[_host(url)] = (unquote(user), unquote(password))

    def for_url(self, url: str) -> Login | None:
        """The login for a request to ``url``, or None to send none."""
        host = _host(url)
        with self._lock:
            if host in self._by_host:
                return self._by_host[host]
        found = self._from_netrc(host)
        with self._lock:
            return self._by_host.setdefault(host, found)

    def from_keyring(self, url: str) -> Login | None:
        """After a 401 without a login of ours: keyring's for ``url`` (asked once per host)."""
        host = _host(url)
        with self._lock:
            if host in self._keyring:
                return None  # asked already: its answer was refused, or it had none
            self._keyring.add(host)
        found = _from_keyring(url, host)
        if found is not None:
            with self._lock:
                self._by_host[host] = found
        return found

    def scrubbed(self, text: str) -> str:
        """``text`` (a page) with the user info of every URL in it removed, and remembered."""
        for match in _USERINFO.finditer(text):
            self.remember(f"{match.group(1)}{match.group(2)}@{_after(text, match.end())}")
        return _USERINFO.sub(r"\1", text)

    def _from_netrc(self, host: str) -> Login | None:
        path = self._netrc_path or Path(os.environ.get("NETRC") or Path.home() / ".netrc")
        try:
            entry = netrc.netrc(str(path)).authenticators(host.partition(":")[0])
        except (OSError, netrc.NetrcParseError):
            return None
        return None if entry is None else (entry[0], entry[2] or "")


def _after(text: str, start: int) -> str:
    """The host part that follows ``start`` in ``text`` (up to a quote, space or slash)."""
    end = start
    while end < len(text) and text[end] not in "/?#\"'<> \t\n":
        end += 1
    return text[start:end]


def _from_keyring(url: str, host: str) -> Login | None:
    """A login stored in the system keyring, when the ``keyring`` package is installed."""
    try:
        import keyring
    except ImportError:
        return None
    for service in (url, host):
        try:
            found = keyring.get_credential(service, None)
        except Exception:  # a keyring backend may fail in any way: then there is no login
            return None
        if found is not None and found.username:
            return str(found.username), str(found.password or "")
    return None
