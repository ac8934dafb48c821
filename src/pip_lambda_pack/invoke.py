"""The tool's side of ``invoke``: check the event and the host, then run the shim.

The function runs in a fresh interpreter through ``shim.py``, exactly as it would run in
a Lambda runtime, so nothing of this process (our imports, our sys.path) leaks into it.
This module is an edge: it reads the host's Python version and machine, on purpose.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from .errors import InterpreterNotFoundError, InvokeError, TargetError
from .interpreters import MACHINES, find_interpreter
from .manifest import parse_task
from .store import BlobStore, LocalStore, open_store
from .target import ARCHES, TARGETS, Target, get_target

SHIM = Path(__file__).resolve().with_name("shim.py")
WIRE = SHIM.with_name("wire.py")
SHIPPED = (SHIM, WIRE)  # the shim runs from these two files side by side ...
_BEGIN = "# --- wire.py: begin ---\n"
_END = "# --- wire.py: end ---\n"


def invoke(
    *,
    store_url: str,
    base_dir: Path,
    name: str,
    event: bytes,
    python: str | None,
    target: Target | None,
    cache_dir: Path | None,
    cache_max_bytes: int | None = None,
    configured_python: Mapping[str, str] | None = None,
) -> int:
    """Run function ``name`` from the store on ``event``; the shim's exit code.

    With ``python`` None the function runs on an interpreter of the target (given, or the
    one the function was built for): this one when it fits, else the one the target
    interpreter lookup finds (``configured_python``, the project's ``python`` key; then
    ``python3.X`` on PATH, then pyenv). The result goes to stdout, provisioning figures and
    errors to stderr, as the shim writes them.
    """
    check_event(event)
    store = open_store(store_url, base_dir)
    if python is None:
        python = target_interpreter(target or stored_target(store, name), configured_python)
    command = shim_command(name, python, cache_dir)
    if cache_max_bytes is not None and "LAMBDA_PACK_CACHE_MAX_BYTES" not in os.environ:
        command += ["--cache-max-bytes", str(cache_max_bytes)]  # the environment wins
    env = {**os.environ, "LAMBDA_PACK_STORE": shim_store(store, store_url)}
    try:
        done = subprocess.run(command, input=event, check=False, env=env)
    except OSError as exc:
        raise InvokeError(
            f"cannot run {command[0]}: {exc}", "pass --python PATH to an existing interpreter"
        ) from None
    return done.returncode if done.returncode >= 0 else 1


def check_event(event: bytes) -> None:
    """InvokeError unless ``event`` is a JSON document."""
    try:
        json.loads(event)
    except ValueError as exc:
        raise InvokeError(
            f"event is not JSON: {exc}", "pass a JSON document with --event FILE or -"
        ) from None


def stored_target(store: BlobStore, name: str) -> Target:
    """The target function ``name`` was built for, from its task manifest in the store."""
    digest = store.get_name(name)
    task = parse_task(store.read_bytes(digest), f"task manifest of {name}")
    return get_target(task.target)


def target_interpreter(target: Target, configured: Mapping[str, str] | None = None) -> str:
    """This interpreter when it can load the target's wheels, else one the lookup finds."""
    try:
        check_host(target)
        return sys.executable
    except TargetError as host_error:
        try:
            return str(find_interpreter(target, configured=configured).path)
        except InterpreterNotFoundError as exc:
            raise TargetError(f"{host_error.message}, and {exc.message}", host_error.tip) from None


def check_host(target: Target) -> None:
    """TargetError unless this interpreter has the target's Python version and machine."""
    version = sys.version_info[:2]
    machine = platform.machine()
    machine = MACHINES.get(machine.lower(), machine)
    if (version, machine) == (target.python_version, target.machine):
        return
    host = "%d.%d" % version
    arch = next((a for a, m in ARCHES.items() if m == machine), machine)
    own = f"python{host}-{arch}"
    raise TargetError(
        f"this Python ({host}, {machine}) cannot load wheels for {target.name}",
        f"pass --python PATH to a Python {target.python} on {target.machine}"
        + f" (or install one: pyenv install {target.python})"
        + (f", or build for {own}" if own in TARGETS else ""),
    )


def shim_store(store: BlobStore, url: str) -> str:
    """The store as the shim reads it: a local store by absolute path, else the URL.

    It goes to the shim in $LAMBDA_PACK_STORE, not on the command line, so credentials
    in a URL stay out of process listings.
    """
    if isinstance(store, LocalStore):
        return str(store.root.resolve())
    return url


def shim_command(name: str, python: str, cache_dir: Path | None) -> list[str]:
    """``python shim.py --name ... --event -`` (the store comes in $LAMBDA_PACK_STORE)."""
    command = [python, str(SHIM), "--name", name, "--event", "-"]
    if cache_dir is not None:
        command += ["--cache", str(cache_dir)]
    return command


def shim_source() -> str:
    """... or from this one file: shim.py with wire.py inlined between its markers.

    Standard library only, Python 3.10 to 3.14, so a layer, a code zip or /tmp can carry
    it as ``shim.py`` and run it with ``python shim.py`` (or import it) where nothing else
    of this package is installed.
    """
    shim = SHIM.read_text(encoding="utf-8")
    head, rest = shim.split(_BEGIN, 1)
    _, tail = rest.split(_END, 1)
    wire = WIRE.read_text(encoding="utf-8")
    body = wire.split("from __future__ import annotations\n", 1)[1].strip()
    return f"{head}# wire.py, inlined by pip-lambda-pack\n{body}\n# end of wire.py\n{tail}"
