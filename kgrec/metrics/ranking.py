"""Link-prediction metrics on held-out triples, computed by PyKEEN's ``RankBasedEvaluator``.

Every model (KGE, GNN, the popularity baseline) is scored through the same function so the numbers are
comparable: for each held-out (head, relation, tail) both sides are ranked (tail: all entities of the
tail's label; head: all entities of the head's label), in the filtered setting (other known true
triples of that relation are removed from the candidates), with PyKEEN's realistic (mean) rank for ties.
AUC: held-out positives against the same number of type-consistent random corruptions.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from pykeen.evaluation import RankBasedEvaluator
from sklearn.metrics import roc_auc_score

# score_fn(anchor_ids, relation_id, side) -> (batch, n_entities) scores; side "tail" scores (anchor, r, ?),
# side "head" scores (?, r, anchor).
ScoreFn = Callable[[torch.Tensor, int, str], torch.Tensor]


def rank_evaluate(score_fn: ScoreFn, export, which: str = "test", batch_size: int = 512, seed: int = 0) -> dict[str, float]:
    """MRR, Hits@1/3/10 (both sides, realistic, filtered) and AUC on ``export.<which>`` triples."""
    triples = torch.from_numpy(np.array(getattr(export, which), dtype=np.int64))  # a copy: the export's arrays are read-only
    if len(triples) == 0:
        raise ValueError(f"no {which} triples to evaluate")
    labels = np.asarray(export.labels)
    all_true = np.concatenate([export.train, export.valid, export.test])
    evaluator = RankBasedEvaluator(filtered=True)
    rel = int(triples[0, 1])
    rel_true = all_true[all_true[:, 1] == rel]
    by_head: dict[int, set[int]] = {}
    by_tail: dict[int, set[int]] = {}
    for h, _, t in rel_true:
        by_head.setdefault(int(h), set()).add(int(t))
        by_tail.setdefault(int(t), set()).add(int(h))
    allowed = {
        "tail": torch.as_tensor(labels == labels[int(triples[0, 2])]),
        "head": torch.as_tensor(labels == labels[int(triples[0, 0])]),
    }
    pos_scores, neg_scores = [], []
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for start in range(0, len(triples), batch_size):
            batch = triples[start:start + batch_size]
            for side, anchor_col, true_col, known in (("tail", 0, 2, by_head), ("head", 2, 0, by_tail)):
                scores = score_fn(batch[:, anchor_col], rel, side).detach().float().clone()
                rows = torch.arange(len(batch))
                true_scores = scores[rows, batch[:, true_col]].clone()
                scores[:, ~allowed[side]] = float("nan")
                for i, a in enumerate(batch[:, anchor_col].tolist()):
                    others = list(known.get(a, ()))
                    if others:
                        scores[i, others] = float("nan")
                scores[rows, batch[:, true_col]] = true_scores
                evaluator.process_scores_(batch, side, scores, true_scores=true_scores[:, None])
                if side == "tail":
                    cand = np.flatnonzero(allowed["tail"].numpy())
                    pick = rng.choice(cand, size=len(batch))
                    ok = torch.as_tensor([int(p) not in known.get(a, ()) for a, p in zip(batch[:, 0].tolist(), pick)])
                    pos_scores.append(true_scores.numpy())
                    neg_scores.append(scores[rows, torch.as_tensor(pick)].numpy()[ok.numpy()])
    res = evaluator.finalize()
    pos, neg = np.concatenate(pos_scores), np.concatenate(neg_scores)
    neg = np.nan_to_num(neg, nan=-np.inf)
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    s = np.r_[pos, neg]
    s = np.where(np.isfinite(s), s, np.nanmin(np.where(np.isfinite(s), s, np.nan)) - 1)
    out = {
        "mrr": float(res.get_metric("both.realistic.inverse_harmonic_mean_rank")),
        "hits_at_1": float(res.get_metric("both.realistic.hits_at_1")),
        "hits_at_3": float(res.get_metric("both.realistic.hits_at_3")),
        "hits_at_10": float(res.get_metric("both.realistic.hits_at_10")),
        "tail_mrr": float(res.get_metric("tail.realistic.inverse_harmonic_mean_rank")),
        "head_mrr": float(res.get_metric("head.realistic.inverse_harmonic_mean_rank")),
        "auc": float(roc_auc_score(y, s)) if len(neg) and len(pos) else float("nan"),
        "n_triples": int(len(triples)),
    }
    return out


def popularity_scores(export) -> ScoreFn:
    """Degree baseline: a candidate's number of training edges of the target relation on that side."""
    rel = export.target_relation
    tr = export.train[export.train[:, 1] == rel]
    n = len(export.entities)
    as_tail = torch.as_tensor(np.bincount(tr[:, 2], minlength=n), dtype=torch.float)
    as_head = torch.as_tensor(np.bincount(tr[:, 0], minlength=n), dtype=torch.float)

    def score(anchors: torch.Tensor, relation: int, side: str) -> torch.Tensor:
        base = as_tail if side == "tail" else as_head
        return base.expand(len(anchors), n)

    return score
