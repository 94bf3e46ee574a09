"""Patient-level splits: one seeded 8:1:1 split, or K folds each with its own validation part.

No patient ever appears in two parts of one split, so a model never sees a test patient's other visits.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


def split_patients(patients: Sequence[str], ratios: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 42) -> dict[str, list[str]]:
    """Shuffle the unique patients with ``seed`` and cut them ``train:val:test`` by ``ratios``."""
    if len(ratios) != 3 or any(r < 0 for r in ratios) or not np.isclose(sum(ratios), 1.0):
        raise ValueError(f"ratios must be three non-negative numbers summing to 1, got {ratios}")
    ids = np.array(sorted(set(map(str, patients))))
    rng = np.random.default_rng(seed)
    rng.shuffle(ids)
    n = len(ids)
    n_train = int(round(ratios[0] * n))
    n_val = int(round(ratios[1] * n))
    return {
        "train": sorted(ids[:n_train].tolist()),
        "val": sorted(ids[n_train:n_train + n_val].tolist()),
        "test": sorted(ids[n_train + n_val:].tolist()),
    }


def kfold_patients(patients: Sequence[str], k: int = 5, seed: int = 42, val_fraction: float = 0.1) -> Iterator[dict[str, list[str]]]:
    """Patient-level K-fold CV. Fold i tests on the i-th of k shuffled patient groups; ``val_fraction``
    of the remaining patients (seeded, at least one) is that fold's validation part, the rest trains.
    Hyper-parameters and thresholds are chosen on the validation part only."""
    if k < 2:
        raise ValueError(f"--folds must be at least 2, got {k}")
    ids = np.array(sorted(set(map(str, patients))))
    if len(ids) < k:
        raise ValueError(f"{k} folds need at least {k} patients, the cohort has {len(ids)}")
    rng = np.random.default_rng(seed)
    rng.shuffle(ids)
    groups = np.array_split(ids, k)
    for i in range(k):
        rest = np.concatenate([g for j, g in enumerate(groups) if j != i])
        rng_i = np.random.default_rng(seed + 1000 + i)
        rest = rest.copy()
        rng_i.shuffle(rest)
        n_val = max(1, int(round(val_fraction * len(rest))))
        yield {"train": sorted(rest[n_val:].tolist()), "val": sorted(rest[:n_val].tolist()), "test": sorted(groups[i].tolist())}
