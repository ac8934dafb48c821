"""The index client's HTTP: one lazily made httpx client, bounded retries, errors mapped once.

Connection errors and 5xx answers are tried again (``retry.retried``); what is left of
httpx's errors becomes an ``IndexFetchError`` naming the URL with its credentials redacted.
httpx is imported only when a remote page or file is first fetched.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

from .atomic import atomic_writer
from .credentials import IndexCredentials
from .errors import IndexFetchError
from .links import FETCH_TIP
from .retry import ServerError, retried
from .wire import redact

if TYPE_CHECKING:
    import httpx

ACCEPT = (
    "application/vnd.pypi.simple.v1+json, "
    "application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
)
RETRIES = 3
BACKOFF = 0.25  # seconds before the second try; doubled before the third
T = TypeVar("T")


class IndexHttp:
    """GETs for one finder: pages, byte ranges and whole files, each tried up to RETRIES times.

    ``client`` is shared (and left open) when given; otherwise one is made on first use and
    closed by ``close``. Each request carries the basic auth ``credentials`` give for its
    URL (URLs themselves hold none). ``log`` receives the ``-v`` lines about retries.
    """

    def __init__(
        self,
        client: httpx.Client | None = None,
        log: Callable[[str], None] | None = None,
        credentials: IndexCredentials | None = None,
    ) -> None:
        self._own_client = client is None
        self._http = client
        self._log = log or (lambda _line: None)
        self._lock = threading.Lock()
        self.credentials = credentials or IndexCredentials()

    def close(self) -> None:
        """Close the client if this object made it."""
        if self._own_client and self._http is not None:
            self._http.close()

    @property
    def client(self) -> httpx.Client:
        with self._lock:
            if self._http is None:
                import httpx

                self._http = httpx.Client(
                    timeout=httpx.Timeout(30.0, connect=10.0),
                    follow_redirects=True,
                    headers={"User-Agent": "pip-lambda-pack"},
                )
            return self._http

    def get(self, url: str, headers: dict[str, str]) -> httpx.Response:
        """The answer (below 500) to a simple-API GET of ``url`` with ``headers`` added."""
        return self.with_retries(url, lambda: self._get(url, headers))

    def _get(self, url: str, headers: dict[str, str]) -> httpx.Response:
        with self.open(url, {"Accept": ACCEPT, **headers}) as response:
            if response.status_code >= 500:
                raise ServerError(response.status_code)
            response.read()
        return response

    @contextlib.contextmanager
    def open(self, url: str, headers: dict[str, str] | None = None) -> Iterator[httpx.Response]:
        """One streamed GET of ``url`` with its login; after a 401, once more with the login
        keyring has for it (asked only then, as pip does), if it has one."""
        with self.client.stream("GET", url, headers=headers, auth=self.auth(url)) as response:
            login = self.credentials.from_keyring(url) if response.status_code == 401 else None
            if login is None:
                yield response
                return
        import httpx

        auth = httpx.BasicAuth(*login)
        with self.client.stream("GET", url, headers=headers, auth=auth) as response:
            yield response

    def auth(self, url: str) -> httpx.BasicAuth | None:
        """The basic auth for a request to ``url``, if any source has a login for it."""
        import httpx

        login = self.credentials.for_url(url)
        return None if login is None else httpx.BasicAuth(*login)

    def with_retries(self, url: str, attempt: Callable[[], T]) -> T:
        """``attempt()`` up to RETRIES times on connect errors and 5xx, httpx errors mapped."""
        import httpx

        def again(_number: int, exc: BaseException) -> None:
            self._log(f"retrying {redact(url)} after {exc or type(exc).__name__}")

        try:
            return retried(
                attempt,
                transient=(httpx.TransportError, ServerError),
                tries=RETRIES,
                backoff_s=BACKOFF,
                on_retry=again,
            )
        except (httpx.HTTPError, ServerError) as exc:
            raise fetch_error(url, exc) from exc

    def stream_to(self, url: str, dest: Path) -> str:
        """``url`` written to ``dest`` atomically (retried); returns the sha256 of its bytes."""
        return self.with_retries(url, lambda: self._stream_once(url, dest))

    def _stream_once(self, url: str, dest: Path) -> str:
        digest = hashlib.sha256()
        with self.open(url) as response:
            if response.status_code >= 500:
                raise ServerError(response.status_code)
            if response.status_code >= 400:
                raise status_error(url, response.status_code)
            with atomic_writer(dest) as handle:
                for chunk in response.iter_bytes(1 << 16):
                    digest.update(chunk)
                    handle.write(chunk)
        return digest.hexdigest()


def status_error(url: str, status: int) -> IndexFetchError:
    """The user's error for an answer of HTTP ``status`` (400 or more) to a GET of ``url``."""
    tip = FETCH_TIP
    if status in (401, 403):
        host = urlsplit(url).netloc.rpartition("@")[2]
        tip = (
            f"check the login for {host}: in the index URL (user:password@, percent-encoded), "
            "in .netrc, or in keyring"
        )
    return IndexFetchError(f"{redact(url)} answered HTTP {status}", tip)


def fetch_error(url: str, exc: Exception) -> IndexFetchError:
    """The user's error for a fetch of ``url`` that failed with ``exc`` (after retries)."""
    if isinstance(exc, ServerError):
        return IndexFetchError(f"{redact(url)} answered {exc} after {RETRIES} tries", FETCH_TIP)
    reason = str(exc) or type(exc).__name__
    return IndexFetchError(f"cannot fetch {redact(url)}: {reason}", FETCH_TIP)
