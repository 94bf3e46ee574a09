"""The rationale dataset (KEDRec-LM style) and the hallucination check: :func:`build_rationales`
(``kgrec build-rationales``) writes an expRxRec-like JSONL, one record per (visit, prescribed drug class)
that the graph can explain, with a reference rationale from the deterministic realiser;
:func:`source_text` linearises a record for a generator; :class:`EntityLexicon` flags drug and disease
names a text states that its record's evidence does not contain. See :mod:`kgrec.explain.generate`."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kgrec.errors import InputError
from kgrec.explain.paths import EvidencePath, Node, Step, select
from kgrec.explain.realise import N_VARIANTS, realise_drug

ENTITY_LABELS = ("Drug", "Ingredient", "Chemical", "Disease", "DiagnosisCode")
ID_LABELS = ("Drug", "DiagnosisCode")  # their ids (B01A, ICD9CM:4280) appear in rationales too
MIN_NAME_LEN = 4


# ------------------------------------------------------------------------------------ dataset
def _variant(record_id: str) -> int:
    return int(hashlib.sha1(record_id.encode()).hexdigest()[:8], 16) % N_VARIANTS


def _path_json(p: EvidencePath) -> dict:
    """The compact evidence form kept in a record (enough to rebuild the path and realise it)."""
    return {
        "kind": p.kind, "score": round(p.score, 4), "support": p.support, "examples": p.examples, "extra": p.extra,
        "nodes": [n.to_dict() for n in p.nodes],
        "steps": [{"type": s.type, "forward": s.forward, "evidence": s.evidence} for s in p.steps],
    }


def path_from_json(d: dict, drug: str) -> EvidencePath:
    nodes = [Node(n["id"], n["label"], n.get("name", "")) for n in d["nodes"]]
    steps = [Step(s["type"], bool(s["forward"]), list(s.get("evidence", []))) for s in d["steps"]]
    return EvidencePath(drug=drug, kind=d["kind"], nodes=nodes, steps=steps, support=int(d.get("support", 1)),
                        examples=list(d.get("examples", [])), score=float(d.get("score", 0.0)), extra=dict(d.get("extra") or {}))


def make_record(record_id: str, split: str, context: dict, drug: Node, paths: Sequence[EvidencePath], cautions: Sequence[EvidencePath] = (), variants: bool = True) -> dict:
    v = _variant(record_id) if variants else 0
    ref = realise_drug(drug, paths, cautions, None, variant=v, header=False).text
    return {
        "id": record_id, "split": split, "context": context, "drug": drug.to_dict(),
        "evidence": [_path_json(p) for p in paths], "cautions": [_path_json(p) for p in cautions],
        "reference": ref, "variant": v,
    }


def record_for(res: Any, d: Any) -> dict:
    """A dataset-like record for one drug of a :class:`~kgrec.explain.recommend.Recommendation`."""
    v = res.visit
    ctx = {"diagnoses": v.get("diagnoses", []), "procedures": v.get("procedures", []), "earlier_drugs": []}
    rid = f"{v.get('graph_id') or v.get('label', 'patient')}/{d.drug}"
    return make_record(rid, "inference", ctx, Node(d.drug, "Drug", d.name), d.paths, d.cautions, variants=False)


def build_rationales(workspace: Path | str, out: Path | str | None = None, drugs_per_visit: int = 5, paths_per_drug: int = 3,
                     variants: bool = True, store: str = "embedded", store_kw: dict | None = None, limit: int | None = None) -> dict:
    """Write ``<workspace>/rationales/rationales.jsonl`` (or ``out``); returns a summary dict."""
    from kgrec.workspace import load_cohort
    from kgrec.explain.paths import PathFinder
    from kgrec.graph.stores import get_store

    ws = Path(workspace)
    cohort = load_cohort(ws)
    out = Path(out) if out else ws / "rationales" / "rationales.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    names = cohort.names()
    split_of: dict[str, str] = {}
    for part in ("train", "val", "test"):
        for pid in (cohort.split or {}).get(part, []):
            split_of[str(pid)] = part
    kw = dict(store_kw or {})
    if store == "embedded":
        kw = {"workspace": ws, "read_only": True, **kw}
    v = cohort.visits
    mask = cohort.eval_mask()
    n_rec, n_vis, by_split = 0, 0, {}
    tmp = out.with_name(out.name + ".tmp")
    t0 = time.perf_counter()
    with get_store(store, **kw) as st, tmp.open("w", encoding="utf-8") as fh:
        finder = PathFinder(st, ws / "graph" / "tables")
        rows = [i for i in range(len(v)) if mask[i]]
        if limit:
            rows = rows[:limit]
        for i in rows:
            pid, vid = str(v["patient_id"].iat[i]), str(v["visit_id"].iat[i])
            drugs = list(dict.fromkeys(v["drugs"].iat[i]))
            dx = list(v["diagnoses"].iat[i])
            own = [f"{cohort.source}:{x}" for x in v.loc[v["patient_id"] == v["patient_id"].iat[i], "visit_id"]]
            ev = finder.for_visit(f"{cohort.source}:{vid}", drugs, dx, own)
            ranked = sorted((e for e in ev.values() if e.paths), key=lambda e: -e.paths[0].score)[:drugs_per_visit]
            if not ranked:
                continue
            order = int(v["visit_order"].iat[i])
            earlier = v[(v["patient_id"] == v["patient_id"].iat[i]) & (v["visit_order"] < order)]
            ctx = {
                "diagnoses": [{"code": c, "name": names.get(c, "")} for c in dx],
                "procedures": [{"code": c, "name": names.get(c, "")} for c in v["procedures"].iat[i]],
                "earlier_drugs": sorted({d for ds in earlier["drugs"] for d in ds}),
            }
            split = split_of.get(pid, "train")
            n_vis += 1
            for e in ranked:
                rec = make_record(f"{cohort.source}:{vid}/{e.drug}", split, ctx, Node(e.drug, "Drug", names.get(e.drug, e.drug)),
                                  select(e.paths, paths_per_drug), e.cautions[:1], variants)
                rec.update(visit_id=vid, patient_id=pid)
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
                n_rec += 1
                by_split[split] = by_split.get(split, 0) + 1
    tmp.replace(out)
    return {"path": str(out), "n_records": n_rec, "n_visits": n_vis, "by_split": by_split, "seconds": round(time.perf_counter() - t0, 2)}


def read_records(path: Path | str) -> list[dict]:
    p = Path(path)
    if not p.is_file():
        raise InputError("rationale dataset not found (run `kgrec build-rationales`)", path=p)
    out = []
    for k, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"not JSON ({exc.msg})", path=p, line=k) from None
        for key in ("drug", "evidence", "reference"):
            if key not in rec:
                raise InputError(f"record has no {key!r}", path=p, line=k)
        out.append(rec)
    if not out:
        raise InputError("no records", path=p)
    return out


# ------------------------------------------------------------------------------------ model input
def _n(node: dict) -> str:
    return (node.get("name") or node["id"]).strip()


def source_text(rec: dict, max_paths: int = 3, max_codes: int = 8) -> str:
    """The linearised input: drug, diagnoses, then each evidence path as names and relation types."""
    drug = rec["drug"]
    parts = [f"drug: {_n(drug)} ({drug['id']})"]
    dx = [d.get("name") or d["code"] for d in rec.get("context", {}).get("diagnoses", [])[:max_codes]]
    if dx:
        parts.append("diagnoses: " + "; ".join(dx))
    for k, p in enumerate(rec["evidence"][:max_paths] + rec.get("cautions", [])[:1]):
        seq = []
        nodes = [n for n in p["nodes"]]
        for i, n in enumerate(nodes):
            if n["label"] == "Visit":
                label = f"visit {n['id']}"
            elif n["label"] in ("DiagnosisCode", "Drug"):
                label = f"{_n(n)} ({n['id']})" if _n(n) != n["id"] else n["id"]
            elif n["label"] in ("Trial", "Publication"):
                label = f"{n['label'].lower()} {n['id']}"
            else:
                label = _n(n)
            seq.append(label)
            if i < len(p["steps"]):
                st = p["steps"][i]
                rel = st["type"].lower()
                if st["type"] == "INDICATION":
                    rel = next((e.get("kind") for e in st["evidence"] if e.get("kind")), "indication")
                srcs = ",".join(sorted({str(e.get("source")) for e in st["evidence"] if e.get("source")}))
                seq.append(f"-{rel}[{srcs}]->" if st["forward"] else f"<-{rel}[{srcs}]-")
        extra = f" (support {p.get('support', 1)})" if p.get("support", 1) > 1 else ""
        parts.append(f"{p['kind']}{extra}: " + " ".join(seq))
    return " | ".join(parts)


# ------------------------------------------------------------------------------------ hallucination
class EntityLexicon:
    """Drug and disease names of a set of records, for the hallucination check."""

    def __init__(self, records: Sequence[dict], extra_names: Sequence[str] = ()):
        names = {n.lower() for n in extra_names if len(n) >= MIN_NAME_LEN}
        for rec in records:
            names |= record_names(rec)
        self.names = sorted(names, key=lambda s: (-len(s), s))
        self._pattern = re.compile("|".join(r"(?<![a-z0-9])" + re.escape(n) + r"(?![a-z0-9])" for n in self.names)) if self.names else None

    def find(self, text: str) -> list[str]:
        """Lexicon names in ``text``, longest match first (a name inside a longer match is not counted)."""
        if self._pattern is None:
            return []
        return sorted({m.group(0) for m in self._pattern.finditer(text.lower())})

    def check(self, text: str, rec: dict) -> list[str]:
        """Names of drugs/diseases in ``text`` that the record's evidence does not contain."""
        allowed = record_names(rec)
        return [n for n in self.find(text) if n not in allowed]


def record_names(rec: dict) -> set[str]:
    """Lower-cased names of the record's drug and evidence entities, and the ids of its drug classes and
    diagnosis codes (``b01a``, ``icd9cm:4280``: a rationale naming another code is flagged too)."""
    out = set()
    drug = {"label": "Drug", **(rec.get("drug") or {})}
    for n in [drug, *(n for p in rec.get("evidence", []) + rec.get("cautions", []) for n in p["nodes"])]:
        if n and n.get("label") in ENTITY_LABELS:
            name = (n.get("name") or "").strip().lower()
            if len(name) >= MIN_NAME_LEN:
                out.add(name)
            if n.get("label") in ID_LABELS and n.get("id"):
                out.add(str(n["id"]).lower())
    return out


__all__ = ["ENTITY_LABELS", "ID_LABELS", "MIN_NAME_LEN", "EntityLexicon", "build_rationales", "make_record", "path_from_json", "read_records",
           "record_for", "record_names", "source_text"]
