"""``logreg-graph``: kgrec's logistic regression over graph-grounded codes instead of raw code ids.

The same one-vs-rest model, C grid and validation rule as ``logreg``; only the input changes: each visit
is the weighted multi-hot of the graph concepts its codes reach (:mod:`kgrec.graph.expand`: ICD
category, GEM partners in the other ICD version, Disease Ontology terms and their ancestors). The
difference between the two rows isolates what the graph adds from what the model adds, and it is what
lets a model trained on one site's codes score another site's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import sparse

from kgrec.cohort.base import Cohort
from kgrec.cohort.samples import Samples
from kgrec.graph.expand import CodeExpander, ExpansionConfig
from kgrec.models.baselines import LogRegRecommender


def workspace_expander(workspace: Path | str, cohort: Cohort | None = None, config: ExpansionConfig | None = None) -> CodeExpander:
    """A :class:`CodeExpander` over the workspace's graph tables, naming codes from ``cohort``."""
    from kgrec.graph.tables import GraphTables

    tables = GraphTables.load(Path(workspace) / "graph" / "tables")
    return CodeExpander.from_tables(tables, config, cohort.names() if cohort is not None else None)


def concept_matrix(expander: CodeExpander, code_lists, vocab: list[str]) -> sparse.csr_matrix:
    """(n, len(vocab)) weights of the concepts each code list reaches; concepts outside ``vocab`` are ignored."""
    index = {c: j for j, c in enumerate(vocab)}
    rows, cols, vals = [], [], []
    for i, codes in enumerate(code_lists):
        for k, w in expander.expand_visit(codes).items():
            j = index.get(k)
            if j is not None:
                rows.append(i)
                cols.append(j)
                vals.append(w)
    return sparse.csr_matrix((np.asarray(vals, np.float32), (rows, cols)), shape=(len(code_lists), len(vocab)))


class GraphLogRegRecommender(LogRegRecommender):
    """Logistic regression over graph-expanded codes (see the module docstring).

    Args:
        workspace: the workspace whose graph tables expand the codes (``kgrec load-graph`` first).
        expansion: relations, hops and decay of the expansion.
        expander: a ready :class:`CodeExpander` (instead of ``workspace``).
    """

    name = "logreg-graph"
    uses_workspace = True

    def __init__(self, drug_vocab: list[str], workspace: Path | str | None = None, expansion: ExpansionConfig | None = None, expander: CodeExpander | None = None, **kw):
        super().__init__(drug_vocab, **kw)
        if expander is None and workspace is None:
            raise ValueError("logreg-graph needs a workspace with a loaded graph (or an expander)")
        self.workspace, self.expansion, self.expander = workspace, expansion, expander

    def _codes(self, samples: Samples) -> list[list[str]]:
        return [list(d) + list(p) for d, p in zip(samples.diagnoses, samples.procedures)]

    def fit(self, cohort: Cohort, train: Samples, val: Samples) -> GraphLogRegRecommender:
        if self.expander is None:
            self.expander = workspace_expander(self.workspace, cohort, self.expansion)
        else:
            self.expander.names.update({c: n for c, n in cohort.names().items() if c not in self.expander.names})
        self.concepts = sorted({k for cs in self._codes(train) for k in self.expander.expand_visit(cs)})
        self.chosen["n_concepts"] = len(self.concepts)
        return super().fit(cohort, train, val)

    def _x(self, samples: Samples):
        return concept_matrix(self.expander, self._codes(samples), self.concepts)
