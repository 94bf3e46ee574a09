"""Recommend and explain: ranked ATC3 drugs, DDI warnings, rationale paths and rationales.

Two kinds of input:

* a visit of the workspace cohort (``visit_id``, e.g. ``100375`` or ``mimic3:100375``): its diagnoses,
  procedures and the patient's earlier visits come from the cohort, its paths start at its Visit node;
* a new patient (:class:`PatientIn`, the JSON schema below): diagnoses and procedures of the current
  visit as ICD codes, optional earlier visits (codes and drugs) and the drugs the patient takes now.

Patient JSON (validated; ``kgrec recommend --patient FILE.json``, ``POST /recommend``)::

    {
      "id": "optional label",
      "icd_version": 9,                          # default version for plain codes (9 or 10)
      "diagnoses": ["401.9", {"code": "I48.91", "version": 10}, "ICD9CM:4280"],
      "procedures": [{"code": "36.05", "version": 9}],
      "earlier_visits": [{"diagnoses": ["428.0"], "procedures": [], "drugs": ["C03C"]}],
      "current_drugs": ["B01A", "N02BE01"]       # ATC codes, level 3 or deeper (cut to level 3)
    }

A code is a string (``"401.9"`` with ``icd_version``, or a prefixed id ``"ICD9CM:4019"``) or an object
``{"code", "version"}``. Codes unknown to the model are reported in ``unknown_codes`` and ignored by it
(the graph may still use them for paths); a current visit none of whose codes the model knows is an
error. Limits: 200 codes per visit, 50 earlier visits, 100 drugs, 40 characters per code.

The model scores the current visit with its history exactly as in evaluation (a temporary one-patient
cohort goes through the model's own featurizer); ``current_drugs`` are used for DDI screening only.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from kgrec.cohort import icd10cm
from kgrec.cohort.base import AGE_CAP, VISIT_COLUMNS, Cohort
from kgrec.cohort.samples import Samples
from kgrec.errors import InputError, KgrecError
from kgrec.explain.attribution import attribute, model_code_vocab, visit_profile
from kgrec.explain.ddi import cohort_lookup, ddi_warnings, graph_lookup, screenable_drugs
from kgrec.explain.faithful import evidence_gap, rank_paths, strongest_reasons
from kgrec.explain.paths import (
    FAMILIES,
    DrugEvidence,
    Node,
    PathFinder,
    select,
)
from kgrec.explain.patient import (
    MAX_CODE_LEN,
    MAX_CODES,
    MAX_DRUGS,
    MAX_VISITS,
    CodeIn,
    PatientCodes,
    PatientIn,
    VisitIn,
    _check_atc,
    load_patient,
    normalise_code,
    normalise_patient,
    parse_patient,
    validation_message,
)
from kgrec.explain.grounding import CodeGrounder
from kgrec.explain.realise import realise_drug
from kgrec.explain.result import Recommendation, RecommendedDrug, model_summary

MAX_TOP_K = 100
MAX_PATHS_PER_DRUG = 20


# ---------------------------------------------------------------------------- the service
class RecommendService:
    """The model, the cohort and the graph store, loaded once; :meth:`recommend` per request.

    Args:
        workspace: the study folder (cohort, trained model, graph).
        model: ``student`` or ``teacher``.
        store: ``embedded`` (read-only, ``<workspace>/graph/embedded.lbug``) or ``neo4j`` (``store_kw``:
            uri, user, password, database), or None: no graph, no paths (recommendations only).
        families: path families to search (see :mod:`kgrec.explain.paths`).
    """

    def __init__(self, workspace: Path | str, model: str = "student", store: str | None = "embedded", store_kw: dict | None = None, families: Sequence[str] = FAMILIES):
        from kgrec.workspace import load_cohort, load_model

        t0 = time.perf_counter()
        self.workspace = Path(workspace)
        self.cohort = load_cohort(self.workspace)
        self.model_name = model
        self.model = load_model(self.workspace, model)
        self.model_info = model_summary(getattr(self.model, "provenance", None))
        self.names = self.cohort.names()
        self.drug_vocab = list(self.model.drug_vocab)
        self.known_codes = model_code_vocab(self.model, self.cohort)
        self.grounder = CodeGrounder(self.workspace, self.cohort, self.known_codes)  # unknown codes -> known stand-ins via the graph
        v = self.cohort.visits
        self.visit_row = {str(x): i for i, x in enumerate(v["visit_id"])}
        self.ddi_lookup = cohort_lookup(self.cohort.ddi)
        self.store = None
        self.paths: PathFinder | None = None
        self.store_name = store
        if store:
            from kgrec.graph.stores import get_store

            kw = dict(store_kw or {})
            if store == "embedded":
                kw = {"workspace": self.workspace, "read_only": True, **kw}
            self.store = get_store(store, **kw)
            self.paths = PathFinder(self.store, self.workspace / "graph" / "tables", families)
        self.load_seconds = time.perf_counter() - t0

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None

    def __enter__(self) -> RecommendService:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------- inputs
    def _graph_visit_id(self, visit_id: str) -> str:
        return f"{self.cohort.source}:{visit_id}"

    def resolve_visit(self, visit_id: str) -> int:
        vid = str(visit_id).strip()
        if ":" in vid and vid.split(":", 1)[0] == self.cohort.source:
            vid = vid.split(":", 1)[1]
        if vid not in self.visit_row:
            raise KgrecError(f"visit {visit_id!r} is not in the workspace cohort ({len(self.visit_row)} visits of {self.cohort.source})")
        return self.visit_row[vid]

    def _samples(self, cohort: Cohort, row: int) -> Samples:
        v = cohort.visits
        pid, order = v["patient_id"].iat[row], int(v["visit_order"].iat[row])
        same = np.flatnonzero((v["patient_id"] == pid).to_numpy())
        hist = sorted((int(v["visit_order"].iat[j]), int(j)) for j in same if int(v["visit_order"].iat[j]) < order)
        return Samples(
            np.array([row]), np.array([pid], dtype=object), [list(v["diagnoses"].iat[row])], [list(v["procedures"].iat[row])],
            [[j for _, j in hist]], [list(v["drugs"].iat[row])], np.array([len(same) == 1]), **visit_profile(v, [row]),
        )

    def _patient_cohort(self, pc: PatientCodes) -> tuple[Cohort, int]:
        rows = []
        for k, ev in enumerate(pc.earlier):
            rows.append({"patient_id": "new", "visit_id": f"new:{k}", "visit_order": k, "time": pd.NaT,
                         "diagnoses": ev["diagnoses"], "procedures": ev["procedures"], "drugs": ev["drugs"]})
        n = len(pc.earlier)
        rows.append({"patient_id": "new", "visit_id": f"new:{n}", "visit_order": n, "time": pd.NaT,
                     "diagnoses": pc.diagnoses, "procedures": pc.procedures, "drugs": []})
        profile = {k: v for k, v in (("age", None if pc.age is None else min(float(pc.age), AGE_CAP)), ("sex", pc.sex)) if v is not None}
        visits = pd.DataFrame(rows, columns=VISIT_COLUMNS).assign(**profile)
        used = {c for r in rows for k in ("diagnoses", "procedures", "drugs") for c in r[k]}
        codes = self.cohort.codes[self.cohort.codes["code"].isin(used)].reset_index(drop=True)
        return Cohort(visits, codes, self.cohort.source), n

    def _code_info(self, codes: Sequence[str]) -> dict[str, dict]:
        """Names and graph membership of codes (one query on the store)."""
        info = {c: {"name": self.names.get(c, ""), "in_graph": False} for c in codes}
        if self.store is not None and codes:
            from kgrec.graph.queries import run_query

            for r in run_query(self.store, "explain_code_names", {"codes": list(codes)}):
                if r["id"] in info:
                    info[r["id"]]["in_graph"] = True
                    info[r["id"]]["name"] = info[r["id"]]["name"] or (r.get("name") or "")
        for c, d in info.items():  # an ICD-10-CM code neither the cohort nor the graph names: the tabular list's title
            if not d["name"] and c.startswith(icd10cm.PREFIX):
                d["name"] = icd10cm.name(c) or ""
        return info

    # ---------------- main entry
    def recommend(
        self,
        visit_id: str | None = None,
        patient: PatientIn | dict | str | None = None,
        top_k: int = 10,
        threshold: float | None = None,
        paths_per_drug: int = 3,
        current_drugs: Sequence[str] | None = None,
        drugs: Sequence[str] | None = None,
        explain: bool = True,
        attributions: bool = True,
        include_current: bool = False,
    ) -> Recommendation:
        """Rank drugs for a workspace visit or a new patient (drugs taken now are left out of the top-k
        unless ``include_current``; every drug is marked ``current`` / ``prescribed``).

        ``threshold``: minimum probability (default: the model's tuned threshold; 0 gives the plain
        top-k). ``drugs``: explain these drug classes instead of the top-k (``kgrec explain``).
        ``current_drugs``: ATC codes taken now (DDI screening; a patient's own list is used too).
        ``explain=False``: no paths, no text (ranking and DDI only). ``attributions``: each input's
        contribution to each drug's score (:mod:`kgrec.explain.attribution`); the paths are then ranked
        by the attribution of their starting code × their score (:mod:`kgrec.explain.faithful`).
        """
        t0 = time.perf_counter()
        if (visit_id is None) == (patient is None):
            raise KgrecError("give exactly one of a visit id or a patient")
        if not 1 <= int(top_k) <= MAX_TOP_K:
            raise KgrecError(f"top_k must be between 1 and {MAX_TOP_K}")
        if not 0 <= int(paths_per_drug) <= MAX_PATHS_PER_DRUG:
            raise KgrecError(f"paths_per_drug must be between 0 and {MAX_PATHS_PER_DRUG}")
        if threshold is not None and not 0.0 <= float(threshold) <= 1.0:
            raise KgrecError("threshold must be between 0 and 1")
        thr = float(self.model.threshold if threshold is None else threshold)
        notes: list[str] = []
        unknown: list[dict] = []
        extra_current = _check_atc_list(current_drugs or [])
        if visit_id is not None:
            row = self.resolve_visit(visit_id)
            cohort, samples = self.cohort, self._samples(self.cohort, row)
            v = cohort.visits
            vid = str(v["visit_id"].iat[row])
            dx, px = list(v["diagnoses"].iat[row]), list(v["procedures"].iat[row])
            visit_info = {"kind": "workspace", "visit_id": vid, "graph_id": self._graph_visit_id(vid), "patient_id": str(v["patient_id"].iat[row]),
                          "n_earlier_visits": len(samples.history[0]), "prescribed": list(v["drugs"].iat[row])}
            current = extra_current
            inputs: dict[str, str] = {}
        else:
            given = normalise_patient(parse_patient(patient), set(self.names) | set(self.known_codes or ()))
            pc, grounded = self.grounder.ground(given)
            dx, px, inputs = given.diagnoses, given.procedures, pc.inputs
            cohort, row = self._patient_cohort(pc)
            samples = self._samples(cohort, row)
            visit_info = {"kind": "patient", "label": pc.label, "n_earlier_visits": len(pc.earlier)}
            current = _merge(pc.current_drugs, extra_current)
        info = self._code_info(dx + px) if visit_id is None else {c: {"name": self.names.get(c, ""), "in_graph": True} for c in dx + px}
        if visit_id is None:
            known = self.known_codes
            for c, kind in [(c, "diagnosis") for c in dx] + [(c, "procedure") for c in px]:
                if known is not None and c not in known and c in grounded:
                    g = grounded[c]
                    notes.append(f"{inputs.get(c, c)} ({c}) is unknown to the model: read as {g['code']} through the graph (shared concept {g['via']}, score {g['score']})")
                    visit_info.setdefault("read_as", {})[c] = g
                elif known is not None and c not in known:
                    unknown.append({"input": inputs.get(c, c), "code": c, "kind": kind, "in_graph": info[c]["in_graph"],
                                    "reason": "unknown to the model" + ("; used for graph paths only" if info[c]["in_graph"] else " and to the graph")
                                    + ("; not a code of ICD-10-CM" if c.startswith(icd10cm.PREFIX) and not icd10cm.is_code(c) else "")})
            if known is not None and not any(c in known for c in pc.diagnoses + pc.procedures):
                raise InputError("none of the patient's codes is known to the model: " + ", ".join(u["input"] for u in unknown[:10]))
            earlier_unknown = sorted({c for e in given.earlier for c in e["diagnoses"] + e["procedures"] if known is not None and c not in known and c not in grounded})
            if earlier_unknown:
                notes.append(f"{len(earlier_unknown)} code(s) of earlier visits unknown to the model and ignored: {', '.join(earlier_unknown[:10])}")
        read_as = visit_info.get("read_as", {})
        visit_info["diagnoses"] = [{"code": c, "name": info[c]["name"], **({"read_as": read_as[c]["code"]} if c in read_as else {})} for c in dx]
        visit_info["procedures"] = [{"code": c, "name": info[c]["name"], **({"read_as": read_as[c]["code"]} if c in read_as else {})} for c in px]
        dx = _merge(dx, [g["code"] for c, g in read_as.items()])  # paths start from the given codes and their stand-ins
        known = self._known_drug_classes()  # a class kgrec does not know (Z99Z) is listed, said to be unscreened
        visit_info["current_drugs"] = [{"drug": d, "name": self._drug_name(d), "screened": d in known} for d in current]
        if any(d not in known for d in current):
            notes.append(f"not screened for interactions: {', '.join(d for d in current if d not in known)} (no such ATC class in the cohort, the DDI source or the graph)")
        t1 = time.perf_counter()
        proba = np.asarray(self.model.predict_proba(cohort, samples))[0]
        t2 = time.perf_counter()
        if drugs:
            want = _check_atc_list(drugs)
            missing = [d for d in want if d not in self.drug_vocab]
            if missing:
                raise KgrecError(f"drug class(es) not in the model's vocabulary: {', '.join(missing)}")
            idx = sorted((self.drug_vocab.index(d) for d in want), key=lambda j: -proba[j])
            chosen = [(j, proba[j] >= thr) for j in idx]
        else:
            skip = set() if include_current else {d for d in current if d in self.drug_vocab}
            order = [j for j in np.argsort(-proba, kind="stable") if self.drug_vocab[j] not in skip][: int(top_k)]
            if skip:
                notes.append(f"drugs taken now are not recommended again: {', '.join(sorted(skip))} (include_current lists them, marked)")
            chosen = [(int(j), True) for j in order if proba[j] >= thr]
            if not chosen:
                notes.append(f"no drug reaches the threshold {thr:.2f} (best {float(proba[order[0]]):.2f}); lower it with --threshold")
        prescribed = set(visit_info["prescribed"]) if visit_id is not None else None
        rec = [RecommendedDrug(k + 1, self.drug_vocab[j], self._drug_name(self.drug_vocab[j]), float(proba[j]), bool(ok), current=self.drug_vocab[j] in current,
                               prescribed=None if prescribed is None else self.drug_vocab[j] in prescribed) for k, (j, ok) in enumerate(chosen)]
        ddi = self._ddi([d.drug for d in rec], current)
        t3 = time.perf_counter()
        if attributions and rec:
            names = {**self.names, **{c: i["name"] for c, i in info.items() if i["name"]}}
            for d, a in zip(rec, attribute(self.model, cohort, samples, [d.drug for d in rec], names).values()):
                d.attribution = a
        t_attr = time.perf_counter()
        if explain and self.paths is not None and rec and paths_per_drug > 0:
            ids = [d.drug for d in rec]
            if visit_id is not None:
                v = self.cohort.visits
                own = [self._graph_visit_id(x) for x in v.loc[v["patient_id"] == visit_info["patient_id"], "visit_id"]]
                evidence = self.paths.for_visit(visit_info["graph_id"], ids, dx, own)
                if not any(e.paths or e.cautions for e in evidence.values()) and not self._visit_in_graph(visit_info["graph_id"]):
                    notes.append(f"visit {visit_info['graph_id']} is not in the graph: paths start at its diagnosis codes")
                    evidence = self.paths.for_codes(dx, ids, own)
            else:
                evidence = self.paths.for_codes(dx, ids)
            for d in rec:
                ev = evidence.get(d.drug, DrugEvidence(d.drug))
                d.paths, d.cautions = select(rank_paths(ev.paths, d.attribution), paths_per_drug), ev.cautions[: max(1, paths_per_drug // 2)]
                d.reasons = strongest_reasons(ev.paths, d.attribution)
                d.evidence_gap = evidence_gap(d.reasons)
                d.evidence_counts, d.caution_counts, d.cut = ev.counts(), ev.caution_counts(), ev.cut()
                d.n_paths = sum(d.evidence_counts.values())
                d.rationale = realise_drug(Node(d.drug, "Drug", d.name), d.paths, d.cautions, d.probability,
                                           recommended=d.above_threshold, threshold=thr, attribution=d.attribution).text
            notes.extend(_cut_notes(rec))
        elif explain and self.paths is None:
            notes.append("no graph store: recommendations without paths")
        t4 = time.perf_counter()
        return Recommendation(
            model=self.model_name, threshold=thr, top_k=int(top_k), visit=visit_info, drugs=rec, ddi_warnings=ddi,
            unknown_codes=unknown, notes=notes, model_info=self.model_info,
            timings_ms={"input": _ms(t1 - t0), "predict": _ms(t2 - t1), "ddi": _ms(t3 - t2), "attribution": _ms(t_attr - t3), "paths": _ms(t4 - t_attr), "total": _ms(t4 - t0)},
        )

    def _visit_in_graph(self, graph_id: str) -> bool:
        from kgrec.graph.queries import run_query

        return bool(run_query(self.store, "explain_visit_node", {"visit_id": graph_id}))

    def _drug_name(self, d: str) -> str:
        return self.names.get(d) or d

    def _known_drug_classes(self) -> set[str]:
        if "_known_drugs" not in self.__dict__:
            self.__dict__["_known_drugs"] = screenable_drugs(self.workspace, self.cohort, self.drug_vocab, self.ddi_lookup)
        return self.__dict__["_known_drugs"]

    def _ddi(self, recommended: Sequence[str], current: Sequence[str]) -> list[dict]:
        lookup = self.ddi_lookup
        if self.cohort.ddi is None and self.store is not None:
            lookup = graph_lookup(self.store, set(recommended) | set(current))
        return ddi_warnings(recommended, current, lookup, self._drug_name)


def _check_atc_list(codes: Sequence[str]) -> list[str]:
    try:
        return _check_atc([str(c).strip() for c in codes])
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _cut_notes(rec: Sequence[RecommendedDrug]) -> list[str]:
    """Say when paths were left out: never a silent cap."""
    notes = []
    limited = sorted({f for d in rec for f in d.cut.get("row_limit_hit", [])})
    if limited:
        notes.append(f"the graph returned its row limit for the {', '.join(limited)} paths: some of them may be missing")
    dropped = {d.drug: sum(d.cut["dropped"].values()) for d in rec if d.cut.get("dropped")}
    if dropped:
        notes.append("paths beyond the per-drug cap were counted but not returned: " + ", ".join(f"{k} {n}" for k, n in dropped.items()))
    return notes


def _merge(a: Sequence[str], b: Sequence[str]) -> list[str]:
    return list(dict.fromkeys([*a, *b]))


def _ms(s: float) -> float:
    return round(s * 1000, 2)


def recommend(
    workspace: Path | str,
    visit_id: str | None = None,
    patient: PatientIn | dict | str | Path | None = None,
    model: str = "student",
    top_k: int = 10,
    threshold: float | None = None,
    store: str | None = "embedded",
    paths_per_drug: int = 3,
    current_drugs: Sequence[str] | None = None,
    drugs: Sequence[str] | None = None,
    store_kw: dict | None = None,
    attributions: bool = True,
    include_current: bool = False,
) -> Recommendation:
    """One-shot :class:`RecommendService` (loads the model and opens the store for one call; keep a
    service for many calls). ``patient`` may be a dict, a :class:`PatientIn`, JSON text or a path."""
    if isinstance(patient, Path) or (isinstance(patient, str) and patient.strip().endswith(".json") and not patient.strip().startswith("{")):
        patient = load_patient(patient)
    with RecommendService(workspace, model, store, store_kw) as svc:
        return svc.recommend(visit_id, patient, top_k, threshold, paths_per_drug, current_drugs, drugs, attributions=attributions,
                             include_current=include_current)


__all__ = [  # the patient schema and the result types are re-exported here (their modules: patient, result)
    "MAX_CODES", "MAX_CODE_LEN", "MAX_DRUGS", "MAX_PATHS_PER_DRUG", "MAX_TOP_K", "MAX_VISITS", "CodeIn", "PatientCodes", "PatientIn",
    "RecommendService", "Recommendation", "RecommendedDrug", "VisitIn", "load_patient", "normalise_code", "normalise_patient",
    "parse_patient", "recommend", "validation_message",
]
