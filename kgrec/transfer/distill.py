"""``student-pooled``: the graph-aware student distilled from the strongest pooled model.

LEADER's point is to distil the strongest, slow model into a fast one and deploy that. Across sites the
strongest model kgrec measures is a pooled ensemble (``site-ensemble-names``: graph concepts and code
names, each trained on the site alone and pooled), which averages four fits, two of them language-model
teachers. :class:`PooledStudent` fits that teacher (any registered model, by name) on the training
visits, then trains the student (:class:`~kgrec.student.train.StudentRecommender`: graph vectors,
graph prior, history attention, and the site-aware graph-concept term, shared and per site) on the same
visits with the teacher's probabilities as soft targets::

    loss = BCE(z, labels) + β · T² · BCE(σ(z / T), σ(logit(p_teacher) / T))

(the teacher's probabilities enter as logits, the student's soft-label term of :mod:`kgrec.student.train`). The ensemble has no single hidden state, so there is no feature term
(``alpha = 0``). Validation visits choose the epoch and the threshold; the teacher never sees them as
training data. In K-fold CV both are fitted on each fold's training patients only.

When ``kgrec transfer`` or ``kgrec run --pool`` evaluates the teacher model itself in the same fold, its
fitted instance is reused (:func:`remember` / :func:`recall`, one fold kept in memory), not fitted twice.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from kgrec.cohort.base import Cohort
from kgrec.cohort.samples import Samples
from kgrec.errors import OptionError
from kgrec.models import get_model
from kgrec.models.base import Recommender
from kgrec.models.memo import recall

DEFAULT_TEACHER = "site-ensemble-names"
# soft-label weight and temperature of the pooled student (chosen on validation folds: docs/student.md,
# "Distilled from the pooled ensemble"; scripts/bench_distill.py --pooled)
POOLED_STUDENT = {"alpha": 0.0, "beta": 1.0, "temperature": 1.0, "concepts": True}
# the student's architecture: "wide" (kgrec.student.linear.WideStudent: graph concepts and code names, linear)
# or "network" (kgrec.student.train.StudentRecommender with its site-aware concept term)
ARCHS = ("wide", "network")
DEFAULT_ARCH = "wide"

def check_teacher(name: str) -> type[Recommender]:
    """The teacher's class; an unknown name or a student as its own teacher is an :class:`OptionError`."""
    from kgrec.models import MODELS

    if name in ("student", "student-pooled"):
        raise OptionError(f"--teacher {name!r}: a student cannot be the teacher; choose a model such as {DEFAULT_TEACHER}, logreg-graph or teacher")
    try:
        return get_model(name)
    except ValueError:
        raise OptionError(f"--teacher {name!r} is not a registered model; choose from {', '.join(sorted(m for m in MODELS if not m.startswith('student')))}") from None


class PooledStudent(Recommender):
    """``student-pooled`` (module docstring).

    Args:
        workspace: the target workspace (graph vectors, graph tables, teacher caches).
        teacher: the registry name of the model to distil (default ``site-ensemble-names``).
        config: :class:`~kgrec.student.train.StudentConfig` fields over :data:`POOLED_STUDENT`.
    """

    name = "student-pooled"
    uses_workspace = True

    def __init__(self, drug_vocab: list[str], workspace: Path | str | None = None, teacher: str = DEFAULT_TEACHER, config: dict | None = None,
                 progress: bool = False, arch: str = DEFAULT_ARCH):
        super().__init__(drug_vocab)
        self.teacher_cls = check_teacher(teacher)
        if arch not in ARCHS:
            raise OptionError(f"student-pooled: arch must be one of {', '.join(ARCHS)}, got {arch!r}")
        self.teacher_name, self.workspace, self.progress, self.arch = teacher, workspace, progress, arch
        self.settings = {**POOLED_STUDENT, **(config or {})}
        from kgrec.student.train import StudentConfig

        try:
            StudentConfig.from_dict(self.settings)
        except ValueError as exc:  # e.g. the leader recipe's transformer student has no site-aware concept term
            raise OptionError(f"student-pooled: {exc} (its settings: {self.settings})") from None
        self.student = None
        self.teacher_model: Recommender | None = None

    def _make_teacher(self) -> Recommender:
        cls = self.teacher_cls
        return cls(self.drug_vocab, workspace=self.workspace) if getattr(cls, "uses_workspace", False) else cls(self.drug_vocab)

    def fit(self, cohort: Cohort, train: Samples, val: Samples) -> PooledStudent:
        from kgrec.student.train import StudentConfig, StudentRecommender

        t0 = time.perf_counter()
        teacher = recall(self.teacher_name, cohort, train, val)
        reused = teacher is not None
        if teacher is None:
            teacher = self._make_teacher().fit(cohort, train, val)
        t_teacher = time.perf_counter() - t0
        p = np.clip(np.asarray(teacher.predict_proba(cohort, train), dtype=np.float64), 1e-4, 1 - 1e-4)
        soft = np.log(p / (1 - p)).astype(np.float32)

        def provide(c: Cohort, tr: Samples, va: Samples):
            if len(tr) != len(soft):
                raise RuntimeError("student-pooled: the soft targets are for another set of training visits")
            return np.zeros((len(tr), 1), np.float32), soft

        cfg = StudentConfig.from_dict(self.settings)
        if self.arch == "wide":
            from kgrec.student.linear import WideStudent

            self.student = WideStudent(self.drug_vocab, self.workspace, soft_weight=min(1.0, cfg.beta), seed=cfg.seed).fit(cohort, train, val, p)
        else:
            self.student = StudentRecommender(self.drug_vocab, self.workspace, cfg, teacher=provide, progress=self.progress).fit(cohort, train, val)
        self.teacher_model = teacher
        sites = sorted(set(cohort.sites(train.visit_idx)))
        self.chosen = {"teacher": self.teacher_name, "teacher_reused_from_its_own_row": reused, "teacher_seconds": round(t_teacher, 2),
                       "teacher_chosen": dict(teacher.chosen), "student": dict(self.student.chosen), "sites": sites,
                       "arch": self.arch, "student_config": {k: getattr(cfg, k) for k in ("alpha", "beta", "temperature", "concepts")}}
        return self

    def predict_proba(self, cohort: Cohort, samples: Samples) -> np.ndarray:
        if self.student is None:
            raise RuntimeError("student-pooled: fit() first")
        return self.student.predict_proba(cohort, samples)
