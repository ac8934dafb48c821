"""A Lambda custom runtime: load the handler, then loop on the Lambda Runtime API.

Standard library only, Python 3.10 to 3.14, beside ``shim.py``: the same file is the
``bootstrap`` of a custom runtime on real Lambda and the environment process of
``pip-lambda-pack serve``. It reads what Lambda's runtime reads:

- ``AWS_LAMBDA_RUNTIME_API`` (host:port), ``_HANDLER`` (``module.function``),
  ``LAMBDA_TASK_ROOT`` and ``/opt/python`` for the code and layers Lambda unpacked
  (``LAMBDA_PACK_OPT`` names another folder than ``/opt``);
- or, with ``LAMBDA_PACK_STORE`` set, the function ``AWS_LAMBDA_FUNCTION_NAME`` is
  provisioned through the shim from that store (its cache: ``LAMBDA_PACK_CACHE``,
  ``LAMBDA_PACK_CACHE_MAX_BYTES``), which is how ``serve`` runs it and how a function past
  Lambda's 5 layers or 250 MB is delivered into ``/tmp``.

Store credentials (every ``LAMBDA_PACK_*`` variable and the names ``LAMBDA_PACK_SCRUB``
lists) are removed from the environment before the handler's module is imported. An init failure is
posted to ``/runtime/init/error`` (``Runtime.ImportModuleError``, ``Runtime.HandlerNotFound``,
``LambdaPack.ProvisionError``) and the process exits 1, as Lambda's runtime does.

With ``LAMBDA_PACK_SERVE_LOG=1`` (set by ``serve`` only) the process also writes control
lines to stderr, each starting with ``\\x1elambda-pack:``: ``init {figures}`` after
provisioning. An invocation's output is flushed before its answer is posted.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

try:
    from . import shim
except ImportError:  # run as a script: shim.py is beside this file
    import shim  # type: ignore[no-redef,import-not-found,unused-ignore]

API_VERSION = "2018-06-01"
CONTROL = "\x1elambda-pack:"
SERVE_LOG_ENV = "LAMBDA_PACK_SERVE_LOG"
SCRUB_ENV = "LAMBDA_PACK_SCRUB"
Handler = Callable[[Any, Any], Any]


class RuntimeAPIError(ConnectionError):
    """The Runtime API went away or answered something that is not HTTP."""


class _Stale(RuntimeAPIError):
    """The connection closed before any byte of the answer: the request may be sent again."""


class RuntimeClient:
    """The Runtime API over one kept-alive HTTP/1.1 connection, TCP_NODELAY.

    A small client rather than ``http.client``: it costs a fifth of the CPU per request
    (no ``email`` header parser) and a fifth of the import time, on the warm path of every
    invocation. It reads what a Runtime API may send: ``Content-Length`` or chunked bodies,
    or a body to the end of the connection; a connection the server closes (HTTP/1.0,
    ``Connection: close``) is opened again for the next request.
    """

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self.host = host or address
        self.port = int(port or 80)
        self.sock: socket.socket | None = None
        self.buffer = b""

    def next(self) -> tuple[str, dict[str, str], bytes]:
        """Wait for the next invocation: (request id, headers, event bytes)."""
        status, headers, body = self._request("GET", "/runtime/invocation/next")
        if status != 200:
            raise RuntimeAPIError(f"runtime API: invocation/next answered HTTP {status}")
        return headers.get("lambda-runtime-aws-request-id", ""), headers, body

    def respond(self, request_id: str, body: bytes) -> None:
        self._request("POST", f"/runtime/invocation/{_path_part(request_id)}/response", body)

    def error(self, request_id: str, error: dict[str, Any]) -> None:
        path = f"/runtime/invocation/{_path_part(request_id)}/error"
        self._request("POST", path, _json(error), str(error["errorType"]))

    def init_error(self, error: dict[str, Any]) -> None:
        self._request("POST", "/runtime/init/error", _json(error), str(error["errorType"]))

    def _request(
        self, method: str, path: str, body: bytes | None = None, error_type: str | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        head = f"{method} /{API_VERSION}{path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        if error_type:
            head += f"Lambda-Runtime-Function-Error-Type: {_header_value(error_type)}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        message = head.encode("latin-1") + b"\r\n" + (body or b"")
        reused = self.sock is not None
        try:
            return self._exchange(message)
        except _Stale:
            if not reused:
                raise
        return self._exchange(message)  # the kept-alive connection had gone stale: once more

    def _exchange(self, message: bytes) -> tuple[int, dict[str, str], bytes]:
        if self.sock is None:
            try:
                self.sock = socket.create_connection((self.host, self.port))
            except OSError as exc:
                raise RuntimeAPIError(f"runtime API: cannot connect: {exc}") from None
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.buffer = b""
        try:
            self.sock.sendall(message)
        except OSError:
            self._close()
            raise _Stale("runtime API: the connection was closed") from None
        return self._response()

    def _response(self) -> tuple[int, dict[str, str], bytes]:
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            self._fill(stale_ok=not self.buffer)
        lines = self.buffer[:end].decode("latin-1").split("\r\n")
        self.buffer = self.buffer[end + 4 :]
        version, _, rest = lines[0].partition(" ")
        if not version.startswith("HTTP/") or not rest[:3].isdigit():
            self._close()
            raise RuntimeAPIError(f"runtime API: not an HTTP response: {lines[0][:80]!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        status = int(rest[:3])
        body = self._body(status, headers)
        connection = headers.get("connection", "").lower()
        if connection == "close" or (version == "HTTP/1.0" and connection != "keep-alive"):
            self._close()
        return status, headers, body

    def _body(self, status: int, headers: dict[str, str]) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return self._chunked()
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                self._close()
                raise RuntimeAPIError(f"runtime API: bad Content-Length {length[:40]!r}")
            return self._take(int(length))
        if status in (204, 304) or status < 200:
            return b""
        while self.sock is not None:  # the body runs to the end of the connection
            self._fill(eof_ok=True)
        body, self.buffer = self.buffer, b""
        return body

    def _chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            while (end := self.buffer.find(b"\r\n")) < 0:
                self._fill()
            size_text = self.buffer[:end].split(b";")[0].strip()
            self.buffer = self.buffer[end + 2 :]
            try:
                size = int(size_text, 16)
            except ValueError:
                self._close()
                raise RuntimeAPIError("runtime API: bad chunk size") from None
            if size == 0:
                while (end := self.buffer.find(b"\r\n")) != 0:  # trailers, then the blank line
                    if end < 0:
                        self._fill()
                    else:
                        self.buffer = self.buffer[end + 2 :]
                self.buffer = self.buffer[2:]
                return b"".join(parts)
            parts.append(self._take(size + 2)[:size])

    def _take(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def _fill(self, stale_ok: bool = False, eof_ok: bool = False) -> None:
        assert self.sock is not None
        try:
            data = self.sock.recv(1 << 16)
        except OSError:
            data = b""
        if data:
            self.buffer += data
            return
        self._close()
        if stale_ok:  # nothing of the answer arrived: the caller may send again
            raise _Stale("runtime API: the connection was closed")
        if not eof_ok:
            raise RuntimeAPIError("runtime API: the connection was closed")

    def _close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None


def _header_value(text: str) -> str:
    """A header value that cannot end the header (a handler chooses its error type's name)."""
    return "".join(c if " " <= c <= "~" else "?" for c in text)[:200]


def _path_part(text: str) -> str:
    """A request id as one path segment, percent-encoded past the unreserved characters."""

    def part(c: str) -> str:
        safe = (c.isascii() and c.isalnum()) or c in "-_~"  # not ".": no ".." segment
        return c if safe else "".join(f"%{b:02X}" for b in c.encode())

    return "".join(part(c) for c in text)


class Context:
    """The context object Lambda passes to a handler, from one invocation's headers."""

    function_name = ""  # these five: the environment's, read once before the first call
    function_version = "$LATEST"
    memory_limit_in_mb = "128"
    log_group_name = ""
    log_stream_name = ""

    @classmethod
    def read_environment(cls) -> None:
        env = os.environ
        cls.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME", "")
        cls.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        cls.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        cls.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        cls.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME", "")

    def __init__(self, request_id: str, headers: dict[str, str]) -> None:
        self.aws_request_id = request_id
        self.invoked_function_arn = headers.get("lambda-runtime-invoked-function-arn", "")
        self.identity: object = None
        self.client_context: object = _client_context(headers)
        self._deadline_ms = int(headers.get("lambda-runtime-deadline-ms") or 0)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _client_context(headers: dict[str, str]) -> object:
    text = headers.get("lambda-runtime-client-context")
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _json(data: object) -> bytes:
    return json.dumps(data).encode()


def error_body(exc: BaseException, request_id: str | None = None) -> dict[str, Any]:
    """Lambda's error JSON for an exception the handler raised."""
    import traceback  # here: only an error needs it, and it costs a cold start ~5 ms

    frames = traceback.extract_tb(exc.__traceback__)[1:]  # drop this loop's own frame
    stack = traceback.format_list([(f.filename, f.lineno or 0, f.name, f.line) for f in frames])
    body = {"errorMessage": str(exc), "errorType": type(exc).__name__, "stackTrace": stack}
    if request_id is not None:
        body["requestId"] = request_id
    return body


def init_error_body(exc: shim.ShimError) -> dict[str, Any]:
    """A shim failure as Lambda's init error: its ``Runtime.X: message`` split, or ours."""
    kind, sep, message = exc.message.partition(": ")
    if not (sep and kind.startswith("Runtime.")):
        kind, message = "LambdaPack.ProvisionError", f"{exc.message} (TIP: {exc.tip})"
    return {"errorMessage": message, "errorType": kind, "stackTrace": []}


def load() -> Handler:
    """The handler: provisioned from a store through the shim, or from Lambda's paths."""
    env = os.environ
    if env.get("LAMBDA_PACK_STORE"):
        paths = _provision(env["LAMBDA_PACK_STORE"], env.get("AWS_LAMBDA_FUNCTION_NAME", ""))
        env["LAMBDA_TASK_ROOT"] = paths[0]
        os.chdir(paths[0])  # Lambda runs handlers in the task root
    else:
        root = env.get("LAMBDA_TASK_ROOT", os.getcwd())
        opt = env.get("LAMBDA_PACK_OPT", "/opt")  # where Lambda unpacked the layers
        paths = [root, *(p for p in (os.path.join(opt, "python"),) if os.path.isdir(p))]
        os.chdir(root)
    scrub()
    return shim.load_handler(env.get("_HANDLER", ""), paths)


def _provision(store: str, name: str) -> list[str]:
    start = time.monotonic()
    cache = shim.Cache(
        Path(os.environ.get("LAMBDA_PACK_CACHE") or shim.DEFAULT_CACHE).resolve(),
        shim.cache_cap(None),
    )
    reader = shim.open_reader(store)
    task = shim.read_task(reader, name)
    paths, stats = shim.provision(task, reader, cache)
    os.environ["_HANDLER"] = task.handler
    print(stats.line(), file=sys.stderr, flush=True)
    trash: list[Path] = []
    cache.evict(trash=trash)
    if trash:
        delete_later(trash)
    figures = {
        "blobs": stats.blobs,
        "hits": stats.hits,
        "misses": stats.misses,
        "bytes_fetched": stats.bytes_fetched,
        "provision_ms": round((time.monotonic() - start) * 1000, 3),
        "fetch_ms": round(cache.seconds["fetch"] * 1000, 3),
        "extract_ms": round(cache.seconds["extract"] * 1000, 3),
    }
    control(f"init {json.dumps(figures, sort_keys=True)}")
    return paths


def delete_later(paths: list[Path]) -> None:
    """Delete the trees the cache evicted in a detached grandchild, so init does not wait.

    The grandchild keeps no descriptor of ours (its output, the cache's locks), so nothing
    waits for it; it is in this process's group, so stopping the environment stops it. If it
    dies first, the cache's stale-temp sweep removes what is left."""
    import shutil  # before the fork: a child must not import

    def delete() -> None:
        for path in paths:
            shutil.rmtree(path, ignore_errors=True)

    try:
        child = os.fork()
    except OSError:
        delete()
        return
    if child == 0:
        try:
            if os.fork() == 0:
                os.closerange(0, 1 << 16)
                delete()
        finally:
            os._exit(0)
    os.waitpid(child, 0)


def scrub() -> None:
    """Remove store credentials from the environment before any handler code runs: the
    shim's secrets (``shim.scrub_secrets``), then every other ``LAMBDA_PACK_*`` variable and
    the names ``LAMBDA_PACK_SCRUB`` lists."""
    shim.scrub_secrets(os.environ)
    names = [n for n in os.environ.get(SCRUB_ENV, "").split(",") if n]
    names += [n for n in os.environ if n.startswith("LAMBDA_PACK_")]
    for name in names:
        os.environ.pop(name, None)


_serve_log = False  # read once at start, before the handler could change the environment


def control(line: str) -> None:
    """A control line for ``serve`` (only when it asked for them), after all output so far."""
    if _serve_log:
        flush()
        print(CONTROL + line, file=sys.stderr, flush=True)


def flush() -> None:
    """Everything the handler printed, written out before its answer is posted.

    ``serve`` reads the output pipe once the answer arrives, so an invocation's log is
    exactly what was written before it answered."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, OSError, ValueError):
            stream.flush()  # a handler may have replaced or closed it


def run(client: RuntimeClient, handler: Handler) -> None:
    """Serve invocations until the Runtime API goes away."""
    Context.read_environment()
    while True:
        request_id, headers, body = client.next()
        trace = headers.get("lambda-runtime-trace-id")
        if trace:
            os.environ["_X_AMZN_TRACE_ID"] = trace
        try:
            result = handler(json.loads(body or b"null"), Context(request_id, headers))
        except Exception as exc:
            flush()
            client.error(request_id, error_body(exc, request_id))
            continue
        try:
            payload = _json(result)
        except (TypeError, ValueError) as exc:
            flush()
            message = f"Unable to marshal response: {exc}"
            error = {"errorMessage": message, "errorType": "Runtime.MarshalError"}
            client.error(request_id, {**error, "requestId": request_id, "stackTrace": []})
            continue
        flush()
        client.respond(request_id, payload)


def main() -> int:
    global _serve_log
    _serve_log = os.environ.get(SERVE_LOG_ENV) == "1"
    os.environ.pop(SERVE_LOG_ENV, None)
    client = RuntimeClient(os.environ["AWS_LAMBDA_RUNTIME_API"])
    try:
        handler = load()
    except shim.ShimError as exc:
        print(f"ERROR: {exc.message}\nTIP: {exc.tip}", file=sys.stderr, flush=True)
        client.init_error(init_error_body(exc))
        return 1
    except Exception as exc:  # the handler's module raised while being imported
        client.init_error({**error_body(exc), "errorType": "Runtime.Unknown"})
        return 1
    try:
        run(client, handler)
    except ConnectionError:
        return 0  # the Runtime API went away: the environment is being shut down
    return 0


if __name__ == "__main__":
    sys.exit(main())
