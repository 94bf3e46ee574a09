"""The student's graph-grounded wide term: visit concepts -> drug weights, shared and per site.

Each visit's codes are expanded through the graph (:mod:`kgrec.graph.expand`: category, GEM partner in
the other ICD version, Disease Ontology terms and ancestors), and a bag of weighted concepts enters the
drug logits through one linear map (an ``EmbeddingBag`` in ``sum`` mode with the expansion weights). A
code the model never saw still lands on concepts it did see, so the student scores another site's codes.
Trained on several sites (a pooled cohort with a ``site`` column), every concept also has one copy per
site and each site a bias per drug (feature augmentation, Daumé III 2007): what the sites share is
learnt once, what one site does differently goes to its copy; an unseen site gets the shared part.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

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

    def batch(self, cohort: Cohort, samples: Samples, sparse: bool = False) -> dict[str, torch.Tensor]:
        """Padded ``concept_idx``/``concept_w`` (each visit's concepts at their largest weight over its codes,
        then the visit's site copy of each) and ``site``, built with array operations over the batch.
        ``sparse=True``: the same weights as ``concept_x``, a (visits, :attr:`n_inputs`) sparse matrix
        (:class:`SparseRows`; :class:`ConceptHead` multiplies it, several times faster than the bag in
        full-batch training), instead of the padded pair."""
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
            return {"concept_x": SparseRows(indptr, j, w, (n, self.n_inputs)), "site": torch.from_numpy(site_ids)}
        pos = np.arange(len(r)) - np.repeat(np.cumsum(counts) - counts, counts)
        width = max(int(counts.max()) if n else 1, 1)
        out_idx = np.zeros((n, width), np.int64)
        out_w = np.zeros((n, width), np.float32)
        out_idx[r, pos], out_w[r, pos] = j, w
        return {"concept_idx": torch.from_numpy(out_idx), "concept_w": torch.from_numpy(out_w), "site": torch.from_numpy(site_ids)}

    def state(self) -> dict:
        return {"concepts": self.concepts, "sites": self.sites, "expansions": {c: e for c, e in self.expansions.items()}}

    @classmethod
    def from_state(cls, state: dict, graph_tables: Path | None) -> ConceptFeatures:
        return cls(state["concepts"], state["sites"], state["expansions"], graph_tables)


class SparseRows:
    """A batch's concept weights as a sparse (visits, inputs) CSR matrix (``indptr``, ``indices`` sorted
    within each row, ``data``) and, built on the first backward pass, its transpose, so that ``X @ W`` and
    its gradient ``Xᵀ @ G`` are each one sparse-dense product."""

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, shape: tuple[int, int]):
        self.arrays = (np.asarray(indptr, np.int64), np.asarray(indices, np.int64), np.asarray(data, np.float32))
        self.shape = shape
        self.x = _torch_csr(*self.arrays, shape)
        self._xt: torch.Tensor | None = None

    @property
    def xt(self) -> torch.Tensor:
        """The transpose (inference never needs it)."""
        if self._xt is None:
            from scipy import sparse

            t = sparse.csr_matrix((self.arrays[2], self.arrays[1], self.arrays[0]), shape=self.shape).T.tocsr()
            t.sort_indices()
            self._xt = _torch_csr(t.indptr, t.indices, t.data, t.shape)
        return self._xt

    def matmul(self, weight: torch.Tensor) -> torch.Tensor:
        return _SparseMatmul.apply(weight, self)


def _torch_csr(indptr, indices, data, shape) -> torch.Tensor:
    import warnings

    with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta": the product used here is stable
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(torch.from_numpy(np.asarray(indptr, np.int64)), torch.from_numpy(np.asarray(indices, np.int64)),
                                       torch.from_numpy(np.asarray(data, np.float32)), shape)


class _SparseMatmul(torch.autograd.Function):
    """``X @ W`` for a constant sparse ``X``; the gradient of ``W`` is ``Xᵀ @ G`` with the stored transpose."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, rows: SparseRows) -> torch.Tensor:
        ctx.rows = rows
        if rows.shape[0] == 0 or rows.x.values().numel() == 0:
            return weight.new_zeros((rows.shape[0], weight.shape[1]))
        return rows.x @ weight

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        rows = ctx.rows
        if rows.shape[0] == 0 or rows.xt.values().numel() == 0:
            return torch.zeros((rows.shape[1], grad.shape[1]), dtype=grad.dtype), None
        return rows.xt @ grad.contiguous(), None


class ConceptHead(nn.Module):
    """Drug logits from the weighted concept bag, plus a per-site bias (zero-initialised: starts neutral)."""

    def __init__(self, n_inputs: int, n_sites: int, n_out: int):
        super().__init__()
        self.wide = nn.EmbeddingBag(n_inputs, n_out, mode="sum", padding_idx=0)
        self.site_bias = nn.Embedding(n_sites + 1, n_out)
        nn.init.zeros_(self.wide.weight)
        nn.init.zeros_(self.site_bias.weight)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if "concept_x" in batch:  # the sparse form (ConceptFeatures.batch(sparse=True)): the same sum
            return batch["concept_x"].matmul(self.wide.weight) + self.site_bias(batch["site"])
        return self.wide(batch["concept_idx"], per_sample_weights=batch["concept_w"]) + self.site_bias(batch["site"])
