"""Fitted models of the current fold, kept so that a model built from another does not fit it twice.

``kgrec transfer`` and ``kgrec run --pool`` fit every model of a fold on the same training and validation
visits: ``site-ensemble`` contains a pooled ``logreg-graph``, ``student-pooled`` distils
``site-ensemble-names``. :func:`remember` keeps each fitted model of the fold; :func:`recall` gives it to
a later model of the same fold (the same cohort object, training and validation patients). Only the last
fold is kept, so memory holds one fold's models.
"""

from __future__ import annotations

from kgrec.cohort.base import Cohort
from kgrec.cohort.samples import Samples
from kgrec.models.base import Recommender

_MEMO: dict = {"cohort": None, "key": None, "models": {}}


def _key(train: Samples, val: Samples) -> tuple:
    return (tuple(map(int, train.visit_idx)), tuple(map(int, val.visit_idx)))


def remember(name: str, model: Recommender, cohort: Cohort, train: Samples, val: Samples) -> None:
    """Keep a fitted model of this fold (the previous fold's models are dropped)."""
    key = _key(train, val)
    if _MEMO["cohort"] is not cohort or _MEMO["key"] != key:
        _MEMO.update(cohort=cohort, key=key, models={})
    _MEMO["models"][name] = model


def recall(name: str, cohort: Cohort, train: Samples, val: Samples) -> Recommender | None:
    """The model ``name`` fitted on exactly these visits of this cohort, or None."""
    if _MEMO["cohort"] is cohort and _MEMO["key"] == _key(train, val):
        return _MEMO["models"].get(name)
    return None


def forget() -> None:
    _MEMO.update(cohort=None, key=None, models={})
