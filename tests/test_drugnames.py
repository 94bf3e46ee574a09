"""Drug-name -> ATC3 matcher: order strings of eICU and Synthea, DrugBank cross-check, combinations, priors."""

from __future__ import annotations

import pandas as pd
import pytest

from kgrec.cohort.codes import Mappings
from kgrec.cohort.drugnames import DrugNameMatcher, matcher_for, tokens
from kgrec.errors import InputError
from tests.fixtures_ehr import make_drug_mappings, real_mappings, requires_real_data


@pytest.fixture(scope="module")
def matcher(tmp_path_factory) -> DrugNameMatcher:
    root = make_drug_mappings(tmp_path_factory.mktemp("data"))
    return DrugNameMatcher(Mappings(root))


def test_tokens_strip_doses_units_forms_routes():
    assert tokens("WARFARIN SODIUM 5 MG PO TABS") == ("warfarin", "sodium")
    assert tokens("5 ML VIAL : DILTIAZEM HCL 25 MG/5ML IV SOLN") == ("diltiazem", "hcl")
    assert tokens("ASPIRIN EC 81 MG PO TBEC") == ("aspirin",)
    assert tokens("24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet") == ("metformin", "hydrochloride")
    assert tokens("Sodium Chloride 0.9% 1,000 ML BAG") == ("sodium", "chloride")
    assert tokens("HYDROCODONE-ACETAMINOPHEN 5-325 MG PO TABS") == ("hydrocodone", "acetaminophen")


@pytest.mark.parametrize(
    "name, atc3",
    [
        ("WARFARIN SODIUM 5 MG PO TABS", "B01A"),  # salt word never a drug of its own
        ("5 ML VIAL : DILTIAZEM HCL 25 MG/5ML IV SOLN", "C05A"),  # C05AE03 is the code the GSN map uses
        ("ASPIRIN EC 81 MG PO TBEC", "A01A"),  # DrugBank synonym; A01AD05 used twice, N02BA01 once in the GSN map
        ("Amoxicillin 500 MG Oral Tablet", "J01C"),
        ("24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet", "A10B"),
        ("Acetaminophen 325 MG / Oxycodone Hydrochloride 5 MG Oral Tablet", "N02A"),  # WHO combination N02AJ17
        ("lisinopril 10 MG Oral Tablet", "C09A"),
        ("Loratadine 5 MG Chewable Tablet", "R06A"),  # DrugBank's wrong C09AA03 must not matter
        ("acetaMINOPHEN 325 MG TAB", "N02B"),  # WHO alias "(acetaminophen)", DrugBank has no ATC for it
        ("APAP 500 MG", "N02B"),  # DrugBank synonym -> WHO code of another of the drug's names
        ("Frusemide 40 mg", "C03C"),
        ("1 ML Epoetin Alfa 4000 UNT/ML Injection [Epogen]", "B03X"),  # DrugBank code absent from WHO: kept
        ("heparin sodium  porcine 5000 UNT/ML in SODIUM CHLORIDE 0.45% 250 ML", "B01A"),  # vehicle dropped
        ("SODIUM CHLORIDE 0.9%", "B05X"),  # alone it is the drug; code-use tie, class prior B05X > A12C
        ("Phenylephrine 10 mg/ml", "R01A"),  # no code used by the GSN map: class prior (R01A 2, C01C 1)
        ("Hydrochlorothiazide 12.5 MG / Lisinopril 10 MG Oral Tablet", "C09B"),  # "lisinopril and diuretics"
        ("168 HR Ethinyl Estradiol 0.00146 MG/HR / norelgestromin 0.00625 MG/HR Transdermal System", "G03A"),
        ("insulin isophane human 70 UNT/ML / insulin regular human 30 UNT/ML Injectable Suspension [Humulin]", "A10A"),
    ],
)
def test_match_order_strings(matcher, name, atc3):
    assert matcher.match(name) == atc3


@pytest.mark.parametrize("name", ["TYLENOL", "", "Jolivette 28 Day Pack", "norelgestromin", "5 MG PO TABS", "sodium"])
def test_unmapped(matcher, name):
    assert matcher.match(name) is None


def test_combination_without_who_code_is_order_independent(matcher):
    # no "hydrocodone and paracetamol" code: the ingredients' codes together, resolved by the GSN map
    a = matcher.explain("HYDROCODONE-ACETAMINOPHEN 5-325 MG PO TABS")
    b = matcher.explain("Acetaminophen 300 MG / Hydrocodone Bitartrate 5 MG Oral Tablet")
    assert a.atc3 == b.atc3 == "N02B"
    assert a.ingredients == ("hydrocodone", "acetaminophen")
    assert set(a.codes) == {"N02BE01", "R05DA03"}


def test_explain_reports_sources(matcher):
    m = matcher.explain("Acetaminophen 325 MG / Oxycodone Hydrochloride 5 MG Oral Tablet")
    assert (m.source, m.codes, m.ingredients) == ("who-combination", ("N02AJ17",), ("acetaminophen", "oxycodone"))
    assert matcher.explain("warfarin").source == "who"
    assert matcher.explain("aspirin").source == "drugbank"
    assert matcher.explain("TYLENOL").source == "none"


def test_drugbank_crosscheck_drops_codes_whose_who_name_differs(matcher):
    assert matcher.drugbank_dict[("loratadine",)] == frozenset({"R06AX13"})
    assert matcher.drugbank_dict[("loratadina",)] == frozenset({"R06AX13"})
    rep = matcher.crosscheck_report
    assert rep["drugbank_codes_dropped"] == 1
    assert rep["dropped_examples"] == [["Loratadine", "C09AA03"]]


def test_match_series_by_uniques(tmp_path):
    m = DrugNameMatcher(Mappings(make_drug_mappings(tmp_path)))
    s = pd.Series(["warfarin 5 mg", None, "TYLENOL", "warfarin 5 mg", "ASPIRIN"], index=[10, 11, 12, 13, 14])
    out = m.match_series(s)
    assert list(out.index) == [10, 11, 12, 13, 14]
    assert out.tolist() == ["B01A", None, None, "B01A", "A01A"]
    assert len(m._cache) == 4  # "", "warfarin 5 mg", "TYLENOL", "ASPIRIN"


def test_matcher_for_shares_one_matcher_per_mappings(tmp_path):
    mp = Mappings(make_drug_mappings(tmp_path))
    assert matcher_for(mp) is matcher_for(mp)
    assert matcher_for(mp) is not matcher_for(Mappings(tmp_path))


def test_missing_mapping_file_names_it(tmp_path):
    root = make_drug_mappings(tmp_path)
    (root / "kg/drugbank/drugbank_vocabulary.csv").unlink()
    with pytest.raises(InputError, match="drugbank_vocabulary.csv"):
        DrugNameMatcher(Mappings(root)).match("warfarin")


@requires_real_data
def test_real_dictionary_examples():
    m = matcher_for(real_mappings())
    assert m.match("WARFARIN SODIUM 5 MG PO TABS") == "B01A"
    assert m.match("Loratadine 5 MG Chewable Tablet") == "R06A"
    assert m.match("lisinopril 10 MG Oral Tablet") == "C09A"
    assert m.match("Acetaminophen 325 MG / Oxycodone Hydrochloride 5 MG Oral Tablet") == "N02A"
    assert m.match("ASPIRIN EC 81 MG PO TBEC") == "A01A"  # as the GSN map (and so MIMIC) classes aspirin
    assert m.match("POTASSIUM CHLORIDE CRYS ER 20 MEQ PO TBCR") == "A12B"
    assert m.match("NaCl 0.9% MBP") is not None
    assert m.crosscheck_report["drugbank_codes_dropped"] > 100

