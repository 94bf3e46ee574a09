"""Models that read the patient profile: samples, logistic regression, the student (kgrec and LEADER arch)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from kgrec.cohort.base import Cohort, with_profile
from kgrec.cohort.samples import age_bin, build_samples, profile_tokens
from kgrec.metrics import per_visit
from kgrec.models import get_model
from kgrec.models.baselines import LogRegRecommender
from kgrec.student.model import ProfileVocab, alignment_loss
from kgrec.student.train import StudentConfig, StudentRecommender


def sex_cohort(n: int = 80, profile: bool = True, seed: int = 0) -> Cohort:
    """Single-visit patients with the same diagnosis; the drug is decided by sex alone (plus a common drug)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        sex = "F" if i % 2 else "M"
        rows.append({
            "patient_id": f"p{i}", "visit_id": f"v{i}", "visit_order": 0, "time": pd.Timestamp("2150-01-01"),
            "diagnoses": ["ICD9CM:4019"] + (["ICD9CM:25000"] if rng.random() < 0.5 else []), "procedures": [],
            "drugs": sorted(["N02B", "A01A" if sex == "F" else "C09A"]),
            **({"age": float(rng.integers(20, 95)), "sex": sex, "admission_type": "EMERGENCY"} if profile else {}),
        })
    visits = with_profile(pd.DataFrame(rows))
    codes = pd.DataFrame([("ICD9CM:4019", "diagnosis", "htn"), ("ICD9CM:25000", "diagnosis", "dm")]
                         + [(d, "drug", d) for d in ("A01A", "C09A", "N02B")], columns=["code", "kind", "name"])
    return Cohort(visits, codes, "test")


def split(c: Cohort):
    pids = list(c.visits["patient_id"])
    return build_samples(c, pids[:50]), build_samples(c, pids[50:65]), build_samples(c, pids[65:])


def prauc(model, c, test) -> float:
    p = model.predict_proba(c, test)
    return float(per_visit(model.targets(test), p, p > 0.5)["prauc"].mean())


def test_samples_carry_the_profile_and_tokens():
    c = sex_cohort()
    s = build_samples(c)
    assert s.profile[1]["sex"] == "F" and set(s.profile[1]) == {"age", "sex", "admission_type"}
    assert s.subset([1]).profile == [s.profile[1]]
    assert [age_bin(a) for a in (0, 17.9, 18, 65.2, 89.9, 90)] == ["0-17", "0-17", "18-29", "60-69", "80-89", "90+"]
    assert profile_tokens({"age": 90.0, "sex": "M", "insurance": "Medicare"}) == ["age:90+", "sex:M", "insurance:Medicare"]
    # a cohort without a profile: samples have empty profiles, never invented values
    assert build_samples(sex_cohort(profile=False)).profile[0] == {}


def test_logreg_profile_switch_uses_sex():
    c = sex_cohort()
    train, val, test = split(c)
    vocab = c.vocab("drug")
    off = LogRegRecommender(vocab).fit(c, train, val)
    on = get_model("logreg-profile")(vocab).fit(c, train, val)
    assert on.profile and not off.profile
    assert on.chosen["profile_features"] >= 4  # age bins, sex:F, sex:M, admission_type
    assert prauc(on, c, test) > 0.95 and prauc(on, c, test) > prauc(off, c, test) + 0.1  # off: 0.83 (a coin for A01A vs C09A)


def test_profile_vocab_fields_and_missing_tokens():
    v = ProfileVocab.from_samples(["age", "sex"], [{"age": 64.0, "sex": "F"}, {"sex": "M"}])
    ids = v.encode([{"age": 64.0, "sex": "F"}, {}, {"sex": "X"}])
    assert v.size == 2 + 3  # age: <missing>, 60-69; sex: <missing>, F, M
    assert ids.tolist() == [[1, 3], [0, 2], [0, 2]]  # missing and unseen values -> the field's <missing>


def test_alignment_loss_prefers_matched_pairs():
    torch.manual_seed(0)
    x = torch.randn(6, 8)
    matched = alignment_loss(x, x)
    shuffled = alignment_loss(x, x[torch.tensor([1, 2, 3, 4, 5, 0])])
    assert matched < shuffled
    assert alignment_loss(x[:1], x[:1]) == 0.0


@pytest.mark.parametrize("arch", ["kgrec", "leader"])
def test_student_profile_encoder_learns_sex(tmp_path, arch):
    c = sex_cohort()
    train, val, test = split(c)
    vocab = c.vocab("drug")
    kw = dict(alpha=0, beta=0, graph=False, epochs=40, patience=40, lr=1e-2, dim=16, arch=arch, heads=2)
    off = StudentRecommender(vocab, None, StudentConfig(**kw)).fit(c, train, val)
    on = StudentRecommender(vocab, None, StudentConfig(profile=True, align=True, **kw)).fit(c, train, val)
    assert on.chosen["profile_fields"] == ["age", "sex", "admission_type"]
    assert prauc(on, c, test) > 0.95

    def sex_gap(m):  # P(A01A | F) - P(A01A | M): only a model that reads the sex can separate them
        p, j = m.predict_proba(c, test), vocab.index("A01A")
        female = np.array([pr["sex"] == "F" for pr in test.profile])
        return p[female, j].mean() - p[~female, j].mean()

    # (early stopping keeps the first epoch with the best validation PRAUC, so the gap is not saturated)
    assert sex_gap(on) > 0.2 and abs(sex_gap(off)) < 0.05
    on.save(tmp_path / "s")
    back = StudentRecommender.load(tmp_path / "s")
    np.testing.assert_allclose(back.predict_proba(c, test), on.predict_proba(c, test), atol=1e-5)


def test_student_profile_on_a_cohort_without_profile_is_recorded():
    c = sex_cohort(profile=False)
    train, val, _ = split(c)
    m = StudentRecommender(c.vocab("drug"), None, StudentConfig(alpha=0, beta=0, graph=False, epochs=2, profile=True, align=True)).fit(c, train, val)
    assert m.chosen["profile_fields"] == [] and "no profile" in m.chosen["profile_missing"]


def test_student_config_checks():
    with pytest.raises(ValueError, match="needs profile"):
        StudentConfig(align=True)
    with pytest.raises(ValueError, match="arch"):
        StudentConfig(arch="gbert")
    with pytest.raises(ValueError, match="multiple of heads"):
        StudentConfig(arch="leader", dim=10, heads=4)
