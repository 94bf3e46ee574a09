"""LEADER-style prompts: every template in one place, rendering and token-budget truncation.

A prompt reads (history visits oldest first, each with *its own* codes)::

    The patient has 3 visits.
    In visit 1 (2 visits ago), the patient had diagnoses: ...; procedures: ...; and was prescribed: ....
    In visit 2 (previous visit), the patient had diagnoses: ...; procedures: ...; and was prescribed: ....
    In this visit (visit 3), the patient has diagnoses: ...; procedures: ....
    Which medications should the patient be prescribed in this visit?

With ``profile=True`` a profile line comes first, as in LEADER's profile template (its
``construction.ipynb``, "The patient's insurance type is ..."), built from the fields present::

    The patient is female, aged 70; admission type: EMERGENCY; insurance: Medicare.

A field the cohort does not have, or has missing for this visit, is left out (never "unknown").

(The reference LEADER code filled every history visit with the current visit's diagnoses; here each
earlier visit is rendered from its own row of the visit table.)

Truncation to ``max_length`` tokens keeps the profile line, the header, the current visit and the question whole and drops
the oldest history visits first. Only when the current visit alone does not fit are its longest code
lists cut from the end (source order keeps the primary diagnosis first); :class:`Prompt` records both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd

TEMPLATES: dict[str, str] = {
    "profile": "The patient is {parts}.",
    "profile_age": "aged {age}",
    "profile_age_capped": "aged 90 or older",
    "profile_field": "{field}: {value}",
    "profile_joiner": "; ",
    "header": "The patient has {n_visits} {visits_word}.",
    "history_visit": "In visit {number} ({ago}), the patient had diagnoses: {diagnoses}; procedures: {procedures}; and was prescribed: {drugs}.",
    "current_visit": "In this visit (visit {number}), the patient has diagnoses: {diagnoses}; procedures: {procedures}.",
    "question": "Which medications should the patient be prescribed in this visit?",
    "none": "none",
    "separator": "\n",
    "code_joiner": ", ",
}


@dataclass
class VisitCodes:
    """One visit's code *names* (already looked up)."""

    diagnoses: list[str]
    procedures: list[str]
    drugs: list[str] = field(default_factory=list)


@dataclass
class Prompt:
    """A rendered prompt and what truncation did to it."""

    text: str
    n_visits: int
    history_shown: int  # earlier visits in the text
    history_dropped: int  # earlier visits (of the last N) dropped to fit max_length
    current_cut: int = 0  # current-visit codes cut because the visit alone did not fit


def _join(names: Sequence[str]) -> str:
    return TEMPLATES["code_joiner"].join(names) if names else TEMPLATES["none"]


def _ago(k: int) -> str:
    return "previous visit" if k == 1 else f"{k} visits ago"


def profile_line(profile: dict | None) -> str | None:
    """The profile sentence of a visit's profile dict (``age``, ``sex``, admission fields), or None when
    it has no field. Age 90 is the sources' "older than 89" (kgrec.cohort.base.AGE_CAP)."""
    if not profile:
        return None
    head = []
    if profile.get("sex") in ("F", "M"):
        head.append("female" if profile["sex"] == "F" else "male")
    if profile.get("age") is not None:
        age = float(profile["age"])
        head.append(TEMPLATES["profile_age_capped"] if age >= 90 else TEMPLATES["profile_age"].format(age=int(age)))
    parts = [", ".join(head)] if head else []
    parts += [TEMPLATES["profile_field"].format(field=k.replace("_", " "), value=v) for k, v in profile.items() if k not in ("age", "sex")]
    return TEMPLATES["profile"].format(parts=TEMPLATES["profile_joiner"].join(parts)) if parts else None


def render(history: Sequence[VisitCodes], current: VisitCodes, n_visits: int, profile: str | None = None) -> list[str]:
    """The prompt's segments: profile line (if any), header, each history visit (oldest first), current visit, question."""
    first_number = n_visits - len(history)  # 1-based number of the first shown history visit
    segs = ([profile] if profile else []) + [TEMPLATES["header"].format(n_visits=n_visits, visits_word="visit" if n_visits == 1 else "visits")]
    for i, v in enumerate(history):
        number = first_number + i
        segs.append(TEMPLATES["history_visit"].format(
            number=number, ago=_ago(n_visits - number), diagnoses=_join(v.diagnoses),
            procedures=_join(v.procedures), drugs=_join(v.drugs)))
    segs.append(TEMPLATES["current_visit"].format(number=n_visits, diagnoses=_join(current.diagnoses), procedures=_join(current.procedures)))
    segs.append(TEMPLATES["question"])
    return segs


def build_prompt(
    history: Sequence[VisitCodes],
    current: VisitCodes,
    n_visits: int | None = None,
    max_length: int | None = None,
    count_tokens: Callable[[str], int] | None = None,
    profile: str | None = None,
) -> Prompt:
    """Render a prompt within ``max_length`` tokens (as counted by ``count_tokens``, specials included).

    Args:
        history: the earlier visits to show, oldest first (already limited to the last N).
        n_visits: visits of the patient up to and including this one (default ``len(history) + 1``).
        profile: the profile line (:func:`profile_line`), kept whole like the header.
    """
    n_visits = n_visits if n_visits is not None else len(history) + 1
    sep = TEMPLATES["separator"]
    hist = list(history)
    fits = (lambda text: True) if max_length is None or count_tokens is None else (lambda text: count_tokens(text) <= max_length)
    text = sep.join(render(hist, current, n_visits, profile))
    shown = len(hist)
    while shown and not fits(text):
        shown -= 1
        text = sep.join(render(hist[len(hist) - shown:], current, n_visits, profile))
    cut = 0
    if not fits(text):
        dx, px = list(current.diagnoses), list(current.procedures)
        while (dx or px) and not fits(text):
            longer = dx if len(dx) >= len(px) else px
            drop = max(1, len(longer) // 8)  # few re-tokenisations even for very long visits
            del longer[len(longer) - drop:]
            cut += drop
            text = sep.join(render([], VisitCodes(dx, px), n_visits, profile))
    return Prompt(text, n_visits, shown, len(hist) - shown, cut)


def short_name(name: str, levels: int = 2) -> str:
    """Hierarchical names (eICU's ``"pulmonary|respiratory failure|acute respiratory failure"``) keep their
    last ``levels`` parts (``"respiratory failure - acute respiratory failure"``): the specific end of the
    path at a third of the tokens. Other names are unchanged."""
    if "|" not in name:
        return name
    parts = [p.strip() for p in name.split("|") if p.strip()]
    return " - ".join(parts[-levels:])


class PromptBuilder:
    """Prompts for cohort visits: looks up names, picks the last ``history`` earlier visits.

    Args:
        names: code -> readable name (``cohort.names()``); unknown codes show as the code.
        history: how many earlier visits to show at most (LEADER: the last N).
        profile: start each prompt with the visit's profile line (:func:`profile_line`).
    """

    def __init__(self, visits: pd.DataFrame, names: dict[str, str], history: int = 3, profile: bool = False):
        self.visits = visits
        self.profile = profile
        self.names = names
        self.history = max(0, int(history))
        self._dx = visits["diagnoses"].tolist()
        self._px = visits["procedures"].tolist()
        self._drugs = visits["drugs"].tolist()

    def _name(self, code: str) -> str:
        return short_name(self.names.get(code) or code)

    def visit_codes(self, row: int, with_drugs: bool) -> VisitCodes:
        n = self._name
        return VisitCodes([n(c) for c in self._dx[row]], [n(c) for c in self._px[row]], [n(c) for c in self._drugs[row]] if with_drugs else [])

    def _parts(self, row: int, history_rows: Sequence[int]) -> tuple[list[VisitCodes], VisitCodes, int, str | None]:
        shown = list(history_rows)[-self.history:] if self.history else []
        hist = [self.visit_codes(r, with_drugs=True) for r in shown]
        line = profile_line(self.profile_at(row)) if self.profile else None
        return hist, self.visit_codes(row, with_drugs=False), len(history_rows) + 1, line

    def prompt(self, row: int, history_rows: Sequence[int], max_length: int | None = None, count_tokens: Callable[[str], int] | None = None) -> Prompt:
        """The prompt of visit ``row`` given the rows of its earlier visits (oldest first)."""
        hist, current, n_visits, line = self._parts(row, history_rows)
        return build_prompt(hist, current, n_visits, max_length, count_tokens, line)

    def token_ids(self, rows: Sequence[int], histories: Sequence[Sequence[int]], max_length: int, counter: token_counter) -> list[list[int]]:
        """The token ids of many visits' prompts within ``max_length``: the ids of :meth:`prompt` with that
        budget, computed in batches.

        Whole prompts are tokenized in one batch call (a fast tokenizer encodes a batch on every core; one
        call per prompt, with the re-tokenizing of each shortening, took 3.7 ms per synthetic visit, six
        minutes for 100k). Those too long drop their oldest history visit, as :func:`build_prompt` does, and
        are tokenized again in one batch per round. Only a visit whose current codes alone do not fit goes
        through :func:`build_prompt`'s code cutting, one at a time.
        """
        sep = TEMPLATES["separator"]
        parts = [self._parts(int(r), h) for r, h in zip(rows, histories)]
        out = counter.batch_ids([sep.join(render(hist, cur, n, line)) for hist, cur, n, line in parts])
        over = [i for i, ids in enumerate(out) if len(ids) > max_length]
        drop = 1
        while over:  # one more history visit dropped (the oldest) for every prompt still over the budget
            tries = [i for i in over if len(parts[i][0]) >= drop]
            for i, ids in zip(tries, counter.batch_ids([sep.join(render(parts[i][0][drop:], *parts[i][1:])) for i in tries])):
                out[i] = ids
            over = [i for i in tries if len(out[i]) > max_length]
            drop += 1
        for i, ids in enumerate(out):
            if len(ids) > max_length:  # no history left and still too long: cut the current visit's codes
                hist, cur, n, line = parts[i]
                p = build_prompt([], cur, n, max_length, counter, line)
                out[i] = counter.tokenizer(p.text, truncation=True, max_length=max_length)["input_ids"]
        return out

    def profile_at(self, row: int) -> dict:
        """The profile fields present at visit ``row`` (the cohort's profile columns)."""
        from kgrec.cohort.base import PROFILE_COLUMNS

        out = {}
        for c in PROFILE_COLUMNS:
            if c in self.visits:
                x = self.visits[c].iat[row]
                if x is not None and not (isinstance(x, float) and x != x):
                    out[c] = x
        return out


class token_counter:  # noqa: N801 - used as a function
    """Counts tokens the way the model will see them (special tokens included); :meth:`ids` gives the ids."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=True, truncation=False)["input_ids"]

    def batch_ids(self, texts: list[str]) -> list[list[int]]:
        """:meth:`ids` of many texts in one call (a fast tokenizer encodes a batch on every core)."""
        return self.tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"] if texts else []

    def __call__(self, text: str) -> int:
        return len(self.ids(text))
