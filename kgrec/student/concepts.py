"""The student's graph-grounded wide term: visit concepts -> drug weights, shared and per site.

Each visit's codes are expanded through the graph (:mod:`kgrec.graph.expand`: category, GEM partner in
the other ICD version, Disease Ontology terms and ancestors), and a bag of weighted concepts enters the
drug logits through one linear map (an ``EmbeddingBag`` in ``sum`` mode with the expansion weights). A
code the model never saw still lands on concepts it did see, so the student scores another site's codes.
Trained on several sites (a pooled cohort with a ``site`` column), every concept also has one copy per
site and each site a bias per drug (feature augmentation, Daumé III 2007): what the sites share is
learnt once, what one site does differently goes to its copy; an unseen site gets the shared part.

This module builds the inputs with numpy and scipy alone (a deployed student scores without torch); the
trainable head is :class:`kgrec.student.concept_head.ConceptHead`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kgrec.cohort.base import Cohort
from kgrec.cohort.samples import Samples
from kgrec.graph.expand import CodeExpander


class ConceptFeatures:
    """Concept vocabulary (from the training visits) and the padded index/weight tensors of a batch."""

    def __init__(self, concepts: list[str], sites: list[str], expansions: dict[str, dict[str, float]], graph_tables: Path | None = None):
        self.concepts, self.sites = list(concepts), list(sites)
        self.index = {c: i + 1 for i, c in enumerate(self.concepts)}
        self.site_index = {s: i + 1 for i, s in enumerate(self.sites)}
        self.expansions = expansions  # code -> {concept: weight}, for every code seen so far
        self.graph_tables = graph_tables
        self._expander: CodeExpander | None = None
        self.unexpanded: set[str] = set()

    @classmethod
    def fit(cls, cohort: Cohort, train: Samples, expander: CodeExpander, graph_tables: Path | None = None) -> ConceptFeatures:
        codes = sorted({c for col in ("diagnoses", "procedures") for cs in cohort.visits[col] for c in cs})
        expansions = {c: expander.expand(c) for c in codes}
        seen = sorted({k for d, p in zip(train.diagnoses, train.procedures) for c in d + p for k in expansions[c]})
        sites = sorted(set(cohort.sites(train.visit_idx)))
        obj = cls(seen, sites if len(sites) > 1 else [], expansions, graph_tables)
        obj._expander = expander
        return obj

    @property
    def n_inputs(self) -> int:
        return (len(self.concepts) + 1) * (len(self.sites) + 1)

    def _expand(self, code: str) -> dict[str, float]:
        hit = self.expansions.get(code)
        if hit is not None:
            return hit
        if self._expander is None and self.graph_tables is not None and (self.graph_tables / "nodes").is_dir():
            from kgrec.graph.tables import GraphTables

            self._expander = CodeExpander.from_tables(GraphTables.load(self.graph_tables))
        if self._expander is None:
            self.unexpanded.add(code)
            return {}
        hit = self.expansions[code] = self._expander.expand(code)
        return hit

    def _code_arrays(self, code: str) -> tuple[np.ndarray, np.ndarray]:
        """A code's known concepts as (1-based index, weight) arrays, cached."""
        cache = self.__dict__.setdefault("_arrays", {})
        hit = cache.get(code)
        if hit is None:
            pairs = [(self.index[k], w) for k, w in self._expand(code).items() if k in self.index]
            hit = cache[code] = (np.asarray([j for j, _ in pairs], np.int64), np.asarray([w for _, w in pairs], np.float32))
        return hit

    def arrays(self, cohort: Cohort, samples: Samples, sparse: bool = False) -> dict:
        """Padded ``concept_idx``/``concept_w`` (each visit's concepts at their largest weight over its codes,
        then the visit's site copy of each) and ``site``, built with array operations over the batch.
        ``sparse=True``: the same weights as ``concept_x``, a (visits, :attr:`n_inputs`) sparse matrix
        (:class:`SparseRows`; :class:`ConceptHead` multiplies it, several times faster than the bag in
        full-batch training), instead of the padded pair. Numpy arrays (``concept_x`` a scipy CSR matrix);
        :meth:`batch` gives the same as torch tensors."""
        n_c = len(self.concepts) + 1
        n = len(samples)
        site_ids = np.asarray([self.site_index.get(s, 0) for s in cohort.sites(samples.visit_idx)], dtype=np.int64)
        cache = self.__dict__.setdefault("_arrays", {})
        per_visit = [len(d) + len(p) for d, p in zip(samples.diagnoses, samples.procedures)]
        pairs = [cache.get(c) or self._code_arrays(c) for d, p in zip(samples.diagnoses, samples.procedures) for c in (*d, *p)]
        lens = np.fromiter((len(j) for j, _ in pairs), dtype=np.int64, count=len(pairs))
        if lens.sum():
            r = np.repeat(np.repeat(np.arange(n, dtype=np.int64), per_visit), lens)
            j = np.concatenate([a for a, _ in pairs])
            w = np.concatenate([b for _, b in pairs])
            order = np.lexsort((-w, j, r))  # by visit, concept, then the largest weight first
            r, j, w = r[order], j[order], w[order]
            first = np.ones(len(r), bool)
            first[1:] = (r[1:] != r[:-1]) | (j[1:] != j[:-1])
            r, j, w = r[first], j[first], w[first]
            own = site_ids[r] > 0  # the site's copy of each concept
            r, j, w = np.concatenate([r, r[own]]), np.concatenate([j, j[own] + site_ids[r[own]] * n_c]), np.concatenate([w, w[own]])
            order = np.argsort(r, kind="stable")
            r, j, w = r[order], j[order], w[order]
        else:
            r = j = np.zeros(0, np.int64)
            w = np.zeros(0, np.float32)
        counts = np.bincount(r, minlength=n)
        if sparse:  # rows sorted: the CSR arrays directly
            indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
            from scipy import sparse as sp

            return {"concept_x": sp.csr_matrix((w.astype(np.float32), j, indptr), shape=(n, self.n_inputs)), "site": site_ids}
        pos = np.arange(len(r)) - np.repeat(np.cumsum(counts) - counts, counts)
        width = max(int(counts.max()) if n else 1, 1)
        out_idx = np.zeros((n, width), np.int64)
        out_w = np.zeros((n, width), np.float32)
        out_idx[r, pos], out_w[r, pos] = j, w
        return {"concept_idx": out_idx, "concept_w": out_w, "site": site_ids}

    def batch(self, cohort: Cohort, samples: Samples, sparse: bool = False) -> dict:
        """:meth:`arrays` as torch tensors (``concept_x`` a :class:`~kgrec.student.concept_head.SparseRows`)."""
        return as_tensors(self.arrays(cohort, samples, sparse))

    def state(self) -> dict:
        return {"concepts": self.concepts, "sites": self.sites, "expansions": {c: e for c, e in self.expansions.items()}}

    @classmethod
    def from_state(cls, state: dict, graph_tables: Path | None) -> ConceptFeatures:
        return cls(state["concepts"], state["sites"], state["expansions"], graph_tables)


def as_tensors(arrays: dict) -> dict:
    """A batch of numpy arrays (:meth:`ConceptFeatures.arrays`, or the wide student's inputs) as the
    torch batch that training reads: a scipy CSR ``concept_x`` becomes a
    :class:`~kgrec.student.concept_head.SparseRows`, every other array a tensor sharing its memory."""
    import torch
    from scipy import sparse

    from kgrec.student.concept_head import SparseRows

    return {k: SparseRows.from_csr(v) if sparse.issparse(v) else torch.from_numpy(v) for k, v in arrays.items()}
