"""The tool's one retry loop for network calls (the index client and the remote stores).

An attempt is tried again only on the exceptions the caller names as transient (connection
errors, a ``ServerError`` for a 5xx), after an exponential back-off; the last failure is
raised as it is, so each caller maps it to its own error once. The runtime shim keeps its
own loop: it must stay stdlib-only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
RetryHook = Callable[[int, BaseException], None]


class ServerError(Exception):
    """A 5xx answer, raised inside one attempt so that ``retried`` tries again."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def retried(
    attempt: Callable[[], T],
    *,
    transient: tuple[type[BaseException], ...],
    tries: int,
    backoff_s: float,
    on_retry: RetryHook | None = None,
) -> T:
    """``attempt()``, up to ``tries`` times while it raises one of ``transient``.

    Sleeps ``backoff_s`` before the second try, doubled before each later one, and calls
    ``on_retry(number of the failed try, its exception)`` first. The last try's exception
    propagates unchanged; any other exception propagates at once.
    """
    for number in range(1, tries + 1):
        try:
            return attempt()
        except transient as exc:
            if number == tries:
                raise
            if on_retry is not None:
                on_retry(number, exc)
            time.sleep(backoff_s * 2 ** (number - 1))
    raise AssertionError("tries must be at least 1")
