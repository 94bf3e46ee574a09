"""Baselines every kgrec model is compared with."""

from __future__ import annotations

import os
import warnings

import numpy as np
from scipy import sparse
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from kgrec.cohort.base import Cohort
from kgrec.cohort.samples import Samples, multi_hot, profile_tokens
from kgrec.metrics import per_visit
from kgrec.models.base import Recommender


def fit_workers() -> int:
    """Workers for the per-drug fits: ``$KGREC_JOBS``, else the CPU count (at most 8)."""
    env = os.environ.get("KGREC_JOBS", "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"KGREC_JOBS must be a whole number of worker processes, got {env!r}") from None
        return max(1, n)
    return max(1, min(os.cpu_count() or 1, 8))


def _fit_drugs(x, y, c: float, seed: int, dual: bool) -> list:
    """One liblinear logistic regression per column of ``y`` (a constant probability for a one-class column)."""
    out = []
    for j in range(y.shape[1]):
        col = y[:, j]
        if col.all() or not col.any():
            out.append(float(col.mean()) if len(col) else 0.0)
            continue
        m = LogisticRegression(C=c, solver="liblinear", dual=dual, random_state=seed, max_iter=200)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            m.fit(x, col)
        out.append(m)
    return out


def stack_models(models: list, n_features: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The per-drug fits of :func:`fit_per_drug` as ``(W (features, drugs), b (drugs,), const (drugs,))``:
    a fitted drug's coefficients and intercept, or (a one-class drug) its constant probability in
    ``const`` (NaN for fitted drugs)."""
    w = np.zeros((n_features, len(models)))
    b = np.zeros(len(models))
    const = np.full(len(models), np.nan)
    for j, m in enumerate(models):
        if isinstance(m, float):
            const[j] = m
            continue
        if m.coef_.shape != (1, n_features) or not (m.classes_[1] == 1):
            raise ValueError(f"drug {j}: a fit for {m.coef_.shape[1]} features and classes {list(m.classes_)}, expected {n_features} and [0, 1]")
        w[:, j] = m.coef_[0]
        b[j] = m.intercept_[0]
    return w, b, const


def fit_per_drug(x, y, c: float, seed: int = 0) -> list:
    """The per-drug fits of :class:`LogRegRecommender`, in parallel (:func:`fit_workers` workers).

    liblinear solves the dual problem when there are more features than visits (scikit-learn's advice;
    the same optimum: identical PRAUC on MIMIC-III's 5 folds, several times less CPU on graph-expanded
    pooled cohorts), the primal one otherwise. The fits run in worker processes, one block of drugs
    each: liblinear keeps global state (its random generator), and two threads sharing it corrupted
    memory in the dual solver.
    """
    from joblib import Parallel, delayed

    x = sparse.csr_matrix(x) if sparse.issparse(x) else x  # one conversion, shared by every drug's fit
    dual = x.shape[1] > x.shape[0]
    jobs = min(fit_workers(), y.shape[1]) if y.shape[1] else 1
    if jobs == 1:
        return _fit_drugs(x, y, c, seed, dual)
    blocks = np.array_split(np.arange(y.shape[1]), jobs)
    parts = Parallel(n_jobs=jobs, backend="loky")(delayed(_fit_drugs)(x, y[:, b], c, seed, dual) for b in blocks)
    return [m for part in parts for m in part]


class FrequencyRecommender(Recommender):
    """Most-frequent drugs: every visit gets each drug's share of training visits as its probability."""

    name = "frequency"

    def fit(self, cohort: Cohort, train: Samples, val: Samples) -> FrequencyRecommender:
        y = self.targets(train)
        self.prior = y.mean(0) if len(y) else np.zeros(len(self.drug_vocab))
        return self

    def predict_proba(self, cohort: Cohort, samples: Samples) -> np.ndarray:
        return np.tile(self.prior, (len(samples), 1))


class LogRegRecommender(Recommender):
    """One-vs-rest logistic regression on the visit's diagnosis + procedure multi-hot.

    The inverse regularisation ``C`` is chosen from ``grid`` by mean PRAUC on the validation visits.
    Drugs with a single class in training get that class's constant probability.

    With ``profile=True`` the patient profile at the visit is appended to the code features as one-hot
    columns (:func:`kgrec.cohort.samples.profile_tokens`: 10-year age bins, sex, each admission field's
    value seen in training); a missing field sets none of its columns.
    """

    name = "logreg"

    def __init__(self, drug_vocab: list[str], grid: tuple[float, ...] = (0.03, 0.1, 0.3, 1.0), seed: int = 0, profile: bool = False):
        super().__init__(drug_vocab)
        self.grid, self.seed, self.profile = grid, seed, profile
        self.profile_features: list[str] = []

    def _x(self, samples: Samples):
        return multi_hot([d + p for d, p in zip(samples.diagnoses, samples.procedures)], self.features)

    def _design(self, samples: Samples):
        """The code features (:meth:`_x`, which subclasses replace), then the profile columns if on."""
        x = self._x(samples)
        if not self.profile:
            return x
        p = multi_hot([profile_tokens(pr) for pr in samples.profiles()], self.profile_features)
        return sparse.hstack([sparse.csr_matrix(x), p], format="csr")

    def _fit_c(self, x, y, c: float) -> list:
        return fit_per_drug(x, y, c, self.seed)

    def _proba(self, models: list, x) -> np.ndarray:
        """Every drug's probability in one product: the per-drug fits stacked as one weight matrix, the
        sigmoid of ``x @ W + b`` (what each fit's ``predict_proba`` computes, without its per-call input
        checks, which were most of the time: 31,116 calls took 31 s of the pooled step)."""
        kept = self.__dict__.get("_stacked")  # stacked once per list of fits (a fitted model predicts many times)
        if kept is None or kept[0] is not models:
            kept = self.__dict__["_stacked"] = (models, stack_models(models, x.shape[1]))
        w, b, const = kept[1]
        z = np.asarray(x @ w, dtype=np.float64) + b
        out = 1.0 / (1.0 + np.exp(-z))
        cols = ~np.isnan(const)
        out[:, cols] = const[cols]
        return out

    def fit(self, cohort: Cohort, train: Samples, val: Samples) -> LogRegRecommender:
        self.features = sorted({c for d, p in zip(train.diagnoses, train.procedures) for c in d + p})
        if self.profile:
            self.profile_features = sorted({t for pr in train.profiles() for t in profile_tokens(pr)})
            self.chosen["profile_features"] = len(self.profile_features)
        x, y = self._design(train), self.targets(train)
        best, best_c, best_models = -1.0, self.grid[0], None
        for c in self.grid if len(val) else self.grid[-1:]:
            models = self._fit_c(x, y, c)
            score = per_visit(self.targets(val), self._proba(models, self._design(val)), np.zeros((len(val), y.shape[1]), bool))["prauc"].mean() if len(val) else 0.0
            if score > best:
                best, best_c, best_models = score, c, models
        self.models, self.chosen["C"] = best_models, best_c
        return self

    def predict_proba(self, cohort: Cohort, samples: Samples) -> np.ndarray:
        return self._proba(self.models, self._design(samples))


class LogRegProfileRecommender(LogRegRecommender):
    """:class:`LogRegRecommender` with the patient profile appended to the code features."""

    name = "logreg-profile"

    def __init__(self, drug_vocab: list[str], grid: tuple[float, ...] = (0.03, 0.1, 0.3, 1.0), seed: int = 0, profile: bool = True):
        super().__init__(drug_vocab, grid, seed, profile)
