"""Recommend and explain: paths, scores, realiser, patient input, CLI, ROUGE, hallucination check,
and the generative rationale path with tiny models built from configs (no download).

One small workspace per module: a cohort whose codes and drugs are those of ``tests/graph_tiny.py``,
that graph loaded into the embedded store, its tables saved (node degrees), and a student trained
for a few epochs without graph inputs.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from kgrec.cohort.base import Cohort
from kgrec.errors import InputError, KgrecError
from tests.graph_tiny import tiny_tables

DX = {"ICD9CM:4019": "Unspecified essential hypertension", "ICD9CM:42731": "Atrial fibrillation",
      "ICD9CM:4590": "Hemorrhage, unspecified", "ICD9CM:4280": "Congestive heart failure, unspecified"}
RULE = {"ICD9CM:4019": "C09A", "ICD9CM:42731": "B01A", "ICD9CM:4590": "N02B", "ICD9CM:4280": "A06A"}
DRUG_NAMES = {"B01A": "antithrombotic agents", "C09A": "ace inhibitors, plain", "N02B": "other analgesics and antipyretics", "A06A": "drugs for constipation"}


def build_workspace(root) -> object:
    """The explain test workspace under ``root`` (see the module docstring)."""
    from kgrec.cohort.samples import build_samples
    from kgrec.graph.stores import get_store
    from kgrec.student.train import StudentConfig, StudentRecommender

    ws = root / "ws"
    rng = np.random.default_rng(0)
    rows = [("10", "100", 0, ["ICD9CM:4019", "ICD9CM:42731", "ICD9CM:4590"], ["ICD9PROC:3605"], ["C09A", "N02B"]),
            ("10", "101", 1, ["ICD9CM:4280"], [], ["B01A", "A06A"]),
            ("20", "200", 0, ["ICD9CM:42731", "ICD9CM:4019"], [], ["B01A", "C09A"])]
    codes = list(DX)
    for p in range(40):
        for o in range(int(rng.integers(1, 3))):
            dx = sorted(rng.choice(codes, size=int(rng.integers(1, 3)), replace=False).tolist())
            rows.append((f"p{p}", f"9{p:02d}{o}", o, dx, [], sorted({RULE[c] for c in dx})))
    visits = pd.DataFrame([(p, v, o, pd.NaT, dx, px, dr) for p, v, o, dx, px, dr in rows],
                          columns=["patient_id", "visit_id", "visit_order", "time", "diagnoses", "procedures", "drugs"])
    names = [(c, "diagnosis", n) for c, n in DX.items()] + [("ICD9PROC:3605", "procedure", "Insertion of coronary artery stent")]
    names += [(d, "drug", n) for d, n in DRUG_NAMES.items()]
    pats = list(dict.fromkeys(visits["patient_id"]))
    split = {"seed": 0, "train": [p for p in pats if p.startswith("p")][:32], "val": [p for p in pats if p.startswith("p")][32:], "test": ["10", "20"]}
    ddi = pd.DataFrame([("B01A", "N02B", "safedrug", "no licence stated")], columns=["atc3_a", "atc3_b", "source", "licence"])
    cohort = Cohort(visits, pd.DataFrame(names, columns=["code", "kind", "name"]), "mimic3", {}, split, ddi)
    cohort.save(ws / "cohort")
    tables = tiny_tables()
    with get_store("embedded", workspace=ws) as st:
        st.load(tables)
    tables.save(ws / "graph" / "tables")
    train, val = build_samples(cohort, split["train"]), build_samples(cohort, split["val"])
    m = StudentRecommender(cohort.vocab("drug"), None, StudentConfig(alpha=0, beta=0, graph=False, dim=8, epochs=30, patience=30, batch_size=32)).fit(cohort, train, val)
    m.threshold = 0.3
    m.save(ws / "student")
    return ws


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return build_workspace(tmp_path_factory.mktemp("explain"))


@pytest.fixture(scope="module")
def svc(ws):
    from kgrec.explain.recommend import RecommendService

    s = RecommendService(ws, "student", "embedded")
    yield s
    s.close()


def _edges():
    t = tiny_tables()
    return {(str(s), str(d), name) for name, df in t.edges.items() for s, d in zip(df["src"], df["dst"])}


def _graph_names():
    t = tiny_tables()
    out = {}
    for label in ("Drug", "Ingredient", "Disease", "DiagnosisCode", "Chemical"):
        for i, n in zip(t.nodes[label]["id"], t.nodes[label]["name"]):
            out[str(n).lower()] = str(i)
    return out


# ------------------------------------------------------------------ recommend + paths
def test_recommend_visit_paths_scores_ddi(svc):
    res = svc.recommend("100", top_k=4, threshold=0.0)
    drugs = [d.drug for d in res.drugs]
    assert sorted(drugs) == ["A06A", "B01A", "C09A", "N02B"]
    probs = [d.probability for d in res.drugs]
    assert probs == sorted(probs, reverse=True) and [d.rank for d in res.drugs] == [1, 2, 3, 4]
    assert res.visit["graph_id"] == "mimic3:100" and res.visit["prescribed"] == ["C09A", "N02B"]
    by = {d.drug: d for d in res.drugs}
    # DDI among the recommended drugs, naming the pair and its source
    assert [({w["drug_a"], w["drug_b"]}, w["sources"][0]["source"], w["between"]) for w in res.ddi_warnings] == [({"B01A", "N02B"}, "safedrug", "recommended drugs")]
    assert "antithrombotic agents" in res.ddi_warnings[0]["message"] and "safedrug" in res.ddi_warnings[0]["message"]
    # C09A: lisinopril treats hypertension, reached through the ICD category 401; two sources agree -> support 2
    c09 = by["C09A"].paths[0]
    assert c09.kind == "indication" and [n.id for n in c09.nodes] == ["mimic3:100", "ICD9CM:4019", "ICD9CM:401", "DOID:10763", "DB00722", "C09A"]
    assert c09.support == 2 and {e["source"] for e in c09.steps[3].evidence} == {"pharmacotherapydb", "drugcentral"}
    assert c09.weight == pytest.approx(0.8)  # treats (1.0) x related code (0.8)
    # B01A: warfarin (indication), aspirin (MEDI), a trial, a similar patient; the literature only as cautions
    ev = svc.paths.for_visit("mimic3:100", ["B01A"], ["ICD9CM:42731"])["B01A"]
    kinds = {p.kind for p in ev.paths}
    assert kinds == {"indication", "code_indication", "trial", "similar_patients"}
    sim = next(p for p in ev.paths if p.kind == "similar_patients")
    assert [n.id for n in sim.nodes][-2:] == ["mimic3:200", "B01A"] and sim.extra["n_visits"] == 1
    assert [p.kind for p in ev.cautions] == ["adverse", "literature"] and ev.cautions[0].node("Disease").id == "DOID:9588"
    assert ev.cautions[0].extra["pmids"] == ["2234567"] and ev.cut() == {}
    # documented score, best first, every step with a source and a licence
    for d in res.drugs:
        scores = [p.score for p in d.paths]
        assert scores == sorted(scores, reverse=True), d.drug
        for p in d.paths:
            assert p.score == pytest.approx(p.weight * p.specificity * (1 + math.log10(min(max(p.support, 1), 10))))
            assert 0 < p.specificity <= 1
            assert all(st.source and st.licence for st in p.steps)
    assert ev.paths[0].kind == "indication"  # curated knowledge first
    # every step is an edge of the graph, in the direction stated
    edges = _edges()
    for p in ev.paths + ev.cautions + by["C09A"].paths:
        for st, a, b in zip(p.steps, p.nodes, p.nodes[1:]):
            s, t = (a.id, b.id) if st.forward else (b.id, a.id)
            assert (s, t, st.type) in edges, (s, t, st.type)
    out = res.to_dict()
    json.dumps(out)
    assert out["drugs"][0]["paths"] is not None and set(out["timings_ms"]) >= {"predict", "paths", "total"}


def test_threshold_and_drug_selection(svc):
    hi = svc.recommend("100", top_k=4, threshold=1.0)
    assert hi.drugs == [] and "threshold" in hi.notes[0]
    one = svc.recommend("100", drugs=["B01A"], paths_per_drug=2)
    assert [d.drug for d in one.drugs] == ["B01A"] and len(one.drugs[0].paths) == 2
    assert len({p.kind for p in one.drugs[0].paths}) == 2  # diverse: two kinds before a second path of one kind
    with pytest.raises(KgrecError, match="not in the model"):
        svc.recommend("100", drugs=["J01C"])
    with pytest.raises(KgrecError, match="not in the workspace"):
        svc.recommend("nope")
    assert svc.recommend("mimic3:100", top_k=1, threshold=0).visit["visit_id"] == "100"


def test_visit_missing_from_graph_uses_its_codes(svc):
    vid = next(v for v in svc.cohort.visits["visit_id"] if v.startswith("9") and "ICD9CM:42731" in svc.cohort.visits.set_index("visit_id").loc[v, "diagnoses"])
    res = svc.recommend(vid, drugs=["B01A"])
    assert any("not in the graph" in n for n in res.notes)
    assert res.drugs[0].paths and res.drugs[0].paths[0].nodes[0].label == "DiagnosisCode"


def test_literature_is_never_support(svc):
    """BC5CDR annotates chemical-induced diseases: its co-mentions and INDUCES relations are cautions only."""
    d = svc.recommend("100", drugs=["B01A"], paths_per_drug=10).drugs[0]
    assert d.paths and not [p for p in d.paths if p.kind in ("literature", "adverse")]
    assert {p.kind for p in d.cautions} == {"literature", "adverse"}
    assert "literature" not in d.evidence_counts and d.caution_counts == {"adverse": 1, "literature": 1}
    assert d.n_paths == sum(d.evidence_counts.values())
    sentences = re.split(r"(?<=\.) (?=[A-Z])", d.rationale)
    pmid = [x for x in sentences if "2234567" in x]
    assert pmid and all(x.startswith("Caution:") for x in pmid), pmid
    # the supporting part of the text (before the first caution) never cites the abstract
    assert "2234567" not in d.rationale.split("Caution:")[0]
    out = d.to_dict()
    assert all(p["kind"] not in ("literature", "adverse") for p in out["paths"]) and "cut" not in out


def _many_trials(n: int):
    """The tiny graph with ``n`` more trials of warfarin for atrial fibrillation."""
    t = tiny_tables()
    ids = [f"NCT0100{i:04d}" for i in range(n)]
    lic = "CC0 1.0 + ClinicalTrials.gov terms"
    t.nodes["Trial"] = pd.concat([t.nodes["Trial"], pd.DataFrame({"id": ids, "source": "trials"})], ignore_index=True)
    for rel, dst in (("STUDIES", "DB00682"), ("TARGETS", "DOID:0060224")):
        t.edges[rel] = pd.concat([t.edges[rel], pd.DataFrame({"src": ids, "dst": dst, "source": "trials", "licence": lic})], ignore_index=True)
    return t


def test_trial_support_counted_by_store_and_caps_reported(tmp_path):
    """Support is the store's count over every trial (no capped row sample); the per-drug cap and a
    statement's row limit are reported, never silent."""
    import dataclasses

    from kgrec.explain.paths import PathFinder
    from kgrec.graph.stores import get_store

    with get_store("embedded", path=str(tmp_path / "g.lbug")) as st:
        st.load(_many_trials(30))
        pf = PathFinder(st)
        trial = next(p for p in pf.for_visit("mimic3:100", ["B01A"], ["ICD9CM:42731"])["B01A"].paths if p.kind == "trial")
        assert trial.support == 31 and trial.counted_by_store
        assert trial.node("Trial").id == "NCT00000620" and len(trial.examples) == 5 and "NCT00000620" not in trial.examples
        codes = pf.for_codes(["ICD9CM:42731"], ["B01A"])["B01A"]
        assert next(p for p in codes.paths if p.kind == "trial").support == 31
        # the per-drug cap keeps the best paths and counts the others
        full = pf.for_visit("mimic3:100", ["B01A"], ["ICD9CM:42731"])["B01A"]
        capped = PathFinder(st, max_paths_per_drug=1).for_visit("mimic3:100", ["B01A"], ["ICD9CM:42731"])["B01A"]
        assert [p.key() for p in capped.paths] == [full.paths[0].key()]
        assert capped.counts() == full.counts() and sum(capped.cut()["dropped"].values()) == len(full.paths) - 1 + len(full.cautions) - 1
        # a statement that returns its LIMIT of rows marks its family incomplete
        q = pf.visit_queries["trial"]
        pf.visit_queries["trial"] = dataclasses.replace(q, text=q.text.replace("LIMIT 5000", "LIMIT 1"))
        ev = pf.for_visit("mimic3:100", ["B01A"], ["ICD9CM:42731"])["B01A"]
        assert ev.incomplete == ["trial"] and ev.cut() == {"row_limit_hit": ["trial"]}


def test_cut_is_said_in_the_result(svc, monkeypatch):
    monkeypatch.setattr(svc.paths, "max_paths_per_drug", 1)
    res = svc.recommend("100", drugs=["B01A"])
    d = res.drugs[0]
    assert len(d.paths) == 1 and d.cut["dropped"] and d.n_paths > 1
    assert any("per-drug cap" in n and "B01A" in n for n in res.notes)
    assert res.to_dict()["drugs"][0]["cut"] == d.cut


# ------------------------------------------------------------------ realiser
def test_realiser_names_only_evidence(svc):
    from kgrec.explain.realise import N_VARIANTS, realise_drug, realise_path

    names = _graph_names()
    res = svc.recommend("100", top_k=4, threshold=0.0, paths_per_drug=10)
    for d in res.drugs:
        # the path nodes, and the visit's own inputs the model weighed (named in "What raised its score")
        allowed = {d.drug} | {n.id for p in d.paths + d.cautions for n in p.nodes} | {c.input for c in d.attribution.contributions}
        text = d.rationale.lower()
        for name, node_id in names.items():
            if re.search(r"(?<![a-z0-9])" + re.escape(name) + r"(?![a-z0-9])", text):
                # the tiny graph's ICD-10 I10 shares a name prefix with nothing; ICD-9 4019's name contains 'hypertension'
                assert (node_id in allowed or any(name in n.name.lower() for p in d.paths for n in p.nodes if n.id in allowed)
                        or any(name in c.name.lower() for c in d.attribution.contributions)), (d.drug, name)
        for p in d.paths + d.cautions:
            for v in range(N_VARIANTS):
                r = realise_path(p, v)
                assert r.entities <= {n.id for n in p.nodes}
                mentioned = {node_id for name, node_id in names.items() if re.search(r"(?<![a-z0-9])" + re.escape(name) + r"(?![a-z0-9])", r.text.lower())}
                path_ids = {n.id for n in p.nodes}
                path_names = " ".join(n.name.lower() for n in p.nodes)
                assert all(m in path_ids or _name_of(m, names) in path_names for m in mentioned), (r.text, mentioned)
    b01 = next(d for d in res.drugs if d.drug == "B01A")
    assert "Warfarin treats atrial fibrillation" in b01.rationale or "Warfarin" in b01.rationale
    assert "Caution" in b01.rationale and "hemorrhage" in b01.rationale.lower()
    empty = realise_drug(b01.paths[0].nodes[-1], [], [], 0.5).text
    assert "No path in the knowledge graph" in empty


def _name_of(node_id, names):
    return next(n for n, i in names.items() if i == node_id)


# ------------------------------------------------------------------ new patients
def test_icd10_codes_named_and_checked_against_the_tabular_list(svc):
    """An ICD-10-CM code neither the cohort nor the graph names gets the tabular list's title; a code of the
    right form that ICD-10-CM does not have says so (issue 25 item 3)."""
    res = svc.recommend(patient={"diagnoses": [{"code": "I50.9", "version": 10}, {"code": "I99.99", "version": 10}, "427.31"]},
                        top_k=2, threshold=0.0)
    names = {d["code"]: d["name"] for d in res.visit["diagnoses"]}
    assert names["ICD10CM:I509"] == "Heart failure, unspecified"
    unk = {u["code"]: u for u in res.unknown_codes}
    assert "not a code of ICD-10-CM" in unk["ICD10CM:I9999"]["reason"] and names["ICD10CM:I9999"] == ""


def test_new_patient_codes_unknowns_current_drugs(svc):
    res = svc.recommend(patient={
        "icd_version": 9, "diagnoses": ["427.31", {"code": "I10", "version": 10}, "999.99"],
        "procedures": ["ICD9PROC:3605"], "earlier_visits": [{"diagnoses": ["428.0"], "drugs": ["B01AA03"]}],
        "current_drugs": ["N02BE01"]}, top_k=4, threshold=0.0)
    assert res.visit["kind"] == "patient" and res.visit["n_earlier_visits"] == 1
    unk = {u["code"]: u for u in res.unknown_codes}
    # ICD-10 I10 is unknown to the ICD-9-trained model: read as its GEM partner 401.9, said in the result
    assert set(unk) == {"ICD9CM:99999"}
    assert res.visit["read_as"]["ICD10CM:I10"]["code"] == "ICD9CM:4019"
    assert [d.get("read_as") for d in res.visit["diagnoses"]] == [None, "ICD9CM:4019", None]
    assert any("I10" in n and "read as ICD9CM:4019" in n for n in res.notes)
    assert not unk["ICD9CM:99999"]["in_graph"] and unk["ICD9CM:99999"]["input"] == "999.99"
    by = {d.drug: d for d in res.drugs}
    assert by["B01A"].paths and by["B01A"].paths[0].nodes[0].label == "DiagnosisCode"
    assert any(p.code.id == "ICD10CM:I10" for p in by["C09A"].paths)  # graph-only code still explains
    cur = [w for w in res.ddi_warnings if w["between"].endswith("current drug")]
    assert [(w["drug_a"], w["drug_b"]) for w in cur] == [("B01A", "N02B")] and "current drug" in cur[0]["message"]


def test_patient_validation_errors(svc):
    from kgrec.explain.recommend import MAX_CODES, parse_patient

    with pytest.raises(InputError, match="empty patient"):
        svc.recommend(patient={"diagnoses": [], "procedures": []})
    with pytest.raises(InputError, match="none of the patient's codes is known"):
        svc.recommend(patient={"icd_version": 9, "diagnoses": ["999.99", "123.4"]})
    with pytest.raises(InputError, match="'X1' is not a valid ICD-9-CM or ICD-10-CM code"):
        svc.recommend(patient={"diagnoses": ["X1"]})
    with pytest.raises(InputError, match="'I10' is not an ICD-9 diagnosis code"):
        svc.recommend(patient={"icd_version": 9, "diagnoses": ["I10"]})
    with pytest.raises(InputError, match="at most 200"):
        parse_patient({"icd_version": 9, "diagnoses": ["401.9"] * (MAX_CODES + 1)})
    with pytest.raises(InputError, match="not valid JSON"):
        parse_patient('{"diagnoses": [')
    with pytest.raises(InputError, match="letters, digits"):
        svc.recommend(patient={"icd_version": 9, "diagnoses": ["401.9; DROP"]})
    with pytest.raises(InputError, match="not an ATC code"):
        parse_patient({"icd_version": 9, "diagnoses": ["401.9"], "current_drugs": ["aspirin"]})
    with pytest.raises(InputError, match="Extra inputs"):
        parse_patient({"icd_version": 9, "diagnoses": ["401.9"], "diagnosis": []})
    with pytest.raises(KgrecError, match="exactly one"):
        svc.recommend()


# ------------------------------------------------------------------ CLI and API
def test_cli_recommend_explain(ws, tmp_path):
    from typer.testing import CliRunner

    from kgrec.cli import app

    r = CliRunner().invoke(app, ["recommend", "-w", str(ws), "--visit", "100", "--top-k", "3", "--threshold", "0", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert len(out["drugs"]) == 3 and out["drugs"][0]["paths"][0]["steps"][0]["licence"]
    r = CliRunner().invoke(app, ["recommend", "-w", str(ws), "--visit", "100", "--threshold", "0"])
    assert r.exit_code == 0 and "rationale paths" in r.output and "HAS_DIAGNOSIS" in r.output and "DDI" in r.output
    pf = tmp_path / "p.json"
    pf.write_text(json.dumps({"icd_version": 9, "diagnoses": ["427.31", "999.99"]}))
    r = CliRunner().invoke(app, ["explain", "-w", str(ws), "--patient", str(pf), "--drug", "B01A"])
    assert r.exit_code == 0 and "unknown code" in r.output and "Warfarin" in r.output
    pf.write_text("{not json")
    r = CliRunner().invoke(app, ["recommend", "-w", str(ws), "--patient", str(pf)])
    assert r.exit_code == 2 and "not valid JSON" in r.output
    r = CliRunner().invoke(app, ["recommend", "-w", str(ws)])
    assert r.exit_code == 2 and "exactly one" in r.output


def test_api_recommend(ws):
    from kgrec import api

    res = api.recommend(ws, visit_id="200", top_k=2, threshold=0.0)
    assert len(res.drugs) == 2 and res.model == "student"


# ------------------------------------------------------------------ ROUGE and hallucination
def test_rouge_values():
    from kgrec.metrics.text import lcs_length, rouge, rouge_corpus

    assert rouge("the cat sat", "the cat sat") == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}
    s = rouge("the cat sat on the mat", "the cat lay on the mat")
    assert s["rouge1"] == pytest.approx(5 / 6) and s["rouge2"] == pytest.approx(3 / 5) and s["rougeL"] == pytest.approx(5 / 6)
    assert rouge("", "a b")["rouge1"] == 0.0 and lcs_length(list("abcbdab"), list("bdcaba")) == 4
    assert rouge_corpus(["a b", "c"], ["a b", "d"])["rouge1"] == pytest.approx(0.5)
    rs = pytest.importorskip("rouge_score.rouge_scorer")
    sc = rs.RougeScorer(["rouge1", "rouge2", "rougeL"])
    for c, r in [("Warfarin treats atrial fibrillation (pharmacotherapydb).", "warfarin, in B01A, treats atrial fibrillation"),
                 ("12 visits of 3 other patients received B01A", "other patients with ICD9CM:42731 received antithrombotic agents")]:
        ours, ref = rouge(c, r), sc.score(r, c)
        for k in ours:
            assert ours[k] == pytest.approx(ref[k].fmeasure)


def test_hallucination_check():
    from kgrec.explain.generate import EntityLexicon

    rec = {"drug": {"id": "B01A", "label": "Drug", "name": "antithrombotic agents"},
           "evidence": [{"nodes": [{"id": "ICD9CM:42731", "label": "DiagnosisCode", "name": "Atrial fibrillation"},
                                   {"id": "DOID:0060224", "label": "Disease", "name": "atrial fibrillation"},
                                   {"id": "DB00682", "label": "Ingredient", "name": "Warfarin"}], "steps": []}]}
    other = {"drug": {"id": "C09A", "label": "Drug", "name": "ace inhibitors"},
             "evidence": [{"nodes": [{"id": "DB00722", "label": "Ingredient", "name": "Lisinopril"},
                                     {"id": "DOID:10763", "label": "Disease", "name": "hypertension"},
                                     {"id": "X", "label": "Disease", "name": "essential hypertension"}], "steps": []}]}
    lex = EntityLexicon([rec, other])
    assert lex.check("Warfarin treats atrial fibrillation; antithrombotic agents.", rec) == []
    assert lex.check("Lisinopril treats atrial fibrillation.", rec) == ["lisinopril"]
    assert lex.check("It lowers essential hypertension.", rec) == ["essential hypertension"]  # longest match only
    assert lex.find("Warfarinx and hypertensions") == []  # word boundaries
    assert lex.check("Warfarin is in ace inhibitors (C09A), not B01A.", rec) == ["ace inhibitors", "c09a"]  # ids count too


# ------------------------------------------------------------------ generative rationales
def _tiny_lm(folder, kind):
    from transformers import (
        AutoTokenizer,
        GPT2Config,
        GPT2LMHeadModel,
        T5Config,
        T5ForConditionalGeneration,
    )

    from kgrec.teacher.model import resolve_model_path

    tok = AutoTokenizer.from_pretrained(resolve_model_path("minilm"))
    if kind == "causal":
        m = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=512, n_embd=32, n_layer=1, n_head=2, bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id))
    else:
        m = T5ForConditionalGeneration(T5Config(vocab_size=len(tok), d_model=32, d_kv=16, d_ff=64, num_layers=1, num_decoder_layers=1, num_heads=2,
                                                pad_token_id=tok.pad_token_id, eos_token_id=tok.sep_token_id, decoder_start_token_id=tok.pad_token_id))
    m.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("kind", ["causal", "seq2seq"])
def test_build_rationales_and_generator(ws, tmp_path, kind):
    from kgrec.explain.generate import (
        GeneratorConfig,
        RationaleGenerator,
        build_rationales,
        read_records,
        realiser_baseline,
        source_text,
        train_generator,
    )

    path = tmp_path / "r.jsonl"
    summary = build_rationales(ws, path, drugs_per_visit=3)
    recs = read_records(path)
    assert summary["n_records"] == len(recs) >= 3 and {r["split"] for r in recs} <= {"train", "val", "test"}
    r0 = recs[0]
    assert r0["evidence"] and r0["reference"] and r0["drug"]["id"] in source_text(r0)
    assert realiser_baseline(recs)["hallucination_rate"] == 0.0
    # enough records for a split: copies with other ids (the tiny graph explains only 3 visits)
    many = [dict(r, id=f"{r['id']}#{k}", split="test" if k % 4 == 0 else "train") for k in range(6) for r in recs]
    path.write_text("".join(json.dumps(r) + "\n" for r in many))
    model = _tiny_lm(tmp_path / f"lm-{kind}", kind)
    cfg = GeneratorConfig(epochs=1, batch_size=8, lora_r=4, max_source_len=96, max_target_len=48, max_new_tokens=12, max_eval=4)
    res = train_generator(path, str(model), tmp_path / "gen", cfg)
    ev = res["evaluation"]
    assert res["causal"] == (kind == "causal") and res["n_heldout"] == 4
    assert all(0.0 <= ev[k] <= 1.0 for k in ("rouge1", "rouge2", "rougeL", "hallucination_rate"))
    assert (tmp_path / "gen" / "adapter").is_dir() and (tmp_path / "gen" / "evaluation.json").exists()
    gen = RationaleGenerator.load(tmp_path / "gen")
    out = gen.generate_checked(many[0])
    assert isinstance(out["text"], str) and isinstance(out["hallucinated"], list)


def test_generator_errors(tmp_path):
    from kgrec.explain.generate import GeneratorConfig, read_records

    with pytest.raises(InputError, match="not found"):
        read_records(tmp_path / "none.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"drug": 1}\n')
    with pytest.raises(InputError, match="no 'evidence'"):
        read_records(tmp_path / "bad.jsonl")
    with pytest.raises(ValueError):
        GeneratorConfig(lora_r=-1)


# ------------------------------------------------------------------ the same queries on Neo4j
def test_paths_identical_on_neo4j(neo4j_server, tmp_path):
    """The explain_* queries (the same Cypher text) give the same paths and store-counted supports on the
    Neo4j store (a real Neo4j 5 server, tests/conftest.py) as on the embedded store."""
    from kgrec.explain.paths import PathFinder
    from kgrec.graph.stores import get_store

    neo = get_store("neo4j", uri=neo4j_server["uri"], user=neo4j_server["user"], password=neo4j_server["password"])
    neo.clear()
    neo.load(_many_trials(30))
    emb = get_store("embedded", path=str(tmp_path / "e.lbug"))
    emb.load(_many_trials(30))
    out = {}
    for name, st in (("neo4j", neo), ("embedded", emb)):
        pf = PathFinder(st)
        res = {("visit", d): e for d, e in pf.for_visit("mimic3:100", ["B01A", "C09A", "N02B"], ["ICD9CM:42731"], ["mimic3:101"]).items()}
        res.update({("codes", d): e for d, e in pf.for_codes(["ICD9CM:42731", "ICD10CM:I10"], ["B01A", "C09A"]).items()})
        out[name] = {f"{k[0]}/{k[1]}": sorted([p.kind, p.text(), p.support, [sorted(str(e.get("source")) for e in s.evidence) for s in p.steps]]
                                             for p in e.paths + e.cautions) for k, e in res.items()}
    emb.close()
    neo.clear()
    assert out["neo4j"] == out["embedded"]
    assert len(out["embedded"]["visit/B01A"]) == 8 and out["embedded"]["codes/C09A"]  # 6 supporting paths + 2 cautions; I10 explains C09A
    assert [p[2] for p in out["embedded"]["visit/B01A"] if p[0] == "trial"] == [31]  # trials counted by either store


def test_unknown_current_drug_is_listed_as_not_screened(svc):
    """A current drug whose ATC class kgrec does not know (Z99Z) is kept in the answer, marked unscreened
    and named in a note; a known class is screened."""
    out = svc.recommend(visit_id="100", current_drugs=["Z99Z", "N02B"]).to_dict()
    cur = {d["drug"]: d["screened"] for d in out["visit"]["current_drugs"]}
    assert cur == {"Z99Z": False, "N02B": True}
    assert any("not screened for interactions: Z99Z" in n for n in out["notes"])


def test_parallel_edge_evidence_has_one_order_whatever_the_store_returned():
    """Before: a step's first source (the one its sentence names) was whichever parallel edge the store
    returned first, so the embedded store and Neo4j named different sources for the same path."""
    from kgrec.explain.evidence import EvidencePath, Node, Step
    from kgrec.explain.rows import merge_steps

    def path(sources):
        nodes = [Node("DB00501", "Ingredient", "Cimetidine"), Node("A02B", "Drug", "")]
        return EvidencePath("A02B", "indication", nodes, [Step("IN_CLASS", True, [{"source": s, "licence": "x"} for s in sources])])

    firsts = []
    for order in (["drugbank_slim", "atc_name_match"], ["atc_name_match", "drugbank_slim"]):
        a, b = path(order[:1]), path(order[1:])
        merge_steps(a, b)
        firsts.append([e["source"] for e in a.steps[0].evidence])
    assert firsts[0] == firsts[1] == ["atc_name_match", "drugbank_slim"]


# ------------------------------------------------------------------ issue 25: never say more than the model or the evidence
def _medi_path(high_precision, code="ICD9CM:4280", attribution=None):
    from kgrec.explain.evidence import EvidencePath, Node, Step

    nodes = [Node("mimic3:1", "Visit"), Node(code, "DiagnosisCode", "Congestive heart failure"),
             Node("DB00571", "Ingredient", "Propranolol"), Node("C07A", "Drug", "beta blocking agents")]
    steps = [Step("HAS_DIAGNOSIS", True, [{"source": "mimic3", "licence": "ODbL 1.0"}]),
             Step("INDICATION_ICD", False, [{"source": "medi", "licence": "CC BY-NC-SA 3.0", "high_precision": high_precision}]),
             Step("IN_CLASS", True, [{"source": "drugbank", "licence": "CC BY-NC 4.0"}])]
    p = EvidencePath("C07A", "code_indication", nodes, steps)
    if attribution is not None:
        p.extra["attribution"] = attribution
    return p


def test_mined_links_are_not_stated_as_indications():
    """Before: 'Congestive heart failure ... is an indication of Sodium chloride (source: medi)' for a
    MEDI link outside its high-precision subset."""
    from kgrec.explain.realise import N_VARIANTS, realise_path

    weak, strong = _medi_path(False), _medi_path(True)
    assert weak.evidence_class == "mined association" and strong.evidence_class == "curated indication"
    assert weak.to_dict()["evidence_class"] == "mined association"
    for v in range(N_VARIANTS):
        text = realise_path(weak, v).text
        assert text.startswith("Weak evidence:") and "not a confirmed indication" in text
        assert "is an indication of" not in text and "is indicated for" not in text
    assert "is an indication of Propranolol" in realise_path(strong).text


def test_rationale_follows_the_model():
    """Before: a drug below the threshold was 'recommended (probability 0.00)'; the text cited evidence for a
    code whose contribution was negative; a score made by the graph prior was not said to be."""
    from kgrec.explain.attribution import GRAPH_PRIOR, GRAPH_PRIOR_TEXT, Attribution, Contribution
    from kgrec.explain.evidence import Node
    from kgrec.explain.realise import realise_drug

    att = Attribution("C07A", 2.0, [Contribution("", GRAPH_PRIOR, GRAPH_PRIOR_TEXT, 0.78, 0.2),
                                    Contribution("ICD9CM:4280", "diagnosis", "Congestive heart failure", -0.17, -0.02),
                                    Contribution("ICD9CM:42731", "diagnosis", "Atrial fibrillation", 0.05, 0.01)])
    drug = Node("C07A", "Drug", "beta blocking agents")
    paths = [_medi_path(True, "ICD9CM:4280", attribution=-0.17), _medi_path(False, "ICD9CM:42731", attribution=0.05)]
    text = realise_drug(drug, paths, [], 0.94, recommended=True, threshold=0.35, attribution=att).text
    assert "is recommended (probability 0.94)" in text
    assert "What raised its score in this patient: Atrial fibrillation (ICD9CM:42731, +0.05)" in text
    assert "comes mostly from the graph prior (+0.78)" in text
    assert "Congestive heart failure (ICD9CM:4280) is an indication" not in text  # negative contribution: not a reason
    assert "1 further path starts at codes that lowered this score" in text
    low = realise_drug(drug, paths, [], 0.001, recommended=False, threshold=0.35, attribution=att).text
    assert low.startswith("beta blocking agents (C07A) is not recommended (probability 0.00, below the threshold 0.35).")
    assert " is recommended" not in low


# ------------------------------------------------------------------ issue 25: a new patient in one line
@pytest.mark.parametrize("code,kind,versions", [
    ("428.0", "diagnosis", [9]), ("4280", "diagnosis", [9]), ("250.00", "diagnosis", [9]), ("I10", "diagnosis", [10]),
    ("E11.9", "diagnosis", [10]), ("E119", "diagnosis", [10]), ("N17.9", "diagnosis", [10]), ("E849.7", "diagnosis", [9]),
    ("E9290", "diagnosis", [9]), ("E871", "diagnosis", [9, 10]), ("V58.61", "diagnosis", [9, 10]), ("V5861", "diagnosis", [9, 10]),
    ("V00.01XA", "diagnosis", [10]), ("S72.001A", "diagnosis", [10]), ("X1", "diagnosis", []), ("42", "diagnosis", []),
    ("36.05", "procedure", [9]), ("3605", "procedure", [9]), ("0DTJ4ZZ", "procedure", [10]), ("I10", "procedure", []),
])
def test_icd_version_from_the_code_form(code, kind, versions):
    from kgrec.explain.patient import versions_by_form

    assert versions_by_form(code, kind) == versions


def test_new_patient_codes_detect_their_version_and_take_a_profile(svc):
    """Before: plain codes needed an icd_version (the page defaulted to 9, so I10 became ICD9CM:I10), and
    age and sex were refused ("Extra inputs are not permitted")."""
    from kgrec.explain.patient import normalise_code, normalise_patient, parse_patient

    pc = normalise_patient(parse_patient({"diagnoses": ["427.31", "I10", "V58.61"], "age": 71, "sex": "female"}),
                           known={"ICD9CM:V5861"})
    assert pc.diagnoses == ["ICD9CM:42731", "ICD10CM:I10", "ICD9CM:V5861"] and (pc.age, pc.sex) == (71, "F")
    with pytest.raises(InputError, match="reads as ICD-9 and as ICD-10"):
        normalise_code("V58.61", "diagnosis", None, known=set())
    assert normalise_code("V58.61", "diagnosis", 10) == "ICD10CM:V5861"  # an explicit version wins
    res = svc.recommend(patient={"diagnoses": ["427.31", "I10"], "age": 95, "sex": "M"}, drugs=["B01A"]).to_dict()
    assert [d["code"] for d in res["visit"]["diagnoses"]] == ["ICD9CM:42731", "ICD10CM:I10"]
    with pytest.raises(InputError, match="sex"):
        parse_patient({"diagnoses": ["427.31"], "sex": "X"})


def test_cli_codes_in_one_line(ws):
    from typer.testing import CliRunner

    from kgrec.cli import app

    run = CliRunner().invoke
    r = run(app, ["recommend", "-w", str(ws), "--codes", "427.31,I10", "--drugs", "N02B", "--age", "70", "--sex", "F", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["visit"]["kind"] == "patient" and out["visit"]["current_drugs"][0]["drug"] == "N02B"
    assert [d["code"] for d in out["visit"]["diagnoses"]] == ["ICD9CM:42731", "ICD10CM:I10"]
    for bad, msg in ((["--codes", "427.31,,401.9"], "empty item"), (["--codes", "X1"], "not a valid ICD-9-CM or ICD-10-CM"),
                     (["--codes", "427.31' OR 1=1"], "letters, digits"), (["--codes", ",".join(["427.31"] * 5000)], "at most 200"),
                     (["--codes", "427.31", "--visit", "100"], "exactly one"), (["--age", "70", "--visit", "100"], "go with --codes")):
        r = run(app, ["recommend", "-w", str(ws), *bad, "--json"])
        assert r.exit_code == 2 and msg in r.output, (bad, r.output)
        assert r.stdout.strip() == "" or json.loads(r.stdout)
    r = run(app, ["explain", "-w", str(ws), "--codes", "427.31", "--drug", "B01A", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["rationales"][0]["drug"] == "B01A", r.output


def test_drugs_taken_now_are_not_recommended_again(svc):
    """Before: a patient's current drugs (B01AC06 -> B01A) came back as recommendations, unmarked."""
    pat = {"diagnoses": ["427.31", "401.9"], "current_drugs": ["B01AC06"]}
    res = svc.recommend(patient=pat, top_k=10, threshold=0.0).to_dict()
    assert "B01A" not in [d["drug"] for d in res["drugs"]] and all(d["current"] is False for d in res["drugs"])
    assert any("not recommended again: B01A" in n for n in res["notes"])
    res = svc.recommend(patient=pat, top_k=10, threshold=0.0, include_current=True).to_dict()
    assert [d["current"] for d in res["drugs"] if d["drug"] == "B01A"] == [True]
    visit = svc.recommend("100", top_k=10, threshold=0.0).to_dict()
    assert all(isinstance(d["prescribed"], bool) for d in visit["drugs"])
    assert {d["drug"] for d in visit["drugs"] if d["prescribed"]} <= set(visit["visit"]["prescribed"])


def test_results_survive_a_pipe(ws):
    """Before: human output went to stderr (`> file` captured nothing) and, piped, was hard-wrapped at 80
    columns, cutting code ids ("ICD9CM:038 / 9") and table cells. Now results are on stdout, unwrapped."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "kgrec", "recommend", "-w", str(ws), "--visit", "100", "--top-k", "3"],
                          capture_output=True, timeout=300, env={**__import__("os").environ, "COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    out = proc.stdout.decode("utf-8")  # valid UTF-8: no cut box characters
    assert "recommended drugs" in out and "rationale paths" in out
    assert max(len(line) for line in out.splitlines()) > 80  # not hard-wrapped at the (fake) terminal width
    assert "ICD9CM:42731" in out and "\x1b[" not in out  # code ids whole; no colour codes in a file
    assert "recommended drugs" not in proc.stderr.decode()
