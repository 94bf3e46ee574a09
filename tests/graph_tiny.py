"""A tiny, realistic knowledge graph built by hand as :class:`GraphTables` (no builder involved).

Patient mimic3:10 has visits mimic3:100 (hypertension, atrial fibrillation, haemorrhage) and
mimic3:101 (heart failure); patient mimic3:20 has visit mimic3:200 (atrial fibrillation,
hypertension) and received B01A (antithrombotic agents). Warfarin (DB00682) and aspirin (DB00945)
are in B01A; warfarin treats atrial fibrillation (PharmacotherapyDB) and was studied for it in a
trial; an abstract co-mentions warfarin and atrial fibrillation and reports warfarin-induced
haemorrhage. Lisinopril (C09A) treats hypertension, from two sources (two parallel edges), reached
from the visit's ICD-9 4019 through its category 401. B01A interacts with N02B.
"""

from __future__ import annotations

import pandas as pd

from kgrec.graph.tables import GraphTables

CC0, DC, ODBL, NC = "CC0 1.0", "CC BY 4.0", "ODbL 1.0", "CC BY-NC-SA 3.0"


def _n(rows: list[tuple], cols: str) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=cols.split())


def _e(rows: list[tuple], extra: str = "") -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["src", "dst", *extra.split(), "source", "licence"])


def tiny_tables() -> GraphTables:
    nodes = {
        "Patient": _n([("mimic3:10", "train", "mimic3"), ("mimic3:20", "test", "mimic3")], "id split source"),
        "Visit": _n([("mimic3:100", 0, "mimic3"), ("mimic3:101", 1, "mimic3"), ("mimic3:200", 0, "mimic3")], "id visit_order source"),
        "DiagnosisCode": _n(
            [
                ("ICD9CM:4019", "Unspecified essential hypertension", "ICD9CM", "icd"),
                ("ICD9CM:401", "Essential hypertension", "ICD9CM", "icd"),
                ("ICD9CM:42731", "Atrial fibrillation", "ICD9CM", "icd"),
                ("ICD9CM:4590", "Hemorrhage, unspecified", "ICD9CM", "icd"),
                ("ICD9CM:4280", "Congestive heart failure, unspecified", "ICD9CM", "icd"),
                ("ICD10CM:I10", "Essential (primary) hypertension", "ICD10CM", "gems"),
            ],
            "id name system source",
        ),
        "ProcedureCode": _n([("ICD9PROC:3605", "Insertion of coronary artery stent", "ICD9PROC", "mimic3")], "id name system source"),
        "Disease": _n(
            [
                ("DOID:10763", "hypertension", "disease_ontology"),
                ("DOID:0060224", "atrial fibrillation", "disease_ontology"),
                ("DOID:9588", "hemorrhage", "disease_ontology"),
                ("DOID:6000", "congestive heart failure", "disease_ontology"),
                ("DOID:178", "vascular disease", "disease_ontology"),
            ],
            "id name source",
        ),
        "Ingredient": _n(
            [
                ("DB00682", "Warfarin", "approved", "5Q7ZVV76EI", "PJVWKTKQMONHTI-UHFFFAOYSA-N", "drugbank"),
                ("DB00945", "Acetylsalicylic acid", "approved", "R16CO5Y76E", "BSYNRYMUTXBXSQ-UHFFFAOYSA-N", "drugbank"),
                ("DB00722", "Lisinopril", "approved", "E7199S1YWR", None, "drugbank"),
                ("DB00316", "Acetaminophen", "approved", "362O9ITL9D", None, "drugbank"),
            ],
            "id name groups unii inchikey source",
        ),
        "Drug": _n(
            [
                ("B01A", "ANTITHROMBOTIC AGENTS", "atc"),
                ("C09A", "ACE INHIBITORS, PLAIN", "atc"),
                ("N02B", "OTHER ANALGESICS AND ANTIPYRETICS", "atc"),
            ],
            "id name source",
        ),
        "ATCClass": _n([("B01", "ANTITHROMBOTIC AGENTS", 2, "atc"), ("B", "BLOOD AND BLOOD FORMING ORGANS", 1, "atc")], "id name level source"),
        "Trial": _n([("NCT00000620", "trials")], "id source"),
        "Publication": _n([("2234567", "Warfarin-associated bleeding in atrial fibrillation", "bc5cdr")], "id title source"),
        "Chemical": _n([("MESH:D014859", "warfarin", "bc5cdr")], "id name source"),
    }
    ehr = ("mimic3", ODBL)
    edges = {
        "HAS_VISIT": _e([("mimic3:10", "mimic3:100", *ehr), ("mimic3:10", "mimic3:101", *ehr), ("mimic3:20", "mimic3:200", *ehr)]),
        "HAS_DIAGNOSIS": _e(
            [
                ("mimic3:100", "ICD9CM:4019", *ehr),
                ("mimic3:100", "ICD9CM:42731", *ehr),
                ("mimic3:100", "ICD9CM:4590", *ehr),
                ("mimic3:101", "ICD9CM:4280", *ehr),
                ("mimic3:200", "ICD9CM:42731", *ehr),
                ("mimic3:200", "ICD9CM:4019", *ehr),
            ]
        ),
        "HAS_PROCEDURE": _e([("mimic3:100", "ICD9PROC:3605", *ehr)]),
        "HAS_PRESCRIPTION": _e([("mimic3:100", "C09A", *ehr), ("mimic3:101", "B01A", *ehr), ("mimic3:200", "B01A", *ehr)]),
        "CODE_PARENT": _e([("ICD9CM:4019", "ICD9CM:401", "icd", CC0)]),
        "GEM": _e([("ICD9CM:4019", "ICD10CM:I10", False, "gems", "public domain")], "approximate"),
        "MAPS_TO": _e(
            [
                ("ICD9CM:401", "DOID:10763", "disease_ontology", CC0),
                ("ICD10CM:I10", "DOID:10763", "disease_ontology", CC0),
                ("ICD9CM:42731", "DOID:0060224", "disease_ontology", CC0),
                ("ICD9CM:4590", "DOID:9588", "disease_ontology", CC0),
                ("ICD9CM:4280", "DOID:6000", "disease_ontology", CC0),
            ]
        ),
        "DISEASE_PARENT": _e([("DOID:0060224", "DOID:178", "disease_ontology", CC0)]),
        "INDICATION": _e(
            [
                ("DB00682", "DOID:0060224", "treats", "pharmacotherapydb", CC0),
                ("DB00722", "DOID:10763", "treats", "pharmacotherapydb", CC0),
                ("DB00722", "DOID:10763", "treats", "drugcentral", DC),
                ("DB00945", "DOID:0060224", "palliates", "drugcentral", DC),
            ],
            "kind",
        ),
        "INDICATION_ICD": _e([("DB00945", "ICD9CM:42731", True, "medi", NC)], "high_precision"),
        "IN_CLASS": _e(
            [
                ("DB00682", "B01A", "B01AA03", "drugbank", "CC BY-NC 4.0"),
                ("DB00945", "B01A", "B01AC06", "drugbank", "CC BY-NC 4.0"),
                ("DB00945", "N02B", "N02BA01", "drugbank", "CC BY-NC 4.0"),
                ("DB00722", "C09A", "C09AA03", "drugbank", "CC BY-NC 4.0"),
                ("DB00316", "N02B", "N02BE01", "drugbank", "CC BY-NC 4.0"),
            ],
            "atc_code",
        ),
        "DRUG_PARENT": _e([("B01A", "B01", "atc", "WHO ATC names")]),
        "ATC_PARENT": _e([("B01", "B", "atc", "WHO ATC names")]),
        "INTERACTS": _e([("B01A", "N02B", "ddi_safedrug", "no licence stated")]),
        "INGREDIENT_INTERACTS": _e([("DB00682", "DB00945", "ddi_chch", "CC BY-NC 4.0 (DrugBank-derived)")]),
        "STUDIES": _e([("NCT00000620", "DB00682", "trials", "CC0 1.0 + ClinicalTrials.gov terms")]),
        "TARGETS": _e([("NCT00000620", "DOID:0060224", "trials", "CC0 1.0 + ClinicalTrials.gov terms")]),
        "MENTIONS_CHEMICAL": _e([("2234567", "MESH:D014859", 3, "bc5cdr", "public domain")], "count"),
        "MENTIONS_DISEASE": _e([("2234567", "DOID:0060224", 2, "bc5cdr", "public domain")], "count"),
        "INDUCES": _e([("MESH:D014859", "DOID:9588", "2234567", "bc5cdr", "public domain")], "pmid"),
        "SAME_AS": _e([("MESH:D014859", "DB00682", "bc5cdr", "public domain")]),
    }
    return GraphTables(nodes, edges)
