"""kgrec: explainable, knowledge-graph-driven medication recommendation.

Stages follow the data flow: cohort -> graph -> embed -> teacher -> student -> explain.
"""

__version__ = "0.1.0"

from kgrec.api import evaluate, load_cohort, prepare, recommend, run  # noqa: E402

__all__ = ["__version__", "evaluate", "load_cohort", "prepare", "recommend", "run"]
