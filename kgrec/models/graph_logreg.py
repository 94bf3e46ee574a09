"""``logreg-graph``: kgrec's logistic regression over graph-grounded codes instead of raw code ids.

The same one-vs-rest model, C grid and validation rule as ``logreg``; only the input changes: each visit
is the weighted multi-hot of the graph concepts its codes reach (:mod:`kgrec.graph.expand`: ICD
category, GEM partners in the other ICD version, Disease Ontology terms and their ancestors). The
difference between the two rows isolates what the graph adds from what the model adds, and it is what
lets a model trained on one site's codes score another site's.

**Sites.** Trained on a pooled cohort (:mod:`kgrec.transfer.pool`: visits with a ``site`` column) that
holds several sites, the model knows the site by feature augmentation (Daumé III, "Frustratingly easy
domain adaptation", ACL 2007): every concept feature appears once shared and once per site (zero for
the other sites' visits), plus a per-site bias column. The L2 penalty keeps the site copies small unless
a site prescribes differently; a site never seen in training is scored with the shared part alone. The
shared block's scale (how cheaply the sites share a weight) is chosen with ``C`` on validation visits.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import sparse

from kgrec.cohort.base import Cohort
from kgrec.cohort.samples import Samples
from kgrec.graph.expand import CodeExpander, ExpansionConfig
from kgrec.metrics import per_visit
from kgrec.models.base import Recommender
from kgrec.models.baselines import LogRegRecommender

SHARED_SCALES = (1.0, 2.0, 4.0)  # scale of the shared block against the per-site copies (chosen on validation)


def workspace_expander(workspace: Path | str, cohort: Cohort | None = None, config: ExpansionConfig | None = None, who: str = "logreg-graph") -> CodeExpander:
    """A :class:`CodeExpander` over the workspace's graph tables, naming codes from ``cohort``.

    Kept per process for the same tables and settings (:func:`kgrec.graph.tables.per_tables`): K-fold CV
    and the transfer modes fit many models over one graph, and loading it is most of a fit's time.
    """
    from kgrec.errors import WorkspaceError
    from kgrec.graph.tables import GraphTables, per_tables

    folder = Path(workspace) / "graph" / "tables"
    if not (folder / "nodes").is_dir():
        raise WorkspaceError(f"{who} needs the workspace graph: run `kgrec load-graph -w {workspace}` first")
    cfg = config or ExpansionConfig()
    ex = per_tables(folder, "expander", lambda: CodeExpander.from_tables(GraphTables.load(folder), cfg), cfg.key())
    if cohort is not None:
        ex.add_names(cohort.names())
    return ex


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

    def __init__(self, drug_vocab: list[str], workspace: Path | str | None = None, expansion: ExpansionConfig | None = None, expander: CodeExpander | None = None, adapt: bool = True, **kw):
        super().__init__(drug_vocab, **kw)
        if expander is None and workspace is None:
            raise ValueError("logreg-graph needs a workspace with a loaded graph (or an expander)")
        self.workspace, self.expansion, self.expander, self.adapt = workspace, expansion, expander, adapt
        self.sites: list[str] = []
        self.shared_scale = 1.0

    def _codes(self, samples: Samples) -> list[list[str]]:
        return [list(d) + list(p) for d, p in zip(samples.diagnoses, samples.procedures)]

    def fit(self, cohort: Cohort, train: Samples, val: Samples) -> GraphLogRegRecommender:
        if self.expander is None:
            self.expander = workspace_expander(self.workspace, cohort, self.expansion)
        else:
            self.expander.add_names(cohort.names())
        self.concepts = sorted({k for cs in self._codes(train) for k in self.expander.expand_visit(cs)})
        self.chosen["n_concepts"] = len(self.concepts)
        self._cohort = cohort
        sites = sorted(set(cohort.sites(train.visit_idx))) if self.adapt else []
        self.sites = sites if len(sites) > 1 else []
        if not self.sites or not len(val):
            return super().fit(cohort, train, val)
        # how strongly the sites share their weights: the shared block's scale, chosen after C on validation
        # (coordinate search: C over its grid at the first scale, then each other scale at that C; 6 fits
        # instead of the 12 of the full grid, and fewer comparisons on a small validation set)
        self.chosen["sites"] = self.sites
        best, grid = None, self.grid
        try:
            for scale in SHARED_SCALES:
                self.shared_scale = scale
                super().fit(cohort, train, val)
                p = self.predict_proba(cohort, val)
                score = float(per_visit(self.targets(val), p, p > 0.5)["prauc"].mean())
                if best is None or score > best[0]:
                    best = (score, scale, self.models, self.chosen["C"])
                self.grid = (best[3],)
        finally:
            self.grid = grid
        _, self.shared_scale, self.models, self.chosen["C"] = best
        self.chosen["shared_scale"] = self.shared_scale
        return self

    def predict_proba(self, cohort: Cohort, samples: Samples) -> np.ndarray:
        self._cohort = cohort
        return super().predict_proba(cohort, samples)

    def _x(self, samples: Samples):
        x = concept_matrix(self.expander, self._codes(samples), self.concepts)
        if not self.sites:
            return x
        site = np.asarray(self._cohort.sites(samples.visit_idx))
        blocks = [x * self.shared_scale]
        for s in self.sites:
            d = sparse.diags((site == s).astype(np.float32))
            blocks.append(d @ x)
        blocks.append(sparse.csr_matrix(np.stack([(site == s).astype(np.float32) for s in self.sites], axis=1)))
        return sparse.hstack(blocks, format="csr")


class SiteEnsembleRecommender(Recommender):
    """``site-ensemble``: each visit's probabilities are the mean of its own site's model (trained on that
    site's training visits only, ``C`` chosen on that site's validation visits) and the site-aware
    ``logreg-graph`` trained on every site (:class:`GraphLogRegRecommender`).

    Pooling another hospital into one model adds rows but also that hospital's prescribing habits; the
    site's own model keeps the target's habits, the pooled graph model brings what the codes mean across
    sites. The mean is unweighted (``own_weight=0.5``, fixed, never tuned: a demo fold has about ten
    validation visits). The own model is ``logreg-graph`` on the site alone (``own_model``; ``logreg``,
    raw code ids, is the other choice). Only sites with validation visits get an own model (in pooled
    transfer, the target); every other visit, such as the target's in zero-shot transfer, is scored by
    the pooled graph model alone, which ``chosen`` records. Trained on one site it is ``logreg-graph``
    itself (its one fit serves as both), or with ``own_model="logreg"`` the mean of ``logreg`` and ``logreg-graph``.

    Args:
        workspace, expansion, expander: as :class:`GraphLogRegRecommender`.
        own_model: ``logreg-graph`` (default) or ``logreg``.
        own_weight: the weight of the site's own model in the mean.
    """

    name = "site-ensemble"
    uses_workspace = True

    def __init__(self, drug_vocab: list[str], workspace: Path | str | None = None, expansion: ExpansionConfig | None = None,
                 expander: CodeExpander | None = None, own_model: str = "logreg-graph", own_weight: float = 0.5, seed: int = 0):
        super().__init__(drug_vocab)
        if not 0.0 <= own_weight <= 1.0:
            raise ValueError(f"own_weight must lie in [0, 1], got {own_weight}")
        if own_model not in ("logreg-graph", "logreg"):
            raise ValueError(f"own_model must be logreg-graph or logreg, got {own_model!r}")
        self.graph = GraphLogRegRecommender(drug_vocab, workspace=workspace, expansion=expansion, expander=expander, seed=seed)
        self.own: dict[str, LogRegRecommender] = {}
        self.own_model, self.own_weight, self.seed = own_model, own_weight, seed

    def _own(self) -> LogRegRecommender:
        if self.own_model == "logreg":
            return LogRegRecommender(self.drug_vocab, seed=self.seed)
        return GraphLogRegRecommender(self.drug_vocab, expander=self.graph.expander, adapt=False, seed=self.seed)

    def fit(self, cohort: Cohort, train: Samples, val: Samples) -> SiteEnsembleRecommender:
        from kgrec.models.memo import recall

        hit = recall("logreg-graph", cohort, train, val)  # the same fit as this fold's logreg-graph row: reused
        g = self.graph
        same = (type(hit) is GraphLogRegRecommender and hit.expansion == g.expansion and g.expander is None and hit.adapt == g.adapt
                and hit.seed == g.seed and hit.grid == g.grid and hit.profile == g.profile and str(hit.workspace) == str(g.workspace))
        if same:
            self.graph = hit
        else:
            g.fit(cohort, train, val)
        self.own = fit_own_site_models(cohort, train, val, self.graph, self._own, reuse_pooled=self.own_model == "logreg-graph")
        site_tr = np.asarray(cohort.sites(train.visit_idx), dtype=object)
        site_va = np.asarray(cohort.sites(val.visit_idx), dtype=object)
        self.chosen = {"own_model": self.own_model, "own_weight": self.own_weight, "graph": dict(self.graph.chosen),
                       "own": {s: {"C": m.chosen.get("C"), "n_train": int((site_tr == s).sum()), "n_val": int((site_va == s).sum())} for s, m in self.own.items()}}
        return self

    def predict_proba(self, cohort: Cohort, samples: Samples) -> np.ndarray:
        p, alone = blend_own_site_models(cohort, samples, self.graph.predict_proba(cohort, samples), self.own, self.graph, self.own_weight)
        if alone:
            self.chosen["graph_only_for_sites"] = alone
        return p


def fit_own_site_models(cohort: Cohort, train: Samples, val: Samples, pooled: Recommender, make_own: Callable[[], Recommender],
                        reuse_pooled: bool) -> dict[str, Recommender]:
    """Each site with validation visits gets its own model (``make_own()``), fitted on that site's training
    visits and chosen on its validation visits alone. Trained on one site with ``reuse_pooled``, the
    ``pooled`` model (already fitted on the same visits) serves as that site's own model."""
    site_tr = np.asarray(cohort.sites(train.visit_idx), dtype=object)
    site_va = np.asarray(cohort.sites(val.visit_idx), dtype=object)
    own: dict[str, Recommender] = {}
    for s in sorted(set(site_tr) & set(site_va)):
        if reuse_pooled and set(site_tr) == {s}:
            own[s] = pooled  # one site: the own model would be the same fit again
            continue
        tr, va = train.subset(np.flatnonzero(site_tr == s)), val.subset(np.flatnonzero(site_va == s))
        own[s] = make_own().fit(cohort, tr, va)
    return own


def blend_own_site_models(cohort: Cohort, samples: Samples, p: np.ndarray, own: dict[str, Recommender], pooled: Recommender,
                          own_weight: float) -> tuple[np.ndarray, list[str]]:
    """``p`` (the pooled model's probabilities) with each visit of a site in ``own`` mixed with its own
    model's, ``own_weight`` to the own model; and the sites of ``samples`` that have no own model."""
    site = np.asarray(cohort.sites(samples.visit_idx), dtype=object)
    for s, m in own.items():
        rows = np.flatnonzero(site == s)
        if len(rows) and m is not pooled:  # the one-site case: the mean of p with itself
            p[rows] = (1.0 - own_weight) * p[rows] + own_weight * m.predict_proba(cohort, samples.subset(rows))
    return p, sorted(set(site) - set(own))
