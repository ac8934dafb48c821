"""What crosses the wire between the tool, a store and the shim, each defined once.

Standard library only: the runtime shim carries this module (``wire.py`` beside
``shim.py``, or inlined into one file by ``invoke.shim_source()``), so the shim and the
stores read and write the same formats with the same rules.

- the task manifest (``lambda-pack-task/1``): ``TaskManifest.to_bytes``/``from_bytes``
- the function-name rule and the digest rule: ``FunctionName`` and ``Digest`` are NewTypes
  made only by ``as_function_name`` and ``as_digest`` (as ``packaging.utils`` makes a
  ``NormalizedName``), so the type checker proves a string went through its validator
- a ``functions/NAME`` entry (``sha256:<hex>``) and an OCI tag that points at a task
- store URLs (``oci://``, ``s3://``), registry credentials, the retry and timeout figures
- ``redact``: every URL that leaves the process (a message, a log line, JSON) goes through it

Errors are ``WireError`` (a ValueError with ``message`` and ``tip``); the tool and the shim
turn them into their own error types at their edge.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, NewType, TypeGuard, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

TASK_FORMAT = "lambda-pack-task/1"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
TASK_MEDIA_TYPE = "application/vnd.lambda-pack.task.v1+json"
RETRIES = 4  # attempts per request or download, on connection errors and 5xx
BACKOFF_S = 0.25  # doubled after each failed attempt
TIMEOUT_S = 30.0  # connect and read, per request
# The environment variables that hold store credentials (the shim removes them before the
# handler is imported; a store URL with a login in it goes too).
STORE_SECRETS = (
    "LAMBDA_PACK_REGISTRY_USERNAME",
    "LAMBDA_PACK_REGISTRY_PASSWORD",
    "LAMBDA_PACK_REGISTRY_TOKEN",
    "LAMBDA_PACK_HTTP_TOKEN",
)
NAME_TIP = "use letters, digits, '-' and '_' (at most 64 characters), as Lambda does"
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
# query keys whose values are secrets (signed URLs, tokens): hidden or dropped when shown
SECRET_QUERY_KEYS = ("sig", "token", "credential", "key", "password", "secret")
_T = TypeVar("_T")

FunctionName = NewType("FunctionName", str)
Digest = NewType("Digest", str)  # a sha256 as 64 lowercase hex digits


class WireError(ValueError):
    """Outside input that breaks a wire rule: ``message`` says what, ``tip`` what to do."""

    def __init__(self, message: str, tip: str) -> None:
        super().__init__(message)
        self.message = message
        self.tip = tip


class FieldError(ValueError):
    """A field of a manifest is missing or wrong; the reader adds which file it was."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field = field
        self.problem = problem


def is_function_name(text: object) -> TypeGuard[FunctionName]:
    """Whether ``text`` is a valid function name (Lambda's rule)."""
    return isinstance(text, str) and _NAME.fullmatch(text) is not None


def as_function_name(text: str) -> FunctionName:
    """``text`` as a FunctionName; WireError unless it follows Lambda's rule."""
    if not is_function_name(text):
        raise WireError(f"function name {text!r} is not valid", NAME_TIP)
    return text


def is_digest(text: object) -> TypeGuard[Digest]:
    """Whether ``text`` is a sha256 digest as 64 lowercase hex digits."""
    return isinstance(text, str) and _HEX64.fullmatch(text) is not None


def as_digest(text: str) -> Digest:
    """``text`` as a Digest; WireError unless it is 64 lowercase hex digits."""
    if not is_digest(text):
        raise WireError(f"{text!r} is not a sha256 hex digest", "pass 64 lowercase hex digits")
    return text


def format_ref(digest: Digest) -> str:
    """A ``functions/NAME`` entry: the task manifest's digest as ``sha256:<hex>``."""
    return f"sha256:{digest}\n"


def name_digest(text: str, location: str, name: str) -> Digest:
    """The digest a ``functions/NAME`` entry holds, as every store writes it."""
    digest = text.strip().removeprefix("sha256:")
    if not text.strip().startswith("sha256:") or not is_digest(digest):
        raise WireError(
            f"store {location}: functions/{name} does not hold a sha256:<hex> digest",
            "push the function again",
        )
    return Digest(digest)


def task_digest(manifest: object, location: str, name: str) -> Digest:
    """The task manifest's digest in a function's OCI manifest (its task-typed layer)."""
    layers = manifest.get("layers") if isinstance(manifest, dict) else None
    for layer in layers if isinstance(layers, list) else ():
        digest = str(layer.get("digest", "")) if isinstance(layer, dict) else ""
        if layer.get("mediaType") == TASK_MEDIA_TYPE and is_digest(digest[7:]):
            return Digest(digest[7:])
    raise WireError(
        f"store {location}: tag {name!r} is not a lambda-pack function",
        "push the function again with pip-lambda-pack",
    )


def corrupt_blob(location: str, digest: str, actual: str) -> str:
    """The one wording of a blob whose bytes do not hash to its name (tool, stores, shim)."""
    return f"store {location}: blob sha256:{digest} is corrupt (its bytes hash to sha256:{actual})"


def check_login(url: str) -> None:
    """WireError for a URL whose user info holds an unencoded ``/``, ``?`` or ``#``: the host
    would silently become part of the path (and the password part of the port)."""
    _, sep, rest = url.partition("://")
    if sep and _broken_login(rest):
        raise WireError(
            f"URL {redact(url)} has a '/', '?' or '#' in its user name or password",
            "percent-encode them (/ as %2F, ? as %3F, # as %23, @ as %40)",
        )


def _broken_login(rest: str) -> bool:
    """Whether ``rest`` (a URL after ``://``) reads as ``user:pass/word@host``: an '@'
    beyond an authority whose "port" is not a number (so the URL is invalid anyway), or
    an '@' in the first path segment (``user/name:pw@host``: the host would be ``user``)."""
    pieces = re.split(r"[/?#]", rest, maxsplit=2)
    authority = pieces[0]
    if "@" in authority or "@" not in rest:
        return False
    port = authority.rpartition(":")[2] if ":" in authority else ""
    return (bool(port) and not port.isdigit()) or (len(pieces) > 1 and "@" in pieces[1])


def redact(url: str) -> str:
    """``url`` fit for a message: no password in the user info, no secret query values.

    An '@' past the authority may end a login with an unencoded '/', '?' or '#' in it, so
    all before the last '@' is hidden then; a URL that does not parse shows its scheme only.
    """
    scheme, sep, rest = url.partition("://")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if sep and "@" not in authority and "@" in rest:
        return f"{scheme}://***@{rest.rpartition('@')[2]}"
    try:
        parts = urlsplit(url)
    except ValueError:  # an unclosed IPv6 bracket, say
        return f"{scheme}://***" if sep else "***"
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}:***@{host}" if ":" in user else f"***@{host}"
    query = urlencode(
        [
            (k, "***" if any(s in k.lower() for s in SECRET_QUERY_KEYS) else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="/:*",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def redact_text(text: str) -> str:
    """``text`` (an exception's message, a log line) with every URL in it redacted."""
    return _URL_IN_TEXT.sub(lambda match: redact(match.group(0)), text)


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """A ``WWW-Authenticate`` header as (lowercase scheme, parameters)."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(re.findall(r'([A-Za-z_]+)="([^"]*)"', rest))


def registry_credentials(host: str) -> tuple[str, str] | None:
    """(user, password) for a registry: environment first, then the docker config file.

    $LAMBDA_PACK_REGISTRY_USERNAME and $LAMBDA_PACK_REGISTRY_PASSWORD, else the ``auths``
    entry for ``host`` in $DOCKER_CONFIG/config.json (default ~/.docker/config.json).
    """
    user = os.environ.get("LAMBDA_PACK_REGISTRY_USERNAME")
    password = os.environ.get("LAMBDA_PACK_REGISTRY_PASSWORD")
    if user and password is not None:
        return user, password
    folder = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    try:
        with open(os.path.join(folder, "config.json"), encoding="utf-8") as handle:
            auths = json.load(handle).get("auths", {})
    except (OSError, ValueError, AttributeError):
        return None
    for key, entry in auths.items() if isinstance(auths, dict) else ():
        if _registry_host(key) == host and isinstance(entry, dict):
            return _entry_credentials(entry)
    return None


def _registry_host(key: str) -> str:
    return urlsplit(key if "://" in key else f"//{key}").netloc


def _entry_credentials(entry: dict[str, Any]) -> tuple[str, str] | None:
    if isinstance(entry.get("auth"), str):
        user, sep, password = base64.b64decode(entry["auth"]).decode().partition(":")
        return (user, password) if sep else None
    if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
        return entry["username"], entry["password"]
    return None


OCI_TIP = "write oci://HOST[:PORT]/REPOSITORY, e.g. oci://ghcr.io/team/functions"


def oci_base(url: str) -> tuple[str, str]:
    """``oci://HOST[:PORT]/REPOSITORY`` as (``http(s)://HOST[:PORT]``, repository).

    Plain HTTP for loopback hosts or when $LAMBDA_PACK_REGISTRY_PLAIN_HTTP=1, else HTTPS.
    """
    parts = urlsplit(url)
    repository = parts.path.strip("/")
    if not parts.hostname or not repository:
        raise WireError(f"store URL {redact(url)} has no host or repository", OCI_TIP)
    plain = parts.hostname in ("localhost", "::1") or parts.hostname.startswith("127.")
    plain = plain or os.environ.get("LAMBDA_PACK_REGISTRY_PLAIN_HTTP") == "1"
    return f"{'http' if plain else 'https'}://{parts.netloc}", repository


def s3_location(url: str) -> tuple[str, str, dict[str, str]]:
    """``s3://BUCKET/PREFIX?endpoint_url=URL&region=R`` as (bucket, prefix, options).

    $LAMBDA_PACK_S3_ENDPOINT_URL is the endpoint when the URL names none.
    """
    parts = urlsplit(url)
    options = dict(parse_qsl(parts.query))
    unknown = set(options) - {"endpoint_url", "region"}
    if not parts.netloc or unknown:
        raise WireError(
            f"store URL {redact(url)} is not s3://BUCKET/PREFIX[?endpoint_url=..&region=..]",
            "name a bucket; the only options are endpoint_url and region",
        )
    endpoint = options.get("endpoint_url") or os.environ.get("LAMBDA_PACK_S3_ENDPOINT_URL")
    if endpoint:
        options["endpoint_url"] = endpoint
    return parts.netloc, parts.path.strip("/"), options


def s3_client_options(options: dict[str, str]) -> dict[str, Any]:
    """boto3.client keyword arguments: endpoint, region, retries and timeouts."""
    from botocore.config import Config  # type: ignore[import-untyped,unused-ignore]

    config = Config(
        retries={"max_attempts": RETRIES, "mode": "standard"},
        connect_timeout=TIMEOUT_S,
        read_timeout=TIMEOUT_S,
    )
    kwargs: dict[str, Any] = {"config": config}
    if options.get("endpoint_url"):
        kwargs["endpoint_url"] = options["endpoint_url"]
    if options.get("region"):
        kwargs["region_name"] = options["region"]
    return kwargs


class BlobRef(NamedTuple):
    """A blob named by its sha256, with its size in bytes."""

    sha256: Digest
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "size": self.size}

    @classmethod
    def from_dict(cls, data: object, where: str) -> BlobRef:
        table = json_table(data, where)
        return cls(sha256=json_digest(table, "sha256", where), size=json_size(table, "size", where))


class TaskLayer(NamedTuple):
    """A layer blob of a task and the pinned wheels it holds."""

    sha256: Digest
    size: int
    unzipped_size: int
    wheels: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "size": self.size,
            "unzipped_size": self.unzipped_size,
            "wheels": list(self.wheels),
        }

    @classmethod
    def from_dict(cls, data: object, where: str) -> TaskLayer:
        table = json_table(data, where)
        return cls(
            sha256=json_digest(table, "sha256", where),
            size=json_size(table, "size", where),
            unzipped_size=json_size(table, "unzipped_size", where),
            wheels=json_strings(table, "wheels", where),
        )


class TaskManifest(NamedTuple):
    """What a store holds per function: handler, code blob, layer blobs in merge order.

    Its bytes are canonical JSON (sorted keys, compact), so its sha256 is stable and it is
    stored as a blob like any layer.
    """

    name: str
    target: str
    handler: str
    code: BlobRef
    layers: tuple[TaskLayer, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": TASK_FORMAT,
            "name": self.name,
            "target": self.target,
            "handler": self.handler,
            "code": self.code.to_dict(),
            "layers": [layer.to_dict() for layer in self.layers],
        }

    def to_bytes(self) -> bytes:
        """Canonical JSON: sorted keys, compact separators, no trailing newline."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()

    @property
    def sha256(self) -> Digest:
        return Digest(hashlib.sha256(self.to_bytes()).hexdigest())

    @classmethod
    def from_dict(cls, data: object) -> TaskManifest:
        """Validate ``data``; FieldError names the first bad field."""
        table = json_table(data, "")
        json_format(table, TASK_FORMAT)
        items = json_field(table, "layers", list, "", "a list")
        return cls(
            name=json_string(table, "name", ""),
            target=json_string(table, "target", ""),
            handler=_handler(table),
            code=BlobRef.from_dict(table.get("code"), "code"),
            layers=tuple(TaskLayer.from_dict(item, f"layers[{i}]") for i, item in enumerate(items)),
        )

    @classmethod
    def from_bytes(cls, data: bytes, source: str) -> TaskManifest:
        """Parse a task manifest blob; WireError naming ``source`` and the bad field."""
        return parse_json(data, source, cls.from_dict, "push the function again")


def _handler(table: Mapping[str, object]) -> str:
    handler = json_string(table, "handler", "")
    if "." not in handler:
        raise FieldError("handler", "must be module.function")
    return handler


def parse_json(data: bytes, source: str, parse: Callable[[object], _T], tip: str) -> _T:
    """``parse(json.loads(data))``; WireError naming ``source`` and the bad field."""
    try:
        return parse(json.loads(data))
    except FieldError as exc:
        raise WireError(f"{source}: {exc}", tip) from None
    except ValueError as exc:
        raise WireError(f"{source}: not valid JSON: {exc}", tip) from None
    except RecursionError:
        raise WireError(f"{source}: not valid JSON: nested too deeply", tip) from None


def join_field(where: str, key: str) -> str:
    """The dotted name of ``key`` inside ``where`` (``functions.api.code``)."""
    return f"{where}.{key}" if where else key


def json_table(data: object, where: str) -> Mapping[str, object]:
    """``data`` if it is a JSON object, else FieldError."""
    if not isinstance(data, dict):
        raise FieldError(where or "the document", "must be a JSON object")
    return data


def json_field(table: Mapping[str, object], key: str, kind: type[_T], where: str, what: str) -> _T:
    """``table[key]`` if it is present and a ``kind`` (never a bool for an int)."""
    if key not in table:
        raise FieldError(join_field(where, key), "is missing")
    value = table[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise FieldError(join_field(where, key), f"must be {what}")
    return value


def json_format(table: Mapping[str, object], expected: str) -> None:
    """FieldError unless the document's ``format`` is ``expected``."""
    if table.get("format") != expected:
        raise FieldError("format", f"must be {expected!r}, not {table.get('format')!r}")


def json_string(table: Mapping[str, object], key: str, where: str) -> str:
    """A non-empty string field."""
    value = json_field(table, key, str, where, "a non-empty string")
    if not value:
        raise FieldError(join_field(where, key), "must be a non-empty string")
    return value


def json_size(table: Mapping[str, object], key: str, where: str) -> int:
    """A non-negative integer field."""
    value = json_field(table, key, int, where, "a non-negative integer")
    if value < 0:
        raise FieldError(join_field(where, key), "must be a non-negative integer")
    return value


def json_digest(table: Mapping[str, object], key: str, where: str) -> Digest:
    """A sha256 field (64 lowercase hex digits)."""
    value = json_field(table, key, str, where, "64 lowercase hex digits")
    if not is_digest(value):
        raise FieldError(join_field(where, key), "must be 64 lowercase hex digits")
    return Digest(value)


def json_strings(table: Mapping[str, object], key: str, where: str) -> tuple[str, ...]:
    """A list-of-strings field, as a tuple."""
    items = json_field(table, key, list, where, "a list of strings")
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise FieldError(f"{join_field(where, key)}[{i}]", "must be a string")
    return tuple(items)
