"""A store in an S3 bucket (or any S3-compatible service), through boto3.

``s3://BUCKET/PREFIX[?endpoint_url=URL&region=R]``, in the local store's layout:
``PREFIX/blobs/sha256/<hex>`` and ``PREFIX/functions/<NAME>``. boto3 does the signing,
its own retries and the standard credential chain (environment, shared config, SSO,
instance and container roles); the endpoint may also come from
$LAMBDA_PACK_S3_ENDPOINT_URL (or boto3's own $AWS_ENDPOINT_URL_S3). boto3 is the ``s3``
extra: ``pip install 'pip-lambda-pack[s3]'``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from .. import wire
from ..atomic import atomic_writer
from ..errors import BlobNotFoundError, ConfigError, StoreAuthError, StoreError
from .local import check_digest, check_name, name_digest
from .remote import CHUNK, checked_file, verify

_MISSING = ("404", "NoSuchKey", "NotFound")
_AUTH = ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken")


class S3Store:
    """A BlobStore under a prefix of an S3 bucket."""

    def __init__(self, url: str) -> None:
        try:
            self.bucket, self.prefix, options = wire.s3_location(url)
            import boto3  # type: ignore[import-untyped,unused-ignore]
        except wire.WireError as exc:
            raise ConfigError(exc.message, exc.tip) from None
        except ImportError:
            raise ConfigError(
                "boto3 is needed for an s3:// store", "pip install 'pip-lambda-pack[s3]'"
            ) from None
        self._location = wire.redact(url)
        self.client: Any = boto3.client("s3", **wire.s3_client_options(options))

    def __repr__(self) -> str:
        return f"S3Store({self._location!r})"

    @property
    def location(self) -> str:
        return self._location

    def has(self, digest: str) -> bool:
        try:
            self._call("head_object", f"blob sha256:{digest}", Key=self._blob(digest))
        except BlobNotFoundError:
            return False
        return True

    def put_file(self, path: Path, digest: str) -> None:
        checked_file(path, digest)
        self._call(
            "upload_file", f"blob sha256:{digest}", Filename=str(path), Key=self._blob(digest)
        )

    def put_bytes(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self._call("put_object", f"blob sha256:{digest}", Key=self._blob(digest), Body=data)
        return digest

    def fetch(self, digest: str, dest: Path) -> None:
        what = f"blob sha256:{digest}"
        body = self._call("get_object", what, Key=self._blob(digest))["Body"]
        try:
            with body, atomic_writer(dest) as out:
                hasher = hashlib.sha256()
                for block in iter(lambda: body.read(CHUNK), b""):
                    hasher.update(block)
                    out.write(block)
                verify(self.location, digest, hasher.hexdigest())
        except OSError as exc:
            raise StoreError(f"store {self.location}: {what}: {exc}", "try again") from None

    def read_bytes(self, digest: str) -> bytes:
        data = self._read(self._blob(digest), f"blob sha256:{digest}")
        verify(self.location, digest, hashlib.sha256(data).hexdigest())
        return data

    def set_name(self, name: str, digest: str) -> None:
        check_name(name)
        body = wire.format_ref(check_digest(digest)).encode()
        self._call(
            "put_object", f"function {name!r}", Key=self._key(f"functions/{name}"), Body=body
        )

    def get_name(self, name: str) -> str:
        check_name(name)
        text = self._read(self._key(f"functions/{name}"), f"function {name!r}").decode()
        return name_digest(text, self.location, name)

    def delete_name(self, name: str) -> None:
        """Remove function ``name`` (its blobs stay: other functions may share them)."""
        check_name(name)
        self._call("delete_object", f"function {name!r}", Key=self._key(f"functions/{name}"))

    def names(self) -> list[str]:
        prefix = self._key("functions/")
        pages = self._call("get_paginator", "the function list", operation_name="list_objects_v2")
        found = []
        try:
            for page in pages.paginate(Bucket=self.bucket, Prefix=prefix):
                found += [item["Key"][len(prefix) :] for item in page.get("Contents", [])]
        except Exception as exc:
            raise _error(exc, self.location, "the function list") from None
        return sorted(n for n in found if wire.is_function_name(n))

    def _read(self, key: str, what: str) -> bytes:
        with self._call("get_object", what, Key=key)["Body"] as body:
            return body.read()  # type: ignore[no-any-return]

    def _call(self, method: str, what: str, **kwargs: Any) -> Any:
        if method == "get_paginator":
            return self.client.get_paginator(kwargs["operation_name"])
        try:
            return getattr(self.client, method)(Bucket=self.bucket, **kwargs)
        except Exception as exc:  # botocore's errors; boto3 is imported lazily
            raise _error(exc, self.location, what) from None

    def _key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def _blob(self, digest: str) -> str:
        check_digest(digest)
        return self._key(f"blobs/sha256/{digest}")


def _error(exc: Exception, location: str, what: str) -> StoreError:
    """A botocore error as ours: not found, auth failed, no credentials, unreachable."""
    error = getattr(exc, "response", None)
    code = str(error.get("Error", {}).get("Code", "")) if isinstance(error, dict) else ""
    where = f"store {location}: {what}"
    if code in _MISSING:
        return BlobNotFoundError(f"{where}: not found", "push it first")
    if code == "NoSuchBucket":
        return StoreError(f"{where}: the bucket does not exist", "create it, or fix the URL")
    if code in _AUTH:
        return StoreAuthError(f"{where}: access denied ({code})", "check the AWS credentials")
    if type(exc).__name__ == "NoCredentialsError":
        return StoreAuthError(f"{where}: no AWS credentials", "configure them as for the AWS CLI")
    cause = f"{code}: {exc}" if code else str(exc) or type(exc).__name__
    return StoreError(f"{where}: {cause}", "check that the store is up and reachable")
