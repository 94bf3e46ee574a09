"""Graph-grounded codes: a code's representation comes from the graph, not from its id alone.

A cohort's diagnosis code is expanded into the graph concepts it reaches within ``hops`` steps along
chosen relationships (defaults, all from ``graph_schema/schema.yaml``):

- ``CODE_PARENT``: the ICD code's three-character category (upwards only);
- ``GEM``: the CMS general equivalence mappings, ICD-9-CM <-> ICD-10-CM, both ways;
- ``MAPS_TO``: the code's Disease Ontology terms (ICD-9, ICD-10 and SNOMED xrefs);
- ``DISEASE_PARENT``: the disease's ancestors (upwards only).

Each reached concept gets the weight ``decay ** hop`` (the best over paths), the code itself weight 1.
Two sites whose codes differ (ICD-9 at one, ICD-10 or SNOMED at another) then share the categories,
GEM partners and diseases their codes reach, which is what lets a model trained at one carry over.

Codes the graph does not hold are still grounded where their text allows: an ICD code id gives its
category (``ICD10CM:I509`` -> ``ICD10CM:I50``) and walks on from there, and a code whose name matches
a Disease Ontology label (eICU's diagnosis paths, ``EICUDX:cardiovascular|...|congestive heart
failure``, are matched segment by segment from the most specific end) links to that disease. A code
that reaches nothing is reported as such (:meth:`CodeExpander.unreached`), never silently dropped.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from kgrec.graph.sources.icd import icd_category
from kgrec.graph.tables import GraphTables

# relation -> direction(s) walked: "up" = src -> dst, "both" = both ways
RELATIONS: dict[str, str] = {"CODE_PARENT": "up", "GEM": "both", "MAPS_TO": "up", "DISEASE_PARENT": "up"}
_WORD = re.compile(r"[a-z0-9]+")
# words that never identify a disease on their own, and name tails that only qualify (SNOMED semantic tags)
_GENERIC = frozenset("disease diseases disorder disorders syndrome finding situation condition unspecified other "
                     "of and or the in with due to by nos specified type acute chronic primary secondary".split())
_TAG = re.compile(r"\s*\((disorder|finding|situation|morphologic abnormality|procedure|event)\)\s*$", re.I)


@dataclass(frozen=True)
class ExpansionConfig:
    """Which relationships a code is expanded along, how far, and how reached concepts are weighted.

    Args:
        relations: relationship types walked (keys of :data:`RELATIONS`).
        hops: the longest path walked from the code.
        decay: weight of a concept reached in ``h`` hops is ``decay ** h``.
        name_match: link codes whose name matches a Disease label (eICU paths, free-text codes).
    """

    relations: tuple[str, ...] = tuple(RELATIONS)
    hops: int = 3
    decay: float = 0.5
    name_match: bool = True

    def __post_init__(self):
        unknown = set(self.relations) - set(RELATIONS)
        if unknown:
            raise ValueError(f"unknown expansion relations {sorted(unknown)}; choose from {sorted(RELATIONS)}")
        if self.hops < 0:
            raise ValueError("hops must be ≥ 0")
        if not 0 < self.decay <= 1:
            raise ValueError("decay must be in (0, 1]")

    def key(self) -> str:
        return f"{'+'.join(sorted(self.relations))}|h{self.hops}|d{self.decay}|n{int(self.name_match)}"


def _norm(text: str) -> str:
    return " ".join(_WORD.findall(_TAG.sub("", str(text)).lower()))


class _LabelIndex:
    """Disease labels indexed by word: :meth:`match` finds the longest label whose words all occur in a
    name (``"Acute kidney failure, unspecified"`` -> ``acute kidney failure``), ignoring labels made only
    of generic words."""

    def __init__(self, labels: Mapping[str, str]):
        self.by_word: dict[str, list[tuple[frozenset[str], str, int]]] = defaultdict(list)
        for label, did in labels.items():
            words = frozenset(label.split())
            if not words - _GENERIC:
                continue
            key = min(words - _GENERIC, key=len)  # any non-generic word of the label
            self.by_word[key].append((words, did, len(label)))

    def match(self, name: str) -> str | None:
        words = set(_norm(name).split())
        best = None
        for w in words:
            for lw, did, n in self.by_word.get(w, ()):
                if lw <= words and (best is None or n > best[0]):
                    best = (n, did)
        return best[1] if best else None


@dataclass
class CodeExpander:
    """Expands code ids into weighted graph concepts (see the module docstring).

    Build it once per graph with :meth:`from_tables`; :meth:`expand` is memoised per code.
    """

    neighbours: dict[str, list[str]]
    diseases: frozenset[str]
    disease_by_name: dict[str, str]
    config: ExpansionConfig = field(default_factory=ExpansionConfig)
    names: dict[str, str] = field(default_factory=dict)
    _memo: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)
    _labels: _LabelIndex | None = field(default=None, repr=False)
    _index_key: frozenset[str] | None = field(default=None, repr=False)
    _index: dict[str, list[tuple[str, float]]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_tables(cls, tables: GraphTables, config: ExpansionConfig | None = None, names: Mapping[str, str] | None = None) -> CodeExpander:
        cfg = config or ExpansionConfig()
        nb: dict[str, set[str]] = defaultdict(set)
        for rel in cfg.relations:
            df = tables.edges.get(rel)
            if df is None or df.empty:
                continue
            src, dst = df["src"].astype(str).tolist(), df["dst"].astype(str).tolist()
            for a, b in zip(src, dst):
                nb[a].add(b)
                if RELATIONS[rel] == "both":
                    nb[b].add(a)
        dis = tables.nodes.get("Disease")
        diseases = frozenset(dis["id"].astype(str)) if dis is not None else frozenset()
        by_name: dict[str, str] = {}
        if dis is not None and cfg.name_match:
            for i, n in zip(dis["id"].astype(str), dis["name"].astype("string").fillna("")):
                k = _norm(n)
                if k and k not in by_name:
                    by_name[k] = i
        return cls({k: sorted(v) for k, v in nb.items()}, diseases, by_name, cfg, dict(names or {}))

    def _seeds(self, code: str) -> dict[str, int]:
        """Where the walk starts: the code (hop 0), its category by id when the graph lacks the code,
        and a Disease whose label matches the code's name (hop 1)."""
        seeds = {code: 0}
        if code not in self.neighbours:
            cat = icd_category(code)
            if cat and cat != code:
                seeds[cat] = 1
        if self.config.name_match and not self._reaches_disease_from({code: 0}):
            hit = self._name_disease(code)
            if hit:
                seeds.setdefault(hit, 1)
        return seeds

    def _name_disease(self, code: str) -> str | None:
        name = self.names.get(code) or (code.split(":", 1)[1] if ":" in code else code)
        if self._labels is None:
            self._labels = _LabelIndex(self.disease_by_name)
        for seg in reversed(str(name).split("|")):
            k = _norm(seg)
            hit = self.disease_by_name.get(k) or self._labels.match(k)
            if hit:
                return hit
        return None

    def _walk(self, seeds: Mapping[str, int]) -> dict[str, float]:
        best: dict[str, int] = dict(seeds)
        frontier = sorted(seeds.items(), key=lambda kv: kv[1])
        while frontier:
            nxt = []
            for node, h in frontier:
                if h >= self.config.hops:
                    continue
                for m in self.neighbours.get(node, ()):
                    if m not in best or best[m] > h + 1:
                        best[m] = h + 1
                        nxt.append((m, h + 1))
            frontier = nxt
        return {c: self.config.decay ** h for c, h in best.items()}

    def _reaches_disease_from(self, seeds: Mapping[str, int]) -> bool:
        return any(c in self.diseases for c in self._walk(seeds))

    def expand(self, code: str) -> dict[str, float]:
        """``{concept id: weight}`` for one code (the code itself included, weight 1)."""
        hit = self._memo.get(code)
        if hit is None:
            hit = self._memo[code] = self._walk(self._seeds(code))
        return hit

    def expand_visit(self, codes: Iterable[str]) -> dict[str, float]:
        """The concepts of a set of codes: each concept's largest weight over the codes."""
        out: dict[str, float] = {}
        for c in codes:
            for k, w in self.expand(c).items():
                if w > out.get(k, 0.0):
                    out[k] = w
        return out

    def translate(self, code: str, known: Mapping[str, int] | set[str] | frozenset[str], limit: int = 3) -> list[dict]:
        """Codes of ``known`` (what a model was trained on) that stand for ``code``, best first.

        First the known codes the code's own expansion reaches (its GEM partners in the other ICD
        version, its category); else the known codes that share its nearest Disease, scored by the
        product of the two weights (two codes that share only an ICD category are not taken as one). Each hit is ``{"code", "score", "via"}``
        (``via``: the shared concept). Empty when the graph links the code to nothing known. With
        ``known`` a mapping code -> training frequency, ties go to the more frequent code.
        """
        freq = known if isinstance(known, Mapping) else {}
        exp = self.expand(code)
        direct = sorted(((w, k) for k, w in exp.items() if k in known and k != code), key=lambda t: (-t[0], -freq.get(t[1], 0), t[1]))
        if direct:
            return [{"code": k, "score": round(w, 4), "via": k} for w, k in direct[:limit]]
        index = self._known_index(known)
        best: dict[str, tuple[float, str]] = {}
        for concept, w in exp.items():
            if concept == code or concept not in self.diseases:  # siblings meet in a disease, not in a bare category
                continue
            for k, wk in index.get(concept, ()):
                s = w * wk
                if k not in best or s > best[k][0]:
                    best[k] = (s, concept)
        ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], -freq.get(kv[0], 0), kv[0]))
        return [{"code": k, "score": round(s, 4), "via": via} for k, (s, via) in ranked[:limit]]

    def _known_index(self, known) -> dict[str, list[tuple[str, float]]]:
        key = frozenset(known)
        if self._index_key != key:
            index: dict[str, list[tuple[str, float]]] = defaultdict(list)
            for k in sorted(key):
                for concept, w in self.expand(k).items():
                    if concept != k:
                        index[concept].append((k, w))
            self._index_key, self._index = key, index
        return self._index

    def add_names(self, names: Mapping[str, str]) -> None:
        """Name more codes (name matching reads them); expansions of renamed codes are recomputed."""
        fresh = {c: n for c, n in names.items() if self.names.get(c) != n}
        if fresh:
            self.names.update(fresh)
            for c in fresh:
                self._memo.pop(c, None)
            self._index_key = None

    def reaches_disease(self, code: str) -> bool:
        return any(c in self.diseases for c in self.expand(code))

    def in_graph(self, code: str) -> bool:
        """True when the expansion reaches anything beyond the code's own id."""
        return len(self.expand(code)) > 1 or code in self.neighbours

    def unreached(self, codes: Iterable[str]) -> list[str]:
        """Codes whose expansion reaches nothing in the graph."""
        return [c for c in codes if not self.in_graph(c)]

    def coverage(self, code_lists: Sequence[Sequence[str]]) -> dict:
        """Share of distinct codes, of code occurrences and of visits (≥ 1 code) reaching a Disease node."""
        distinct = sorted({c for cs in code_lists for c in cs})
        reach = {c: self.reaches_disease(c) for c in distinct}
        occ = [reach[c] for cs in code_lists for c in cs]
        visits = [any(reach[c] for c in cs) for cs in code_lists if cs]
        share = lambda xs: round(sum(xs) / len(xs), 4) if xs else None  # noqa: E731
        by_system: dict[str, list[bool]] = defaultdict(list)
        for c in distinct:
            by_system[c.split(":", 1)[0]].append(reach[c])
        return {
            "n_codes": len(distinct),
            "codes_reaching_disease": share(list(reach.values())),
            "code_occurrences_reaching_disease": share(occ),
            "visits_with_a_code_reaching_disease": share(visits),
            "by_system": {s: {"n_codes": len(v), "reaching_disease": share(v)} for s, v in sorted(by_system.items())},
        }


def diagnosis_coverage(expander: CodeExpander, visits: pd.DataFrame) -> dict:
    """:meth:`CodeExpander.coverage` over the diagnosis lists of a cohort's visit table."""
    return expander.coverage([list(d) for d in visits["diagnoses"]])
