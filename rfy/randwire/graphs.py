"""Random-graph generators and the paper's mapping from an undirected graph to a DAG.

A generator returns an undirected graph whose node *labels are already the paper's indices*:

* ER(P): every pair joined with probability P; indices are a random permutation of the nodes;
* BA(M): M initial nodes with no edges get indices 0..M-1, each later node gets the next index and
  attaches M edges to distinct earlier nodes, chosen with probability proportional to their degree;
* WS(K, P): a ring where each node is joined to its K/2 neighbours on each side, indices running
  clockwise; then every clockwise edge (u, u + j) is rewired with probability P to a random node
  that is not u and not already joined to u;
* the chain 0 - 1 - ... - N-1 (a baseline, not a generator of the paper).

``to_dag`` points every edge from the lower to the higher index. The DAG's *input nodes* are those
with no predecessor (the stage's input feeds them) and its *output nodes* those with no successor
(the stage's output averages them), so an isolated node is both.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from rfy.errors import ConfigError

Edge = tuple[int, int]


def erdos_renyi(num_nodes: int, p: float, rng: np.random.Generator) -> list[Edge]:
    """ER(P): each of the N(N−1)/2 pairs is an edge with probability P, then the indices are shuffled.

    The shuffle is the paper's rule "ER: indices are assigned in a random order".
    """
    rows, cols = np.triu_indices(num_nodes, k=1)
    keep = rng.random(len(rows)) < p
    order = rng.permutation(num_nodes)
    return [(int(order[u]), int(order[v])) for u, v in zip(rows[keep], cols[keep])]


def barabasi_albert(num_nodes: int, m: int, rng: np.random.Generator) -> list[Edge]:
    """BA(M): start from M nodes without edges; node v = M, …, N−1 attaches M edges to earlier nodes.

    The targets are M distinct nodes drawn with probability $p(u) = d_u / \\sum_w d_w$ (preferential
    attachment); the first new node, when every degree is 0, joins all M initial nodes. Node v has
    index v: "the initial M nodes are assigned indices 1 to M, and all other nodes are indexed
    following their order of adding to the graph".
    """
    degree = np.zeros(num_nodes)
    edges: list[Edge] = []
    for new in range(m, num_nodes):
        weights = degree[:new]
        if weights.sum() == 0:
            targets = np.arange(m)
        else:
            targets = rng.choice(new, size=m, replace=False, p=weights / weights.sum())
        for target in sorted(int(t) for t in targets):
            edges.append((target, new))
            degree[target] += 1
        degree[new] += m
    return edges


def watts_strogatz(num_nodes: int, k: int, p: float, rng: np.random.Generator) -> list[Edge]:
    """WS(K, P): ring lattice with K/2 neighbours per side, each clockwise edge rewired with probability P.

    For j = 1..K/2 and each node u in clockwise order, the edge (u, u + j mod N) is replaced with
    probability P by (u, w), w uniform among the nodes that are neither u nor joined to u (the
    Watts-Strogatz rewiring, as in networkx). Indices run clockwise around the ring.
    """
    neighbours = [set() for _ in range(num_nodes)]
    for j in range(1, k // 2 + 1):
        for u in range(num_nodes):
            v = (u + j) % num_nodes
            neighbours[u].add(v)
            neighbours[v].add(u)
    for j in range(1, k // 2 + 1):
        for u in range(num_nodes):
            v = (u + j) % num_nodes
            if v not in neighbours[u] or rng.random() >= p:
                continue
            choices = [w for w in range(num_nodes) if w != u and w not in neighbours[u]]
            if not choices:
                continue
            w = choices[int(rng.integers(len(choices)))]
            neighbours[u].discard(v)
            neighbours[v].discard(u)
            neighbours[u].add(w)
            neighbours[w].add(u)
    return [(u, v) for u in range(num_nodes) for v in sorted(neighbours[u]) if u < v]


def chain(num_nodes: int) -> list[Edge]:
    """The path 0 - 1 - … - N−1: every node has one input and one output (a baseline)."""
    return [(u, u + 1) for u in range(num_nodes - 1)]


@dataclass(frozen=True)
class DAG:
    """A directed acyclic graph on nodes 0..N−1 whose edges all go from a lower to a higher index."""

    num_nodes: int
    edges: tuple[Edge, ...]

    def __post_init__(self) -> None:
        for u, v in self.edges:
            if not 0 <= u < v < self.num_nodes:
                raise ValueError(f"edge {(u, v)} must satisfy 0 <= u < v < {self.num_nodes}")
        if len(set(self.edges)) != len(self.edges):
            raise ValueError("a DAG edge appears twice")

    @cached_property
    def predecessors(self) -> tuple[tuple[int, ...], ...]:
        return tuple(tuple(sorted(u for u, v in self.edges if v == node)) for node in range(self.num_nodes))

    @cached_property
    def successors(self) -> tuple[tuple[int, ...], ...]:
        return tuple(tuple(sorted(v for u, v in self.edges if u == node)) for node in range(self.num_nodes))

    @property
    def inputs(self) -> tuple[int, ...]:
        """Nodes without a predecessor: the extra input node feeds them (stride 2 there)."""
        return tuple(node for node in range(self.num_nodes) if not self.predecessors[node])

    @property
    def outputs(self) -> tuple[int, ...]:
        """Nodes without a successor: the extra output node averages them, unweighted."""
        return tuple(node for node in range(self.num_nodes) if not self.successors[node])

    def in_degree(self, node: int) -> int:
        return len(self.predecessors[node])

    def out_degree(self, node: int) -> int:
        return len(self.successors[node])

    @cached_property
    def depth(self) -> tuple[int, ...]:
        """Length of the longest path from an input node to each node (0 for the input nodes)."""
        depth = [0] * self.num_nodes
        for node in range(self.num_nodes):  # indices are a topological order
            depth[node] = max((depth[u] + 1 for u in self.predecessors[node]), default=0)
        return tuple(depth)

    @cached_property
    def levels(self) -> tuple[tuple[int, ...], ...]:
        """Nodes grouped by depth: every node of a level depends only on earlier levels, so a level is one batch."""
        count = max(self.depth) + 1 if self.num_nodes else 0
        return tuple(tuple(n for n in range(self.num_nodes) if self.depth[n] == level) for level in range(count))


def to_dag(num_nodes: int, edges: list[Edge]) -> DAG:
    """Orient every undirected edge {u, v} from min(u, v) to max(u, v)."""
    return DAG(num_nodes, tuple(sorted({(min(u, v), max(u, v)) for u, v in edges if u != v})))


GENERATOR_PATTERN = re.compile(r"^\s*(ER|BA|WS|chain)\s*(?:\(([^)]*)\))?\s*$", re.IGNORECASE)
GENERATOR_FORMS = "ER(P) with 0 <= P <= 1, BA(M) with 1 <= M < N, WS(K, P) with even 2 <= K < N, or chain"


@dataclass(frozen=True)
class GraphSpec:
    """A generator and its parameters, parsed from text such as ``"WS(4, 0.75)"``."""

    kind: str
    params: tuple[float, ...] = ()

    @property
    def name(self) -> str:
        """The paper's notation: ``ER(0.2)``, ``BA(5)``, ``WS(4, 0.75)``, ``chain``."""
        if self.kind == "chain":
            return "chain"
        return f"{self.kind}({', '.join(f'{value:g}' for value in self.params)})"

    @property
    def slug(self) -> str:
        """The name in metric keys: ``er-0.2``, ``ba-5``, ``ws-4-0.75``, ``chain``."""
        return "-".join([self.kind.lower(), *(f"{value:g}" for value in self.params)])

    @property
    def is_random(self) -> bool:
        """Whether different seeds give different graphs (WS(K, 0) and the chain are fixed)."""
        return self.kind == "ER" or self.kind == "BA" or (self.kind == "WS" and self.params[1] > 0)

    def generate(self, num_nodes: int, rng: np.random.Generator) -> DAG:
        """Draw an undirected graph with ``rng`` and map it to a DAG."""
        if self.kind == "ER":
            edges = erdos_renyi(num_nodes, self.params[0], rng)
        elif self.kind == "BA":
            edges = barabasi_albert(num_nodes, int(self.params[0]), rng)
        elif self.kind == "WS":
            edges = watts_strogatz(num_nodes, int(self.params[0]), self.params[1], rng)
        else:
            edges = chain(num_nodes)
        return to_dag(num_nodes, edges)


def parse_generator(text: str, num_nodes: int, field: str = "generators") -> GraphSpec:
    """``GraphSpec`` for ``text``; a ConfigError naming ``field`` and the allowed forms otherwise."""
    match = GENERATOR_PATTERN.match(str(text))
    problem = f"{field}: {text!r} is not a generator; use {GENERATOR_FORMS} (N = nodes = {num_nodes})"
    if not match:
        raise ConfigError(problem)
    kind = match.group(1).upper() if match.group(1).lower() != "chain" else "chain"
    try:
        params = tuple(float(part) for part in match.group(2).split(",")) if match.group(2) else ()
    except ValueError:
        raise ConfigError(problem) from None
    valid = {
        "ER": len(params) == 1 and 0 <= params[0] <= 1,
        "BA": len(params) == 1 and params[0] == int(params[0]) and 1 <= params[0] < num_nodes,
        "WS": len(params) == 2 and params[0] == int(params[0]) and int(params[0]) % 2 == 0
              and 2 <= params[0] < num_nodes and 0 <= params[1] <= 1,
        "chain": not params,
    }[kind]
    if not valid:
        raise ConfigError(problem)
    return GraphSpec(kind, params)


def stage_graphs(spec: GraphSpec, num_nodes: int, num_stages: int, graph_seed: int) -> list[DAG]:
    """One independently drawn DAG per stage: stage s uses the stream seeded by ``(graph_seed, s)``."""
    return [spec.generate(num_nodes, np.random.default_rng((graph_seed, stage))) for stage in range(num_stages)]
