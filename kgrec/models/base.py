"""The recommender interface every model (baselines, teacher, student) implements for evaluation."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from kgrec.cohort.base import Cohort
from kgrec.cohort.samples import Samples

THRESHOLDS = np.round(np.arange(0.05, 0.96, 0.05), 2)


class Recommender(ABC):
    """Scores every drug of a fixed ATC3 vocabulary for each sample visit.

    Subclasses implement :meth:`fit` and :meth:`predict_proba`; the decision threshold is chosen by
    :meth:`tune_threshold` on validation visits only (never on test visits).
    """

    name: ClassVar[str]
    # True for models that read the workspace (graph vectors, cached teacher features): the evaluation
    # runner then constructs them as ``cls(vocab, workspace=...)``.
    uses_workspace: ClassVar[bool] = False

    def __init__(self, drug_vocab: list[str]):
        if not drug_vocab:
            raise ValueError("empty drug vocabulary: the cohort has no mapped drugs")
        self.drug_vocab = list(drug_vocab)
        self.threshold = 0.5
        self.chosen: dict = {}

    def targets(self, samples: Samples) -> np.ndarray:
        index = {d: j for j, d in enumerate(self.drug_vocab)}
        y = np.zeros((len(samples), len(self.drug_vocab)), dtype=bool)
        for i, drugs in enumerate(samples.targets):
            for d in drugs:
                if d in index:
                    y[i, index[d]] = True
        return y

    @abstractmethod
    def fit(self, cohort: Cohort, train: Samples, val: Samples) -> Recommender:
        """Train on ``train``; ``val`` may be used for model selection and early stopping only."""

    @abstractmethod
    def predict_proba(self, cohort: Cohort, samples: Samples) -> np.ndarray:
        """(n_samples, n_drugs) probabilities."""

    def predict(self, proba: np.ndarray) -> np.ndarray:
        return proba >= self.threshold

    def tune_threshold(self, cohort: Cohort, val: Samples) -> float:
        """Pick the threshold that maximises mean Jaccard on the validation visits."""
        from kgrec.metrics import per_visit

        if len(val) == 0:
            return self.threshold
        proba = self.predict_proba(cohort, val)
        y = self.targets(val)
        scores = [per_visit(y, None, proba >= t)["jaccard"].mean() for t in THRESHOLDS]
        self.threshold = float(THRESHOLDS[int(np.argmax(scores))])
        self.chosen["threshold"] = self.threshold
        return self.threshold
