"""Deterministic realiser: natural-language rationales from rationale paths (always available).

Every sentence realises exactly one :class:`~kgrec.explain.paths.EvidencePath` and names only the
nodes of that path, linked by the relationships of that path, in their direction: the text never
states an edge that is not in the graph. The names come from the nodes (their ``name`` property, else
their id). ``variant`` picks one of a few phrasings of the same facts (0 is the default; the others
make the reference rationales of ``kgrec build-rationales`` less uniform).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from kgrec.explain.evidence import by_strength
from kgrec.explain.paths import EvidencePath, Node

N_VARIANTS = 3

VERB = {"treats": "treats", "palliates": "relieves the symptoms of", "indication": "is indicated for"}


@dataclass
class Realised:
    text: str
    entities: set[str] = field(default_factory=set)  # ids of the nodes the text names

    def __str__(self) -> str:
        return self.text


def name(n: Node | None) -> str:
    if n is None:
        return ""
    return n.name.strip() or n.id


def coded(n: Node | None) -> str:
    """A code or drug class with its id: ``Atrial fibrillation (ICD9CM:42731)``."""
    if n is None:
        return ""
    return f"{n.name.strip()} ({n.id})" if n.name.strip() and n.name.strip() != n.id else n.id


def _sources(p: EvidencePath, rel: str) -> str:
    srcs = sorted({str(e.get("source")) for st in p.steps if st.type == rel for e in st.evidence if e.get("source")})
    return ", ".join(srcs)


def _related_clause(p: EvidencePath, code: Node, related: Node) -> str:
    """How the visit's code reaches the code that carries the evidence (CODE_PARENT / GEM, as stored)."""
    for st, a, b in zip(p.steps, p.nodes, p.nodes[1:]):
        if st.type == "CODE_PARENT" and a.id == code.id:
            return f"{coded(code)} belongs to the category {coded(related)}"
        if st.type == "GEM":
            if st.forward:
                return f"{coded(code)} corresponds to the ICD-10 code {coded(related)}"
            return f"{coded(code)} corresponds to the ICD-9 code {coded(related)}"
    return f"{coded(code)} is related to {coded(related)}"


def realise_path(p: EvidencePath, variant: int = 0) -> Realised:
    """One sentence for one path."""
    v = variant % N_VARIANTS
    codes = [n for n in p.nodes if n.label == "DiagnosisCode"]
    code = codes[0] if codes else None
    related = codes[1] if len(codes) > 1 else None
    disease, ingredient, drug = p.node("Disease"), p.node("Ingredient"), p.nodes[-1]
    used = {n.id for n in p.nodes if n.label not in ("Visit",)}
    evidence_code = related or code
    lead = (_related_clause(p, code, related) + ", which") if related else f"The diagnosis {coded(code)}"
    if p.kind == "indication":
        kinds = [e.get("kind") for st in p.steps if st.type == "INDICATION" for e in st.evidence]
        verb = VERB.get(next((k for k in ("treats", "indication", "palliates") if k in kinds), "indication"), "is indicated for")
        src = _sources(p, "INDICATION")
        first = f"{lead} maps to the disease {name(disease)}"
        texts = [
            f"{first}; {name(ingredient)} {verb} {name(disease)} (source: {src}), and {name(ingredient)} belongs to {coded(drug)}.",
            f"{name(ingredient)}, in {coded(drug)}, {verb} {name(disease)} (source: {src}). {first}.",
            f"{first}, and according to {src} {name(ingredient)} ({coded(drug)}) {verb} it.",
        ]
        return Realised(texts[v], used)
    if p.kind == "code_indication" and p.evidence_class == "mined association":
        # MEDI outside its high-precision subset: stated as what it is, never as an indication
        src = _sources(p, "INDICATION_ICD") or "MEDI"
        via = f" ({_related_clause(p, code, related)})" if related else ""
        texts = [
            f"Weak evidence: {src}'s broad, text-mined set (low precision, not a confirmed indication) associates {coded(evidence_code)}{via} with {name(ingredient)}, which belongs to {coded(drug)}.",
            f"Weak evidence: a low-precision mined association ({src}, not a confirmed indication) links {name(ingredient)} ({coded(drug)}) with {coded(evidence_code)}{via}.",
            f"Weak evidence: {coded(evidence_code)}{via} and {name(ingredient)}, in {coded(drug)}, are associated in {src}'s mined, low-precision set, not a confirmed indication.",
        ]
        return Realised(texts[v], used)
    if p.kind == "code_indication":
        src = _sources(p, "INDICATION_ICD") or "MEDI"
        head = f"The diagnosis {coded(code)}"
        texts = [
            (f"{head} is an indication of {name(ingredient)} (source: {src}), which belongs to {coded(drug)}." if not related
             else f"{_related_clause(p, code, related)}, an indication of {name(ingredient)} (source: {src}), which belongs to {coded(drug)}."),
            (f"{name(ingredient)} ({coded(drug)}) is indicated for {coded(evidence_code)} according to {src}" + (f"; {_related_clause(p, code, related)}." if related else ".")),
            (f"According to {src}, {coded(evidence_code)} is an indication of {name(ingredient)}, an ingredient of {coded(drug)}" + (f"; {_related_clause(p, code, related)}." if related else ".")),
        ]
        return Realised(texts[v], used)
    if p.kind == "trial":
        trial = p.node("Trial")
        n = p.support
        others = f" and {n - 1} other trial{'s' if n > 2 else ''}" if n > 1 else ""
        texts = [
            f"The clinical trial {trial.id}{others} studied {name(ingredient)} ({coded(drug)}) for {name(disease)}, the disease of the diagnosis {coded(code)}.",
            f"{name(ingredient)}, in {coded(drug)}, was studied for {name(disease)} ({coded(code)}) in the trial {trial.id}{others}.",
            f"{coded(code)} maps to {name(disease)}, a target of the trial {trial.id}{others}, which studied {name(ingredient)} ({coded(drug)}).",
        ]
        return Realised(texts[v], used)
    if p.kind == "literature":  # BC5CDR: a corpus of chemical-induced diseases, so a caution, never support
        pub, chem = p.node("Publication"), p.node("Chemical")
        n = p.support
        others = f" and {n - 1} other abstract{'s' if n > 2 else ''}" if n > 1 else ""
        texts = [
            f"Caution: the abstract PMID {pub.id}{others} of a corpus of chemical-induced diseases mentions {name(chem)} ({name(ingredient)}, in {coded(drug)}) together with {name(disease)}, the disease of {coded(code)}.",
            f"Caution: {name(disease)} ({coded(code)}) and {name(chem)}, i.e. {name(ingredient)} from {coded(drug)}, are mentioned together in PMID {pub.id}{others}, abstracts about chemical-induced diseases.",
            f"Caution: in abstracts about chemical-induced diseases (PMID {pub.id}{others}), {name(chem)} ({name(ingredient)}, {coded(drug)}) is mentioned with {name(disease)} ({coded(code)}).",
        ]
        return Realised(texts[v], used)
    if p.kind == "similar_patients":
        n = int(p.extra.get("n_visits", p.support))
        ex = p.nodes[-2]
        visits = f"{n} visit{'s' if n != 1 else ''} of other patients"
        texts = [
            f"{visits} with {coded(code)} received {coded(drug)} (e.g. visit {ex.id}).",
            f"Other patients with {coded(code)} were given {coded(drug)}: {visits} (e.g. visit {ex.id}).",
            f"{coded(drug)} was prescribed in {visits} that also had {coded(code)} (e.g. visit {ex.id}).",
        ]
        return Realised(texts[v], used | {ex.id})
    if p.kind == "adverse":
        chem = p.node("Chemical")
        pmids = sorted({str(x) for x in p.extra.get("pmids", [])} | {str(e.get("pmid")) for st in p.steps if st.type == "INDUCES" for e in st.evidence if e.get("pmid")})
        ref = f" (PMID {', '.join(pmids[:3])})" if pmids else ""
        texts = [
            f"Caution: the literature reports that {name(chem)} ({name(ingredient)}, in {coded(drug)}) can induce {name(disease)}{ref}, the disease of {coded(code)}.",
            f"Caution: {name(chem)} ({name(ingredient)}, {coded(drug)}) is reported to induce {name(disease)}{ref}, and the visit has {coded(code)}.",
            f"Caution: {name(disease)}, the disease of {coded(code)}, is reported as induced by {name(chem)} ({name(ingredient)}, {coded(drug)}){ref}.",
        ]
        return Realised(texts[v], used)
    return Realised(f"{p.text()}.", used)


def _drivers(att, recommended: bool) -> list[str]:
    """What moved this drug's score, from the model's own attribution: the inputs that raised it, and
    whether the graph prior (how often the class is given to visits like this one) outweighs them."""
    if att is None:
        return []
    from kgrec.explain.attribution import GRAPH_PRIOR

    raised = att.top(3)
    prior = next((c.weight for c in att.contributions if c.kind == GRAPH_PRIOR), 0.0)
    codes_total = sum(c.weight for c in att.contributions if c.kind != GRAPH_PRIOR and c.weight > 0)
    out = []
    if raised:
        out.append("What raised its score in this patient: " + ", ".join(f"{c.name or c.input} ({c.input}, {c.weight:+.2f})" for c in raised) + ".")
    else:
        out.append("None of this patient's codes raised its score.")
    if prior > 0 and prior >= codes_total:
        out.append(
            f"The score comes mostly from the graph prior ({prior:+.2f}): how often {('this class' if recommended else 'it')} is "
            "prescribed to visits like this one in general, not this patient's particular codes."
        )
    return out


def realise_drug(drug: Node, paths: Sequence[EvidencePath], cautions: Sequence[EvidencePath] = (), probability: float | None = None,
                 variant: int = 0, header: bool = True, *, recommended: bool = True, threshold: float | None = None,
                 attribution=None) -> Realised:
    """A paragraph for one drug: a header sentence (recommended or not, as the model decided), what
    raised its score (with an ``attribution``), one sentence per path (curated indications first; a
    path that starts at a code whose contribution was negative is not cited as a reason), then cautions."""
    parts: list[str] = []
    ents = {drug.id}
    if header:
        if probability is not None and recommended:
            parts.append(f"{coded(drug)} is recommended (probability {probability:.2f}).")
        elif probability is not None:
            below = f", below the threshold {threshold:.2f}" if threshold is not None else ""
            parts.append(f"{coded(drug)} is not recommended (probability {probability:.2f}{below}).")
        else:
            parts.append(f"{coded(drug)}:")
    parts += _drivers(attribution, recommended)
    cited = [p for p in paths if p.extra.get("attribution", 0.0) >= 0]
    lowered = len(paths) - len(cited)
    cited = by_strength(cited)  # curated indications first, mined associations last
    if not paths:
        parts.append(f"No path in the knowledge graph links the diagnoses of this visit to {coded(drug)}; the recommendation rests on the model alone.")
    for p in cited:
        r = realise_path(p, variant)
        parts.append(r.text)
        ents |= r.entities
    if lowered:
        parts.append(f"{lowered} further path{'s' if lowered > 1 else ''} start{'' if lowered > 1 else 's'} at codes that lowered this score and {'are' if lowered > 1 else 'is'} not cited as reasons.")
    for p in cautions:
        r = realise_path(p, variant)
        parts.append(r.text)
        ents |= r.entities
    return Realised(" ".join(parts), ents)


__all__ = ["N_VARIANTS", "Realised", "coded", "name", "realise_drug", "realise_path"]
