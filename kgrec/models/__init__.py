"""Recommenders behind one interface; names resolve to classes here."""

from __future__ import annotations

from kgrec.models.base import Recommender
from kgrec.models.baselines import FrequencyRecommender, LogRegRecommender

MODELS: dict[str, type[Recommender]] = {cls.name: cls for cls in (FrequencyRecommender, LogRegRecommender)}
from kgrec.teacher.recommender import TeacherRecommender  # noqa: E402  (imports torch lazily)

MODELS[TeacherRecommender.name] = TeacherRecommender
from kgrec.student.train import StudentRecommender  # noqa: E402

MODELS[StudentRecommender.name] = StudentRecommender


def get_model(name: str) -> type[Recommender]:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(sorted(MODELS))}") from None


__all__ = ["MODELS", "Recommender", "get_model"]
