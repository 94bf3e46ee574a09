"""Look-ups behind the web page: code autocomplete (``GET /codes``) and a few visits (``GET /visits``).

Both read the loaded :class:`~kgrec.explain.recommend.RecommendService` only (its cohort's code names,
the model's code vocabulary, the cohort's visits and split); nothing touches the graph store, so they
need no lock and answer in well under a millisecond on the demo cohorts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
        self.entries = entries

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
        ranked = []
        for e in self.entries:
            if kinds and e.kind not in kinds:
                continue
            if key and e.key == key:
                r = 0
            elif key and e.key.startswith(key):
                r = 1
            elif q_words and all(any(w.startswith(qw) for w in e.words) for qw in q_words):
                r = 2
            elif q_lc in e.name_lc:
                r = 3
            else:
                continue
            ranked.append((r, not e.known, len(e.key), e.code, e))
        ranked.sort(key=lambda t: t[:4])
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
