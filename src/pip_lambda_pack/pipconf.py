"""pip's own configuration (pip.conf, ``PIP_*``) as our records, and the HTTP client it implies.

``pip lambda-pack`` reads pip's options with pip's own option parser (see ``pip_plugin``), so
pip.conf, ``PIP_*`` variables and ``pip --proxy ... lambda-pack`` mean what they mean to
``pip install``. This module turns those values into two frozen records: ``IndexOptions`` for
where packages come from (a floor under the project's config and our flags, which win) and
``NetworkOptions`` for how to reach them (cert, client cert, trusted hosts, proxy, timeout,
retries), plus pip's --only-binary / --no-binary / --prefer-binary as a ``FormatControl``, and
builds the ``httpx.Client`` that honours the network options.
"""

from __future__ import annotations

import ssl
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import httpx

from .formats import FormatControl
from .requirements import IndexOptions

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
USER_AGENT = "pip-lambda-pack"


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkOptions:
    """How to reach indexes: pip's cert, client-cert, trusted-host, proxy, timeout, retries.

    ``None`` means "not configured": the client keeps its own default.
    """

    cert: str | None = None  # CA bundle (PEM) to verify servers with
    client_cert: str | None = None  # one PEM file holding the client's key and certificate
    trusted_hosts: tuple[str, ...] = ()  # "host" or "host:port": TLS not verified there
    proxy: str | None = None
    timeout: float | None = None  # seconds, for every phase of a request
    retries: int | None = None  # extra connection attempts per request


@dataclass(frozen=True, slots=True, kw_only=True)
class PipOptions:
    """What pip's configuration says about indexes and the network."""

    index: IndexOptions = field(default_factory=IndexOptions)
    network: NetworkOptions = field(default_factory=NetworkOptions)
    formats: FormatControl = field(default_factory=FormatControl)  # --only-binary & co.


def from_pip_values(values: object) -> PipOptions:
    """``PipOptions`` from pip's parsed option values (an ``optparse.Values``).

    Attributes pip does not have (another pip version) are read as "not configured".
    """
    index_url = _text(values, "index_url")
    return PipOptions(
        index=IndexOptions(
            index_url=None if index_url in (None, "https://pypi.org/simple") else index_url,
            extra_index_urls=_texts(values, "extra_index_urls"),
            find_links=_texts(values, "find_links"),
            no_index=bool(getattr(values, "no_index", False)),
        ),
        network=NetworkOptions(
            cert=_text(values, "cert"),
            client_cert=_text(values, "client_cert"),
            trusted_hosts=_texts(values, "trusted_hosts"),
            proxy=_text(values, "proxy"),
            timeout=_number(values, "timeout", float),
            retries=_number(values, "retries", int),
        ),
        formats=_formats(values),
    )


def _formats(values: object) -> FormatControl:
    """pip's ``format_control`` (--only-binary, --no-binary) and --prefer-binary."""
    control = getattr(values, "format_control", None)
    return FormatControl.from_pip(
        set(getattr(control, "only_binary", ()) or ()),
        set(getattr(control, "no_binary", ()) or ()),
        bool(getattr(values, "prefer_binary", False)),
    )


def _text(values: object, name: str) -> str | None:
    value = getattr(values, name, None)
    return str(value) if value else None


def _texts(values: object, name: str) -> tuple[str, ...]:
    value = getattr(values, name, None) or ()
    if isinstance(value, str):
        value = value.split()
    return tuple(dict.fromkeys(str(v) for v in value))


def _number(values: object, name: str, kind: type[Any]) -> Any:
    value = getattr(values, name, None)
    if value is None or value == "":
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        return None


def http_client(network: NetworkOptions) -> httpx.Client:
    """An ``httpx.Client`` that verifies, authenticates, proxies and times out as configured.

    Without a configured proxy, ``HTTPS_PROXY``/``NO_PROXY`` apply as they do for pip.
    Trusted hosts get transports of their own that skip TLS verification, as pip does.
    ``retries`` become connection retries of the transport (when no environment proxy
    needs httpx's own per-request routing); the index client retries on top of that.
    """
    timeout = DEFAULT_TIMEOUT if network.timeout is None else httpx.Timeout(network.timeout)
    mounts: dict[str, httpx.BaseTransport | None] = {
        f"{scheme}://{host}": _transport(network, scheme, host, verify=False)
        for host in network.trusted_hosts
        for scheme in ("https", "http")
    }
    transport = None
    if network.retries and (network.proxy or not urllib.request.getproxies()):
        transport = _transport(network, "https", "", verify=True)
    return httpx.Client(
        verify=ssl_context(network),
        proxy=network.proxy,
        transport=transport,
        mounts=mounts,
        timeout=timeout,
        follow_redirects=True,
        headers={"User-Agent": USER_AGENT},
    )


def _transport(
    network: NetworkOptions, scheme: str, host: str, *, verify: bool
) -> httpx.HTTPTransport:
    proxy = network.proxy
    if proxy is None and host and not urllib.request.proxy_bypass(host.split(":")[0]):
        proxy = urllib.request.getproxies().get(scheme)
    return httpx.HTTPTransport(
        verify=ssl_context(network, verify=verify), proxy=proxy, retries=network.retries or 0
    )


def ssl_context(network: NetworkOptions, *, verify: bool = True) -> ssl.SSLContext:
    """TLS settings: pip's ``cert`` as the CA bundle, ``client_cert`` as our identity."""
    if verify:
        context = ssl.create_default_context(cafile=network.cert or _default_cafile())
    else:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if network.client_cert:
        context.load_cert_chain(network.client_cert)
    return context


def _default_cafile() -> str | None:
    try:
        import certifi
    except ImportError:  # pragma: no cover - httpx depends on certifi
        return None
    return str(certifi.where())
