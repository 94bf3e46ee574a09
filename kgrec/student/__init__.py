"""Student stage: a small graph-aware recommender distilled from the teacher's features.

Two kinds are saved under ``<workspace>/student``: the network student (``student``,
:class:`kgrec.student.train.StudentRecommender`, torch) and the wide student that ``kgrec run --pool``
deploys (``student-wide``, :class:`kgrec.student.linear.WideStudent`, scored with numpy).
:func:`load_student` reads either; the wide one without importing torch.
"""

from __future__ import annotations

import json
from pathlib import Path

KINDS = ("student", "student-wide")


def saved_kind(folder: Path | str) -> str:
    """The kind of the student saved in ``folder`` (its ``student.json``); ``student`` when the file
    names no other kind or cannot be read (that loader then names what is wrong with it)."""
    try:
        kind = json.loads((Path(folder) / "student.json").read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        return "student"
    return kind if kind in KINDS else "student"


def load_student(folder: Path | str):
    """The student saved in ``folder``, whichever its kind."""
    if saved_kind(folder) == "student-wide":
        from kgrec.student.linear import WideStudent

        return WideStudent.load(folder)
    from kgrec.student.train import StudentRecommender

    return StudentRecommender.load(folder)
