"""Fork servers ("zygotes"): environments forked from a warm interpreter, not started anew.

A cold start through ``python bootstrap.py`` pays for the process's start, the interpreter's
start-up and ``site``, and the import of bootstrap and the shim before the function's own
work begins. A zygote (``zygote.py``, one per target interpreter, started by the service)
has done all of that once: each environment is a ``fork()`` of it that takes its
environment variables, working directory and output pipe, then runs ``bootstrap.main()``.

The exec path stays for what a fork cannot give: an interpreter whose start-up would differ
(a function whose environment sets ``PYTHON*``, ``LD_*``, ``MALLOC_*``, ``LC_*``, ``LANG`` or
``HOME``, read once at start-up), and a zygote that cannot start (then one warning).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from .. import zygote

ZYGOTE = Path(zygote.__file__).resolve()
START_TIMEOUT_S = 10.0
_STARTUP_PREFIXES = ("PYTHON", "LD_", "MALLOC_", "LC_")
_STARTUP_NAMES = frozenset({"LANG", "HOME", "PYTHONUNBUFFERED"})


def startup_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The variables of ``env`` an interpreter or the dynamic loader reads at start-up."""
    return {k: v for k, v in env.items() if k in _STARTUP_NAMES or k.startswith(_STARTUP_PREFIXES)}


class ZygoteUnavailable(OSError):
    """The zygote could not start, or went away."""


class Forked:
    """A process a zygote forked, as ``asyncio.subprocess.Process`` is used: ``pid``,
    ``returncode`` and ``wait()`` (the zygote reports its exit status)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._ended = asyncio.get_running_loop().create_future()

    async def wait(self) -> int:
        return int(await asyncio.shield(self._ended))

    def ended(self, code: int) -> None:
        if self.returncode is None:
            self.returncode = code
            self._ended.set_result(code)


class Zygote:
    """One zygote process and the socket to it."""

    def __init__(self, python: str, env: Mapping[str, str]) -> None:
        self.python = python
        self.env = dict(env)
        self.process: asyncio.subprocess.Process | None = None
        self.sock: socket.socket | None = None
        self.ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.requests: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.children: dict[int, Forked] = {}
        self.next_id = 0

    @property
    def alive(self) -> bool:
        return self.sock is not None

    async def start(self) -> None:
        """Start the process and wait until it has imported bootstrap; else ZygoteUnavailable."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.process = await asyncio.create_subprocess_exec(
                self.python,
                str(ZYGOTE),
                str(theirs.fileno()),
                env=self.env,
                cwd="/",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,  # Ctrl-C and serve's signals are not its
            )
        except OSError as exc:
            ours.close()
            raise ZygoteUnavailable(f"cannot run {self.python}: {exc.strerror or exc}") from None
        finally:
            theirs.close()
        ours.setblocking(False)
        self.sock = ours
        asyncio.get_running_loop().add_reader(ours.fileno(), self._readable)
        try:
            await asyncio.wait_for(asyncio.shield(self.ready), START_TIMEOUT_S)
        except (asyncio.TimeoutError, ZygoteUnavailable) as exc:
            await self.close()
            raise ZygoteUnavailable(f"it did not start ({exc or 'timed out'})") from None

    async def spawn(self, env: Mapping[str, str], cwd: str, argv: list[str], output: int) -> Forked:
        """Fork an environment whose stdout and stderr are ``output``."""
        if self.sock is None:
            raise ZygoteUnavailable("it has ended")
        self.next_id += 1
        ident = self.next_id
        request = {"op": "spawn", "id": ident, "env": dict(env), "cwd": cwd, "argv": argv}
        answer = asyncio.get_running_loop().create_future()
        self.requests[ident] = answer
        try:
            socket.send_fds(self.sock, [json.dumps(request).encode()], [output])
        except OSError as exc:
            self.requests.pop(ident, None)
            raise ZygoteUnavailable(f"cannot send to it: {exc}") from None
        reply = await answer
        if "pid" not in reply:
            raise ZygoteUnavailable(str(reply.get("error", "no pid")))
        return self.children[int(reply["pid"])]

    def _readable(self) -> None:
        while self.sock is not None:
            try:
                data = self.sock.recv(1 << 16)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._lost()
                return
            with contextlib.suppress(ValueError, KeyError, TypeError):
                self._message(json.loads(data))

    def _message(self, message: dict[str, Any]) -> None:
        if "exit" in message:
            child = self.children.pop(int(message["exit"]), None)
            if child is not None:
                child.ended(int(message["code"]))
        elif "ready" in message and not self.ready.done():
            self.ready.set_result(message)
        elif "id" in message:
            if "pid" in message:
                self.children[int(message["pid"])] = Forked(int(message["pid"]))
            answer = self.requests.pop(int(message["id"]), None)
            if answer is not None and not answer.done():
                answer.set_result(message)

    def _lost(self) -> None:
        """The zygote ended: its children were killed with it (and their groups are now)."""
        if self.sock is not None:
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None
        gone = ZygoteUnavailable("it has ended")
        for answer in self.requests.values():
            if not answer.done():
                answer.set_exception(gone)
        self.requests.clear()
        if not self.ready.done():
            self.ready.set_exception(gone)
        for pid, child in self.children.items():
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
            child.ended(-signal.SIGKILL)
        self.children.clear()

    async def close(self) -> None:
        """End the zygote: closing its socket makes it kill its children's groups and exit."""
        self._lost()
        if self.process is not None and self.process.returncode is None:
            try:
                await asyncio.wait_for(self.process.wait(), 2.0)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                await self.process.wait()


class Zygotes:
    """The zygote of each interpreter: started when first needed (or ahead, by ``warm``);
    ``None`` from ``get`` means "start this environment as a new process"."""

    def __init__(self, env: Mapping[str, str], enabled: bool, warn: Callable[[str], None]) -> None:
        self.env = startup_environment(env)
        self.enabled = enabled
        self.warn = warn
        self.zygotes: dict[str, Zygote] = {}
        self.starting: dict[str, asyncio.Task[Zygote | None]] = {}
        self.failed: set[str] = set()

    def fits(self, env: Mapping[str, str]) -> bool:
        """Whether an environment with these variables starts the same from a fork."""
        return self.enabled and startup_environment(env) == self.env

    async def warm(self, pythons: Iterable[str]) -> None:
        await asyncio.gather(*(self.get(python) for python in set(pythons)))

    async def get(self, python: str) -> Zygote | None:
        if not self.enabled or python in self.failed:
            return None
        zygote = self.zygotes.get(python)
        if zygote is not None and zygote.alive:
            return zygote
        task = self.starting.get(python)
        if task is None:
            task = asyncio.ensure_future(self._start(python))
            self.starting[python] = task
        return await asyncio.shield(task)

    async def _start(self, python: str) -> Zygote | None:
        zygote = Zygote(python, {**self.env, "PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        try:
            await zygote.start()
        except OSError as exc:
            self.fail(python, str(exc))
            return None
        finally:
            self.starting.pop(python, None)
        self.zygotes[python] = zygote
        return zygote

    def fail(self, python: str, why: str) -> None:
        """No zygote for ``python`` from now on: one warning, then the exec path."""
        if python not in self.failed:
            self.failed.add(python)
            self.warn(
                f"serve: warning: no fork server for {python} ({why}); its environments "
                "start as new processes"
            )

    async def close(self) -> None:
        for task in list(self.starting.values()):
            task.cancel()
        await asyncio.gather(*(z.close() for z in self.zygotes.values()))
        self.zygotes.clear()
