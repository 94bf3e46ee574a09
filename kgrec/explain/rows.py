"""Rows of the ``explain_*`` statements -> :class:`~kgrec.explain.evidence.EvidencePath` objects:
scalar-column rows (``n<i>``/``m<i>``/``s<j>``/``l<j>``/``e<j>``/``r<j>_<prop>``), whole-path rows,
the aggregated similar-patients rows; then parallel edges merged and paths differing only in their
trial or publication grouped (unless the store already aggregated them: ``support`` column)."""

from __future__ import annotations

import json
from collections.abc import Iterable

from kgrec.explain.evidence import GROUPED_LABELS, MAX_EXAMPLES, EvidencePath, Node, Step


def _from_path(r: dict) -> EvidencePath | None:
    path = r.get("path")
    if not isinstance(path, dict) or not path.get("nodes"):
        return None
    raw_nodes = path["nodes"]
    nodes = [Node(str(n.get("id")), str(n.get("_label", "")), str(n.get("name") or n.get("title") or "")) for n in raw_nodes]
    steps = []
    for i, rel in enumerate(path.get("relationships", [])):
        props = {k: v for k, v in rel.items() if not k.startswith("_")}
        forward = rel.get("_start") == nodes[i].id if i < len(nodes) else True
        steps.append(Step(str(rel.get("_type", "")), forward, [props]))
    if len(steps) != len(nodes) - 1:
        return None
    return EvidencePath(drug=str(r.get("drug") or nodes[-1].id), kind=str(r.get("kind") or r.get("_family")), nodes=nodes, steps=steps)


_SHAPES: dict[str, tuple[list[str], list[tuple[str, bool]]]] = {}


def _shape(shape: str) -> tuple[list[str], list[tuple[str, bool]]]:
    """``'Visit -HAS_DIAGNOSIS-> DiagnosisCode <-GEM- DiagnosisCode'`` -> labels, [(type, forward)]."""
    if shape not in _SHAPES:
        parts = shape.split()
        labels = parts[0::2]
        rels = [(a.strip("<->"), a.endswith("->")) for a in parts[1::2]]
        if len(labels) != len(rels) + 1:
            raise ValueError(f"bad path shape {shape!r}")
        _SHAPES[shape] = (labels, rels)
    return _SHAPES[shape]


def _from_columns(r: dict) -> EvidencePath | None:
    """A path from the scalar columns of an explain_* statement (see the files' headers)."""
    labels, rels = _shape(str(r["shape"]))
    nodes = [Node(str(r.get(f"n{i}")), lab, str(r.get(f"m{i}") or "")) for i, lab in enumerate(labels)]
    keys = tuple(r)
    extras = _EXTRAS.get(keys)
    if extras is None:  # r<j>_<property> columns, parsed once per statement's column list
        extras = _EXTRAS[keys] = [(k, int(k[1:k.index("_")]), k[k.index("_") + 1:]) for k in keys if k[0] == "r" and "_" in k and k[1:k.index("_")].isdigit()]
    evs = [{"source": r.get(f"s{j}"), "licence": r.get(f"l{j}")} for j in range(len(rels))]
    for k, j, prop in extras:
        if r[k] is not None:
            evs[j][prop] = r[k]
    steps = []
    for j, ((typ, fwd), ev) in enumerate(zip(rels, evs)):
        if f"e{j}" in r:  # aggregated over the grouped node: every distinct 'source|licence' of this step
            steps.append(Step(typ, fwd, _pairs(r[f"e{j}"])))
        else:
            steps.append(Step(typ, fwd, [{k: v for k, v in ev.items() if v is not None}]))
    p = EvidencePath(drug=str(r.get("drug") or nodes[-1].id), kind=str(r.get("kind")), nodes=nodes, steps=steps)
    if "support" in r:  # counted by the store (explain_*_trial / _literature): no regrouping here
        p.support = max(1, int(r["support"] or 1))
        p.counted_by_store = True
        grouped = sorted({str(x) for x in r.get("grouped") or [] if x is not None})
        if p.kind == "adverse":
            p.extra["pmids"] = grouped[:MAX_EXAMPLES + 1]
        else:
            p.examples = [x for x in grouped if x != nodes[_grouped_index(p)].id][:MAX_EXAMPLES] if _grouped_index(p) is not None else []
    return p


def _pairs(values) -> list[dict]:
    out = []
    for pair in sorted({str(v) for v in values or [] if v is not None}):
        src, _, lic = pair.partition("|")
        out.append({"source": src, "licence": lic})
    return out


def _grouped_index(p: EvidencePath) -> int | None:
    return next((i for i, n in enumerate(p.nodes) if n.label in GROUPED_LABELS), None)


_EXTRAS: dict[tuple, list[tuple[str, int, str]]] = {}


def _from_similar(r: dict) -> EvidencePath | None:
    """Assemble the similar-patients path from the aggregated row (see explain_*_similar.cypher)."""
    if not r.get("drug") or not r.get("code") or not r.get("example"):
        return None

    def ev(key: str) -> list[dict]:
        return _pairs(r.get(key))

    code = Node(str(r["code"]), "DiagnosisCode", str(r.get("code_name") or ""))
    other = Node(str(r["example"]), "Visit", "")
    drug = Node(str(r["drug"]), "Drug", str(r.get("drug_name") or ""))
    nodes, steps = [code, other, drug], [Step("HAS_DIAGNOSIS", False, ev("r1")), Step("HAS_PRESCRIPTION", True, ev("r2"))]
    if r.get("visit"):
        nodes.insert(0, Node(str(r["visit"]), "Visit", ""))
        steps.insert(0, Step("HAS_DIAGNOSIS", True, ev("r0")))
    n = int(r.get("n_visits") or 1)
    return EvidencePath(drug=drug.id, kind="similar_patients", nodes=nodes, steps=steps, support=n, extra={"n_visits": n})


def from_row(r: dict) -> EvidencePath | None:
    """One path from one row of any explain_* statement (scalar columns, a whole path, or similar patients)."""
    if "shape" in r:
        return _from_columns(r)
    if "path" in r:
        return _from_path(r)
    return _from_similar(r)


def _add_evidence(a: Step, b: Step) -> None:
    """``b``'s evidence into ``a``'s, in one canonical order (by source, licence, then the rest), so a
    step names the same first source whatever order the store returned the parallel edges in."""
    for e in b.evidence:
        if e not in a.evidence:
            a.evidence.append(e)
    a.evidence.sort(key=lambda e: (str(e.get("source", "")), str(e.get("licence", "")), json.dumps(e, sort_keys=True, default=str)))


def merge_steps(into: EvidencePath, other: EvidencePath) -> None:
    """``other`` has the same nodes as ``into``: add its steps' evidence (parallel edges)."""
    for a, b in zip(into.steps, other.steps):
        _add_evidence(a, b)
    if into.counted_by_store:
        into.support = max(into.support, other.support)


def group(paths: Iterable[EvidencePath]) -> list[EvidencePath]:
    """Paths that differ only in their trial or publication become one path (support = how many);
    otherwise support = the number of sources asserting the evidence edge."""
    groups: dict[tuple, list[EvidencePath]] = {}
    out = []
    for p in paths:
        idx = _grouped_index(p)
        if p.counted_by_store:
            out.append(p)
            continue
        if idx is None or p.kind == "similar_patients":
            if p.kind in ("indication", "code_indication"):
                ev_type = "INDICATION" if p.kind == "indication" else "INDICATION_ICD"
                p.support = max(1, len({e.get("source") for st in p.steps if st.type == ev_type for e in st.evidence}))
            elif p.kind == "adverse":
                p.support = max(1, len({e.get("pmid") for st in p.steps if st.type == "INDUCES" for e in st.evidence}))
            out.append(p)
            continue
        key = (p.drug, p.kind, tuple(n.id if i != idx else "*" for i, n in enumerate(p.nodes)))
        groups.setdefault(key, []).append(p)
    for members in groups.values():
        idx = next(i for i, n in enumerate(members[0].nodes) if n.label in GROUPED_LABELS)
        members.sort(key=lambda p: p.nodes[idx].id)
        rep = members[0]
        ids = [m.nodes[idx].id for m in members]
        rep.support = len(set(ids))
        rep.examples = ids[1 : 1 + MAX_EXAMPLES]
        for m in members[1:]:
            # the parallel-edge evidence of the shared steps (not the grouped node's own edges)
            for i, (a, b) in enumerate(zip(rep.steps, m.steps)):
                if i not in (idx - 1, idx):
                    _add_evidence(a, b)
        out.append(rep)
    return out

__all__ = ["from_row", "group", "merge_steps"]
