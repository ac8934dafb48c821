"""The Lambda API's REST shapes over aiohttp, so boto3 and the AWS CLI need only endpoint_url.

Routes (``/2015-03-31``): Invoke, GetFunction, GetFunctionConfiguration, ListFunctions,
DeleteFunction, CreateFunction, UpdateFunctionCode; and ``GET /metrics``. Errors carry
``x-amzn-ErrorType`` and a JSON body with ``message``, the shape botocore parses, with
Lambda's types and statuses, so a client's ``except ClientError`` sees what it would on AWS.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..errors import LambdaPackError, StoreError
from .catalog import Catalog, StoredFunction
from .environments import MAX_PAYLOAD, Environments
from .metrics import CONTENT_TYPE, Metrics
from .model import Outcome, ShuttingDown, Throttled

BASE = "/2015-03-31/functions"
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_FUNCTION_REF = re.compile(
    r"^(?:arn:aws[a-zA-Z-]*:lambda:[a-z0-9-]+:\d{12}:function:|\d{12}:function:)?"
    r"(?P<name>[A-Za-z0-9_-]{1,64})(?::(?P<qualifier>[A-Za-z0-9$_-]{1,128}))?$"
)
EVENT_RETRIES = 2  # Lambda retries an asynchronous invocation twice on a function error
Observer = Callable[[str, Outcome], None]


class LambdaError(Exception):
    """An API error in Lambda's shape."""

    def __init__(self, status: int, kind: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.extra = extra

    def response(self) -> web.Response:
        body = {"Type": "User" if self.status < 500 else "Service", "message": self.message}
        return web.json_response(
            {**body, **self.extra}, status=self.status, headers={"x-amzn-ErrorType": self.kind}
        )


def not_found(name: str, catalog: Catalog) -> LambdaError:
    return LambdaError(404, "ResourceNotFoundException", f"Function not found: {catalog.arn(name)}")


def invalid(message: str) -> LambdaError:
    return LambdaError(400, "InvalidParameterValueException", message)


def from_error(exc: LambdaPackError) -> LambdaError:
    """Our error (one line and a tip) as Lambda's: a store failure is the service's."""
    text = f"{exc.message}. TIP: {exc.tip}" if exc.tip else exc.message
    if isinstance(exc, StoreError) and exc.exit_code != 2:
        return LambdaError(500, "ServiceException", text)
    return invalid(text)


class Api:
    """The handlers; ``catalog`` reads the store, ``environments`` run the functions."""

    def __init__(
        self,
        catalog: Catalog,
        environments: Environments,
        metrics: Metrics,
        observe: Observer,
        event_retry_s: tuple[float, ...] = (1.0, 2.0),
    ) -> None:
        self.catalog = catalog
        self.environments = environments
        self.metrics = metrics
        self.observe = observe
        self.event_retry_s = event_retry_s
        self.events: set[asyncio.Task[None]] = set()
        self.deployer: Any = None  # set by the service: CreateFunction and UpdateFunctionCode
        self.touched: Callable[[], None] = lambda: None  # each request: the idle clock restarts

    def app(self) -> web.Application:
        app = web.Application(client_max_size=80 * 1024 * 1024, middlewares=[self._errors])
        app.add_routes(
            [
                web.post(BASE + "/{name}/invocations", self.invoke),
                web.get(BASE + "/{name}", self.get_function),
                web.get(BASE + "/{name}/configuration", self.get_configuration),
                web.get(BASE + "/", self.list_functions),
                web.get(BASE, self.list_functions),
                web.delete(BASE + "/{name}", self.delete_function),
                web.post(BASE, self.create_function),
                web.post(BASE + "/", self.create_function),
                web.put(BASE + "/{name}/code", self.update_code),
                web.get(BASE + "/{name}/versions", self.list_versions),
                web.post(BASE + "/{name}/versions", self.unsupported),
                web.get(BASE + "/{name}/aliases", self.list_aliases),
                web.post(BASE + "/{name}/aliases", self.unsupported),
                web.route("*", BASE + "/{name}/aliases/{alias}", self.alias),
                web.get("/metrics", self.metrics_text),
            ]
        )
        return app

    @web.middleware
    async def _errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.touched()
        try:
            return await handler(request)
        except LambdaError as exc:
            return exc.response()
        except LambdaPackError as exc:
            return from_error(exc).response()
        except web.HTTPNotFound:
            return LambdaError(404, "UnknownOperationException", "Unknown operation").response()
        except web.HTTPMethodNotAllowed:
            return LambdaError(405, "UnknownOperationException", "Unknown operation").response()

    async def function(self, request: web.Request) -> StoredFunction:
        """The function the path names ($LATEST only); ResourceNotFoundException if none."""
        name, qualifier = parse_ref(request.match_info["name"], request.query.get("Qualifier"))
        found = self.catalog.cached(name) or await asyncio.to_thread(self.catalog.get, name)
        if found is None or qualifier not in (None, "$LATEST"):
            where = name if qualifier is None else f"{name}:{qualifier}"
            raise not_found(where, self.catalog)
        return found

    # -- Invoke -------------------------------------------------------------------------

    async def invoke(self, request: web.Request) -> web.StreamResponse:
        kind = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if kind not in ("RequestResponse", "Event", "DryRun"):
            raise invalid(f"Invalid invocation type: {kind}")
        if (request.content_length or 0) > MAX_PAYLOAD:
            raise _too_large(request.content_length or 0)
        function = await self.function(request)
        payload = await request.read()
        if len(payload) > MAX_PAYLOAD:
            raise _too_large(len(payload))
        payload = _check_json(payload)
        if kind == "DryRun":
            return web.Response(status=204, headers={"X-Amz-Executed-Version": "$LATEST"})
        settings = self.catalog.cached_settings(function) or await asyncio.to_thread(
            self.catalog.settings, function
        )
        if kind == "Event":
            self._queue_event(function.name, settings, payload)
            return web.Response(status=202, headers={"X-Amz-Executed-Version": "$LATEST"})
        outcome = await self._run(function.name, settings, payload)
        headers = {"X-Amz-Executed-Version": "$LATEST", "Content-Type": "application/json"}
        if outcome.error_type is not None:
            headers["X-Amz-Function-Error"] = "Unhandled"
        if request.headers.get("X-Amz-Log-Type") == "Tail":
            headers["X-Amz-Log-Result"] = base64.b64encode(outcome.tail).decode()
        return web.Response(body=outcome.body, headers=headers)

    async def _run(self, name: str, settings: Any, payload: bytes) -> Outcome:
        try:
            outcome = await self.environments.invoke(settings, payload)
        except Throttled:
            self.metrics.throttles.labels(name).inc()
            raise LambdaError(
                429,
                "TooManyRequestsException",
                "Rate Exceeded.",
                Reason="ConcurrentInvocationLimitExceeded",
                retryAfterSeconds="1",
            ) from None
        except ShuttingDown:
            raise LambdaError(500, "ServiceException", "The service is shutting down") from None
        except OSError as exc:
            raise LambdaError(
                500, "ServiceException", f"cannot start an environment: {exc}"
            ) from None
        self.metrics.record(name, outcome)
        self.observe(name, outcome)
        return outcome

    def _queue_event(self, name: str, settings: Any, payload: bytes) -> None:
        task = asyncio.create_task(self._event(name, settings, payload))
        self.events.add(task)
        task.add_done_callback(self.events.discard)

    async def _event(self, name: str, settings: Any, payload: bytes) -> None:
        """Run an Event invocation; throttled ones wait, function errors are retried twice."""
        delays = list(self.event_retry_s[:EVENT_RETRIES])
        while True:
            try:
                outcome = await self._run(name, settings, payload)
            except LambdaError as exc:
                if exc.status != 429:
                    return
                await asyncio.sleep(0.05)
                continue
            if outcome.error_type is None or not delays:
                return
            await asyncio.sleep(delays.pop(0))

    # -- functions ----------------------------------------------------------------------

    async def get_function(self, request: web.Request) -> web.Response:
        function = await self.function(request)
        configuration = self.catalog.configuration(function)
        code = {"RepositoryType": "S3", "Location": self.catalog.store.location}
        return web.json_response({"Configuration": configuration, "Code": code, "Tags": {}})

    async def get_configuration(self, request: web.Request) -> web.Response:
        return web.json_response(self.catalog.configuration(await self.function(request)))

    async def list_functions(self, request: web.Request) -> web.Response:
        marker = request.query.get("Marker")
        try:
            limit = int(request.query.get("MaxItems", "50"))
        except ValueError:
            raise invalid("MaxItems must be a number from 1 to 10000") from None
        if not 1 <= limit <= 10000:
            raise invalid("MaxItems must be a number from 1 to 10000")
        names = await asyncio.to_thread(self.catalog.names)
        start = names.index(marker) + 1 if marker in names else 0
        if marker is not None and marker not in names:
            start = next((i for i, n in enumerate(names) if n > marker), len(names))
        page = names[start : start + limit]
        found = await asyncio.gather(*(asyncio.to_thread(self.catalog.get, n) for n in page))
        body: dict[str, Any] = {
            "Functions": [self.catalog.configuration(f) for f in found if f is not None]
        }
        if start + limit < len(names):
            body["NextMarker"] = page[-1]
        return web.json_response(body)

    async def delete_function(self, request: web.Request) -> web.Response:
        function = await self.function(request)
        if self.deployer is None:
            raise LambdaError(500, "ServiceException", "this service cannot delete functions")
        await self.deployer.delete(function)
        return web.Response(status=204)

    async def create_function(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        if self.deployer is None:
            raise LambdaError(500, "ServiceException", "this service cannot create functions")
        function = await self.deployer.create(body)
        return web.json_response(self.catalog.configuration(function), status=201)

    async def update_code(self, request: web.Request) -> web.Response:
        function = await self.function(request)
        body = await _json_body(request)
        if self.deployer is None:
            raise LambdaError(500, "ServiceException", "this service cannot update functions")
        updated = await self.deployer.update(function, body)
        return web.json_response(self.catalog.configuration(updated))

    # -- versions and aliases: $LATEST only ---------------------------------------------

    async def list_versions(self, request: web.Request) -> web.Response:
        """ListVersionsByFunction: $LATEST, the one version a function has here."""
        function = await self.function(request)
        return web.json_response({"Versions": [self.catalog.configuration(function)]})

    async def list_aliases(self, request: web.Request) -> web.Response:
        await self.function(request)
        return web.json_response({"Aliases": []})

    async def alias(self, request: web.Request) -> web.Response:
        """GetAlias, UpdateAlias, DeleteAlias: there are none."""
        function = await self.function(request)
        arn = f"{self.catalog.arn(function.name)}:{request.match_info['alias']}"
        raise LambdaError(404, "ResourceNotFoundException", f"Alias not found: {arn}")

    async def unsupported(self, request: web.Request) -> web.Response:
        """PublishVersion and CreateAlias: refused, the function unchanged."""
        function = await self.function(request)
        raise invalid(
            f"{function.name}: serve runs every function as $LATEST and keeps no versions or "
            "aliases (PublishVersion and CreateAlias are not supported); invoke it without a "
            "Qualifier or with Qualifier=$LATEST"
        )

    async def metrics_text(self, request: web.Request) -> web.Response:
        text = self.metrics.text(self.environments.warm())
        return web.Response(body=text, headers={"Content-Type": CONTENT_TYPE})


def parse_ref(text: str, qualifier: str | None) -> tuple[str, str | None]:
    """A FunctionName (name, name:qualifier, or an ARN) as (name, qualifier)."""
    match = _FUNCTION_REF.match(text)
    if match is None:
        raise invalid(
            f"1 validation error detected: Value '{text}' at 'functionName' failed to satisfy "
            "constraint: Member must satisfy regular expression pattern: "
            "(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\\d{1}:)?(\\d{12}:)?"
            "(function:)?([a-zA-Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?"
        )
    return match.group("name"), qualifier or match.group("qualifier")


def _too_large(size: int) -> LambdaError:
    return LambdaError(
        413,
        "RequestTooLargeException",
        f"Request must be smaller than {MAX_PAYLOAD} bytes for the InvokeFunction operation "
        f"(it was {size} bytes)",
    )


def _check_json(payload: bytes) -> bytes:
    if not payload.strip():
        return b"{}"
    try:
        json.loads(payload)
    except ValueError as exc:
        raise LambdaError(
            400,
            "InvalidRequestContentException",
            f"Could not parse request body into json: {exc}",
        ) from None
    return payload


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.read())
    except ValueError as exc:
        raise LambdaError(
            400, "InvalidRequestContentException", f"Could not parse request body: {exc}"
        ) from None
    if not isinstance(data, dict):
        raise LambdaError(
            400, "InvalidRequestContentException", "the request body is not an object"
        )
    return data


def zip_bytes(code: object) -> bytes:
    """``Code.ZipFile`` decoded; InvalidParameterValueException for anything else."""
    if not isinstance(code, dict) or not isinstance(code.get("ZipFile"), str):
        raise invalid("Code.ZipFile is required (S3 and image code are not supported here)")
    try:
        return base64.b64decode(code["ZipFile"], validate=True)
    except (binascii.Error, ValueError):
        raise invalid("Code.ZipFile is not base64") from None
