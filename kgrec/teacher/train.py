"""Where the teacher's names used to live (one 814-line module), re-exported for old imports.

New code imports from the module that owns each concept:
:mod:`kgrec.teacher.config` (``TeacherConfig``, ``teacher_dir``, ``workspace_teacher_config``),
:mod:`kgrec.teacher.recommender` (``TeacherRecommender``), :mod:`kgrec.teacher.loop` (training loops,
``mean_average_precision``), :mod:`kgrec.teacher.persist` (save/load), :mod:`kgrec.teacher.cache`
(``no_state_cache``, ``cohort_fingerprint``, ``features_key``), :mod:`kgrec.teacher.features`
(``cached_teacher``, ``teacher_features``), :mod:`kgrec.teacher.split` (``train_on_split``).
"""

from __future__ import annotations

from kgrec.teacher.cache import _POOLED, _TOKENS, cohort_fingerprint, features_key, no_state_cache
from kgrec.teacher.config import DEFAULT_MODEL, FORMAT_VERSION, TeacherConfig, teacher_dir, workspace_teacher_config
from kgrec.teacher.features import cached_teacher, teacher_features
from kgrec.teacher.loop import mean_average_precision
from kgrec.teacher.recommender import GROUPS, KEY_PREFIX, TeacherRecommender
from kgrec.teacher.split import TeacherTrainResult, train_on_split

__all__ = [
    "DEFAULT_MODEL", "FORMAT_VERSION", "GROUPS", "KEY_PREFIX", "TeacherConfig", "TeacherRecommender", "TeacherTrainResult",
    "_POOLED", "_TOKENS", "cached_teacher", "cohort_fingerprint", "features_key", "mean_average_precision", "no_state_cache",
    "teacher_dir", "teacher_features", "train_on_split", "workspace_teacher_config",
]
