"""Node and edge tables: the hand-over between the graph builder and the stores.

``nodes[label]`` is a DataFrame with one column per schema property (key ``id`` unique);
``edges[type]`` has ``src`` and ``dst`` (ids of the from/to labels) plus the schema properties.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from kgrec import fsatomic
from kgrec.errors import WorkspaceError

from kgrec.graph.schema import Schema

_DTYPES = {"STRING": "string", "INT64": "Int64", "DOUBLE": "float64", "BOOL": "boolean"}


def _strings(values) -> pa.Array:
    if isinstance(values, pa.Array):
        return values.cast(pa.string())
    if not isinstance(values, pd.Series):
        values = pd.Series(list(values), dtype=object)
    return pa.array(values.astype("string").to_numpy(dtype=object, na_value=None), type=pa.string())


def isin(values: pd.Series, ids) -> np.ndarray:
    """``values.isin(ids)`` as a bool array, through ``pyarrow.compute.is_in``: pandas' Arrow-string
    ``isin`` builds a pyarrow scalar per id and is 10-30x slower on the graph's 40k-id tables."""
    return pc.is_in(_strings(values), value_set=_strings(ids)).fill_null(False).to_numpy(zero_copy_only=False)


_PER_TABLES: dict[str, tuple[tuple, object]] = {}


def tables_stamp(folder: Path | str) -> tuple:
    """What identifies the graph tables saved in ``folder`` within a process: its path and the modification
    times of its ``nodes`` and ``edges`` folders (a load swaps them in whole, so a new load changes both)."""
    folder = Path(folder)
    return (str(folder.resolve()), *((folder / d).stat().st_mtime_ns for d in ("nodes", "edges")))


def per_tables(folder: Path | str, what: str, build, key: tuple = ()):
    """``build()``, kept per process for the tables saved in ``folder`` (:func:`tables_stamp`) and ``key``:
    one value per ``what``, the last graph's (K-fold CV, the pooled step and the embedding stages read
    the same graph many times; reading it and deriving from it was a large part of each fit). Treat the
    value as read-only."""
    stamp = (tables_stamp(folder), key)
    hit = _PER_TABLES.get(what)
    if hit is None or hit[0] != stamp:
        _PER_TABLES.pop(what, None)  # one graph at a time
        hit = _PER_TABLES[what] = (stamp, build())
    return hit[1]


@dataclass
class GraphTables:
    nodes: dict[str, pd.DataFrame] = field(default_factory=dict)
    edges: dict[str, pd.DataFrame] = field(default_factory=dict)

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            "nodes": {k: int(len(v)) for k, v in self.nodes.items()},
            "edges": {k: int(len(v)) for k, v in self.edges.items()},
        }

    def conform(self, schema: Schema) -> GraphTables:
        """Columns in schema order with schema dtypes; unknown labels/types/columns are an error;
        duplicate node ids and edges whose ends are missing are an error naming the table."""
        nodes, edges = {}, {}
        for label, df in self.nodes.items():
            if label not in schema.nodes:
                raise ValueError(f"node table {label!r} is not in the schema")
            props = schema.nodes[label].properties
            extra = set(df.columns) - set(props)
            if extra:
                raise ValueError(f"node table {label}: columns not in the schema: {sorted(extra)}")
            out = pd.DataFrame({p: df[p] if p in df else pd.NA for p in props}, index=df.index)
            out = out.astype({p: _DTYPES[t] for p, t in props.items()}).reset_index(drop=True)
            if out["id"].isna().any():
                raise ValueError(f"node table {label}: empty id")
            if out["id"].duplicated().any():
                raise ValueError(f"node table {label}: duplicate id {out.loc[out['id'].duplicated(), 'id'].iloc[0]!r}")
            nodes[label] = out
        for name, df in self.edges.items():
            if name not in schema.relationships:
                raise ValueError(f"edge table {name!r} is not in the schema")
            rel = schema.relationships[name]
            extra = set(df.columns) - set(rel.properties) - {"src", "dst"}
            if extra:
                raise ValueError(f"edge table {name}: columns not in the schema: {sorted(extra)}")
            cols = {"src": df["src"], "dst": df["dst"], **{p: df[p] if p in df else pd.NA for p in rel.properties}}
            out = pd.DataFrame(cols, index=df.index)
            out = out.astype({"src": "string", "dst": "string", **{p: _DTYPES[t] for p, t in rel.properties.items()}})
            out = out.reset_index(drop=True)
            for end, label in (("src", rel.src), ("dst", rel.dst)):
                known = nodes[label]["id"] if label in nodes else pd.Series([], dtype="string")
                missing = ~isin(out[end], known)
                if missing.any():
                    raise ValueError(
                        f"edge table {name}: {int(missing.sum())} {end} ids are not {label} nodes "
                        f"(first: {out.loc[missing, end].iloc[0]!r})"
                    )
            edges[name] = out
        return GraphTables(nodes, edges)

    def save(self, folder, build_id: str | None = None) -> None:
        """Write one Parquet file per table under ``folder/nodes`` and ``folder/edges``, replacing the folder
        atomically (:func:`kgrec.fsatomic.replace_dir`: the old tables stay until the new ones are in)."""
        folder = Path(folder)
        tmp = self.stage(folder, build_id or uuid.uuid4().hex)
        try:
            fsatomic.replace_dir(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def stage(self, folder, build_id: str) -> Path:
        """Write the tables into a new folder beside ``folder`` (not swapped in) with ``BUILD`` holding
        ``build_id``; :func:`kgrec.fsatomic.commit` swaps it in together with the graph file."""
        folder = Path(folder)
        tmp = fsatomic.temp_dir(folder)
        try:
            for kind, tables in (("nodes", self.nodes), ("edges", self.edges)):
                (tmp / kind).mkdir()
                for name, df in tables.items():
                    df.to_parquet(tmp / kind / f"{name}.parquet", index=False)
            (tmp / "BUILD").write_text(build_id)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return tmp

    @classmethod
    def load(cls, folder) -> GraphTables:
        folder = Path(folder)
        fsatomic.recover(folder.parent)  # a load killed mid-commit: finish it first
        if not (folder / "nodes").is_dir():
            raise WorkspaceError(f"no graph tables in {folder}: run `kgrec load-graph` first")
        read = lambda sub: {p.stem: pd.read_parquet(p) for p in sorted((folder / sub).glob("*.parquet"))}  # noqa: E731
        return cls(read("nodes"), read("edges"))
