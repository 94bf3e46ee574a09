"""Prediction samples: one per target visit, with the patient's earlier visits as history.

A target visit has ≥1 drug and ≥1 diagnosis or procedure. Its input is its own diagnoses and procedures
plus every earlier visit of the patient (with their drugs); first visits have an empty history. Each
sample also carries the patient's profile at the visit (age, sex, admission fields; only the fields
present), which models turn into tokens with :func:`profile_tokens`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from kgrec.cohort.base import PROFILE_COLUMNS, Cohort

# age bins for profile tokens: [lo, hi) in years; 90 is "90 or older" (kgrec.cohort.base.AGE_CAP)
AGE_BINS = (0, 18, 30, 40, 50, 60, 70, 80, 90)


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
    profile: list[dict] | None = None  # per sample: the profile fields present at the visit (None: not built)

    def __len__(self) -> int:
        return len(self.visit_idx)

    def subset(self, idx: Sequence[int]) -> Samples:
        idx = np.asarray(idx, dtype=int)
        pick = lambda xs: [xs[i] for i in idx]  # noqa: E731
        return Samples(
            self.visit_idx[idx], self.patient_id[idx], pick(self.diagnoses), pick(self.procedures),
            pick(self.history), pick(self.targets), self.single_visit[idx],
            pick(self.profile) if self.profile is not None else None,
        )

    def profiles(self) -> list[dict]:
        """Per-sample profile dicts (empty dicts where none was built)."""
        return self.profile if self.profile is not None else [{} for _ in range(len(self))]


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
    cols = [c for c in PROFILE_COLUMNS if c in v]
    vidx, pids, dx, px, hist, tgt, single, prof = [], [], [], [], [], [], [], []
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
        prof.append(_profile_at(v, i, cols))
    return Samples(np.array(vidx, dtype=int), np.array(pids, dtype=object), dx, px, hist, tgt, np.array(single, dtype=bool), prof)


def _profile_at(visits, i: int, cols: list[str]) -> dict:
    out = {}
    for c in cols:
        x = visits[c].iat[i]
        if x is None or (isinstance(x, float) and np.isnan(x)):
            continue
        out[c] = float(x) if c == "age" else str(x)
    return out


def age_bin(age: float) -> str:
    """``"60-69"``, ``"0-17"``, ``"90+"`` for an age in years."""
    lo = max(b for b in AGE_BINS if b <= age)
    if lo == AGE_BINS[-1]:
        return f"{lo}+"
    hi = AGE_BINS[AGE_BINS.index(lo) + 1]
    return f"{lo}-{hi - 1}"


def profile_tokens(profile: dict) -> list[str]:
    """A profile as categorical tokens: ``age:60-69``, ``sex:F``, ``admission_type:EMERGENCY``... Missing
    fields give no token (a model sees "unknown" as the absence of every token of that field)."""
    toks = []
    for k, x in profile.items():
        toks.append(f"age:{age_bin(float(x))}" if k == "age" else f"{k}:{x}")
    return toks


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
