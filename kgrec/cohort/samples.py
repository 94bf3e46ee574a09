"""Prediction samples: one per target visit, with the patient's earlier visits as history.

A target visit has ≥1 drug and ≥1 diagnosis or procedure. Its input is its own diagnoses and procedures
plus every earlier visit of the patient (with their drugs); first visits have an empty history.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from kgrec.cohort.base import Cohort


@dataclass
class Samples:
    """Target visits of a set of patients. ``visit_idx``/``history`` index rows of ``cohort.visits``."""

    visit_idx: np.ndarray
    patient_id: np.ndarray
    diagnoses: list[list[str]]
    procedures: list[list[str]]
    history: list[list[int]]
    targets: list[list[str]]
    single_visit: np.ndarray  # the patient has exactly one visit in the cohort

    def __len__(self) -> int:
        return len(self.visit_idx)

    def subset(self, idx: Sequence[int]) -> Samples:
        idx = np.asarray(idx, dtype=int)
        pick = lambda xs: [xs[i] for i in idx]  # noqa: E731
        return Samples(
            self.visit_idx[idx], self.patient_id[idx], pick(self.diagnoses), pick(self.procedures),
            pick(self.history), pick(self.targets), self.single_visit[idx],
        )


def build_samples(cohort: Cohort, patients: Iterable[str] | None = None) -> Samples:
    """Samples for the target visits of ``patients`` (all patients if None), in visit-table order."""
    v = cohort.visits
    keep = set(map(str, patients)) if patients is not None else None
    n_per_patient = v.groupby("patient_id")["visit_id"].transform("size").to_numpy()
    mask = cohort.eval_mask()
    rows_by_patient: dict[str, list[tuple[int, int]]] = {}
    for i, (pid, order) in enumerate(zip(v["patient_id"], v["visit_order"])):
        rows_by_patient.setdefault(pid, []).append((int(order), i))
    for rows in rows_by_patient.values():
        rows.sort()
    vidx, pids, dx, px, hist, tgt, single = [], [], [], [], [], [], []
    for i, (pid, order) in enumerate(zip(v["patient_id"], v["visit_order"])):
        if not mask[i] or (keep is not None and pid not in keep):
            continue
        vidx.append(i)
        pids.append(pid)
        dx.append(list(v["diagnoses"].iat[i]))
        px.append(list(v["procedures"].iat[i]))
        hist.append([j for o, j in rows_by_patient[pid] if o < order])
        tgt.append(list(v["drugs"].iat[i]))
        single.append(n_per_patient[i] == 1)
    return Samples(np.array(vidx, dtype=int), np.array(pids, dtype=object), dx, px, hist, tgt, np.array(single, dtype=bool))


def multi_hot(lists: Sequence[Sequence[str]], vocab: Sequence[str]) -> sparse.csr_matrix:
    """Sparse 0/1 matrix (n, len(vocab)); codes outside ``vocab`` are ignored."""
    index = {c: j for j, c in enumerate(vocab)}
    rows, cols = [], []
    for i, codes in enumerate(lists):
        for c in set(codes):
            j = index.get(c)
            if j is not None:
                rows.append(i)
                cols.append(j)
    data = np.ones(len(rows), dtype=np.float32)
    return sparse.csr_matrix((data, (rows, cols)), shape=(len(lists), len(vocab)))
