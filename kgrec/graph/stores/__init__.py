"""Graph stores behind one interface (:class:`GraphStore`): ``get_store("embedded" | "neo4j", ...)``.

* ``embedded``: Ladybug in the workspace (``EmbeddedStore(workspace)``), bulk ``COPY``, atomic loads.
* ``neo4j``: a Neo4j (or any Bolt) server through the official driver (``Neo4jStore(uri, user,
  password)``, else ``NEO4J_URI`` / ``NEO4J_USER`` / ``NEO4J_PASSWORD``), batched ``UNWIND ... CREATE`` (empty database) or ``MERGE``.

The store modules import their database client lazily, so importing this package is cheap and
never imports both Ladybug and Kùzu.
"""

from __future__ import annotations

from typing import Any

from kgrec.graph.stores.base import (
    GraphLoadError,
    GraphStore,
    GraphStoreError,
    LoadStats,
)

STORES = ("embedded", "neo4j")


def get_store(name: str, **kw: Any) -> GraphStore:
    """A store by name. ``embedded`` takes ``workspace`` (or ``path``), ``read_only``; ``neo4j``
    takes ``uri``, ``user``, ``password``, ``database``, ``batch_size``, ``workers``, ``constraints``."""
    if name == "embedded":
        from kgrec.graph.stores.embedded import EmbeddedStore

        return EmbeddedStore(**kw)
    if name == "neo4j":
        from kgrec.graph.stores.neo4j import Neo4jStore

        return Neo4jStore(**kw)
    raise GraphStoreError(f"unknown graph store {name!r}: use one of {', '.join(STORES)}")


__all__ = ["STORES", "GraphLoadError", "GraphStore", "GraphStoreError", "LoadStats", "get_store"]
