"""Recommenders behind one interface; names resolve to classes here.

The registry maps each name to ``"module:Class"`` and imports the module only when the name is looked
up, so this package imports nothing above it in the data flow (the teacher and the student import
:mod:`kgrec.models.base`; see tests/test_architecture.py) and ``kgrec --help`` imports no torch.
"""

from __future__ import annotations

import importlib

from kgrec.models.base import Recommender

MODELS: dict[str, str | type[Recommender]] = {
    "frequency": "kgrec.models.baselines:FrequencyRecommender",
    "logreg": "kgrec.models.baselines:LogRegRecommender",
    "logreg-graph": "kgrec.models.graph_logreg:GraphLogRegRecommender",
    "site-ensemble": "kgrec.models.graph_logreg:SiteEnsembleRecommender",
    "site-ensemble-names": "kgrec.transfer.ensemble:SiteViewsEnsemble",
    "logreg-profile": "kgrec.models.baselines:LogRegProfileRecommender",
    "teacher": "kgrec.teacher.recommender:TeacherRecommender",
    "student": "kgrec.student.train:StudentRecommender",
    "student-pooled": "kgrec.transfer.distill:PooledStudent",
    "student-wide": "kgrec.student.linear:WideStudent",
}


def register(name: str, target: str | type[Recommender]) -> None:
    """Make ``name`` resolve to a recommender class, given as the class or as ``"module:Class"``."""
    if isinstance(target, str):
        if target.count(":") != 1:
            raise ValueError(f"model {name!r}: expected 'module:Class', got {target!r}")
    MODELS[name] = target


def get_model(name: str) -> type[Recommender]:
    """The recommender class registered as ``name`` (its module is imported now)."""
    try:
        target = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(sorted(MODELS))}") from None
    if isinstance(target, type):
        cls = target
    else:
        module, _, attr = target.partition(":")
        cls = getattr(importlib.import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, Recommender)):
        raise TypeError(f"model {name!r} resolves to {target}, which is not a Recommender")
    return cls


__all__ = ["MODELS", "Recommender", "get_model", "register"]
