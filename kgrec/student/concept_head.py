"""The trainable half of the concept term (:mod:`kgrec.student.concepts` builds its inputs without torch):
the sparse batch matrix with its stored transpose, and the head that maps it to drug logits."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class SparseRows:
    """A batch's concept weights as a sparse (visits, inputs) CSR matrix (``indptr``, ``indices`` sorted
    within each row, ``data``) and, built on the first backward pass, its transpose, so that ``X @ W`` and
    its gradient ``Xᵀ @ G`` are each one sparse-dense product."""

    @classmethod
    def from_csr(cls, x) -> SparseRows:
        """From a scipy CSR matrix (``ConceptFeatures.arrays(..., sparse=True)["concept_x"]``)."""
        return cls(x.indptr, x.indices, x.data, x.shape)

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
