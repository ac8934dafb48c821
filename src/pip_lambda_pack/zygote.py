"""A fork server for ``serve``'s environments: one interpreter that forks one per cold start.

Standard library only, Linux, Python 3.10 to 3.14, beside ``bootstrap.py``. ``serve`` starts
``python zygote.py FD`` once per target interpreter, FD a Unix ``SOCK_SEQPACKET`` socket.
The zygote imports ``bootstrap`` (and with it the shim: no function's code or dependencies),
says it is ready, then answers requests, one JSON message each:

- ``{"op": "spawn", "id": N, "env": {...}, "cwd": "/", "argv": [...]}`` with one file
  descriptor (SCM_RIGHTS), the child's stdout and stderr: it forks a child, answers
  ``{"id": N, "pid": PID}`` (or ``{"id": N, "error": "..."}``), and the child becomes what
  ``python bootstrap.py`` would be: its own process group, that environment, that working
  directory, stdin from /dev/null, then ``bootstrap.main()`` and the interpreter's normal exit;
- when a child ends: ``{"exit": PID, "code": CODE}`` (a signal as ``-N``, as ``subprocess``).

It dies with ``serve``: when the socket closes (``serve`` exited, even by SIGKILL) it kills
every child's process group and exits; each child has ``PR_SET_PDEATHSIG`` = SIGKILL, so a
zygote that is killed takes its children with it. It is single-threaded (it forks).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import os
import select
import signal
import socket
import sys
import time
from typing import Any

try:
    from . import bootstrap
except ImportError:  # run as a script, as serve runs it: bootstrap.py is beside this file
    import bootstrap  # type: ignore[no-redef,import-not-found,unused-ignore]

MAX_MESSAGE = 1 << 20
PR_SET_PDEATHSIG = 1


class Child:
    """What a forked child needs to become an environment."""

    def __init__(self, request: dict[str, Any], output: int, zygote: int) -> None:
        self.request = request
        self.env = {str(k): str(v) for k, v in request["env"].items()}
        for name in ("LC_CTYPE",):  # set by the interpreter's start-up (PEP 538), as it would
            if name in os.environ:  # be in a new process of the same start-up variables
                self.env.setdefault(name, os.environ[name])
        self.output = output
        self.zygote = zygote

    def become(self, prctl: Any) -> None:
        """Run from the fork: this process becomes what ``python bootstrap.py`` would be."""
        os.setpgid(0, 0)  # its own process group (the zygote sets it too: no race)
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != self.zygote:  # the zygote died before the line above
            os._exit(1)
        os.dup2(self.output, 1)
        os.dup2(self.output, 2)
        os.close(self.output)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.environ.clear()
        os.environ.update(self.env)
        time.tzset()  # TZ is read again; the interpreter read nothing else of it yet
        os.chdir(self.request["cwd"])
        sys.argv = [str(a) for a in self.request["argv"]]


class Zygote:
    """The fork loop: requests on the socket, children's exits on SIGCHLD."""

    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.children: set[int] = set()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        os.set_blocking(self.wake_r, False)

    def serve(self) -> Child | None:
        """Answer requests until the socket closes (None), or, in a child, its request."""
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        gc.freeze()  # what is loaded now stays out of the children's collections (and pages)
        self._send({"ready": os.getpid(), "python": list(sys.version_info[:3])})
        control = self.control.fileno()
        while True:
            readable, _, _ = select.select([control, self.wake_r], [], [])
            if self.wake_r in readable:
                self._reap()
            if control in readable:
                message, fds, _, _ = socket.recv_fds(self.control, MAX_MESSAGE, 4)
                if not message:
                    self._end()
                    return None
                child = self._request(message, fds)
                if child is not None:
                    return child

    def _request(self, message: bytes, fds: list[int]) -> Child | None:
        try:
            request = json.loads(message)
            ident = request["id"]
        except (ValueError, KeyError, TypeError):
            for fd in fds:
                os.close(fd)
            return None
        if request.get("op") != "spawn" or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            self._send({"id": ident, "error": "bad request"})
            return None
        return self._fork(request, fds[0])

    def _fork(self, request: dict[str, Any], output: int) -> Child | None:
        zygote = os.getpid()
        try:
            pid = os.fork()
        except OSError as exc:
            os.close(output)
            self._send({"id": request["id"], "error": f"fork: {exc}"})
            return None
        if pid == 0:
            self._leave()
            return Child(request, output, zygote)
        os.close(output)
        with contextlib.suppress(OSError):  # the child did it first, or is gone already
            os.setpgid(pid, pid)
        self.children.add(pid)
        self._send({"id": request["id"], "pid": pid})
        return None

    def _leave(self) -> None:
        """In the child: nothing of the zygote's loop stays open or installed."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self.control.close()
        os.close(self.wake_r)
        os.close(self.wake_w)

    def _reap(self) -> None:
        try:
            while os.read(self.wake_r, 512):
                pass
        except BlockingIOError:
            pass
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            self.children.discard(pid)
            self._send({"exit": pid, "code": os.waitstatus_to_exitcode(status)})

    def _send(self, data: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):  # serve is gone: the next read sees it closed
            self.control.send(json.dumps(data).encode())

    def _end(self) -> None:
        """``serve`` is gone: every child's process group ends with it."""
        for pid in self.children:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
        for _ in self.children:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                break


def main() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = int(sys.argv[1])
    os.closerange(3, fd)  # nothing of what started it (uvloop leaves some) reaches a child
    os.closerange(fd + 1, 1 << 20)
    control = socket.socket(fileno=fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is serve's to handle
    child = Zygote(control).serve()
    if child is None:
        return 0
    signal.signal(signal.SIGINT, signal.default_int_handler)
    child.become(libc.prctl)
    return int(bootstrap.main())


if __name__ == "__main__":
    sys.exit(main())
