"""Student stage: a small graph-aware recommender distilled from the teacher's features.

Two kinds are saved under ``<workspace>/student``: the network student (``student``,
:class:`kgrec.student.train.StudentRecommender`, torch) and the wide student that ``kgrec run --pool``
deploys (``student-wide``, :class:`kgrec.student.linear.WideStudent`, scored with numpy);
:func:`kgrec.workspace.saved_student_kind` tells which a folder holds, and
:func:`kgrec.workspace.load_model` loads either (the wide one without importing torch).
"""
