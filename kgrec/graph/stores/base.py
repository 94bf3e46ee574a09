"""The one interface of kgrec's graph stores: create the schema, load node/edge tables, run a
parameterised Cypher query, count what is there.

Public methods validate their input (a :class:`Schema`, tables that conform to it, parameters as a
dict) and then call the private hooks a store implements:

* ``_create_schema(schema)``: DDL (node/rel tables, constraints, indexes) derived from the schema;
* ``_begin_load(schema)`` / ``_commit_load()`` / ``_abort_load()``: bracket one load;
* ``_load_nodes(label, frame, node_type, progress)`` and ``_load_edges(type, frame, rel_type, progress)``;
* ``_run(cypher, params)``: execute one statement, return rows as JSON-ready dicts.

Query results are normalised the same way for every store: a node becomes a dict of its properties
plus ``_label``; a relationship its properties plus ``_type``, ``_start`` and ``_end`` (the key ``id``
of its end nodes); a path ``{"nodes": [...], "relationships": [...]}`` in path order.
"""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pandas as pd
import pyarrow as pa

from kgrec.errors import KgrecError
from kgrec.graph.schema import NodeType, RelType, Schema, load_schema
from kgrec.graph.tables import _DTYPES, GraphTables, isin

# progress(table, rows_done, rows_total): called as a table is written.
Progress = Callable[[str, int, int], None]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class GraphStoreError(KgrecError):
    """A graph store cannot do what was asked (no graph yet, server refused, bad query)."""


class GraphLoadError(GraphStoreError):
    """A load failed; the message names the table, the row and the source it came from."""


@dataclass
class LoadStats:
    """What one :meth:`GraphStore.load` wrote."""

    nodes: dict[str, int] = field(default_factory=dict)
    edges: dict[str, int] = field(default_factory=dict)
    duplicate_edges_dropped: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0  # the whole load() call: validation, schema, nodes, edges, commit
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase

    @property
    def n_nodes(self) -> int:
        return sum(self.nodes.values())

    @property
    def n_edges(self) -> int:
        return sum(self.edges.values())

    def to_dict(self) -> dict:
        return {
            "nodes": dict(self.nodes),
            "edges": dict(self.edges),
            "duplicate_edges_dropped": {k: v for k, v in self.duplicate_edges_dropped.items() if v},
            "n_nodes": self.n_nodes,
            "n_edges": self.n_edges,
            "seconds": round(self.seconds, 3),
            "phases": {k: round(v, 3) for k, v in self.phases.items()},
            "edges_per_s": round(self.n_edges / self.seconds) if self.seconds > 0 else None,
        }


def check_identifier(name: str, what: str) -> str:
    """Labels and relationship types go into query text (Cypher cannot take them as parameters), so
    they must be plain identifiers from the schema, never user data."""
    if not isinstance(name, str) or not _IDENT.match(name):
        raise GraphStoreError(f"{what} {name!r} is not a plain identifier")
    return name


def validate_schema(schema: Schema) -> Schema:
    if not isinstance(schema, Schema):
        raise TypeError(f"schema must be a kgrec.graph.schema.Schema, not {type(schema).__name__}")
    for label, node in schema.nodes.items():
        check_identifier(label, "node label")
        for p in node.properties:
            check_identifier(p, f"property of {label}")
    for name, rel in schema.relationships.items():
        check_identifier(name, "relationship type")
        for p in rel.properties:
            check_identifier(p, f"property of {name}")
    return schema


def validate_params(params: Any) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise TypeError(f"query parameters must be a dict of name -> value, not {type(params).__name__}")
    for k in params:
        if not isinstance(k, str) or not _IDENT.match(k):
            raise ValueError(f"query parameter name {k!r} is not a plain identifier")
    return dict(params)


def _where(df: pd.DataFrame, i: int) -> str:
    src = df["source"].iloc[i] if "source" in df.columns else None
    return f"row {i}" + (f" (source {src!r})" if src is not None and not pd.isna(src) else "")


def _strings(values: pd.Series) -> pa.Array:
    try:
        arr = pa.array(values)
        if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
            return arr.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    return pa.array(values.astype("string").to_numpy(dtype=object, na_value=None), type=pa.string())


def _conforms(tables: GraphTables, schema: Schema) -> bool:
    """Already in the shape ``GraphTables.conform`` gives (schema columns in order, schema dtypes)?"""
    for label, df in tables.nodes.items():
        props = schema.nodes[label].properties
        if list(df.columns) != list(props) or any(str(df[p].dtype) != _DTYPES[t] for p, t in props.items()):
            return False
    for name, df in tables.edges.items():
        props = schema.relationships[name].properties
        if list(df.columns) != ["src", "dst", *props] or any(str(df[p].dtype) != _DTYPES[t] for p, t in props.items()):
            return False
        if str(df["src"].dtype) != "string" or str(df["dst"].dtype) != "string":
            return False
    return True


def prepare_tables(tables: GraphTables, schema: Schema) -> tuple[GraphTables, dict[str, int]]:
    """Check ``tables`` against ``schema`` before anything is written: errors name the table, the row
    and its ``source``. Returns the conformed tables with exact duplicate edge rows dropped (both
    stores then hold the same edges) and the number dropped per type."""
    if not isinstance(tables, GraphTables):
        raise TypeError(f"tables must be a kgrec.graph.tables.GraphTables, not {type(tables).__name__}")
    for label, df in tables.nodes.items():
        if label not in schema.nodes:
            raise GraphLoadError(f"node table {label!r} is not in the schema")
        if "id" not in df.columns:
            raise GraphLoadError(f"node table {label}: no 'id' column")
        ids = df["id"]
        bad = (ids.isna() | (ids.astype("string").str.len() == 0)).to_numpy(dtype=bool, na_value=True)
        if bad.any():
            raise GraphLoadError(f"node table {label}: {_where(df, int(bad.nonzero()[0][0]))} has an empty id")
        dup = ids.duplicated().to_numpy(dtype=bool)
        if dup.any():
            i = int(dup.nonzero()[0][0])
            raise GraphLoadError(f"node table {label}: {_where(df, i)} repeats id {ids.iloc[i]!r}")
    id_sets: dict[str, pa.Array] = {}
    for name, df in tables.edges.items():
        if name not in schema.relationships:
            raise GraphLoadError(f"edge table {name!r} is not in the schema")
        rel = schema.relationships[name]
        for end, label in (("src", rel.src), ("dst", rel.dst)):
            if end not in df.columns:
                raise GraphLoadError(f"edge table {name}: no {end!r} column")
            if label not in id_sets:
                id_sets[label] = _strings(tables.nodes[label]["id"]) if label in tables.nodes else pa.array([], pa.string())
            missing = ~isin(df[end], id_sets[label])
            if missing.any():
                i = int(missing.nonzero()[0][0])
                raise GraphLoadError(
                    f"edge table {name}: {_where(df, i)}: {end} {df[end].iloc[i]!r} is not a {label} node "
                    f"({int(missing.sum())} such rows)"
                )
        for req in ("source", "licence"):
            if req not in df.columns:
                raise GraphLoadError(f"edge table {name}: no {req!r} column")
            empty = df[req].isna().to_numpy(dtype=bool)
            if empty.any():
                raise GraphLoadError(f"edge table {name}: row {int(empty.nonzero()[0][0])} has no {req!r}")
    if _conforms(tables, schema):
        conformed = GraphTables({k: v.reset_index(drop=True) for k, v in tables.nodes.items()}, dict(tables.edges))
    else:
        try:
            conformed = tables.conform(schema)
        except (ValueError, TypeError) as exc:
            raise GraphLoadError(str(exc)) from exc
    dropped = {}
    edges = {}
    for name, df in conformed.edges.items():
        dup = df.duplicated().to_numpy(dtype=bool)
        dropped[name] = int(dup.sum())
        edges[name] = df[~dup].reset_index(drop=True) if dropped[name] else df.reset_index(drop=True)
    return GraphTables(conformed.nodes, edges), dropped


class GraphStore(ABC):
    """A property-graph database holding kgrec's knowledge graph (see the module docstring)."""

    #: registry name ("embedded", "neo4j")
    name: ClassVar[str] = ""
    #: which ``cypher/<query>.<dialect>.cypher`` variant this store reads, when one exists
    dialect: ClassVar[str] = ""
    #: True: a failed load leaves the previous graph exactly as it was. False: the load is
    #: resumable instead (idempotent MERGE batches; running it again completes it).
    atomic_load: ClassVar[bool] = False

    def __init__(self) -> None:
        self._closed = False

    # ---------------------------------------------------------------- public API
    def create_schema(self, schema: Schema | None = None) -> None:
        """Create node/relationship tables, constraints and indexes for ``schema`` (idempotent)."""
        self._check_open()
        self._create_schema(validate_schema(schema or load_schema()))

    def load(
        self,
        tables: GraphTables,
        schema: Schema | None = None,
        progress: Progress | None = None,
    ) -> LoadStats:
        """Load ``tables`` so that the store holds exactly this graph (labels and types of ``schema``).

        Everything is validated before the first write. Idempotent: loading the same tables again
        gives identical counts. All-or-nothing where :attr:`atomic_load`, resumable otherwise."""
        self._check_open()
        t0 = time.perf_counter()
        schema = validate_schema(schema or load_schema())
        tables, dropped = prepare_tables(tables, schema)
        stats = LoadStats(duplicate_edges_dropped=dropped)
        clock = [t0]

        def lap(phase: str) -> None:
            now = time.perf_counter()
            stats.phases[phase] = stats.phases.get(phase, 0.0) + now - clock[0]
            clock[0] = now

        lap("validate")
        self._begin_load(schema)
        try:
            self._create_schema(schema)
            lap("schema")
            for label, df in tables.nodes.items():
                self._load_nodes(label, df, schema.nodes[label], progress)
                stats.nodes[label] = len(df)
            lap("nodes")
            for name, df in tables.edges.items():
                self._load_edges(name, df, schema.relationships[name], progress)
                stats.edges[name] = len(df)
            lap("edges")
            self._commit_load(schema)
            lap("commit")
        except BaseException:
            self._abort_load()
            raise
        stats.seconds = time.perf_counter() - t0
        return stats

    def query(self, cypher: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run one Cypher statement; values go in ``params`` (never into the text). Rows as dicts."""
        self._check_open()
        if not isinstance(cypher, str) or not cypher.strip():
            raise ValueError("cypher must be a non-empty string")
        return self._run(cypher, validate_params(params))

    def stats(self, schema: Schema | None = None) -> dict[str, Any]:
        """Counts per label and relationship type, and per ``source`` within each."""
        self._check_open()
        schema = validate_schema(schema or load_schema())
        out: dict[str, Any] = {"nodes": {}, "edges": {}, "nodes_by_source": {}, "edges_by_source": {}}
        for label, node in schema.nodes.items():
            src = "n.source" if "source" in node.properties else "null"
            rows = (
                self._run(f"MATCH (n:{label}) RETURN {src} AS source, count(*) AS count", {})
                if self._has_table(label)
                else []
            )
            by = _by_source(rows)
            out["nodes"][label] = sum(by.values())
            out["nodes_by_source"][label] = by
        for name in schema.relationships:
            rows = (
                self._run(f"MATCH ()-[r:{name}]->() RETURN r.source AS source, count(*) AS count", {})
                if self._has_table(name)
                else []
            )
            by = _by_source(rows)
            out["edges"][name] = sum(by.values())
            out["edges_by_source"][name] = by
        out["n_nodes"] = sum(out["nodes"].values())
        out["n_edges"] = sum(out["edges"].values())
        return out

    def clear(self, schema: Schema | None = None) -> None:
        """Remove kgrec's graph (the labels and types of ``schema``) from the store."""
        self._check_open()
        self._clear(validate_schema(schema or load_schema()))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> GraphStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> str:
        """Where the graph lives, for messages (never includes credentials)."""
        return self.name

    def _check_open(self) -> None:
        if self._closed:
            raise GraphStoreError(f"the {self.name} store is closed")

    # ---------------------------------------------------------------- hooks
    @abstractmethod
    def _create_schema(self, schema: Schema) -> None: ...

    def _begin_load(self, schema: Schema) -> None:  # noqa: B027 - optional hook
        pass

    @abstractmethod
    def _load_nodes(self, label: str, frame: pd.DataFrame, node: NodeType, progress: Progress | None) -> None: ...

    @abstractmethod
    def _load_edges(self, name: str, frame: pd.DataFrame, rel: RelType, progress: Progress | None) -> None: ...

    def _commit_load(self, schema: Schema) -> None:  # noqa: B027 - optional hook
        pass

    def _abort_load(self) -> None:  # noqa: B027 - optional hook
        pass

    @abstractmethod
    def _run(self, cypher: str, params: dict[str, Any]) -> list[dict[str, Any]]: ...

    @abstractmethod
    def _clear(self, schema: Schema) -> None: ...

    def _close(self) -> None:  # noqa: B027 - optional hook
        pass

    def _has_table(self, name: str) -> bool:
        """Whether a label/type can be queried (stores with a fixed catalogue say no for unknown ones)."""
        return True


def _by_source(rows: list[dict]) -> dict[str, int]:
    by: dict[str, int] = {}
    for r in rows:
        if r["count"]:
            key = "" if r["source"] is None else str(r["source"])
            by[key] = by.get(key, 0) + int(r["count"])
    return dict(sorted(by.items()))


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain-Python dicts (NA -> None, numpy scalars -> int/float/bool/str)."""
    cols = {c: df[c].to_numpy(dtype=object, na_value=None) for c in df.columns}
    n = len(df)
    out = [{} for _ in range(n)]
    for c, vals in cols.items():
        for i in range(n):
            v = vals[i]
            if v is not None and hasattr(v, "item") and not isinstance(v, str):
                v = v.item()
            if isinstance(v, float) and v != v:  # NaN
                v = None
            out[i][c] = v
    return out
