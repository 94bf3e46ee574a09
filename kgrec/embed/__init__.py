"""Embedding stage: PyKEEN knowledge-graph embeddings and a PyG R-GCN over one shared entity index."""
