"""Graph stage: schema, open sources -> node/edge tables, embedded (Ladybug) and Neo4j stores, Cypher."""

from kgrec.graph.load import LoadResult, load_graph
from kgrec.graph.queries import list_queries, load_query, run_query
from kgrec.graph.stores import GraphLoadError, GraphStore, GraphStoreError, get_store

__all__ = ["GraphLoadError", "GraphStore", "GraphStoreError", "LoadResult", "get_store", "list_queries", "load_graph", "load_query", "run_query"]
