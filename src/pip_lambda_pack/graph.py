"""The dependency graph: a networkx DiGraph of pinned wheels, for one function or a fleet.

Nodes are pin ids (``name==version``) carrying a ``Pin`` under the ``pin`` attribute;
an edge ``a -> b`` means ``a`` requires ``b``. ``graph.graph["functions"]`` maps each
function name to the sorted pin ids of its whole closure, because two functions may pin
different versions of a shared dependency and a closure is per function, not per node.

``pin_graph`` gives the same facts as plain data: the lock path plans from it without
importing networkx (~60 ms), which only the ``graph`` output and the nixery planner need.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .units import human_size

if TYPE_CHECKING:  # imported by build_graph: the lock path never needs it
    import networkx as nx


@dataclass(frozen=True, slots=True, kw_only=True)
class Pin:
    """One pinned wheel with everything the planner and the builder need."""

    name: str  # canonical
    version: str
    filename: str
    url: str
    sha256: str
    size: int  # compressed bytes of the wheel
    unpacked_size: int  # bytes once extracted
    requires: tuple[str, ...] = ()  # canonical names of its dependencies
    sdist: bool = False  # the file is an sdist built into a pure wheel at build time

    @property
    def id(self) -> str:
        return f"{self.name}=={self.version}"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "filename": self.filename,
            "url": self.url,
            "sha256": self.sha256,
            "size": self.size,
            "unpacked_size": self.unpacked_size,
            "requires": list(self.requires),
        }
        if self.sdist:
            data["sdist"] = True
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class PinGraph:
    """The fleet graph as plain data: exactly the nodes, edges and closures of build_graph."""

    pins: Mapping[str, Pin]  # pin id -> pin, sorted by id
    requires: Mapping[str, tuple[str, ...]]  # pin id -> the pin ids it requires, sorted
    functions: Mapping[str, tuple[str, ...]]  # function -> sorted pin ids of its closure


def pin_graph(closures: Mapping[str, Iterable[Pin]]) -> PinGraph:
    """The fleet graph from each function's resolved pins (function name -> its closure).

    A dependency is matched by name within the function's own closure; where two functions
    hold a pin with the same id, the one of the function last in name order is kept.
    """
    found: dict[str, Pin] = {}
    edges: dict[str, set[str]] = {}
    functions: dict[str, tuple[str, ...]] = {}
    for function, members in sorted(closures.items()):
        by_name = {pin.name: pin for pin in members}
        for pin in by_name.values():
            found[pin.id] = pin
            needs = edges.setdefault(pin.id, set())
            needs.update(by_name[d].id for d in pin.requires if d in by_name)
        functions[function] = tuple(sorted(pin.id for pin in by_name.values()))
    return PinGraph(
        pins={pid: found[pid] for pid in sorted(found)},
        requires={pid: tuple(sorted(edges[pid])) for pid in sorted(found)},
        functions=functions,
    )


def build_graph(closures: Mapping[str, Iterable[Pin]]) -> nx.DiGraph:
    """The fleet graph from each function's resolved pins (function name -> its closure)."""
    import networkx as nx

    plain = pin_graph(closures)
    graph = nx.DiGraph()
    for pid, pin in plain.pins.items():
        graph.add_node(pid, pin=pin)
    graph.add_edges_from((pid, dep) for pid, deps in plain.requires.items() for dep in deps)
    graph.graph["functions"] = {name: list(ids) for name, ids in plain.functions.items()}
    return graph


def pins(graph: nx.DiGraph) -> dict[str, Pin]:
    """Every pin in the graph, by id, sorted."""
    return {node: graph.nodes[node]["pin"] for node in sorted(graph.nodes)}


def closure(graph: nx.DiGraph, function: str) -> list[Pin]:
    """The pins one function needs, sorted by id."""
    return [graph.nodes[node]["pin"] for node in graph.graph["functions"][function]]


def roots(graph: nx.DiGraph, function: str) -> list[str]:
    """The pins of a function nothing else in its closure requires (its direct needs)."""
    import networkx as nx

    members = set(graph.graph["functions"][function])
    sub = graph.subgraph(members)
    found = sorted(node for node in members if sub.in_degree(node) == 0)
    reached = set(found).union(*(nx.descendants(sub, node) for node in found))
    for node in sorted(members - reached):  # a cycle nobody outside it requires
        if node not in reached:
            found.append(node)
            reached |= {node} | nx.descendants(sub, node)
    return sorted(found)


def to_json(graph: nx.DiGraph) -> dict[str, Any]:
    """The graph as plain JSON data: packages, edges and function closures, all sorted."""
    return {
        "packages": {node: pin.to_dict() for node, pin in pins(graph).items()},
        "edges": sorted([a, b] for a, b in graph.edges),
        "functions": {
            name: {"roots": roots(graph, name), "closure": members}
            for name, members in sorted(graph.graph["functions"].items())
        },
    }


def render_tree(graph: nx.DiGraph, function: str) -> list[str]:
    """A function's closure as an indented tree, one line per pin, repeats marked ``(*)``."""
    members = set(graph.graph["functions"][function])
    lines = [function]
    seen: set[str] = set()
    stack = [(node, 1) for node in reversed(roots(graph, function))]
    while stack:
        node, depth = stack.pop()
        pin: Pin = graph.nodes[node]["pin"]
        label = f"{'  ' * depth}{node} ({human_size(pin.size)})"
        if node in seen:
            lines.append(label + " (*)")
            continue
        seen.add(node)
        lines.append(label)
        children = sorted(c for c in graph.successors(node) if c in members)
        stack.extend((child, depth + 1) for child in reversed(children))
    return lines
