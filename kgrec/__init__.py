"""kgrec: explainable, knowledge-graph-driven medication recommendation.

Stages follow the data flow: cohort -> graph -> embed -> teacher -> student -> explain.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "evaluate", "load_cohort", "prepare", "recommend", "run"]

_API = {"evaluate", "load_cohort", "prepare", "recommend", "run"}


def __getattr__(name: str):
    """The API functions, imported on first use (PEP 562): ``import kgrec`` and the CLI's ``--help``
    stay free of pandas, scikit-learn and torch."""
    if name in _API:
        from kgrec import api

        return getattr(api, name)
    raise AttributeError(f"module 'kgrec' has no attribute {name!r}")
