"""Medication-recommendation metrics, as in GAMENet/SafeDrug/LEADER.

Per visit: Jaccard = |T∩P| / |T∪P|; precision = |T∩P| / |P|; recall = |T∩P| / |T|; F1 their harmonic
mean; PRAUC = average precision of the predicted probabilities against T (scikit-learn); #meds = |P|.
An empty prediction scores Jaccard, precision, recall and F1 zero. The DDI rate is pooled over visits:
(interacting pairs among all predicted sets) / (all predicted pairs), 0 when no visit has two drugs.
Summaries average the per-visit values; intervals come from a patient-level bootstrap.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

METRICS = ("jaccard", "f1", "prauc", "precision", "recall", "ddi_rate", "n_meds")


def per_visit(y_true: np.ndarray, y_prob: np.ndarray | None, y_pred: np.ndarray) -> dict[str, np.ndarray]:
    """Per-visit metric arrays from 0/1 truth, probabilities (or None) and 0/1 predictions, all (n, V)."""
    t = np.asarray(y_true, dtype=bool)
    p = np.asarray(y_pred, dtype=bool)
    if t.shape != p.shape:
        raise ValueError(f"y_true {t.shape} and y_pred {p.shape} differ in shape")
    inter = (t & p).sum(1).astype(float)
    union = (t | p).sum(1).astype(float)
    n_pred = p.sum(1).astype(float)
    n_true = t.sum(1).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        jac = np.where(union > 0, inter / union, 0.0)
        prec = np.where(n_pred > 0, inter / n_pred, 0.0)
        rec = np.where(n_true > 0, inter / n_true, 0.0)
        f1 = np.where(prec + rec > 0, 2 * prec * rec / (prec + rec), 0.0)
    out = {"jaccard": jac, "precision": prec, "recall": rec, "f1": f1, "n_meds": n_pred}
    if y_prob is not None:
        out["prauc"] = average_precision_rows(t, y_prob)
    return out


def average_precision_rows(y_true: np.ndarray, y_prob: np.ndarray) -> np.ndarray:
    """Each row's average precision, as scikit-learn's ``average_precision_score`` computes it (a step
    at every distinct score: ``AP = Σ_k (R_k − R_{k−1}) P_k``, tied scores one step), for all rows at
    once; 0 for a row without positives. ``tests/test_metrics.py`` checks it against scikit-learn."""
    t = np.asarray(y_true, dtype=bool)
    s = np.asarray(y_prob, dtype=float)
    if t.shape != s.shape:
        raise ValueError(f"y_true {t.shape} and y_prob {s.shape} differ in shape")
    n, v = t.shape
    if n == 0 or v == 0:
        return np.zeros(n)
    order = np.argsort(-s, axis=1, kind="stable")
    ss = np.take_along_axis(s, order, 1)
    ys = np.take_along_axis(t, order, 1)
    tp = np.cumsum(ys, axis=1)
    end = np.ones((n, v), dtype=bool)
    end[:, :-1] = ss[:, :-1] != ss[:, 1:]  # the last position of each group of tied scores
    pos = np.broadcast_to(np.arange(v), (n, v))
    last = np.minimum.accumulate(np.where(end, pos, v)[:, ::-1], axis=1)[:, ::-1]  # each position's group end
    precision_at_end = np.take_along_axis(tp, last, 1) / (last + 1.0)
    n_pos = tp[:, -1]
    with np.errstate(divide="ignore", invalid="ignore"):
        ap = (ys * precision_at_end).sum(1) / n_pos
    return np.where(n_pos > 0, ap, 0.0)


def ddi_counts(y_pred: np.ndarray, ddi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per visit: (interacting predicted pairs, all predicted pairs), each pair counted once."""
    p = np.asarray(y_pred, dtype=float)
    d = np.asarray(ddi, dtype=float)
    n = p.sum(1)
    all_pairs = n * (n - 1) / 2
    bad = np.einsum("ij,jk,ik->i", p, d, p) / 2  # ddi is symmetric with a zero diagonal
    return bad, all_pairs


def summarise(per: dict[str, np.ndarray], bad: np.ndarray | None, pairs: np.ndarray | None, idx: np.ndarray | None = None) -> dict[str, float]:
    """Means of per-visit metrics (over ``idx`` if given) and the pooled DDI rate."""
    sel = slice(None) if idx is None else idx
    out = {k: float(np.mean(v[sel])) if len(v[sel]) else float("nan") for k, v in per.items()}
    if bad is not None:
        tot = float(np.sum(pairs[sel]))
        out["ddi_rate"] = float(np.sum(bad[sel]) / tot) if tot > 0 else 0.0
    return {k: out[k] for k in METRICS if k in out}


def bootstrap(
    per: dict[str, np.ndarray],
    bad: np.ndarray | None,
    pairs: np.ndarray | None,
    groups: Sequence,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, list[float]]:
    """Percentile intervals resampling *patients* (``groups`` gives each visit's patient)."""
    groups = np.asarray(groups)
    uniq, inv = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inv == g) for g in range(len(uniq))]
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(n_boot):
        pick = rng.integers(0, len(uniq), len(uniq))
        idx = np.concatenate([members[g] for g in pick])
        for k, v in summarise(per, bad, pairs, idx).items():
            draws.setdefault(k, []).append(v)
    a = (1 - level) / 2
    return {k: [float(np.quantile(v, a)), float(np.quantile(v, 1 - a))] for k, v in draws.items()}


def evaluate_predictions(
    y_true: np.ndarray,
    y_prob: np.ndarray | None,
    y_pred: np.ndarray,
    ddi: np.ndarray | None = None,
    patients: Sequence | None = None,
    single_visit: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """Overall metrics, intervals (if ``patients`` given), and single- vs multi-visit groups.

    Args:
        single_visit: per-visit bool, True where the visit's patient has exactly one visit in the cohort.
    """
    per = per_visit(y_true, y_prob, y_pred)
    bad, pairs = ddi_counts(y_pred, ddi) if ddi is not None else (None, None)
    res: dict = {"n_visits": int(len(y_true)), "metrics": summarise(per, bad, pairs)}
    if patients is not None and n_boot > 0 and len(y_true):
        res["intervals"] = bootstrap(per, bad, pairs, patients, n_boot=n_boot, seed=seed)
    if single_visit is not None:
        sv = np.asarray(single_visit, dtype=bool)
        res["groups"] = {}
        for name, mask in (("single_visit", sv), ("multi_visit", ~sv)):
            idx = np.flatnonzero(mask)
            res["groups"][name] = {"n_visits": int(len(idx)), "metrics": summarise(per, bad, pairs, idx) if len(idx) else {}}
    return res
