"""The dependency graph of pinned wheels."""

from __future__ import annotations

import subprocess
import sys

from pip_lambda_pack.graph import (
    Pin,
    build_graph,
    closure,
    pin_graph,
    pins,
    render_tree,
    roots,
    to_json,
)


def pin(name: str, version: str = "1.0", requires: tuple[str, ...] = (), size: int = 1000) -> Pin:
    return Pin(
        name=name,
        version=version,
        filename=f"{name}-{version}-py3-none-any.whl",
        url=f"https://files.example/{name}-{version}-py3-none-any.whl",
        sha256=name[0] * 64,
        size=size,
        unpacked_size=size * 3,
        requires=requires,
    )


def fleet() -> dict[str, list[Pin]]:
    return {
        "api": [pin("requests", requires=("idna", "urllib3")), pin("idna"), pin("urllib3", "2.0")],
        "jobs": [pin("boto", requires=("urllib3",)), pin("urllib3", "1.26")],
    }


def test_nodes_edges_and_per_function_closures() -> None:
    graph = build_graph(fleet())
    assert sorted(graph.nodes) == [
        "boto==1.0",
        "idna==1.0",
        "requests==1.0",
        "urllib3==1.26",
        "urllib3==2.0",
    ]
    assert sorted(graph.edges) == [
        ("boto==1.0", "urllib3==1.26"),
        ("requests==1.0", "idna==1.0"),
        ("requests==1.0", "urllib3==2.0"),
    ]
    assert [p.id for p in closure(graph, "jobs")] == ["boto==1.0", "urllib3==1.26"]
    assert roots(graph, "api") == ["requests==1.0"]


def test_cycle_still_has_a_root() -> None:
    graph = build_graph({"f": [pin("a", requires=("b",)), pin("b", requires=("a",))]})
    assert roots(graph, "f") == ["a==1.0"]


def test_tree_and_json() -> None:
    graph = build_graph(fleet())
    assert render_tree(graph, "api") == [
        "api",
        "  requests==1.0 (1.0 kB)",
        "    idna==1.0 (1.0 kB)",
        "    urllib3==2.0 (1.0 kB)",
    ]
    data = to_json(graph)
    assert data["functions"]["jobs"] == {
        "roots": ["boto==1.0"],
        "closure": ["boto==1.0", "urllib3==1.26"],
    }
    assert data["packages"]["idna==1.0"]["unpacked_size"] == 3000
    assert ["requests==1.0", "idna==1.0"] in data["edges"]


def test_pin_graph_holds_what_build_graph_holds() -> None:
    closures = {
        **fleet(),
        "cron": [pin("boto", requires=("urllib3", "idna")), pin("urllib3", "2.0"), pin("idna")],
    }
    plain, graph = pin_graph(closures), build_graph(closures)
    assert plain.pins == pins(graph)
    assert {pid: tuple(sorted(graph.successors(pid))) for pid in graph.nodes} == plain.requires
    assert plain.requires["boto==1.0"] == ("idna==1.0", "urllib3==1.26", "urllib3==2.0")
    assert {n: list(ids) for n, ids in plain.functions.items()} == graph.graph["functions"]


def test_graph_module_does_not_import_networkx() -> None:
    code = "import sys, pip_lambda_pack.graph; print('networkx' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr
