# Stores, queries and the load (kgrec.graph.stores, kgrec.graph.queries, kgrec.graph.load).
from kgrec.graph.load import LoadResult, load_graph  # noqa: E402
from kgrec.graph.queries import list_queries, load_query, run_query  # noqa: E402
from kgrec.graph.stores import GraphLoadError, GraphStore, GraphStoreError, get_store  # noqa: E402
