"""kgrec: explainable, knowledge-graph-driven medication recommendation."""
__version__ = "0.1.0"
