"""ROUGE-1, ROUGE-2 and ROUGE-L for generated rationales (no dependency).

Follows the ``rouge-score`` package's defaults (Lin 2004): text is lower-cased and split into runs of
ASCII letters and digits (everything else separates tokens), no stemming, no stop-word removal.

* ROUGE-N: clipped n-gram overlap; precision = overlap / candidate n-grams, recall = overlap /
  reference n-grams, F1 their harmonic mean (0 when either is 0).
* ROUGE-L: longest common subsequence of the token lists (sentence-level, not the summary-level
  ROUGE-Lsum); precision = LCS / candidate length, recall = LCS / reference length, F1 as above.

:func:`rouge` gives the F1 of one pair; :func:`rouge_corpus` the mean F1 over pairs (the
``rouge-score`` aggregate without bootstrap). ``tests/test_explain.py`` checks these numbers against
``rouge-score`` when that package is installed.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

_TOKEN = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def _f1(overlap: int, n_cand: int, n_ref: int) -> dict[str, float]:
    p = overlap / n_cand if n_cand else 0.0
    r = overlap / n_ref if n_ref else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f}


def rouge_n(candidate: Sequence[str], reference: Sequence[str], n: int) -> dict[str, float]:
    c = Counter(tuple(candidate[i:i + n]) for i in range(len(candidate) - n + 1))
    r = Counter(tuple(reference[i:i + n]) for i in range(len(reference) - n + 1))
    return _f1(sum((c & r).values()), sum(c.values()), sum(r.values()))


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence (O(len(a)·len(b)) time, O(len(b)) memory)."""
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(candidate: Sequence[str], reference: Sequence[str]) -> dict[str, float]:
    return _f1(lcs_length(candidate, reference), len(candidate), len(reference))


def rouge(candidate: str, reference: str) -> dict[str, float]:
    """F1 of ROUGE-1, ROUGE-2 and ROUGE-L for one candidate against one reference."""
    c, r = tokenize(candidate), tokenize(reference)
    return {"rouge1": rouge_n(c, r, 1)["f1"], "rouge2": rouge_n(c, r, 2)["f1"], "rougeL": rouge_l(c, r)["f1"]}


def rouge_corpus(candidates: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean F1 over aligned pairs; ``n`` = number of pairs."""
    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidates for {len(references)} references")
    if not candidates:
        return {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0, "n": 0}
    scores = [rouge(c, r) for c, r in zip(candidates, references)]
    out = {k: sum(s[k] for s in scores) / len(scores) for k in ("rouge1", "rouge2", "rougeL")}
    out["n"] = len(scores)
    return out


__all__ = ["lcs_length", "rouge", "rouge_corpus", "rouge_l", "rouge_n", "tokenize"]
