"""Files for Neo4j's offline bulk importer (``neo4j-admin database import full``).

For graphs of millions of edges a Bolt load is the slow way in; the importer writes the store files
directly. :func:`write_neo4j_admin` writes, into one folder:

* ``nodes/<Label>.csv``: ``id:ID(<Label>)`` (one ID space per label: ids are unique per label, not
  across labels), the label's properties typed from the schema (``:long``, ``:double``,
  ``:boolean``; strings plain) and ``:LABEL``;
* ``relationships/<TYPE>.csv``: ``:START_ID(<Src>)``, ``:END_ID(<Dst>)``, the properties,
  ``_kgrec_key`` (the same key the Bolt load merges on, so a later ``kgrec load-graph --store neo4j``
  over the imported database is an update, not a second copy) and ``:TYPE``;
* ``constraints.cypher``: the uniqueness constraints ``kgrec load-graph`` creates, to run once the
  database is started (``cypher-shell -f constraints.cypher``);
* ``import.sh``: the exact import command for these files; ``manifest.json``: counts and files.

The tables are validated first (:func:`kgrec.graph.stores.base.prepare_tables`: a dangling edge or a
repeated id names its table and row) and the folder is written beside its target and swapped in when
complete: a failure leaves no half-written export. CSV: comma-separated, ``"``-quoted with ``""`` for
a quote; a missing value is an empty, unquoted field (no property), an empty string is ``""``;
strings may hold newlines (hence ``--multiline-fields=true``).
"""

from __future__ import annotations

import json
import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kgrec import fsatomic
from kgrec.graph.schema import Schema, load_schema
from kgrec.graph.stores.base import check_identifier, prepare_tables, records
from kgrec.graph.stores.neo4j import KEY_PROP, edge_key, schema_ddl
from kgrec.graph.tables import GraphTables

_TYPES = {"STRING": "", "INT64": ":long", "DOUBLE": ":double", "BOOL": ":boolean"}


@dataclass
class AdminExport:
    """What :func:`write_neo4j_admin` wrote."""

    folder: Path
    nodes: dict[str, int] = field(default_factory=dict)
    edges: dict[str, int] = field(default_factory=dict)
    duplicate_edges_dropped: dict[str, int] = field(default_factory=dict)
    command: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "nodes": dict(self.nodes),
            "edges": dict(self.edges),
            "n_nodes": sum(self.nodes.values()),
            "n_edges": sum(self.edges.values()),
            "duplicate_edges_dropped": {k: v for k, v in self.duplicate_edges_dropped.items() if v},
            "command": shlex.join(self.command),
        }


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(v)
    return '"' + str(v).replace('"', '""') + '"'


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(",".join(header) + "\n")
        for row in rows:
            fh.write(",".join(_cell(v) for v in row) + "\n")


def import_command(export: AdminExport, database: str = "neo4j", admin: str = "neo4j-admin") -> list[str]:
    """The ``neo4j-admin database import full`` command for the files of ``export`` (paths relative
    to its folder)."""
    cmd = [admin, "database", "import", "full"]
    cmd += [f"--nodes=nodes/{label}.csv" for label in export.nodes]
    cmd += [f"--relationships=relationships/{name}.csv" for name in export.edges]
    return [*cmd, "--multiline-fields=true", "--overwrite-destination=true", database]


def write_neo4j_admin(tables: GraphTables, folder: Path | str, schema: Schema | None = None) -> AdminExport:
    """Write ``tables`` as neo4j-admin import files into ``folder`` (replaced whole when complete)."""
    schema = schema or load_schema()
    tables, dropped = prepare_tables(tables, schema)
    target = Path(folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    out = AdminExport(folder=target, duplicate_edges_dropped=dropped)
    with fsatomic.atomic_dir(target) as tmp:
        (tmp / "nodes").mkdir()
        (tmp / "relationships").mkdir()
        for label, df in tables.nodes.items():
            node = schema.nodes[check_identifier(label, "label")]
            props = [check_identifier(p, "property") for p in node.properties if p != node.key]
            header = [f"{node.key}:ID({label})"] + [p + _TYPES[node.properties[p]] for p in props] + [":LABEL"]
            rows = [[r[node.key], *(r[p] for p in props), label] for r in records(df)]
            _write_csv(tmp / "nodes" / f"{label}.csv", header, rows)
            out.nodes[label] = len(rows)
        for name, df in tables.edges.items():
            rel = schema.relationships[check_identifier(name, "relationship type")]
            props = [check_identifier(p, "property") for p in rel.properties]
            header = [f":START_ID({rel.src})", f":END_ID({rel.dst})"] + [p + _TYPES[rel.properties[p]] for p in props]
            header += [KEY_PROP, ":TYPE"]
            rows = []
            for r in records(df):
                values = [r[p] for p in props]
                rows.append([r["src"], r["dst"], *values, edge_key(values), name])
            _write_csv(tmp / "relationships" / f"{name}.csv", header, rows)
            out.edges[name] = len(rows)
        out.command = import_command(out)
        (tmp / "constraints.cypher").write_text(
            "// Run once the imported database is started (cypher-shell -f constraints.cypher): the\n"
            "// constraints `kgrec load-graph --store neo4j` creates.\n" + "".join(s + ";\n" for s in schema_ddl(schema))
        )
        (tmp / "import.sh").write_text(
            "#!/bin/sh\n# Import these files into an empty or stopped Neo4j 5 database (it is overwritten).\n"
            'cd "$(dirname "$0")" && exec ' + shlex.join(out.command) + "\n"
        )
        (tmp / "manifest.json").write_text(json.dumps(out.to_dict() | {"folder": "."}, indent=2) + "\n")
    script = target / "import.sh"
    script.chmod(script.stat().st_mode | 0o111)  # executable (the swap applied the umask's file modes)
    return out


__all__ = ["AdminExport", "import_command", "write_neo4j_admin"]
