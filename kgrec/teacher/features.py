"""The student's entry point to the teacher: :func:`teacher_features` (train or load from the cache keyed
by the training patients + config, then the pooled hidden state of every target visit)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kgrec.cohort.base import Cohort
from kgrec.cohort.samples import Samples
from kgrec.teacher.cache import cache_folder, has_features, read_features, train_or_load
from kgrec.teacher.config import TeacherConfig, workspace_teacher_config
from kgrec.teacher.recommender import TeacherRecommender


def cached_teacher(
    workspace: Path | str, cohort: Cohort, train: Samples, val: Samples, config: TeacherConfig | None = None, progress: bool = False,
    drug_vocab: list[str] | None = None,
) -> tuple[TeacherRecommender, Path]:
    """The teacher trained on ``train`` (early stopping and threshold on ``val``), loaded from
    ``<workspace>/teacher/<key>/`` or trained and cached there (:func:`kgrec.teacher.cache.train_or_load`)."""
    return train_or_load(TeacherRecommender, workspace, cohort, train, val, config, progress, drug_vocab)


def teacher_features(
    workspace: Path | str,
    cohort: Cohort,
    train: Samples,
    val: Samples,
    config: TeacherConfig | None = None,
    progress: bool = False,
    drug_vocab: list[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pooled teacher states for every target visit of ``cohort``: ``(features, logits, visit_ids)``,
    from the teacher :func:`cached_teacher` trains or finds (default config: :func:`workspace_teacher_config`; output
    layer ``drug_vocab``, default the cohort's)."""
    config = config or workspace_teacher_config(workspace)
    folder = cache_folder(workspace, cohort, train, val, config, drug_vocab)
    if not has_features(folder):
        _, folder = cached_teacher(workspace, cohort, train, val, config, progress, drug_vocab)
    return read_features(folder)
