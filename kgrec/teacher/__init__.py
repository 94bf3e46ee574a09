"""The LEADER-style teacher: a LoRA-tuned language model reading a visit prompt, with graph soft prompts
and a linear drug head over the ATC3 vocabulary (see docs/teacher.md).

Modules, one concept each: ``config`` (TeacherConfig), ``prompts``, ``soft_prompt``, ``model`` (PEFT
backbone + head), ``recommender`` (TeacherRecommender), ``loop`` (training loops), ``persist``
(save/load), ``cache`` (in-memory states and the on-disk teacher cache), ``features`` (the student's
entry point), ``split`` (``kgrec train --stage teacher``).

Heavy imports (torch, transformers, peft) happen only when these names are used.
"""

from __future__ import annotations

_WHERE = {
    "TeacherConfig": "kgrec.teacher.config",
    "TeacherRecommender": "kgrec.teacher.recommender",
    "teacher_features": "kgrec.teacher.features",
    "cached_teacher": "kgrec.teacher.features",
    "train_on_split": "kgrec.teacher.split",
    "TeacherTrainResult": "kgrec.teacher.split",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(name)
