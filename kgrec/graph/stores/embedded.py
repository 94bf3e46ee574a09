"""The embedded store: Ladybug (the maintained Kùzu fork) in a file inside the workspace.

* DDL from the schema: one node table per label (``PRIMARY KEY(id)``), one rel table per type
  (``FROM <src> TO <dst>``), properties typed as in the schema.
* Bulk load with ``COPY <table> FROM $frame`` from pyarrow tables (``UNWIND ... CREATE`` is ~200x
  slower).
* All-or-nothing and idempotent: a load builds a new database file beside the live one
  (``.embedded.lbug.build-<pid>-<rand>``) and, only once every table is in, swaps it in with
  :func:`kgrec.fsatomic.commit`, together with the staged graph tables when ``load_graph`` hands them
  over (:attr:`EmbeddedStore.commit_with`), so the graph file and the tables always come from one
  build, even when the process is killed mid-swap (the next open finishes it). A failure leaves the
  previous graph untouched; running the same load twice gives identical graphs.

Only one of ``ladybug`` / ``kuzu`` may be imported in a process; kgrec imports ``ladybug`` lazily
here. Variable-length matches with an unbound start are very slow in Ladybug 0.20-0.22: the shared
queries in ``cypher/`` bind their start node and give a direction.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from kgrec import fsatomic
from kgrec.errors import WorkspaceError
from kgrec.graph.schema import NodeType, RelType, Schema
from kgrec.graph.stores.base import (
    GraphLoadError,
    GraphStore,
    GraphStoreError,
    Progress,
)

DB_NAME = "embedded.lbug"
_LB_TYPES = {"STRING": "STRING", "INT64": "INT64", "DOUBLE": "DOUBLE", "BOOL": "BOOLEAN"}
_PA_TYPES = {"STRING": pa.string(), "INT64": pa.int64(), "DOUBLE": pa.float64(), "BOOL": pa.bool_()}


def _lb():
    import ladybug

    return ladybug


LOW_SPACE = 64 << 20  # bytes: below this, an I/O failure of a load is read as a full disk


def _load_failure(what: str, exc: RuntimeError, folder: Path) -> Exception:
    """The error for a Ladybug failure while a load writes its build file: a full disk (Ladybug says
    "IO exception: Cannot read from file ..." when its write came up short) becomes the ENOSPC
    ``OSError`` every command words the same way (:func:`kgrec.errors.describe`); anything else is a
    :class:`GraphLoadError` naming ``what``. Checked before the build file is removed (which frees the space)."""
    msg = str(exc)
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    if "No space left" in msg or ("IO exception" in msg and free is not None and free < LOW_SPACE):
        err = OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} while {what} ({(free or 0) >> 20} MiB free)", str(folder))
        return err
    return GraphLoadError(f"{what}: {msg}")


def default_path(workspace: Path | str) -> Path:
    return Path(workspace) / "graph" / DB_NAME


def node_ddl(node: NodeType) -> str:
    cols = ", ".join(f"{p} {_LB_TYPES[t]}" for p, t in node.properties.items())
    return f"CREATE NODE TABLE IF NOT EXISTS {node.label}({cols}, PRIMARY KEY({node.key}))"


def rel_ddl(rel: RelType) -> str:
    cols = "".join(f", {p} {_LB_TYPES[t]}" for p, t in rel.properties.items())
    return f"CREATE REL TABLE IF NOT EXISTS {rel.type}(FROM {rel.src} TO {rel.dst}{cols})"


def _arrow(df: pd.DataFrame, types: dict[str, str]) -> pa.Table:
    """An Arrow table with the schema's types (Ladybug scans Arrow, not pandas extension dtypes)."""
    target = pa.schema([(c, _PA_TYPES[types.get(c, "STRING")]) for c in df.columns])
    try:
        return pa.Table.from_pandas(df, preserve_index=False).cast(target)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        arrays = [pa.array(df[c].to_numpy(dtype=object, na_value=None), type=target.field(c).type) for c in df.columns]
        return pa.Table.from_arrays(arrays, schema=target)


class EmbeddedStore(GraphStore):
    """Ladybug database file ``<workspace>/graph/embedded.lbug`` (or ``path``)."""

    name = "embedded"
    dialect = "embedded"
    atomic_load = True

    def __init__(
        self,
        workspace: Path | str | None = None,
        *,
        path: Path | str | None = None,
        read_only: bool = False,
        buffer_pool_size: int = 0,
        max_threads: int = 0,
    ) -> None:
        super().__init__()
        if path is None and workspace is None:
            raise GraphStoreError("the embedded store needs a workspace (or a database path)")
        self.path = Path(path) if path is not None else default_path(workspace)
        self.read_only = read_only
        self.buffer_pool_size = buffer_pool_size
        self.max_threads = max_threads
        self._db: Any = None
        self._conn: Any = None
        self._build: tuple[Path, Any, Any] | None = None  # (path, db, conn) of a load in progress
        self._tables: set[str] | None = None  # table names of the open database (cache)
        # folders swapped in with the new database file, all or nothing: [(staged folder, target)]
        self.commit_with: list[tuple[Path, Path]] = []
        self.build_id: str = uuid.uuid4().hex

    def describe(self) -> str:
        return f"embedded ({self.path})"

    # ------------------------------------------------------------- connections
    def _open(self, path: Path, read_only: bool, build: bool = False) -> tuple[Any, Any]:
        lb = _lb()
        db = lb.Database(
            str(path),
            read_only=read_only,
            buffer_pool_size=self.buffer_pool_size,
            max_num_threads=self.max_threads,
            auto_checkpoint=not build,  # a build checkpoints once, at the end
        )
        return db, lb.Connection(db, num_threads=self.max_threads)

    def _live(self, create: bool = False) -> Any:
        """Connection to the live database (opened on first use)."""
        if self._conn is None:
            fsatomic.recover(self.path.parent)  # a load killed mid-swap: finish it before reading
            if not self.path.exists():
                if not create or self.read_only:
                    raise WorkspaceError(f"no graph at {self.path}: run `kgrec load-graph` first")
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db, self._conn = self._open(self.path, self.read_only)
        return self._conn

    def _close_live(self) -> None:
        self._tables = None
        conn, db = self._conn, self._db
        self._conn = self._db = None
        if conn is not None:
            conn.close()
        if db is not None:
            db.close()

    def _target(self, create: bool = False) -> Any:
        """The connection writes go to: the build database during a load, else the live one."""
        return self._build[2] if self._build else self._live(create)

    def _has_table(self, name: str) -> bool:
        if self._build is None and not self.path.exists():
            return False
        if self._tables is None:
            rows = self._target().execute("CALL show_tables() RETURN name")
            self._tables = {r[0] for r in rows.get_all()}
        return name in self._tables

    # ------------------------------------------------------------- hooks
    def _create_schema(self, schema: Schema) -> None:
        if self.read_only:
            raise GraphStoreError(f"{self.path} is open read-only")
        conn = self._target(create=True)
        self._tables = None
        ddl = [node_ddl(n) for n in schema.nodes.values()] + [rel_ddl(r) for r in schema.relationships.values()]
        conn.execute(";\n".join(ddl))

    def _begin_load(self, schema: Schema) -> None:
        if self.read_only:
            raise GraphStoreError(f"{self.path} is open read-only")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fsatomic.recover(self.path.parent)
        fsatomic.sweep(self.path.parent, [self.path.name])  # build files of killed loads
        tmp = fsatomic.temp_path(self.path, "build")
        try:
            db, conn = self._open(tmp, read_only=False, build=True)
        except RuntimeError as exc:
            err = _load_failure("creating the graph database", exc, self.path.parent)
            for f in [tmp, *tmp.parent.glob(tmp.name + ".*")]:
                f.unlink(missing_ok=True)
            raise err from exc
        self._build = (tmp, db, conn)
        self._tables = None

    def _load_nodes(self, label: str, frame: pd.DataFrame, node: NodeType, progress: Progress | None) -> None:
        self._copy(label, frame, node.properties, progress)

    def _load_edges(self, name: str, frame: pd.DataFrame, rel: RelType, progress: Progress | None) -> None:
        # COPY into a rel table: the first two columns are the FROM and TO keys.
        self._copy(name, frame, {"src": "STRING", "dst": "STRING", **rel.properties}, progress)

    def _copy(self, table: str, frame: pd.DataFrame, types: dict[str, str], progress: Progress | None) -> None:
        if progress:
            progress(table, 0, len(frame))
        if len(frame):
            try:
                self._target().execute(f"COPY {table} FROM $frame", {"frame": _arrow(frame, types)})
            except RuntimeError as exc:
                raise _load_failure(f"loading table {table}", exc, self.path.parent) from exc
        if progress:
            progress(table, len(frame), len(frame))

    def _commit_load(self, schema: Schema) -> None:
        tmp, db, conn = self._build
        self._tables = None
        try:
            conn.execute("CHECKPOINT")  # the file holds everything, no WAL left beside it
        except RuntimeError as exc:
            raise _load_failure("writing the graph database to disk", exc, self.path.parent) from exc
        conn.close()
        db.close()
        self._build = None
        for extra in tmp.parent.glob(tmp.name + ".*"):
            raise GraphLoadError(f"ladybug left {extra} beside the new database; not swapping it in")
        self._close_live()
        # atomic: readers see the old graph (and tables) or the new ones; the live file's WAL goes first
        wal = list(self.path.parent.glob(self.path.name + ".wal"))
        fsatomic.commit([*self.commit_with, (tmp, self.path)], self.path.parent, self.build_id, drop=wal)
        self.commit_with = []

    def _abort_load(self) -> None:
        if self._build is None:
            return
        tmp, db, conn = self._build
        self._build = None
        self._tables = None
        for obj in (conn, db):
            try:
                obj.close()
            except Exception:  # noqa: BLE001 - already failing; the original error matters
                pass
        for f in [tmp, *tmp.parent.glob(tmp.name + ".*")]:
            f.unlink(missing_ok=True)

    def _run(self, cypher: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        conn = self._target()
        try:
            res = conn.execute(cypher, params) if params else conn.execute(cypher)
        except RuntimeError as exc:
            raise GraphStoreError(f"embedded store: {exc}") from exc
        if isinstance(res, list):  # several statements: the last one's rows
            res = res[-1]
        cols = res.get_column_names()
        rows = []
        while res.has_next():
            values = res.get_next()
            ids = _row_ids(values)
            rows.append({c: _norm(v, ids) for c, v in zip(cols, values, strict=True)})
        res.close()
        return rows

    def _clear(self, schema: Schema) -> None:
        if self.read_only:
            raise GraphStoreError(f"{self.path} is open read-only")
        self._close_live()
        for f in [self.path, *self.path.parent.glob(self.path.name + ".wal")]:
            f.unlink(missing_ok=True)

    def _close(self) -> None:
        self._abort_load()
        self._close_live()


# ---------------------------------------------------------------- result normalisation
def _is_node(v: Any) -> bool:
    return isinstance(v, dict) and "_LABEL" in v and "_ID" in v and "_SRC" not in v


def _is_rel(v: Any) -> bool:
    return isinstance(v, dict) and "_LABEL" in v and "_SRC" in v and "_DST" in v


def _is_path(v: Any) -> bool:
    return isinstance(v, dict) and "_NODES" in v and "_RELS" in v


def _iid(i: Any) -> tuple:
    return (i["table"], i["offset"]) if isinstance(i, dict) else (i,)


def _row_ids(values: Any) -> dict[tuple, Any]:
    """internal id -> key ``id`` of every node appearing anywhere in the row."""
    ids: dict[tuple, Any] = {}

    def walk(v: Any) -> None:
        if _is_node(v):
            ids[_iid(v["_ID"])] = v.get("id")
        elif _is_path(v):
            for n in v["_NODES"]:
                walk(n)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(values)
    return ids


def _node(v: dict) -> dict:
    # properties as Neo4j has them: a null property does not exist (Ladybug also fills in the other
    # labels' properties of a multi-label variable with nulls); schema properties are scalars
    out = {"_label": v["_LABEL"]}
    for k, x in v.items():
        if x is not None and k[0] != "_":
            out[k] = x
    return out


def _rel(v: dict, ids: dict[tuple, Any]) -> dict:
    out = {"_type": v["_LABEL"], "_start": ids.get(_iid(v["_SRC"])), "_end": ids.get(_iid(v["_DST"]))}
    for k, x in v.items():
        if x is not None and k[0] != "_":
            out[k] = x
    return out


def _norm(v: Any, ids: dict[tuple, Any]) -> Any:
    if isinstance(v, dict):
        if "_NODES" in v and "_RELS" in v:
            return {"nodes": [_node(n) for n in v["_NODES"]], "relationships": [_rel(r, ids) for r in v["_RELS"]]}
        if "_LABEL" in v:
            if "_SRC" in v and "_DST" in v:
                return _rel(v, ids)
            if "_ID" in v:
                return _node(v)
        return {k: _norm(x, ids) for k, x in v.items()}
    if isinstance(v, list):
        return [_norm(x, ids) for x in v]
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v
