"""The Neo4j store: the official ``neo4j`` driver over Bolt.

* Connection: ``uri``/``user``/``password`` from the arguments, else ``NEO4J_URI``, ``NEO4J_USER``,
  ``NEO4J_PASSWORD``. The password is never echoed, logged or put in a message.
* One driver per process and server (module-level cache, closed at exit): the store's ``close()``
  leaves the shared driver open.
* Schema: a uniqueness constraint on ``id`` per label before the load (``constraints="unique"``), or
  a plain index (``"index"``), or nothing (``"skip"``, for servers that reject the DDL). Any other
  failure of the DDL is an error.
* Load: batched ``UNWIND $rows AS row ...`` in explicit transactions of ``batch_size`` rows,
  ``workers`` transactions in flight (a deadlock between them is retried). Into an empty database
  the rows are CREATEd (the uniqueness constraints still guard the ids); otherwise MERGEd, nodes on
  ``id`` and relationships on an internal key (a hash of their properties) so that parallel edges
  from different sources stay distinct, as in the embedded store. Properties are set by name, not
  from a map (a map SET puts an Eager barrier in the plan). Every written node/relationship is
  stamped with the load's id; after a MERGE load, what it did not write (labels/types of the schema
  only) is deleted, so the store then holds exactly the loaded graph. Measured on the full open
  graph (2 cores, server and client on one machine): docs/graph.md.
* Not all-or-nothing (a whole graph does not fit one transaction): resumable. A failed load leaves
  every element of the previous graph in place (plus what the failed load had merged); running the
  load again completes it, with identical counts.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import re
import threading
import time
import uuid
from typing import Any

import pandas as pd

from kgrec.graph.schema import NodeType, RelType, Schema
from kgrec.graph.stores.base import (
    GraphLoadError,
    GraphStore,
    GraphStoreError,
    Progress,
    check_identifier,
    records,
)

CONSTRAINT_MODES = ("unique", "index", "skip")
LOAD_PROP = "_kgrec_load"
KEY_PROP = "_kgrec_key"

_DRIVERS: dict[tuple[str, str | None, str], Any] = {}
_LOCK = threading.Lock()


def _redact(uri: str) -> str:
    return re.sub(r"//[^/@]*@", "//", uri)


def get_driver(uri: str, auth: tuple[str, str] | None) -> Any:
    """The process's driver for ``uri`` and these credentials (created once, closed at exit)."""
    import neo4j

    secret = hashlib.sha256(auth[1].encode()).hexdigest() if auth else ""
    key = (uri, auth[0] if auth else None, secret)
    with _LOCK:
        drv = _DRIVERS.get(key)
        if drv is None:
            drv = neo4j.GraphDatabase.driver(uri, auth=auth)
            _DRIVERS[key] = drv
        return drv


@atexit.register
def close_drivers() -> None:
    """Close every cached driver (at exit; tests may call it too)."""
    with _LOCK:
        drivers = list(_DRIVERS.values())
        _DRIVERS.clear()
    for d in drivers:
        try:
            d.close()
        except Exception:  # noqa: BLE001 - best effort at shutdown
            pass


def schema_ddl(schema: Schema, mode: str = "unique") -> list[str]:
    """The DDL for ``schema``, one statement per label: a uniqueness constraint on the key
    (``mode="unique"``) or a plain index (``"index"``). Names ``kgrec_<Label>_<key>``; idempotent."""
    if mode not in ("unique", "index"):
        raise ValueError(f"mode must be 'unique' or 'index', not {mode!r}")
    out = []
    for label, node in schema.nodes.items():
        name = f"kgrec_{label}_{node.key}"
        if mode == "unique":
            out.append(f"CREATE CONSTRAINT {name} IF NOT EXISTS FOR (n:{label}) REQUIRE n.{node.key} IS UNIQUE")
        else:
            out.append(f"CREATE INDEX {name} IF NOT EXISTS FOR (n:{label}) ON (n.{node.key})")
    return out


def _refused_ddl(cause: BaseException | None) -> bool:
    """The server answered the DDL with an error (not a credentials or connection failure)."""
    import neo4j.exceptions as nx

    return isinstance(cause, nx.Neo4jError) and not isinstance(cause, nx.AuthError)


def edge_key(values: list[Any]) -> str:
    """Identity of a relationship between two given nodes: a hash of its property values."""
    return hashlib.blake2b(json.dumps(values, default=str).encode(), digest_size=10).hexdigest()


class Neo4jStore(GraphStore):
    name = "neo4j"
    dialect = "neo4j"
    atomic_load = False

    def __init__(
        self,
        uri: str | None = None,
        user: str | None = None,
        password: str | None = None,
        *,
        database: str | None = None,
        batch_size: int = 5000,
        workers: int = 2,
        constraints: str = "unique",
        workspace: Any = None,  # accepted for a uniform get_store(...) call; unused
    ) -> None:
        super().__init__()
        self.uri = uri or os.environ.get("NEO4J_URI")
        if not self.uri:
            raise GraphStoreError("no Neo4j server: pass --uri (uri=...) or set NEO4J_URI")
        self.user = user or os.environ.get("NEO4J_USER") or "neo4j"
        pw = password if password is not None else os.environ.get("NEO4J_PASSWORD")
        self._auth = (self.user, pw) if pw is not None else None
        self.database = database or os.environ.get("NEO4J_DATABASE") or None
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, not {batch_size!r}")
        self.batch_size = batch_size
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive integer, not {workers!r}")
        self.workers = workers
        if constraints not in CONSTRAINT_MODES:
            raise ValueError(f"constraints must be one of {CONSTRAINT_MODES}, not {constraints!r}")
        self.constraints = constraints
        self._stamp: str | None = None
        self._fresh = False

    def __repr__(self) -> str:  # no password
        return f"Neo4jStore(uri={_redact(self.uri)!r}, user={self.user!r}, database={self.database!r})"

    def describe(self) -> str:
        return f"neo4j ({_redact(self.uri)}{'/' + self.database if self.database else ''})"

    # ------------------------------------------------------------- transport
    def _tx(self, cypher: str, params: dict[str, Any], retries: int = 0) -> list[Any]:
        """One statement in one explicit transaction; the records, fully read. A transient failure
        (a deadlock between concurrent batches) is retried ``retries`` times."""
        import neo4j.exceptions as nx

        for attempt in range(retries + 1):
            try:
                return self._tx_once(cypher, params)
            except GraphStoreError as exc:
                if attempt == retries or not isinstance(exc.__cause__, nx.TransientError):
                    raise
                time.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")

    def _tx_once(self, cypher: str, params: dict[str, Any]) -> list[Any]:
        import neo4j.exceptions as nx

        drv = get_driver(self.uri, self._auth)
        try:
            with drv.session(database=self.database) as session:
                with session.begin_transaction() as tx:
                    recs = list(tx.run(cypher, params))
                    tx.commit()
                    return recs
        except nx.AuthError as exc:
            raise GraphStoreError(f"Neo4j at {_redact(self.uri)} refused the credentials (user {self.user!r})") from exc
        except nx.ServiceUnavailable as exc:
            raise GraphStoreError(f"cannot reach Neo4j at {_redact(self.uri)}: {exc}") from exc
        except nx.Neo4jError as exc:
            raise GraphStoreError(f"Neo4j: {exc.code}: {exc.message}") from exc

    def _run(self, cypher: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for rec in self._tx(cypher, params):
            ids = _row_ids(rec.values())
            out.append({k: _norm(v, ids) for k, v in rec.items()})
        return out

    # ------------------------------------------------------------- schema
    def _create_schema(self, schema: Schema) -> None:
        if self.constraints == "skip":
            return
        for (label, node), stmt in zip(schema.nodes.items(), schema_ddl(schema, self.constraints)):
            try:
                self._tx(stmt, {})
            except GraphStoreError as exc:
                if not _refused_ddl(exc.__cause__):
                    raise  # credentials, an unreachable server: not about the DDL
                raise GraphStoreError(
                    f"{exc} (while creating the {self.constraints} {label}.{node.key} "
                    f"{'constraint' if self.constraints == 'unique' else 'index'}; for a server that does "
                    "not support it use --constraints index or --constraints skip)"
                ) from exc

    # ------------------------------------------------------------- load
    def _begin_load(self, schema: Schema) -> None:
        self._stamp = uuid.uuid4().hex
        # Into an empty graph, CREATE (no per-row lookup of an existing element; the uniqueness
        # constraints still guard the ids); into a graph that has something, MERGE (idempotent, resumable).
        # (labels the database has never seen are left out: probing them draws "label does not exist" warnings)
        present = {r["label"] for r in self._tx("CALL db.labels() YIELD label RETURN label", {})}
        self._fresh = all(
            not self._tx(f"MATCH (n:{label}) RETURN 1 AS x LIMIT 1", {}) for label in schema.nodes if label in present
        )

    def _batches(self, rows: list[dict], table: str, cypher: str, progress: Progress | None) -> None:
        """Write ``rows`` in transactions of ``batch_size`` rows, ``workers`` at a time (the server
        works on one batch while the next is packed and sent); a deadlock between two batches is
        retried. The first failure stops the table: no later batch starts, the message names its rows."""
        from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

        total = len(rows)
        if progress:
            progress(table, 0, total)
        done = 0

        def one(start: int) -> int:
            batch = rows[start : start + self.batch_size]
            try:
                rec = self._tx(cypher, {"rows": batch, "stamp": self._stamp}, retries=5)
            except GraphStoreError as exc:
                raise GraphLoadError(f"table {table}, rows {start}-{start + len(batch) - 1}: {exc}") from exc
            written = rec[0]["n"] if rec else 0
            if written != len(batch):
                raise GraphLoadError(
                    f"table {table}, rows {start}-{start + len(batch) - 1}: the server wrote {written} of {len(batch)}"
                )
            return len(batch)

        with ThreadPoolExecutor(self.workers) as pool:
            pending = set()
            for start in range(0, total, self.batch_size):
                pending.add(pool.submit(one, start))
                if len(pending) < self.workers:
                    continue
                finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for f in finished:
                    done += f.result()  # raises the batch's error; pending batches finish, no new ones start
                if progress:
                    progress(table, done, total)
            finished, _ = wait(pending)
            for f in finished:
                done += f.result()
        if progress:
            progress(table, done, total)

    def _load_nodes(self, label: str, frame: pd.DataFrame, node: NodeType, progress: Progress | None) -> None:
        # Properties by name (schema identifiers), not `SET n += map`: a map SET makes the planner add
        # an Eager barrier; rows are flat dicts (cheaper to pack).
        props = [check_identifier(p, "property") for p in frame.columns if p != node.key]
        if self._fresh:
            fields = ", ".join([f"{node.key}: row.{node.key}"] + [f"{p}: row.{p}" for p in props] + [f"{LOAD_PROP}: $stamp"])
            cypher = f"UNWIND $rows AS row CREATE (n:{label} {{{fields}}}) RETURN count(n) AS n"
        else:
            sets = ", ".join([f"n.{p} = row.{p}" for p in props] + [f"n.{LOAD_PROP} = $stamp"])
            cypher = f"UNWIND $rows AS row MERGE (n:{label} {{{node.key}: row.{node.key}}}) SET {sets} RETURN count(n) AS n"
        self._batches(records(frame), label, cypher, progress)

    def _load_edges(self, name: str, frame: pd.DataFrame, rel: RelType, progress: Progress | None) -> None:
        props = [check_identifier(p, "property") for p in rel.properties]
        rows = records(frame)
        for r in rows:
            r["_k"] = edge_key([r[p] for p in props])
        match = f"UNWIND $rows AS row MATCH (a:{rel.src} {{id: row.src}}) MATCH (b:{rel.dst} {{id: row.dst}}) "
        if self._fresh:
            fields = ", ".join([f"{KEY_PROP}: row._k"] + [f"{p}: row.{p}" for p in props] + [f"{LOAD_PROP}: $stamp"])
            cypher = match + f"CREATE (a)-[r:{name} {{{fields}}}]->(b) RETURN count(r) AS n"
        else:
            sets = ", ".join([f"r.{p} = row.{p}" for p in props] + [f"r.{LOAD_PROP} = $stamp"])
            cypher = match + f"MERGE (a)-[r:{name} {{{KEY_PROP}: row._k}}]->(b) SET {sets} RETURN count(r) AS n"
        self._batches(rows, name, cypher, progress)

    def _commit_load(self, schema: Schema) -> None:
        """Delete what this load did not write: the store then holds exactly the loaded graph (nothing
        to delete after a load into an empty graph)."""
        if self._fresh:
            self._stamp = None
            return
        stale = f"x.{LOAD_PROP} IS NULL OR x.{LOAD_PROP} <> $stamp"
        for name in schema.relationships:
            self._delete_all(f"MATCH ()-[x:{name}]->() WHERE {stale} WITH x LIMIT $limit DELETE x RETURN count(*) AS n")
        for label in schema.nodes:
            self._delete_all(f"MATCH (x:{label}) WHERE {stale} WITH x LIMIT $limit DETACH DELETE x RETURN count(*) AS n")
        self._stamp = None

    def _abort_load(self) -> None:
        self._stamp = None

    def _delete_all(self, cypher: str) -> None:
        while True:
            rec = self._tx(cypher, {"limit": self.batch_size, "stamp": self._stamp})
            if not rec or rec[0]["n"] < self.batch_size:
                return

    def _clear(self, schema: Schema) -> None:
        # relationships first, in batches: DETACH DELETE of a hub node (a diagnosis code of a 50k-visit
        # cohort) would put all its relationships in one transaction
        for name in schema.relationships:
            self._delete_all(f"MATCH ()-[x:{name}]->() WITH x LIMIT $limit DELETE x RETURN count(*) AS n")
        for label in schema.nodes:
            self._delete_all(f"MATCH (x:{label}) WITH x LIMIT $limit DETACH DELETE x RETURN count(*) AS n")


# ---------------------------------------------------------------- result normalisation
def _row_ids(values: Any) -> dict[str, Any]:
    from neo4j.graph import Node, Path, Relationship

    ids: dict[str, Any] = {}

    def walk(v: Any) -> None:
        if isinstance(v, Node):
            if "id" in v:
                ids[v.element_id] = v["id"]
        elif isinstance(v, Path):
            for n in v.nodes:
                walk(n)
        elif isinstance(v, Relationship):
            for n in v.nodes:
                if n is not None:
                    walk(n)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)

    walk(values)
    return ids


def _props(entity: Any) -> dict[str, Any]:
    return {k: _norm(v, {}) for k, v in entity.items() if not k.startswith("_kgrec_") and v is not None}


def _end_id(node: Any, ids: dict[str, Any]) -> Any:
    if node is None:
        return None
    return ids.get(node.element_id, node.get("id"))


def _norm(v: Any, ids: dict[str, Any]) -> Any:
    from neo4j.graph import Node, Path, Relationship

    if isinstance(v, Path):
        return {"nodes": [_norm(n, ids) for n in v.nodes], "relationships": [_norm(r, ids) for r in v.relationships]}
    if isinstance(v, Relationship):
        return {"_type": v.type, "_start": _end_id(v.start_node, ids), "_end": _end_id(v.end_node, ids), **_props(v)}
    if isinstance(v, Node):
        labels = sorted(v.labels)
        return {"_label": labels[0] if len(labels) == 1 else labels, **_props(v)}
    if isinstance(v, dict):
        return {k: _norm(x, ids) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_norm(x, ids) for x in v]
    if hasattr(v, "iso_format"):
        return v.iso_format()
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v
