"""The LEADER-style teacher: a LoRA-tuned language model reading a visit prompt, with graph soft prompts
and a linear drug head over the ATC3 vocabulary (see docs/teacher.md).

Heavy imports (torch, transformers, peft) happen only when these names are used.
"""

from __future__ import annotations

__all__ = ["TeacherConfig", "TeacherRecommender", "teacher_features", "train_on_split"]


def __getattr__(name: str):
    if name in __all__:
        from kgrec.teacher import train

        return getattr(train, name)
    raise AttributeError(name)
