"""The student: a small graph-aware visit encoder with a drug head (no language model at inference).

Each code (diagnosis, procedure, drug) is ``id embedding + W · graph vector``: the learned id part
covers codes seen in training; the fixed fused graph vector (KGE ⊕ GNN) carries codes the training set
never saw. The current visit's codes are attention-pooled; earlier visits are pooled the same way
(their drugs included) and attended over with a recency embedding. First visits have no history: the
graph neighbourhood of their diagnoses stands in (the graph-vector mean of the drugs the graph links to
those codes, weighted by the evidence). The graph prior itself (evidence counts per drug) also enters
the head directly with a learned per-drug weight, beside a wide code -> drug term for codes seen in
training (the capacity of the logistic-regression baseline, inside the student).

With a patient profile (``StudentConfig.profile``) LEADER's profile encoder makes a prompt vector that
is attended over with the earlier visits (first visits: added to the graph neighbourhood).
:class:`LeaderStudentModel` is the reference code's own student (set- and visit-level transformers).
"""

from __future__ import annotations

import torch
from torch import nn


class AttentionPool(nn.Module):
    """Masked additive attention pooling over a set: (..., L, d) -> (..., d)."""

    def __init__(self, dim: int):
        super().__init__()
        self.score = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, 1, bias=False))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, scores: torch.Tensor | None = None) -> torch.Tensor:
        """``scores``: the items' raw scores when already known (gathered from a per-code table: an item's
        score depends on its vector alone), else computed here."""
        s = (self.score(x).squeeze(-1) if scores is None else scores).masked_fill(~mask, float("-inf"))
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

    def __init__(self, code_vectors: torch.Tensor, drug_vectors: torch.Tensor, n_known_codes: int, n_known_drugs: int, n_out: int, dim: int = 64, max_history: int = 8, dropout: float = 0.2,
                 profile_vocab: int = 0, profile_fields: int = 0):
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
        # the patient profile (off when profile_fields == 0): a prompt vector read with the history
        self.profile = ProfileEncoder(profile_vocab, profile_fields, dim) if profile_fields else None

    def prompt(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.profile(batch["profile"])

    def drug_set(self, drugs: torch.Tensor) -> torch.Tensor:
        """(n, L) drug ids -> (n, d): the mean of the set's drug vectors (the alignment loss's drug side)."""
        m = (drugs > 0).unsqueeze(-1).float()
        return (self._drugs(drugs) * m).sum(1) / m.sum(1).clamp(min=1.0)

    def _codes(self, idx: torch.Tensor) -> torch.Tensor:
        known = torch.where(idx > self.n_known_codes, torch.full_like(idx, self.n_known_codes + 1), idx)
        return self.code_id(known) + self.code_graph(self.code_vectors[idx])

    def _drugs(self, idx: torch.Tensor) -> torch.Tensor:
        known = torch.where(idx > self.n_known_drugs, torch.full_like(idx, self.n_known_drugs + 1), idx)
        return self.drug_id(known) + self.drug_graph(self.drug_vectors[idx])

    def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The student feature (what is distilled towards the teacher's): (n, dim).

        Every code's and drug's vector (and its history-pooling score) is computed once per call for the
        whole vocabulary and gathered per slot: the same numbers as computing them slot by slot, at a
        fraction of the cost when histories hold thousands of code slots per batch."""
        cur = batch["codes"]
        codes = self._codes(torch.arange(self.code_vectors.shape[0], device=cur.device))
        current = self.pool_current(self.dropout(codes[cur]), cur > 0)
        hc, hd = batch["hist_codes"], batch["hist_drugs"]  # (n, H, L)
        n, h = hc.shape[:2]
        if h:
            drugs = self._drugs(torch.arange(self.drug_vectors.shape[0], device=cur.device))
            cs, ds = self.pool_visit.score(codes).squeeze(-1), self.pool_visit.score(drugs).squeeze(-1)
            mask = torch.cat([hc > 0, hd > 0], dim=2)
            w = torch.nan_to_num(torch.softmax(torch.cat([cs[hc], ds[hd]], dim=2).masked_fill(~mask, float("-inf")), dim=-1), nan=0.0)
            lc, ld = hc.shape[2], hd.shape[2]
            # pool_visit's weighted sum as two weighted embedding bags: no (n, H, L, d) tensor is built
            bag = lambda idx, table, wt, k: nn.functional.embedding_bag(idx.reshape(-1, k), table, per_sample_weights=wt.reshape(-1, k), mode="sum")  # noqa: E731
            visits = (bag(hc, codes, w[..., :lc], lc) + bag(hd, drugs, w[..., lc:], ld)).view(n, h, -1)
            visits = visits + self.recency(batch["hist_age"].clamp(max=self.recency.num_embeddings - 1))
            history = self.pool_history(visits, batch["hist_mask"])
        else:
            history = torch.zeros_like(current)
        has_hist = batch["hist_mask"].any(-1, keepdim=True) if h else torch.zeros(n, 1, dtype=torch.bool, device=cur.device)
        neigh = self.neighbourhood(batch["prior"] @ self.drug_vectors[1:1 + batch["prior"].shape[1]] / batch["prior"].sum(-1, keepdim=True).clamp(min=1e-6)) + self.no_history
        if self.profile is not None:
            # LEADER's profile prompt, placed before the earlier visits (first visits: beside the graph neighbourhood)
            p = self.prompt(batch)
            if h:
                history = self.pool_history(torch.cat([p.unsqueeze(1), visits], 1), torch.cat([torch.ones(n, 1, dtype=torch.bool, device=cur.device), batch["hist_mask"]], 1))
            neigh = neigh + p
        history = torch.where(has_hist, history, neigh)
        prior = self.prior_in(batch["prior"])
        return self.mlp(torch.cat([current, history, prior], dim=-1))

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.encode(batch)
        cur = batch["codes"]
        known = torch.where(cur > self.n_known_codes, torch.zeros_like(cur), cur)
        logits = self.head(self.dropout(feat)) + self.prior_weight * batch["prior"] + self.wide(known)
        concept_head = getattr(self, "concept_head", None)  # graph-grounded codes (kgrec.student.concepts), when set
        if concept_head is not None:
            logits = logits + concept_head(batch)
        return logits, feat


# ---------------------------------------------------------------- patient profile (LEADER's profile encoder)
class ProfileVocab:
    """Profile fields of a cohort -> per-field token ids, as LEADER's ``profile_tokenizer``: one
    vocabulary per field, a missing value being its own ``<missing>`` token (LEADER fills "unknown").

    Token ids index one shared table: field ``f``'s tokens are ``offsets[f] .. offsets[f+1]-1``, the first
    of them ``<missing>``. Values first seen after training map to ``<missing>`` too.
    """

    def __init__(self, fields: list[str], values: dict[str, list[str]]):
        self.fields = list(fields)
        self.values = {f: list(values.get(f, [])) for f in self.fields}
        self.index: dict[str, dict[str, int]] = {}
        n = 0
        for f in self.fields:
            self.index[f] = {"<missing>": n, **{v: n + 1 + i for i, v in enumerate(self.values[f])}}
            n += 1 + len(self.values[f])
        self.size = n

    @classmethod
    def from_samples(cls, fields: list[str], profiles: list[dict]) -> ProfileVocab:
        from kgrec.cohort.samples import profile_tokens

        vals: dict[str, set] = {f: set() for f in fields}
        for p in profiles:
            for t in profile_tokens(p):
                f, _, v = t.partition(":")
                if f in vals:
                    vals[f].add(v)
        return cls(fields, {f: sorted(v) for f, v in vals.items()})

    def encode(self, profiles: list[dict]) -> torch.Tensor:
        """(n, n_fields) token ids."""
        from kgrec.cohort.samples import profile_tokens

        out = torch.zeros(len(profiles), max(len(self.fields), 1), dtype=torch.long)
        for i, p in enumerate(profiles):
            toks = dict(t.split(":", 1) for t in profile_tokens(p))
            for k, f in enumerate(self.fields):
                idx = self.index[f]
                out[i, k] = idx.get(toks.get(f, "<missing>"), idx["<missing>"])
        return out

    def state(self) -> dict:
        return {"fields": self.fields, "values": self.values}


class ProfileEncoder(nn.Module):
    """LEADER's profile encoder: one embedding per field, concatenated, a linear map to a prompt vector
    of the visit encoder's width. Without fields it is LEADER's ``PaddingEncoder`` (a learned constant)."""

    def __init__(self, vocab_size: int, n_fields: int, dim: int):
        super().__init__()
        self.n_fields = max(n_fields, 1)
        self.emb = nn.Embedding(max(vocab_size, 1), dim)
        self.head = nn.Linear(self.n_fields * dim, dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.emb(ids).flatten(1))


def alignment_loss(x: torch.Tensor, y: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """LEADER's profile–visit alignment (its ``Contrastive_Loss``, both directions): cosine similarities
    of the batch's (profile prompt, drug-set) pairs; for each column ``-log(exp(s_ii/τ) / Σ_{j≠i} exp(s_ji/τ))``,
    summed over the two directions and averaged over the batch. Needs ≥ 2 samples (0 otherwise)."""
    if x.shape[0] < 2:
        return x.sum() * 0.0

    def one(a, b):
        sim = nn.functional.cosine_similarity(a.unsqueeze(1), b.unsqueeze(0), dim=2) / tau
        pos = torch.diagonal(sim)
        neg = torch.logsumexp(sim.masked_fill(torch.eye(len(sim), dtype=torch.bool, device=sim.device), float("-inf")), dim=0)
        return neg - pos

    return (one(x, y) + one(y, x)).mean()


# ---------------------------------------------------------------- LEADER's student (set + visit transformers)
class _SetTransformer(nn.Module):
    """Transformer layers over the items of each set, then the masked mean: (N, L, d) -> (N, d)."""

    def __init__(self, dim: int, layers: int, heads: int, dropout: float):
        super().__init__()
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=dim, dropout=dropout, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] == 0:
            return x.sum(-2)
        key = mask.clone()
        key[:, 0] |= ~mask.any(-1)  # an empty set attends to its padding slot (pooled away below), not to nothing
        h = self.enc(x, src_key_padding_mask=~key)
        m = mask.unsqueeze(-1).float()
        return (h * m).sum(-2) / m.sum(-2).clamp(min=1.0)


class LeaderStudentModel(nn.Module):
    """The student of LEADER's reference code (``models/LEADER.py``), on kgrec's batches.

    Diagnosis, procedure and drug sets of each visit are encoded by one set transformer per kind and
    mean-pooled; the visit sequences (history, then the current visit; drugs: the profile prompt, then
    the history's drug sets, the current drugs being the label) go through one visit transformer shared
    by the three streams and are mean-pooled; ``ReLU → Linear(3d, 2d) → ReLU → Linear(2d, n_drugs)``
    scores the drugs. The distilled feature is the ``Linear(3d, 2d)`` output (LEADER's "mediator").
    Item embeddings are kgrec's ``id + W · graph vector`` (zero graph vectors when ``graph`` is off, which
    is LEADER's plain id embedding). Same batch keys as :class:`StudentModel`.
    """

    def __init__(self, code_vectors, drug_vectors, code_is_procedure: torch.Tensor, n_known_codes: int, n_known_drugs: int, n_out: int,
                 dim: int = 64, layers: int = 1, heads: int = 4, dropout: float = 0.2, profile_vocab: int = 0, profile_fields: int = 0):
        super().__init__()
        self.register_buffer("code_vectors", code_vectors.float())
        self.register_buffer("drug_vectors", drug_vectors.float())
        self.register_buffer("code_is_procedure", code_is_procedure.bool())
        self.n_known_codes, self.n_known_drugs = n_known_codes, n_known_drugs
        g = code_vectors.shape[1]
        self.code_id = nn.Embedding(n_known_codes + 2, dim, padding_idx=0)
        self.drug_id = nn.Embedding(n_known_drugs + 2, dim, padding_idx=0)
        self.code_graph = nn.Linear(g, dim, bias=False)
        self.drug_graph = nn.Linear(g, dim, bias=False)
        self.diag_set = _SetTransformer(dim, layers, heads, dropout)
        self.proc_set = _SetTransformer(dim, layers, heads, dropout)
        self.drug_set_enc = _SetTransformer(dim, layers, heads, dropout)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=dim, dropout=dropout, batch_first=True)
        self.visit = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.profile = ProfileEncoder(profile_vocab, profile_fields, dim)
        self.mid = nn.Linear(3 * dim, 2 * dim)
        self.out = nn.Linear(2 * dim, n_out)

    _codes = StudentModel._codes
    _drugs = StudentModel._drugs

    def prompt(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        n = batch["codes"].shape[0]
        ids = batch.get("profile")
        if ids is None:
            ids = torch.zeros(n, self.profile.n_fields, dtype=torch.long, device=batch["codes"].device)
        return self.profile(ids)

    def drug_set(self, drugs: torch.Tensor) -> torch.Tensor:
        """(n, L) drug ids -> (n, d) set vectors (the alignment loss's drug side, as LEADER's ``align_profile``)."""
        return self.drug_set_enc(self._drugs(drugs), drugs > 0)

    def _visits(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, T, L) code ids -> diagnosis and procedure set vectors (n, T, d) each."""
        n, t, l_ = codes.shape
        flat = codes.reshape(n * t, l_)
        emb = self._codes(flat)
        proc = self.code_is_procedure[flat] & (flat > 0)
        diag = ~self.code_is_procedure[flat] & (flat > 0)
        return self.diag_set(emb, diag).reshape(n, t, -1), self.proc_set(emb, proc).reshape(n, t, -1)

    def _pool_visits(self, seq: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        key = mask.clone()
        key[:, 0] |= ~mask.any(-1)
        h = self.visit(seq, src_key_padding_mask=~key)
        m = mask.unsqueeze(-1).float()
        return (h * m).sum(1) / m.sum(1).clamp(min=1.0)

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        cur, hc, hd, hm = batch["codes"], batch["hist_codes"], batch["hist_drugs"], batch["hist_mask"]
        n, h = hc.shape[:2]
        width = max(cur.shape[1], hc.shape[2] if h else 0)
        pad = lambda x: nn.functional.pad(x, (0, width - x.shape[-1]))  # noqa: E731
        codes = torch.cat([pad(hc), pad(cur).unsqueeze(1)], dim=1) if h else pad(cur).unsqueeze(1)
        one = torch.ones(n, 1, dtype=torch.bool, device=cur.device)
        vmask = torch.cat([hm, one], dim=1) if h else one
        dx, px = self._visits(codes)
        p = self.prompt(batch)
        if h:
            dsets = self.drug_set_enc(self._drugs(hd.reshape(n * h, -1)), hd.reshape(n * h, -1) > 0).reshape(n, h, -1)
            med = torch.cat([p.unsqueeze(1), dsets], dim=1)
            mmask = torch.cat([one, hm], dim=1)
        else:
            med, mmask = p.unsqueeze(1), one
        z = torch.cat([self._pool_visits(dx, vmask), self._pool_visits(px, vmask), self._pool_visits(med, mmask)], dim=-1)
        feat = self.mid(torch.relu(z))
        return self.out(torch.relu(feat)), feat
