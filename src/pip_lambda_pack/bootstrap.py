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
provisioning and ``end REQUEST_ID`` once an invocation's output is flushed.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import time
import traceback
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


class RuntimeClient:
    """The Runtime API over one kept-alive HTTP connection."""

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self.connection = http.client.HTTPConnection(host or address, int(port or 80))

    def next(self) -> tuple[str, dict[str, str], bytes]:
        """Wait for the next invocation: (request id, headers, event bytes)."""
        status, headers, body = self._request("GET", "/runtime/invocation/next")
        if status != 200:
            raise ConnectionError(f"runtime API: invocation/next answered HTTP {status}")
        return headers.get("lambda-runtime-aws-request-id", ""), headers, body

    def respond(self, request_id: str, body: bytes) -> None:
        self._request("POST", f"/runtime/invocation/{request_id}/response", body)

    def error(self, request_id: str, error: dict[str, Any]) -> None:
        path = f"/runtime/invocation/{request_id}/error"
        self._request("POST", path, _json(error), str(error["errorType"]))

    def init_error(self, error: dict[str, Any]) -> None:
        self._request("POST", "/runtime/init/error", _json(error), str(error["errorType"]))

    def _request(
        self, method: str, path: str, body: bytes | None = None, error_type: str | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        headers = {"Lambda-Runtime-Function-Error-Type": error_type} if error_type else {}
        self.connection.request(method, f"/{API_VERSION}{path}", body=body, headers=headers)
        response = self.connection.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data


class Context:
    """The context object Lambda passes to a handler, from one invocation's headers."""

    def __init__(self, request_id: str, headers: dict[str, str]) -> None:
        env = os.environ
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
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
    cache.evict()
    figures = {
        "blobs": stats.blobs,
        "hits": stats.hits,
        "misses": stats.misses,
        "bytes_fetched": stats.bytes_fetched,
        "provision_ms": round((time.monotonic() - start) * 1000, 3),
    }
    control(f"init {json.dumps(figures, sort_keys=True)}")
    return paths


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
        sys.stdout.flush()
        print(CONTROL + line, file=sys.stderr, flush=True)


def run(client: RuntimeClient, handler: Handler) -> None:
    """Serve invocations until the Runtime API goes away."""
    while True:
        request_id, headers, body = client.next()
        trace = headers.get("lambda-runtime-trace-id")
        if trace:
            os.environ["_X_AMZN_TRACE_ID"] = trace
        try:
            result = handler(json.loads(body or b"null"), Context(request_id, headers))
        except Exception as exc:
            control(f"end {request_id}")
            client.error(request_id, error_body(exc, request_id))
            continue
        try:
            payload = _json(result)
        except (TypeError, ValueError) as exc:
            control(f"end {request_id}")
            message = f"Unable to marshal response: {exc}"
            error = {"errorMessage": message, "errorType": "Runtime.MarshalError"}
            client.error(request_id, {**error, "requestId": request_id, "stackTrace": []})
            continue
        control(f"end {request_id}")
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
    except (ConnectionError, http.client.HTTPException):
        return 0  # the Runtime API went away: the environment is being shut down
    return 0


if __name__ == "__main__":
    sys.exit(main())
