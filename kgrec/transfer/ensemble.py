"""``site-ensemble-names``: the site ensemble over two views of a visit's codes.

:class:`~kgrec.models.graph_logreg.SiteEnsembleRecommender` averages a site's own model with the model
pooled over every site, both reading the codes as graph concepts. This adds the second view kgrec has of
a code, its *name*: the teacher (a frozen language model over the visit's prompt plus a linear code
term, :data:`~kgrec.teacher.config.CPU_TEACHER`), again once trained on the site alone and once pooled.
Each visit's probabilities are the unweighted mean of the four::

    ( own logreg-graph + pooled logreg-graph + own teacher + pooled teacher ) / 4

Only sites with validation visits get own models (in pooled transfer, the target); every other visit,
such as the target's in zero-shot transfer, is scored by the two pooled models, which ``chosen``
records. Trained on one site, the own and pooled models are the same fits (no second training).

Why two views, measured (docs/protocol.md, pooled eICU + MIMIC-III demos, 5 folds, paired): the graph and
the names err on different visits, and pooling helps both; the mean of the two views trained on the
target alone gains less than the pooled four (the pooling, not the averaging, carries most of the gain).
The weights are fixed, never tuned: a demo fold has about ten validation visits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kgrec.cohort.base import Cohort
from kgrec.cohort.samples import Samples
from kgrec.graph.expand import ExpansionConfig
from kgrec.models.base import Recommender
from kgrec.models.graph_logreg import SiteEnsembleRecommender, blend_own_site_models, fit_own_site_models
from kgrec.teacher.config import CPU_TEACHER, TeacherConfig


class SiteViewsEnsemble(Recommender):
    """``site-ensemble-names`` (module docstring).

    Args:
        workspace: the target workspace (its graph expands the codes; its teacher cache is reused).
        expansion: relations, hops and decay of the graph expansion.
        teacher: the names view's :class:`TeacherConfig` (default :data:`CPU_TEACHER`, whatever teacher
            the workspace trained: it is fitted four times per fold; any Hugging Face model path in ``model``).
        seed: the logistic regressions' seed (the teacher's is ``teacher.seed``).
    """

    name = "site-ensemble-names"
    uses_workspace = True

    def __init__(self, drug_vocab: list[str], workspace: Path | str | None = None, expansion: ExpansionConfig | None = None,
                 teacher: TeacherConfig | None = None, seed: int = 0):
        super().__init__(drug_vocab)
        self.graph = SiteEnsembleRecommender(drug_vocab, workspace=workspace, expansion=expansion, seed=seed)
        self.teacher_config = teacher or TeacherConfig(**CPU_TEACHER)
        self.workspace = workspace
        self.pooled_names: Recommender | None = None
        self.own_names: dict[str, Recommender] = {}

    def _teacher(self) -> Recommender:
        from kgrec.teacher.recommender import TeacherRecommender

        return TeacherRecommender(self.drug_vocab, self.teacher_config, workspace=self.workspace)

    def fit(self, cohort: Cohort, train: Samples, val: Samples) -> SiteViewsEnsemble:
        self.graph.fit(cohort, train, val)
        self.pooled_names = self._teacher().fit(cohort, train, val)
        self.own_names = fit_own_site_models(cohort, train, val, self.pooled_names, self._teacher, reuse_pooled=True)
        self.chosen = {"graph_view": dict(self.graph.chosen), "names_view": {"teacher": self.teacher_config.to_json(),
                       "own_sites": sorted(self.own_names)}, "weights": "own and pooled, graph and names: 1/4 each"}
        return self

    def predict_proba(self, cohort: Cohort, samples: Samples) -> np.ndarray:
        if self.pooled_names is None:
            raise RuntimeError("site-ensemble-names: fit() first")
        names, alone = blend_own_site_models(cohort, samples, self.pooled_names.predict_proba(cohort, samples), self.own_names, self.pooled_names, 0.5)
        if alone:
            self.chosen["pooled_only_for_sites"] = alone
        return 0.5 * self.graph.predict_proba(cohort, samples) + 0.5 * names
