"""Reads ``graph_schema/schema.yaml``: the one definition of labels, relationships and properties."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

TYPES = {"STRING", "INT64", "DOUBLE", "BOOL"}
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "graph_schema" / "schema.yaml"


@dataclass(frozen=True)
class NodeType:
    label: str
    properties: dict[str, str]
    description: str = ""
    key: str = "id"


@dataclass(frozen=True)
class RelType:
    type: str
    src: str
    dst: str
    properties: dict[str, str]
    description: str = ""


@dataclass(frozen=True)
class Schema:
    nodes: dict[str, NodeType] = field(default_factory=dict)
    relationships: dict[str, RelType] = field(default_factory=dict)
    version: int = 1


def parse_schema(doc: dict, origin: str = "schema") -> Schema:
    """Validate a schema document (as loaded from YAML) and build :class:`Schema`."""
    if not isinstance(doc, dict) or "nodes" not in doc or "relationships" not in doc:
        raise ValueError(f"{origin}: needs top-level 'nodes' and 'relationships'")
    nodes = {}
    for label, spec in doc["nodes"].items():
        props = dict(spec.get("properties", {}))
        if props.get("id") != "STRING":
            raise ValueError(f"{origin}: node {label} needs key property 'id: STRING'")
        for p, t in props.items():
            if t not in TYPES:
                raise ValueError(f"{origin}: node {label}.{p} has unknown type {t!r} (use {sorted(TYPES)})")
        nodes[label] = NodeType(label, props, spec.get("description", ""))
    rels = {}
    for name, spec in doc["relationships"].items():
        for end in ("from", "to"):
            if spec.get(end) not in nodes:
                raise ValueError(f"{origin}: relationship {name}.{end} = {spec.get(end)!r} is not a node label")
        props = dict(spec.get("properties", {}))
        for req in ("source", "licence"):
            if props.get(req) != "STRING":
                raise ValueError(f"{origin}: relationship {name} needs property '{req}: STRING'")
        for p, t in props.items():
            if t not in TYPES:
                raise ValueError(f"{origin}: relationship {name}.{p} has unknown type {t!r}")
        rels[name] = RelType(name, spec["from"], spec["to"], props, spec.get("description", ""))
    return Schema(nodes, rels, int(doc.get("version", 1)))


@lru_cache(maxsize=4)
def load_schema(path: Path | None = None) -> Schema:
    """The graph schema (default: the repository's ``graph_schema/schema.yaml``)."""
    p = Path(path) if path else SCHEMA_PATH
    return parse_schema(yaml.safe_load(p.read_text(encoding="utf-8")), str(p))
