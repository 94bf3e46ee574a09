"""ICD-10-CM names and hierarchy from CMS's tabular list (issue 25 item 3): the look-up, its cache, and
the places that use it (cohort code names, autocomplete)."""

from __future__ import annotations

import json

import pandas as pd

from kgrec.cohort import icd10cm
from kgrec.cohort.base import code_table

PREFIX_ = icd10cm.PREFIX


def test_names_parents_and_validity():
    assert icd10cm.name("ICD10CM:I509") == "Heart failure, unspecified"
    assert icd10cm.name("E11.9") == "Type 2 diabetes mellitus without complications"
    assert icd10cm.name("ICD10CM:N179") == "Acute kidney failure, unspecified"
    assert icd10cm.name("ICD10CM:I99999") is None and icd10cm.name("4280") is None  # not ICD-10-CM
    # the tabular list's own hierarchy: code -> subcategory -> category -> block -> chapter
    chain, code = [], "ICD10CM:I5020"
    while code:
        chain.append(code)
        code = icd10cm.parent(code)
    assert chain == ["ICD10CM:I5020", "ICD10CM:I502", "ICD10CM:I50", "ICD10CM:I30-I5A", "ICD10CM:9"]
    # a block holding one category under the same code (block B10 around category B10) is one id, whose
    # parent is the chapter: no code is its own parent, every chain ends at a chapter
    assert icd10cm.parent("ICD10CM:B10") == "ICD10CM:1" and icd10cm.parent("ICD10CM:B1001") == "ICD10CM:B100"
    for code in list(icd10cm.table())[::97]:
        steps, c = 0, PREFIX_ + code
        while (up := icd10cm.parent(c)) is not None:
            assert up != c and steps < 8, code
            c, steps = up, steps + 1
        assert c.removeprefix(PREFIX_).isdigit(), code
    assert icd10cm.is_code("I10") and icd10cm.is_code("ICD10CM:S0000XA")
    assert not icd10cm.is_code("I30-I5A") and not icd10cm.is_code("9") and not icd10cm.is_code("Z99Z9")


def test_the_table_is_cached_once_and_a_damaged_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("KGREC_CACHE", str(tmp_path))
    icd10cm.table.cache_clear()
    try:
        assert icd10cm.name("I10") == "Essential (primary) hypertension"
        path = tmp_path / "icd10cm" / f"{icd10cm.version()}-{icd10cm.TABLE_FORMAT}.json"
        cached = json.loads(path.read_text())
        assert cached["I509"] == ["Heart failure, unspecified", "I50"] and len(cached) > 90_000
        path.write_text("{not json")
        icd10cm.table.cache_clear()
        assert icd10cm.name("I10") == "Essential (primary) hypertension"  # parsed again, file rewritten
        assert json.loads(path.read_text())["I10"][0] == "Essential (primary) hypertension"
    finally:
        icd10cm.table.cache_clear()


def test_cohort_code_names_fill_icd10_titles_a_source_lacks():
    visits = pd.DataFrame({"diagnoses": [["ICD10CM:I509", "ICD10CM:E119", "ICD9CM:4280", "ICD10CM:Z9999"]],
                           "procedures": [[]], "drugs": [[]]})
    t = code_table(visits, {"ICD10CM:E119": "DM2 (the source's own title)"}, None).set_index("code")["name"]
    assert t["ICD10CM:I509"] == "Heart failure, unspecified"
    assert t["ICD10CM:E119"] == "DM2 (the source's own title)"  # the source's title wins
    assert t["ICD9CM:4280"] == "ICD9CM:4280"  # no ICD-9 title given: the code, as before
    assert t["ICD10CM:Z9999"] == "ICD10CM:Z9999"  # not a code of the list: never a guessed name


def test_autocomplete_finds_icd10_codes_the_cohort_never_used():
    from types import SimpleNamespace

    from kgrec.serve.lookup import CodeIndex

    codes = pd.DataFrame({"code": ["ICD9CM:4280", "B01A"], "kind": ["diagnosis", "drug"],
                          "name": ["Congestive heart failure, unspecified", "antithrombotic agents"]})
    service = SimpleNamespace(cohort=SimpleNamespace(codes=codes), known_codes={"ICD9CM:4280"}, drug_vocab=["B01A"])
    idx = CodeIndex(service)
    hits = idx.search("I50.9")
    assert hits[0]["code"] == "ICD10CM:I509" and hits[0]["name"] == "Heart failure, unspecified"
    assert hits[0]["version"] == 10 and hits[0]["known"] is False and hits[0]["display"] == "I50.9"
    words = idx.search("heart failure", kinds=["diagnosis"], limit=50)
    assert words[0]["code"] == "ICD9CM:4280"  # the model's own code first
    assert "ICD10CM:I509" in {h["code"] for h in words}
