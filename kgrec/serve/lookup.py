"""Look-ups behind the web page: code autocomplete (``GET /codes``) and a few visits (``GET /visits``).

Both read the loaded :class:`~kgrec.explain.recommend.RecommendService` only (its cohort's code names,
the model's code vocabulary, the cohort's visits and split) and the ICD-10-CM tabular list
(:mod:`kgrec.cohort.icd10cm`); nothing touches the graph store, so they need no lock.
"""

from __future__ import annotations

import bisect
import heapq
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kgrec.cohort import icd10cm

KINDS = ("diagnosis", "procedure", "drug")
_PREFIX = re.compile(r"^(ICD9CM|ICD10CM|ICD9PROC|ICD10PCS):", re.IGNORECASE)
_WORD = re.compile(r"[a-z0-9]+")


def display_code(code: str) -> str:
    """The code as people write it: ``ICD9CM:4019`` -> ``401.9``, ``ICD9PROC:3605`` -> ``36.05``,
    ``ICD10CM:I4891`` -> ``I48.91``, ``ICD9CM:E8790`` -> ``E879.0``; PCS codes and ATC classes as they are."""
    system, _, rest = code.partition(":")
    if not rest:
        return code
    cut = {"ICD9CM": 4 if rest.startswith("E") else 3, "ICD10CM": 3, "ICD9PROC": 2}.get(system)
    return f"{rest[:cut]}.{rest[cut:]}" if cut and len(rest) > cut else rest


def _version(code: str) -> int | None:
    system = code.partition(":")[0]
    return 9 if system.startswith("ICD9") else 10 if system.startswith("ICD10") else None


@dataclass(frozen=True)
class _Entry:
    code: str
    kind: str
    name: str
    display: str
    key: str  # the code without prefix and dots, upper case
    name_lc: str
    words: tuple[str, ...]
    known: bool


class CodeIndex:
    """The cohort's named codes (diagnoses, procedures, drug classes), searchable by code or name."""

    def __init__(self, service: Any):
        codes = service.cohort.codes
        known = service.known_codes
        drugs = set(service.drug_vocab)
        entries = []
        for code, kind, name in zip(codes["code"], codes["kind"], codes["name"]):
            code, kind, name = str(code), str(kind), "" if name is None else str(name)
            if kind not in KINDS:
                continue
            is_known = code in drugs if kind == "drug" else (known is None or code in known)
            name_lc = name.lower()
            entries.append(_Entry(code, kind, name, display_code(code), _PREFIX.sub("", code).replace(".", "").upper(),
                                  name_lc, tuple(_WORD.findall(name_lc)), is_known))
        # every ICD-10-CM code by its name (the tabular list, kgrec.cohort.icd10cm): a code the cohort never
        # used is still found, named and sent with its version; the model reads it through the graph
        have = {e.code for e in entries}
        for key, (name, _) in icd10cm.table().items():
            code = icd10cm.PREFIX + key
            if code in have or not icd10cm.is_code(key):  # codes, not blocks or chapters
                continue
            name_lc = name.lower()
            entries.append(_Entry(code, "diagnosis", name, display_code(code), key, name_lc, tuple(_WORD.findall(name_lc)),
                                  known is not None and code in known))
        self.entries = entries
        # sorted distinct keys / words, each with its entries: a prefix is a bisect, not a scan of ~100k entries
        self._keys, self._key_ix = self._postings((e.key,) for e in entries)
        self._words, self._word_ix = self._postings(e.words for e in entries)

    @staticmethod
    def _postings(terms) -> tuple[list[str], dict[str, list[int]]]:
        ix: dict[str, list[int]] = {}
        for i, ts in enumerate(terms):
            for t in set(ts):
                ix.setdefault(t, []).append(i)
        return sorted(ix), ix

    @staticmethod
    def _prefixed(sorted_terms: list[str], ix: dict[str, list[int]], prefix: str) -> set[int]:
        lo = bisect.bisect_left(sorted_terms, prefix)
        hi = bisect.bisect_left(sorted_terms, prefix + "\uffff")
        out: set[int] = set()
        for t in sorted_terms[lo:hi]:
            out.update(ix[t])
        return out

    def search(self, q: str, kinds: Sequence[str] | None = None, limit: int = 15) -> list[dict]:
        """Codes matching ``q``: the code itself (``427.31``, ``42731``, ``ICD9CM:42731``), then names whose
        words start with every word of ``q`` (``atr fib``), then names containing ``q``. Codes the model
        knows come first within a rank."""
        q = q.strip()
        if not q:
            return []
        key = _PREFIX.sub("", q).replace(".", "").upper()
        q_lc = q.lower()
        q_words = _WORD.findall(q_lc)
        rank: dict[int, int] = {}
        if key:
            for i in self._prefixed(self._keys, self._key_ix, key):
                rank[i] = 0 if self.entries[i].key == key else 1
        if q_words:
            common = set.intersection(*(self._prefixed(self._words, self._word_ix, w) for w in q_words))
            for i in common:
                rank.setdefault(i, 2)
        if sum(1 for i in rank if not kinds or self.entries[i].kind in kinds) < limit:  # substrings only to fill the list
            for i, e in enumerate(self.entries):
                if i not in rank and q_lc in e.name_lc:
                    rank[i] = 3
        ranked = []
        for i, r in rank.items():
            e = self.entries[i]
            if kinds and e.kind not in kinds:
                continue
            ranked.append((r, not e.known, len(e.key), e.code, e))
        ranked = heapq.nsmallest(limit, ranked, key=lambda t: t[:4])
        return [{"code": e.code, "display": e.display, "kind": e.kind, "name": e.name, "version": _version(e.code), "known": e.known}
                for *_, e in ranked[:limit]]


def list_visits(service: Any, q: str = "", limit: int = 20) -> tuple[int, list[dict]]:
    """Visits of the workspace cohort whose visit or patient id starts with ``q``: the test split's
    first (the visits the model did not train on), then the rest, in cohort order. Returns the
    number of matches and the first ``limit``."""
    cohort = service.cohort
    v = cohort.visits
    names = service.names
    test = set(map(str, (cohort.split or {}).get("test", [])))
    has_split = bool(cohort.split)
    q = q.strip()
    if ":" in q and q.split(":", 1)[0] == cohort.source:
        q = q.split(":", 1)[1]
    rows = []
    for i, (vid, pid, order, dx, px) in enumerate(zip(v["visit_id"], v["patient_id"], v["visit_order"], v["diagnoses"], v["procedures"])):
        vid, pid = str(vid), str(pid)
        if q and not (vid.startswith(q) or pid.startswith(q)):
            continue
        rows.append((pid not in test, i, vid, pid, int(order), list(dx), list(px)))
    rows.sort(key=lambda t: t[:2])
    out = []
    for not_test, _, vid, pid, order, dx, px in rows[:limit]:
        first = next((names.get(c) for c in dx if names.get(c)), dx[0] if dx else "")
        out.append({"visit_id": vid, "patient_id": pid, "visit_order": order, "split": ("train/val" if not_test else "test") if has_split else None,
                    "n_diagnoses": len(dx), "n_procedures": len(px), "summary": first})
    return len(rows), out


__all__ = ["CodeIndex", "display_code", "list_visits"]
