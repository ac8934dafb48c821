"""The finder's shared machinery: the make-once memo and the lazily started pool."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from pip_lambda_pack.workers import OnceMemo, Workers


def test_a_value_is_made_once_however_many_threads_ask_at_once() -> None:
    memo: OnceMemo[str, int] = OnceMemo()
    started = threading.Event()
    release = threading.Event()
    calls: list[str] = []

    def build() -> int:
        calls.append("built")
        started.set()
        release.wait(5)
        return 42

    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(memo.make("k", build))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    assert started.wait(5)
    release.set()
    for thread in threads:
        thread.join(5)
    assert calls == ["built"]
    assert results == [42] * 8
    assert memo.get("k") == 42 and "k" in memo


def test_a_failure_is_not_kept_and_the_next_ask_makes_it_again() -> None:
    memo: OnceMemo[str, str] = OnceMemo()

    def fail() -> str:
        raise OSError("network down")

    with pytest.raises(OSError, match="network down"):
        memo.make("k", fail)
    assert memo.get("k") is None and "k" not in memo
    assert memo.make("k", lambda: "ok") == "ok"
    assert memo.make("k", fail) == "ok"  # made: not asked of ``build`` again


def test_follow_ups_run_while_open_and_are_dropped_once_closed() -> None:
    workers = Workers()
    ran = threading.Event()
    workers.submit_if_open(ran.set)  # never started: nothing to follow up
    assert not ran.is_set()
    workers.pool().submit(lambda: None).result(5)
    workers.submit_if_open(ran.set)
    assert ran.wait(5)
    workers.close()
    late = threading.Event()
    workers.submit_if_open(late.set)
    assert not late.is_set()


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no affinity masks here")
def test_usable_cpus_follows_the_affinity_mask_not_the_machine() -> None:
    code = (
        "import os; from pip_lambda_pack.workers import usable_cpus;"
        " os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); print(usable_cpus())"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "1"
