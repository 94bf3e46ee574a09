"""The wide student: a graph-grounded linear model over both of kgrec's views of a visit's codes,
distilled from a teacher's probabilities. No language model at inference.

Its logit for drug ``d`` is a sum of four terms, each read off tables computed once:

* **graph concepts**, shared and per site (:class:`~kgrec.student.concepts.ConceptFeatures`: each code's
  category, GEM partner, Disease Ontology terms and ancestors, weighted by hop; Daumé III feature
  augmentation over sites), with a per-site bias: the graph view of ``site-ensemble``;
* **code names**: the mean over the visit's diagnoses and procedures of each code's name embedding
  (the frozen backbone over the name alone, computed once per code: :func:`kgrec.teacher.encodings.encode_texts`),
  shared and per site: the names view of ``site-ensemble-names`` without its per-visit language-model pass;
* **graph vectors**: the mean of the codes' fused KGE ⊕ R-GCN vectors (``kgrec.embed``), shared and per
  site (a workspace without embeddings trains without this term, and says so in ``chosen``);
* **graph prior**: the code -> drug evidence of the open graph (:mod:`kgrec.graph.neighbourhood`), one
  weight per drug;
* a bias per drug.

Loss: BCE against ``(1 - λ)·labels + λ·p_teacher`` (``soft_weight`` λ; 1: the teacher's probabilities
alone), plus L2 (``weight_decay``). Full-batch Adam over a sparse concept matrix; the epoch and the L2
weight are chosen on the validation visits (PRAUC), never on test visits: the L2 weights are tried from
the weakest up, and the first that validates worse than the one before ends the search. Saved as
safetensors + JSON. Scoring (``predict_proba``, ``occlusion_logits``) is numpy and scipy alone: a loaded
student never imports torch, so ``kgrec recommend`` and ``kgrec explain`` answer without its start-up cost.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from kgrec.cohort.base import Cohort
from kgrec.cohort.codes import graph_code_key
from kgrec.cohort.samples import Samples
from kgrec.errors import WorkspaceError
from kgrec.metrics import per_visit
from kgrec.models.base import Recommender
from kgrec.progress import report

log = logging.getLogger(__name__)
L2_GRID = (1e-5, 1e-4, 1e-3)


def _wide_net(n_concepts: int, n_sites: int, name_dim: int, n_out: int):
    """The trainable form (torch), built only to fit; :meth:`WideStudent._logits` is the same sum in numpy."""
    import torch
    from torch import nn

    from kgrec.student.concept_head import ConceptHead

    class WideNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.concepts = ConceptHead(n_concepts, n_sites, n_out)
            self.names = nn.Linear(name_dim * (n_sites + 1), n_out)
            self.prior_weight = nn.Parameter(torch.zeros(n_out))
            nn.init.zeros_(self.names.weight)

        def forward(self, b: dict) -> torch.Tensor:
            return self.concepts(b) + self.names(b["names"]) + self.prior_weight * b["prior"]

    return WideNet()


class WideStudent(Recommender):
    """The wide student (module docstring).

    Args:
        workspace: graph tables (concepts, prior) of the target workspace.
        soft_weight: λ, the teacher's share of the training target.
        backbone: the model whose name embeddings it reads (default the offline MiniLM).
    """

    name = "student-wide"
    uses_workspace = True

    def __init__(self, drug_vocab: list[str], workspace: Path | str | None = None, soft_weight: float = 1.0, backbone: str | None = None,
                 epochs: int = 400, lr: float = 0.05, seed: int = 42):
        super().__init__(drug_vocab)
        self.workspace, self.soft_weight, self.backbone, self.epochs, self.lr, self.seed = workspace, soft_weight, backbone, epochs, lr, seed
        self.weights: dict[str, np.ndarray] | None = None  # the fitted parameters, by their torch names

    # ---- inputs ----
    def _setup(self, cohort: Cohort, train: Samples) -> None:
        from kgrec.graph.neighbourhood import prior_matrix, workspace_evidence
        from kgrec.models.graph_logreg import workspace_expander
        from kgrec.student.concepts import ConceptFeatures
        from kgrec.teacher.encodings import encode_texts
        from kgrec.teacher.prompts import short_name

        folder = Path(self.workspace) / "graph" / "tables"
        # the graph's expander and evidence, read once per process for all folds (the same as a fresh read)
        self.concept_features = ConceptFeatures.fit(cohort, train, workspace_expander(self.workspace, cohort, who="the wide student"), folder)
        codes = sorted({c for col in ("diagnoses", "procedures") for cs in cohort.visits[col] for c in cs})
        names = cohort.names()
        self.codes = codes
        self.code_index = {c: i for i, c in enumerate(codes)}
        self.name_vectors = encode_texts([short_name(names.get(c) or c) for c in codes], self.backbone)
        self.graph_note = None
        try:
            from kgrec.embed.vectors import load_entity_vectors

            ev = load_entity_vectors(self.workspace)
            vecs, found = ev.get([graph_code_key(c) for c in codes])
            self.name_vectors = np.concatenate([self.name_vectors, vecs.astype(np.float32)], axis=1)
            self.graph_parts = list(ev.parts)
            if not found.all():
                self.graph_note = f"{int((~found).sum())} of {len(codes)} codes have no graph vector (zeros)"
        except WorkspaceError as exc:  # no embeddings: the term is left out, said and recorded
            self.graph_parts = []
            self.graph_note = f"no graph vectors: {exc}"
            log.warning("student-wide: %s", self.graph_note)
        self.prior = prior_matrix(workspace_evidence(folder), codes, self.drug_vocab).tocsr()
        self.__dict__.pop("_rows", None)

    def _arrays(self, cohort: Cohort, samples: Samples) -> dict:
        """The inputs of the sum as numpy arrays (``concept_x`` a scipy CSR matrix)."""
        from scipy import sparse

        b = self.concept_features.arrays(cohort, samples, sparse=True)
        n, dim = len(samples), self.name_vectors.shape[1]
        get = self.code_index.get
        rows = [[j for c in (*d, *p) if (j := get(c)) is not None] for d, p in zip(samples.diagnoses, samples.procedures)]
        counts = np.fromiter((len(r) for r in rows), dtype=np.int64, count=n)
        flat = np.fromiter((j for r in rows for j in r), dtype=np.int64, count=int(counts.sum()))
        # one sparse product: visits x codes (a 1 per code occurrence) @ codes x [vectors | graph evidence]
        ind = sparse.csr_matrix((np.ones(len(flat), np.float32), flat, np.concatenate([[0], np.cumsum(counts)])), shape=(n, len(self.codes)))
        sums = ind @ self._per_code()
        mean = sums[:, :dim] / np.maximum(counts, 1)[:, None]  # the mean of the visit's known codes' vectors (zero for none)
        prior = sums[:, dim:]  # the graph's code -> drug evidence, summed over the visit's codes
        k = len(self.concept_features.sites)
        names = np.zeros((n, dim * (k + 1)), np.float32)
        names[:, :dim] = mean
        site = b["site"]
        for s in range(1, k + 1):
            rows_s = site == s
            names[rows_s, dim * s:dim * (s + 1)] = mean[rows_s]
        b["names"] = names
        b["prior"] = np.log1p(prior).astype(np.float32)
        return b

    def _logits(self, b: dict) -> np.ndarray:
        """The model's sum (module docstring) in numpy: float32 logits ``(n, n_drugs)``."""
        w = self.weights
        z = np.asarray(b["concept_x"] @ w["concepts.wide.weight"], dtype=np.float32)
        z += w["concepts.site_bias.weight"][b["site"]]
        z += b["names"] @ w["names.weight"].T + w["names.bias"]
        z += w["prior_weight"] * b["prior"]
        return z

    def _ready(self) -> None:
        """What every prediction reads, built once when the model is fitted or loaded, not on the first
        request: the per-code rows and each known code's concept arrays."""
        self._per_code()
        for c in self.codes:
            self.concept_features._code_arrays(c)

    def _per_code(self) -> np.ndarray:
        """Per code: its name ⊕ graph vector, then its graph evidence for each drug (dense, built once)."""
        rows = self.__dict__.get("_rows")
        if rows is None:
            rows = self.__dict__["_rows"] = np.ascontiguousarray(np.hstack([self.name_vectors, np.asarray(self.prior.todense(), np.float32)]), dtype=np.float32)
        return rows

    # ---- fit ----
    def fit(self, cohort: Cohort, train: Samples, val: Samples, soft: np.ndarray | None = None) -> WideStudent:
        """``soft``: the teacher's probabilities for ``train`` (None: labels alone)."""
        import torch
        from torch import nn

        from kgrec.student.concepts import as_tensors

        torch.manual_seed(self.seed)
        self._setup(cohort, train)
        xb, xv = as_tensors(self._arrays(cohort, train)), as_tensors(self._arrays(cohort, val))
        y = torch.as_tensor(self.targets(train), dtype=torch.float32)
        if soft is not None:
            y = (1 - self.soft_weight) * y + self.soft_weight * torch.as_tensor(soft, dtype=torch.float32)
        yv = self.targets(val)
        p0 = y.mean(0).clamp(1e-3, 1 - 1e-3)
        best = (-1.0, None, None, None)
        for l2 in L2_GRID:
            net = self._build()
            with torch.no_grad():
                net.concepts.site_bias.weight[0].copy_(torch.log(p0 / (1 - p0)))
            weights = [q for k, q in net.named_parameters() if k.endswith("weight") and "site_bias" not in k]
            rest = [q for k, q in net.named_parameters() if not (k.endswith("weight") and "site_bias" not in k)]
            # L2 on the weights (2·l2·w in the gradient: Adam's coupled weight decay), none on biases
            opt = torch.optim.Adam([{"params": weights, "weight_decay": 2 * l2}, {"params": rest, "weight_decay": 0.0}], lr=self.lr)
            top, top_state, top_epoch, bad = -1.0, None, 0, 0
            for epoch in range(self.epochs):
                net.train()
                z = net(xb)
                loss = nn.functional.binary_cross_entropy_with_logits(z, y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                if epoch % 5 == 4:
                    score = self._score(net, xv, yv)
                    report(f"wide student: L2 {l2:g}, epoch {epoch + 1}/{self.epochs}, val PRAUC {score:.4f}")
                    if score > top + 1e-6:
                        top, top_state, top_epoch, bad = score, {k: v.clone() for k, v in net.state_dict().items()}, epoch + 1, 0
                    else:
                        bad += 1
                        if bad >= 8:
                            break
            if top > best[0]:
                best = (top, top_state, l2, top_epoch)
            else:  # the path of L2 weights stops at the first that validates worse than a weaker one
                break
        self.weights = {k: v.detach().numpy().astype(np.float32) for k, v in best[1].items()}
        self._ready()
        self.chosen = {"val_prauc": round(best[0], 4), "l2": best[2], "epochs": best[3], "soft_weight": self.soft_weight if soft is not None else 0.0,
                       "sites": list(self.concept_features.sites), "n_concepts": len(self.concept_features.concepts), "n_codes": len(self.codes),
                       "graph": ["concepts", "prior", *self.graph_parts], "names_backbone": self.backbone or "minilm",
                       **({"graph_degraded": self.graph_note} if self.graph_note else {})}
        return self

    def _build(self):
        return _wide_net(self.concept_features.n_inputs, len(self.concept_features.sites), self.name_vectors.shape[1], len(self.drug_vocab))

    @staticmethod
    def _score(net, xv, yv) -> float:
        import torch

        if not len(yv):
            return 0.0
        net.eval()
        with torch.no_grad():
            p = torch.sigmoid(net(xv)).numpy()
        return float(per_visit(yv, p, p > 0.5)["prauc"].mean())

    def predict_proba(self, cohort: Cohort, samples: Samples) -> np.ndarray:
        if self.weights is None:
            raise RuntimeError("student-wide: fit() or load() first")
        z = self._logits(self._arrays(cohort, samples))
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)

    # ---- what kgrec.explain reads ----
    def occlusion_logits(self, cohort: Cohort, samples: Samples, zero_prior: np.ndarray | None = None) -> np.ndarray:
        """Logits ``(n, n_drugs)``; rows where ``zero_prior`` is True without the graph-prior term
        (:mod:`kgrec.explain.attribution` removes one input at a time)."""
        if self.weights is None:
            raise RuntimeError("student-wide: fit() or load() first")
        b = self._arrays(cohort, samples)
        if zero_prior is not None and np.any(zero_prior):
            b["prior"][np.asarray(zero_prior, bool)] = 0.0
        return self._logits(b).astype(np.float64)

    @property
    def has_graph_prior(self) -> bool:
        return bool(getattr(self.prior, "nnz", 0))

    def readable_codes(self) -> set[str]:
        """Codes with a name and graph vector in the model; any other code is read through its graph
        concepts alone (``kgrec recommend`` reads it as a known code found through the graph)."""
        return set(self.codes)

    # ---- persistence: safetensors + JSON ----
    def save(self, folder: Path | str) -> Path:
        from safetensors.numpy import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        p = self.prior.tocoo()
        tensors = {f"net.{k}": np.ascontiguousarray(v) for k, v in self.weights.items()}
        tensors.update({"name_vectors": np.ascontiguousarray(self.name_vectors, np.float32), "prior_row": p.row.astype(np.int64),
                        "prior_col": p.col.astype(np.int64), "prior_val": p.data.astype(np.float32)})
        save_file(tensors, str(folder / "student.safetensors"))
        (folder / "student.json").write_text(json.dumps({
            "kind": self.name, "drug_vocab": self.drug_vocab, "threshold": self.threshold, "codes": self.codes, "chosen": self.chosen,
            "concepts": self.concept_features.state(), "settings": {"soft_weight": self.soft_weight, "backbone": self.backbone, "epochs": self.epochs, "lr": self.lr, "seed": self.seed},
        }, indent=1))
        return folder

    @classmethod
    def load(cls, folder: Path | str) -> WideStudent:
        from safetensors.numpy import load_file
        from scipy import sparse

        from kgrec.student.concepts import ConceptFeatures

        folder = Path(folder)
        meta = json.loads((folder / "student.json").read_text())
        obj = cls(meta["drug_vocab"], None, **meta["settings"])
        obj.threshold, obj.chosen, obj.codes = meta["threshold"], meta["chosen"], meta["codes"]
        obj.code_index = {c: i for i, c in enumerate(obj.codes)}
        t = load_file(str(folder / "student.safetensors"))
        obj.name_vectors = t["name_vectors"]  # code names ⊕ graph vectors, per code
        obj.prior = sparse.csr_matrix((t["prior_val"], (t["prior_row"], t["prior_col"])), shape=(len(obj.codes), len(obj.drug_vocab)))
        obj.concept_features = ConceptFeatures.from_state(meta["concepts"], folder.parent / "graph" / "tables")
        obj.weights = {k[4:]: v.astype(np.float32) for k, v in t.items() if k.startswith("net.")}
        missing = {"concepts.wide.weight", "concepts.site_bias.weight", "names.weight", "names.bias", "prior_weight"} - set(obj.weights)
        if missing:
            raise WorkspaceError(f"{folder / 'student.safetensors'} lacks {', '.join(sorted(missing))}: train it again (`kgrec train --stage distill`)")
        obj._ready()
        prov = folder / "provenance.json"
        obj.provenance = json.loads(prov.read_text()) if prov.exists() else {"model": obj.name}
        return obj
