"""Lambda handler of a shim-delivered function: provision its task into /tmp, call its handler.

Standard library only (it ships in the bootstrap layer beside the shim, Python 3.10 to
3.14). ``deploy`` points the function's ``Handler`` at ``pip_lambda_pack.wrapper.handler``
and names its store and task in environment variables:

    LAMBDA_PACK_STORE         the store URL (s3://BUCKET/PREFIX or oci://HOST/REPO)
    LAMBDA_PACK_TASK          the function's name in the store
    LAMBDA_PACK_TASK_SHA256   the task manifest deployed (pinned: a later push of the same
                              name does not change a deployed function)
    LAMBDA_PACK_CACHE         optional; the cache directory (default /tmp/lambda-pack-cache)

At the first call of an execution environment (the cold start) the shim fetches and
verifies the function's code and layers into the cache and the real handler is imported;
every call after that goes straight to it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from . import shim

STORE_ENV = "LAMBDA_PACK_STORE"
TASK_ENV = "LAMBDA_PACK_TASK"
DIGEST_ENV = "LAMBDA_PACK_TASK_SHA256"
HANDLER = "pip_lambda_pack.wrapper.handler"

_loaded: Callable[..., Any] | None = None


class PinnedReader:
    """A StoreReader whose task manifest is the one named by digest, whatever the store's name."""

    def __init__(self, reader: shim.StoreReader, digest: str) -> None:
        self.reader = reader
        self.digest = digest
        self.location = reader.location

    def manifest_digest(self, name: str) -> str:
        return self.digest

    def open_blob(self, digest: str) -> BinaryIO:
        return self.reader.open_blob(digest)


def load(environ: Mapping[str, str]) -> Callable[..., Any]:
    """Provision the task named in ``environ`` and return its real handler."""
    try:
        store, name = environ[STORE_ENV], environ[TASK_ENV]
    except KeyError as exc:
        raise RuntimeError(
            f"${exc.args[0]} is not set: this function was not deployed by pip-lambda-pack deploy"
        ) from None
    reader: shim.StoreReader = shim.open_reader(store)
    if environ.get(DIGEST_ENV):
        reader = PinnedReader(reader, environ[DIGEST_ENV])
    cache_root = Path(environ.get("LAMBDA_PACK_CACHE") or shim.DEFAULT_CACHE).resolve()
    cache = shim.Cache(cache_root, shim.cache_cap(None))
    task = shim.read_task(reader, name)
    paths, stats = shim.provision(task, reader, cache)
    print(stats.line(), file=sys.stderr, flush=True)
    os.chdir(paths[0])  # the handler sees its own code as the working directory
    return shim.load_handler(task.handler, paths)


def handler(event: Any, context: Any) -> Any:
    """Lambda's entry point: the real handler's result for ``event``."""
    global _loaded
    if _loaded is None:
        try:
            _loaded = load(os.environ)
        except shim.ShimError as exc:
            raise RuntimeError(f"{exc.message} (TIP: {exc.tip})") from None
    return _loaded(event, context)
