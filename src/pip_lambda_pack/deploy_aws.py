"""The deploy's AWS edge: the boto3 clients and their errors mapped once, the state read
with read calls only, and the calls applied (waiting for each function, rolling a
function's configuration back when its code update fails).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .deploy_calls import all_zips
from .deploy_model import (
    DIRECT_UPLOAD_LIMIT,
    MAX_LAYERS,
    RETRY,
    WAIT,
    Call,
    Current,
    DeployOptions,
    FunctionWant,
    LayerRef,
    LayerWant,
    State,
    Zip,
)
from .errors import ConfigError, DeployError, LambdaPackError, UserError
from .progress import Log

# -- the AWS edge ----------------------------------------------------------------------------


class Aws:
    """boto3 clients for Lambda, S3 and IAM, with AWS errors turned into ours at one place."""

    def __init__(self, session: Any) -> None:
        from botocore.config import Config  # type: ignore[import-untyped,unused-ignore]

        if session.region_name is None:
            raise UserError(
                "no AWS region is set",
                "pass --region, or set AWS_REGION (or a region in ~/.aws/config for AWS_PROFILE)",
            )
        if session.get_credentials() is None:
            raise UserError(
                "no AWS credentials found",
                "set AWS_PROFILE (after aws configure or aws sso login), or AWS_ACCESS_KEY_ID "
                "and AWS_SECRET_ACCESS_KEY",
            )
        config = Config(retries=dict(RETRY))
        self.region: str = session.region_name
        self.clients = {s: session.client(s, config=config) for s in ("lambda", "s3", "iam")}

    def call(self, service: str, operation: str, **params: Any) -> Any:
        from botocore import xform_name  # type: ignore[import-untyped,unused-ignore]

        method = getattr(self.clients[service], xform_name(operation))
        try:
            return method(**params)
        except Exception as exc:
            raise aws_error(exc, f"{service}.{operation}", _subject(params)) from None

    def wait(self, waiter: str, name: str) -> None:
        try:
            self.clients["lambda"].get_waiter(waiter).wait(FunctionName=name, WaiterConfig=WAIT)
        except Exception as exc:
            raise aws_error(exc, "lambda.GetFunction (waiting)", name) from None


def _subject(params: Mapping[str, Any]) -> str:
    for key in ("FunctionName", "LayerName", "Key", "RoleName", "Resource"):
        if key in params:
            return str(params[key])
    return ""


_DENIED = (
    "AccessDenied",
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
)
_THROTTLED = ("TooManyRequestsException", "ThrottlingException", "Throttling", "SlowDown")


def aws_error(exc: Exception, operation: str, subject: str) -> LambdaPackError:
    """One of our errors for a botocore exception of ``operation`` on ``subject``."""
    if isinstance(exc, LambdaPackError):
        return exc
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return _transport_error(exc, operation)
    error = response.get("Error", {})
    code, message = str(error.get("Code", "")), str(error.get("Message", ""))
    if code.isdigit():  # a body boto3 could not parse: an XML error where JSON was expected
        found = re.search(r"<Code>([^<]*)</Code>.*?<Message>([^<]*)</Message>", message, re.S)
        code, message = found.groups() if found else (code, message[:200])
    where = f"{operation} ({subject})" if subject else operation
    return _client_error(code, message, where)


def _client_error(code: str, message: str, where: str) -> LambdaPackError:
    if code in _DENIED:
        return UserError(
            f"AWS denied {where}: {code}: {message}",
            "check AWS_PROFILE and that the identity may call Lambda (lambda:*Function*, "
            "lambda:*LayerVersion*), s3:PutObject on the bucket and iam:PassRole on the role",
        )
    if code in _THROTTLED:
        return DeployError(
            f"AWS throttled {where}, also when tried again (boto3's standard retries): {message}",
            "wait a minute and deploy again: what is already deployed is skipped",
        )
    if code == "CodeStorageExceededException":
        return UserError(
            f"Lambda's code storage quota (75 GB) is full: {where}: {message}",
            "delete old function and layer versions, or ask AWS for a higher quota",
        )
    if code == "InvalidParameterValueException" and "role" in message.lower():
        return UserError(
            f"Lambda cannot use the role of {where}: {message}",
            "check that the role exists and trusts lambda.amazonaws.com (role = ... or --role)",
        )
    if code == "InvalidParameterValueException" and "layer" in message.lower():
        return UserError(
            f"Lambda refused the layers of {where}: {message}",
            f'keep max-layers <= {MAX_LAYERS}, or set delivery = "shim" for the function',
        )
    if code == "ResourceConflictException":
        return DeployError(
            f"{where}: {message}", "another update of the function is under way; deploy again"
        )
    return DeployError(f"{where} failed: {code}: {message}", "check the message; deploy again")


def _transport_error(exc: Exception, operation: str) -> LambdaPackError:
    name = type(exc).__name__
    if name == "NoCredentialsError":
        return UserError("no AWS credentials found", "set AWS_PROFILE or AWS_ACCESS_KEY_ID")
    if name == "NoRegionError":
        return UserError("no AWS region is set", "pass --region or set AWS_REGION")
    if name == "WaiterError":
        return DeployError(f"{operation}: the function did not become ready: {exc}", "deploy again")
    return DeployError(
        f"{operation}: {name}: {exc}", "check the network and AWS_ENDPOINT_URL, then deploy again"
    )


# -- reading state ----------------------------------------------------------------------------


def read_state(
    aws: Aws,
    layers: Sequence[LayerWant],
    functions: Sequence[FunctionWant],
    options: DeployOptions,
    store: Any = None,
) -> State:
    """What AWS (and the store) has of what is wanted; read calls only."""
    found = {w.zip.sha256: _layer_arn(aws, w) for w in layers}
    currents = {f.name: _function(aws, f.name, options.publish) for f in functions}
    _check_roles(aws, functions, currents)
    return State(
        layers={sha: arn for sha, arn in found.items() if arn},
        functions=currents,
        objects=_objects(aws, layers, functions, options),
        store_blobs=_store_blobs(store, functions),
        store_names=_store_names(store, functions),
        code_storage=_code_storage(aws),
    )


def _layer_arn(aws: Aws, want: LayerWant) -> str | None:
    """The ARN of the version of ``want.name`` whose CodeSha256 is our zip's, if any."""
    versions: list[dict[str, Any]] = []
    marker = None
    while True:
        page = aws.call("lambda", "ListLayerVersions", LayerName=want.name, **_marker(marker))
        versions += page.get("LayerVersions", [])
        marker = page.get("NextMarker")
        if not marker:
            break
    for version in sorted(versions, key=lambda v: -int(v["Version"])):
        got = aws.call(
            "lambda", "GetLayerVersion", LayerName=want.name, VersionNumber=version["Version"]
        )
        if got.get("Content", {}).get("CodeSha256") == want.zip.code_sha256:
            return str(got["LayerVersionArn"])
    return None


def _marker(marker: str | None) -> dict[str, str]:
    return {"Marker": marker} if marker else {}


def _function(aws: Aws, name: str, publish: bool) -> Current | None:
    try:
        got = aws.call("lambda", "GetFunction", FunctionName=name)
    except DeployError as exc:
        if "ResourceNotFoundException" in exc.message:
            return None
        raise
    published = _newest_version(aws, name) if publish else None
    return Current(config=got["Configuration"], tags=got.get("Tags") or {}, published=published)


def _newest_version(aws: Aws, name: str) -> Mapping[str, Any] | None:
    versions: list[dict[str, Any]] = []
    marker = None
    while True:
        page = aws.call("lambda", "ListVersionsByFunction", FunctionName=name, **_marker(marker))
        versions += [v for v in page.get("Versions", []) if v.get("Version", "").isdigit()]
        marker = page.get("NextMarker")
        if not marker:
            break
    return max(versions, key=lambda v: int(v["Version"])) if versions else None


def _check_roles(
    aws: Aws, functions: Sequence[FunctionWant], currents: Mapping[str, Current | None]
) -> None:
    """UserError for a role that IAM says does not exist (when IAM lets us ask)."""
    roles = {f.role for f in functions if f.role}
    for role in sorted(roles):
        try:
            aws.call("iam", "GetRole", RoleName=role.rsplit("/", 1)[-1])
        except DeployError as exc:
            if "NoSuchEntity" in exc.message:
                raise UserError(
                    f"the role {role} does not exist",
                    "create it (with a trust policy for lambda.amazonaws.com) or fix role/--role",
                ) from None
        except UserError:
            continue  # not allowed to read IAM: Lambda checks the role itself


def _objects(
    aws: Aws,
    layers: Sequence[LayerWant],
    functions: Sequence[FunctionWant],
    options: DeployOptions,
) -> frozenset[str]:
    if not options.s3_bucket:
        return frozenset()
    present = set()
    for zip_ in all_zips(layers, functions):
        if zip_.size <= DIRECT_UPLOAD_LIMIT:
            continue
        try:
            aws.call("s3", "HeadObject", Bucket=options.s3_bucket, Key=zip_.s3_key)
            present.add(zip_.s3_key)
        except DeployError as exc:
            if "404" not in exc.message and "NotFound" not in exc.message:
                raise
    return frozenset(present)


def _store_blobs(store: Any, functions: Sequence[FunctionWant]) -> frozenset[str]:
    digests = {z.sha256 for f in functions for z in f.blobs}
    digests |= {f.task.sha256 for f in functions if f.task is not None}
    return frozenset(d for d in sorted(digests) if store is not None and store.has(d))


def _store_names(store: Any, functions: Sequence[FunctionWant]) -> dict[str, str]:
    from .errors import BlobNotFoundError

    names = {}
    for want in functions:
        if want.task is None or store is None:
            continue
        try:
            names[want.key] = store.get_name(want.key)
        except BlobNotFoundError:
            continue
    return names


def _code_storage(aws: Aws) -> tuple[int, int] | None:
    """(used, limit) bytes of Lambda's code storage, or None where Lambda does not say."""
    try:
        settings = aws.call("lambda", "GetAccountSettings")
    except LambdaPackError:
        return None
    used = settings.get("AccountUsage", {}).get("TotalCodeSize")
    limit = settings.get("AccountLimit", {}).get("TotalCodeSize")
    return (int(used), int(limit)) if used is not None and limit else None


# -- applying -------------------------------------------------------------------------------


def apply(
    aws: Aws, calls: Sequence[Call], state: State, store: Any, say: Log
) -> tuple[dict[str, str], dict[str, str]]:
    """Make the calls in order: the layer ARNs (sha256 -> ARN), function ARNs (name -> ARN).

    A failed code update puts back the configuration update made just before it for the
    same function, so the function keeps its old layers with its old code.
    """
    arns = dict(state.layers)
    functions: dict[str, str] = {}
    previous: Call | None = None
    for call in calls:
        try:
            result = _make(aws, call, arns, store)
        except LambdaPackError as exc:
            moved = previous is not None and previous.subject == call.subject
            if call.operation == "UpdateFunctionCode" and moved and previous is not None:
                raise _rolled_back(aws, previous, exc) from None
            raise
        previous = call if call.undo is not None else None
        _record(call, result, arns, functions)
        say(call.line)
    return arns, functions


def _make(aws: Aws, call: Call, arns: Mapping[str, str], store: Any) -> Any:
    if call.service == "store":
        return _store_write(store, call)
    params = _resolved(call.params, arns)
    if call.service == "s3":
        with open(params["Body"], "rb") as body:
            return aws.call("s3", call.operation, **{**params, "Body": body})
    result = aws.call("lambda", call.operation, **params)
    if call.operation == "CreateFunction":
        aws.wait("function_active_v2", call.params["FunctionName"])
    elif call.operation.startswith("UpdateFunction"):
        aws.wait("function_updated_v2", call.params["FunctionName"])
    return result


def _resolved(value: Any, arns: Mapping[str, str]) -> Any:
    """Parameters for boto3: zips as bytes (S3 bodies as paths), layers as ARNs."""
    if isinstance(value, Zip):
        return value.path if value.size > DIRECT_UPLOAD_LIMIT else value.path.read_bytes()
    if isinstance(value, LayerRef):
        return arns[value.sha256]
    if isinstance(value, Mapping):
        return {k: _resolved(v, arns) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolved(v, arns) for v in value]
    return value


def _store_write(store: Any, call: Call) -> None:
    params = call.params
    if call.operation == "put_file":
        store.put_file(params["path"].path, params["digest"])
    elif call.operation == "put_bytes":
        store.put_bytes(params["data"])
    else:
        store.set_name(params["name"], params["digest"])


def _record(call: Call, result: Any, arns: dict[str, str], functions: dict[str, str]) -> None:
    if call.operation == "PublishLayerVersion":
        arns[call.digest] = result["LayerVersionArn"]
    elif call.operation in ("CreateFunction", "UpdateFunctionConfiguration"):
        functions[call.params["FunctionName"]] = result["FunctionArn"]


def _rolled_back(aws: Aws, update: Call, exc: LambdaPackError) -> LambdaPackError:
    """Put back the configuration ``update`` changed; the error to raise."""
    assert update.undo is not None
    try:
        aws.call("lambda", "UpdateFunctionConfiguration", **update.undo)
        aws.wait("function_updated_v2", update.subject)
    except LambdaPackError as second:
        return type(exc)(
            f"{exc.message}; putting back {update.subject}'s configuration failed too: "
            f"{second.message}",
            exc.tip,
        )
    return type(exc)(f"{exc.message} ({update.subject} left as it was)", exc.tip)


def boto3_session(region: str | None) -> Any:
    """A boto3 session with boto3's own chain for credentials, region and endpoints.

    The region is ``region``, else boto3's (AWS_DEFAULT_REGION, the profile's), else
    AWS_REGION, which the AWS CLI, SAM and Lambda itself read and older botocore does not.
    """
    try:
        import boto3  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise ConfigError(
            "boto3 is needed for deploy", "pip install 'pip-lambda-pack[aws]'"
        ) from None
    try:
        session = boto3.session.Session(region_name=region)
        if session.region_name is None and os.environ.get("AWS_REGION"):
            session = boto3.session.Session(region_name=os.environ["AWS_REGION"])
        return session
    except Exception as exc:  # botocore.exceptions.ProfileNotFound and the like
        raise UserError(
            f"AWS configuration: {exc}", "check AWS_PROFILE and ~/.aws/config"
        ) from None
