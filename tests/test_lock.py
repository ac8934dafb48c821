"""lambda-pack.lock: deterministic TOML, portable paths, freshness."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from pip_lambda_pack.config import PlannerOptions, load_project
from pip_lambda_pack.errors import LockError
from pip_lambda_pack.graph import Pin
from pip_lambda_pack.lock import (
    Lock,
    LockedFunction,
    input_parts,
    inputs_digest,
    planner_staleness,
    read_lock,
    resolution_staleness,
    staleness,
    to_toml,
    write_lock,
)


def project_at(root: Path, requirement: str = "six>=1"):  # type: ignore[no-untyped-def]
    (root / "src").mkdir(parents=True, exist_ok=True)
    (root / "wheels").mkdir(exist_ok=True)
    (root / "reqs.txt").write_text(f"-f wheels\n{requirement}\n")
    (root / "lambda-pack.toml").write_text(
        '[functions.api]\nhandler = "app.handler"\ncode = "src"\nrequirements = "reqs.txt"\n'
    )
    return load_project(root / "lambda-pack.toml")


def sample_lock(root: Path, inputs: str) -> Lock:
    local = Pin(
        name="six",
        version="1.16.0",
        filename="six-1.16.0-py2.py3-none-any.whl",
        url=(root / "wheels" / "six-1.16.0-py2.py3-none-any.whl").resolve().as_uri(),
        sha256="1" * 64,
        size=11053,
        unpacked_size=34000,
    )
    remote = replace(
        local,
        name="attrs",
        version="23.1.0",
        filename="attrs-23.1.0-py3-none-any.whl",
        url="https://files.example/attrs-23.1.0-py3-none-any.whl",
        requires=("six",),
    )
    return Lock(
        target="python3.12-x86_64",
        inputs=inputs,
        strategy="single",
        max_layers=5,
        wheels={remote.id: remote, local.id: local},
        functions={"api": LockedFunction(pins=(remote.id, local.id), layers=("Labc",))},
        layers={"Labc": (remote.id, local.id)},
    )


def test_round_trip_with_portable_paths(tmp_path: Path) -> None:
    project = project_at(tmp_path)
    lock = sample_lock(tmp_path, inputs_digest(project, "single"))
    write_lock(lock, project.lock_path)
    text = project.lock_path.read_text()
    assert 'url = "wheels/six-1.16.0-py2.py3-none-any.whl"' in text
    assert str(tmp_path) not in text
    assert read_lock(project.lock_path) == lock


def test_same_lock_same_bytes_in_another_directory(tmp_path: Path) -> None:
    one, two = project_at(tmp_path / "one"), project_at(tmp_path / "two")
    text_one = to_toml(sample_lock(one.root, inputs_digest(one, "single")), one.root)
    text_two = to_toml(sample_lock(two.root, inputs_digest(two, "single")), two.root)
    assert text_one == text_two
    assert text_one.index("[[wheels]]") < text_one.index('name = "attrs"')
    assert text_one.index('name = "attrs"') < text_one.index('name = "six"')


def test_staleness_names_what_changed(tmp_path: Path) -> None:
    project = project_at(tmp_path)
    lock = sample_lock(tmp_path, inputs_digest(project, "single"))
    assert staleness(lock, project, "single") is None
    assert staleness(lock, project, "popularity-topk") == (
        "requirements, index options or planner settings changed"
    )
    changed = project_at(tmp_path, "six>=1.16")
    assert staleness(lock, changed, "single") is not None
    assert staleness(lock, replace(project, target="python3.13-x86_64"), "single") == (
        "the lock is for python3.12-x86_64, the project targets python3.13-x86_64"
    )


def test_planner_settings_apart_from_what_decides_the_wheels(tmp_path: Path) -> None:
    project = project_at(tmp_path)
    lock = replace(
        sample_lock(tmp_path, inputs_digest(project, "single")),
        input_parts=input_parts(project, "single"),
    )
    assert resolution_staleness(lock, project, "single") is None
    assert planner_staleness(lock, project, "single") is None
    slower = replace(project, planner=PlannerOptions(values={"latency-ms": 50.0}), max_layers=4)
    assert resolution_staleness(lock, slower, "nixery") is None  # its wheels can be planned again
    assert planner_staleness(lock, slower, "nixery") == (
        "max-layers changed; planner setting latency-ms changed; strategy changed"
    )
    assert staleness(lock, slower, "nixery") == planner_staleness(lock, slower, "nixery")
    changed = replace(project_at(tmp_path, "six>=1.16"), max_layers=4)
    assert resolution_staleness(lock, changed, "single") == "reqs.txt changed; max-layers changed"
    assert planner_staleness(lock, changed, "single") == "max-layers changed"
    old = replace(lock, input_parts={})  # a lock from before input-parts
    assert resolution_staleness(old, slower, "nixery") is not None
    assert planner_staleness(old, slower, "nixery") == "planner settings may have changed"


def test_comments_do_not_make_the_lock_stale(tmp_path: Path) -> None:
    project = project_at(tmp_path)
    digest = inputs_digest(project, "single")
    (tmp_path / "reqs.txt").write_text("# a comment\n-f wheels\nsix>=1   # why\n")
    assert inputs_digest(load_project(tmp_path / "lambda-pack.toml"), "single") == digest


def test_bad_lock_files(tmp_path: Path) -> None:
    with pytest.raises(LockError, match="no lock file at"):
        read_lock(tmp_path / "lambda-pack.lock")
    (tmp_path / "lambda-pack.lock").write_text("version = 99\n")
    with pytest.raises(LockError, match="lock version 99 is not 1"):
        read_lock(tmp_path / "lambda-pack.lock")
    (tmp_path / "lambda-pack.lock").write_text("version = 1\n")
    with pytest.raises(LockError, match="malformed lock"):
        read_lock(tmp_path / "lambda-pack.lock")
