"""The student: a small graph-aware visit encoder with a drug head (no language model at inference).

Each code (diagnosis, procedure, drug) is ``id embedding + W · graph vector``: the learned id part
covers codes seen in training; the fixed fused graph vector (KGE ⊕ GNN) carries codes the training set
never saw. The current visit's codes are attention-pooled; earlier visits are pooled the same way
(their drugs included) and attended over with a recency embedding. First visits have no history: the
graph neighbourhood of their diagnoses stands in (the graph-vector mean of the drugs the graph links to
those codes, weighted by the evidence). The graph prior itself (evidence counts per drug) also enters
the head directly with a learned per-drug weight, beside a wide code -> drug term for codes seen in
training (the capacity of the logistic-regression baseline, inside the student).
"""

from __future__ import annotations

import torch
from torch import nn


class AttentionPool(nn.Module):
    """Masked additive attention pooling over a set: (..., L, d) -> (..., d)."""

    def __init__(self, dim: int):
        super().__init__()
        self.score = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, 1, bias=False))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        s = self.score(x).squeeze(-1).masked_fill(~mask, float("-inf"))
        w = torch.softmax(s, dim=-1)
        w = torch.nan_to_num(w, nan=0.0)  # all-masked rows pool to zero
        return (w.unsqueeze(-1) * x).sum(-2)


class StudentModel(nn.Module):
    """Args:
    code_vectors: (n_codes + 1, g) fixed graph vectors of diagnosis/procedure codes; row 0 = padding.
    drug_vectors: (n_drugs + 1, g) fixed graph vectors of drugs (history drugs); row 0 = padding.
    n_known_codes / n_known_drugs: ids ``1..n_known`` get a learned id embedding; higher ids (codes
        first seen after training) share the "unknown" embedding and rely on their graph vector.
    """

    def __init__(self, code_vectors: torch.Tensor, drug_vectors: torch.Tensor, n_known_codes: int, n_known_drugs: int, n_out: int, dim: int = 64, max_history: int = 8, dropout: float = 0.2):
        super().__init__()
        self.register_buffer("code_vectors", code_vectors.float())
        self.register_buffer("drug_vectors", drug_vectors.float())
        self.n_known_codes, self.n_known_drugs = n_known_codes, n_known_drugs
        g = code_vectors.shape[1]
        self.code_id = nn.Embedding(n_known_codes + 2, dim, padding_idx=0)  # last row: unknown
        self.drug_id = nn.Embedding(n_known_drugs + 2, dim, padding_idx=0)
        self.code_graph = nn.Linear(g, dim, bias=False)
        self.drug_graph = nn.Linear(g, dim, bias=False)
        self.pool_current = AttentionPool(dim)
        self.pool_visit = AttentionPool(dim)
        self.pool_history = AttentionPool(dim)
        self.recency = nn.Embedding(max_history + 1, dim)
        self.neighbourhood = nn.Linear(g, dim)
        self.no_history = nn.Parameter(torch.zeros(dim))
        self.prior_in = nn.Linear(n_out, dim)
        self.mlp = nn.Sequential(nn.Linear(3 * dim, 2 * dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(2 * dim, dim), nn.ReLU())
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(dim, n_out)
        self.prior_weight = nn.Parameter(torch.zeros(n_out))
        # wide part: a direct code -> drug weight for codes seen in training (logistic regression's capacity)
        self.wide = nn.EmbeddingBag(n_known_codes + 2, n_out, mode="sum", padding_idx=0)
        nn.init.zeros_(self.wide.weight)

    def _codes(self, idx: torch.Tensor) -> torch.Tensor:
        known = torch.where(idx > self.n_known_codes, torch.full_like(idx, self.n_known_codes + 1), idx)
        return self.code_id(known) + self.code_graph(self.code_vectors[idx])

    def _drugs(self, idx: torch.Tensor) -> torch.Tensor:
        known = torch.where(idx > self.n_known_drugs, torch.full_like(idx, self.n_known_drugs + 1), idx)
        return self.drug_id(known) + self.drug_graph(self.drug_vectors[idx])

    def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The student feature (what is distilled towards the teacher's): (n, dim)."""
        cur = batch["codes"]
        current = self.pool_current(self.dropout(self._codes(cur)), cur > 0)
        hc, hd = batch["hist_codes"], batch["hist_drugs"]  # (n, H, L)
        n, h = hc.shape[:2]
        if h:
            items = torch.cat([self._codes(hc), self._drugs(hd)], dim=2)
            mask = torch.cat([hc > 0, hd > 0], dim=2)
            visits = self.pool_visit(items, mask) + self.recency(batch["hist_age"].clamp(max=self.recency.num_embeddings - 1))
            history = self.pool_history(visits, batch["hist_mask"])
        else:
            history = torch.zeros_like(current)
        has_hist = batch["hist_mask"].any(-1, keepdim=True) if h else torch.zeros(n, 1, dtype=torch.bool)
        neigh = self.neighbourhood(batch["prior"] @ self.drug_vectors[1:1 + batch["prior"].shape[1]] / batch["prior"].sum(-1, keepdim=True).clamp(min=1e-6)) + self.no_history
        history = torch.where(has_hist, history, neigh)
        prior = self.prior_in(batch["prior"])
        return self.mlp(torch.cat([current, history, prior], dim=-1))

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.encode(batch)
        cur = batch["codes"]
        known = torch.where(cur > self.n_known_codes, torch.zeros_like(cur), cur)
        logits = self.head(self.dropout(feat)) + self.prior_weight * batch["prior"] + self.wide(known)
        return logits, feat
