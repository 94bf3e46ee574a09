"""Tiny copies of every graph source, in the exact formats of the files in ``../shared/data``
(headers, quoting, CRLF, gzip), and a tiny cohort workspace. Used by ``tests/test_graph_sources.py``.

The story: lisinopril (DB00722, C09AA03) treats hypertension (DOID:10763); acetaminophen (DB00316 =
paracetamol N02BE01); loratadine (DB00455) whose slim ATC codes wrongly include lisinopril's C09AA03
(the README quirk); omeprazole (DB00338, A02BC01); DB09999 exists only in the NC slim table.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd

ATC = """atc_code,atc_name
A,alimentary tract and metabolism
A02,drugs for acid related disorders
A02,antacids (alternative name)
A02B,drugs for peptic ulcer and gastro-oesophageal reflux disease (gord)
A02BC01,omeprazole
C,cardiovascular system
C09,agents acting on the renin-angiotensin system
C09A,"ace inhibitors, plain"
C09AA03,lisinopril
N,nervous system
N02,analgesics
N02B,other analgesics and antipyretics
N02BE01,paracetamol
R,respiratory system
R06,antihistamines for systemic use
R06A,antihistamines for systemic use
R06AX13,loratadine
"""

VOCAB = """DrugBank ID,Accession Numbers,Common name,CAS,UNII,Synonyms,Standard InChI Key
DB00316,APRD00252 | DB00316,Acetaminophen,103-90-2,362O9ITL9D,"Acetaminophen | Paracetamol | N-acetyl-p-aminophenol",RZVAJINKPMORJF-UHFFFAOYSA-N
DB00338,APRD00446,Omeprazole,73590-58-6,KG60484QX9,Omeprazole | Omeprazol,SUBDBMMJDZJVOS-UHFFFAOYSA-N
DB00455,APRD00288,Loratadine,79794-75-5,7AJO3BO7QN,Loratadine | Loratadina,JCCNYMKQOSZNPW-UHFFFAOYSA-N
DB00722,APRD00379,Lisinopril,83915-83-7,E7199S1YWR,"Lisinopril | Lisinopril, anhydrous",RLAWWYSOJDYHDC-BZSNNMDCSA-N
DB00945,APRD00264,Aspirin,50-78-2,R16CO5Y76E,Acetylsalicylic acid | Aspirin,BSYNRYMUTXBXSQ-UHFFFAOYSA-N
"""

# drugbank.tsv: tab-separated, descriptions may be quoted and span lines
SLIM = (
    "drugbank_id\tname\ttype\tgroups\tatc_codes\tcategories\tinchikey\tinchi\tdescription\n"
    "DB00316\tAcetaminophen\tsmall molecule\tapproved\t\tAnalgesics\t\t\tAn analgesic.\n"
    "DB00338\tOmeprazole\tsmall molecule\tapproved\tA02BC01\tProton Pump Inhibitors\t\t\t\"A proton pump\ninhibitor.\"\n"
    "DB00455\tLoratadine\tsmall molecule\tapproved\tR06AX13|C09AA03\tAntihistamines\t\t\tAn antihistamine.\n"
    "DB00722\tLisinopril\tsmall molecule\tapproved|investigational\t\tACE Inhibitors\t\t\tAn ACE inhibitor.\n"
    "DB09999\tSlimonly\tsmall molecule\texperimental\tN02BG99\t\tXXXXXXXXXXXXXX-UHFFFAOYSA-N\t\tOnly in the slim table.\n"
)

HUMANDO = """id\tlabel\tsubClassOf
"DOID:7"\t"disease of anatomical entity"\t"disease"
"DOID:1287"\t"cardiovascular system disease"\t"disease of anatomical entity"
"DOID:10763"\t"hypertension"\t"cardiovascular system disease"
"DOID:2841"\t"asthma"\t"disease of anatomical entity"
"DOID:2841"\t"asthma"\t"cardiovascular system disease"
"""

ALLXREF = """id\tlabel\txref
"DOID:10763"\t"hypertension"\t"ICD9CM:401-405.99"
"DOID:10763"\t"hypertension"\t"ICD10CM:I10"
"DOID:10763"\t"hypertension"\t"SNOMEDCT_US_2025_09_01:38341003"
"DOID:10763"\t"hypertension"\t"MESH:D006973"
"DOID:10763"\t"hypertension"\t"UMLS_CUI:C0020538"
"DOID:2841"\t"asthma"\t"ICD9CM:493.9"
"DOID:2841"\t"asthma"\t"MESH:D001249"
"DOID:4"\t"disease"\t"MESH:D004194"
"DOID:999"\t"obsolete thing"\t"ICD9CM:999.9"
"""

ICD10IN = """id\tlabel\txrefs
"DOID:2841"\t"asthma"\t"ICD10CM:J45.909, ICD10CM:J45.9"
"DOID:0110748"\t"obsolete type 1 diabetes mellitus 9"\t"ICD10CM:E10"
"""

GEMS = """icd_9,icd_10,flags
4019,I10,00000
4939,J45909,10000
4939,J45909,00000
4930,J45901,10000
36570,NoDx,11000
"""

PHARMACO = (
    "doid_id\tdrugbank_id\tdisease\tdrug\tcategory\tn_curators\tn_resources\n"
    "DOID:10763\tDB00722\thypertension\tLisinopril\tDM\t2\t3\n"
    "DOID:2841\tDB00316\tasthma\tAcetaminophen\tNOT\t1\t1\n"
    "DOID:10763\tDB09999\thypertension\tSlimonly\tSYM\t1\t1\n"
    "DOID:9999999\tDB00722\tnot in DO\tLisinopril\tDM\t1\t1\n"
)

DRUGCENTRAL = (
    "doid_id\tdrugbank_id\tdisease\tdrug\tcategory\n"
    "DOID:10763\tDB00722\thypertension\tLisinopril\tDM\n"
    "DOID:2841\tDB00455\tasthma\tLoratadine\t\n"
)

MEDI = (
    "RXCUI_IN,DRUG_DESC,ICD9,INDICATION_DESCRIPTION,MENTIONEDBYRESOURCES,HIGHPRECISIONSUBSET,POSSIBLE_LABEL_USE\r\n"
    "29046,Lisinopril,401.9,Hypertension NOS,3,1,0\r\n"
    "29046,Lisinopril,401-405.99,Hypertensive disease,1,0,0\r\n"
    "161,Acetaminophen,780.6|338.19,Fever; pain,2,0,0\r\n"
    "99999,Unmapped,401.9,Hypertension NOS,1,0,0\r\n"
    "\r\n"
)

MEDI_HPS = (
    "RXCUI_IN,DRUG_DESC,ICD9,INDICATION_DESCRIPTION,POSSIBLE_LABEL_USE\r\n"
    "29046,Lisinopril,401.9,Hypertension NOS,0\r\n"
)

RXMAP = "rxnorm_id\tfdasrs_id\n29046\tE7199S1YWR\n161\t362O9ITL9D\n99999\tZZZZZZZZZZ\n"

TRIALS = (
    "nct_id\tcompound_id\tcompound_name\tdisease_id\tdisease_name\n"
    "NCT00000001\tDB00722\tLisinopril\tDOID:10763\thypertension\n"
    "NCT00000001\tDB00316\tAcetaminophen\tDOID:10763\thypertension\n"
    "NCT00000002\tDB00455\tLoratadine\tDOID:2841\tasthma\n"
    "NCT00000002\tDB00455\tLoratadine\tDOID:2841\tasthma\n"
    "NCT00000003\tDB08866\tUnknown\tDOID:2841\tasthma\n"
)

DOC_100 = (
    "100|t|Lisinopril-induced hypertension.\n"
    "100|a|Acetaminophen and lisinopril in asthma; DEX given. foo.\n"
    "100\t0\t10\tLisinopril\tChemical\tD017706\n"
    "100\t19\t31\thypertension\tDisease\tD006973\n"
    "100\t33\t46\tAcetaminophen\tChemical\tD000082\n"
    "100\t51\t61\tlisinopril\tChemical\tD017706\n"
    "100\t65\t71\tasthma\tDisease\tD001249\n"
    "100\t73\t76\tDEX\tChemical\tD003907\n"
    "100\t84\t87\tfoo\tChemical\t-1\n"
    "100\t88\t110\thyper- and hypotension\tDisease\tD006973|D007022\thypertension|hypotension\n"
    "100\tCID\tD017706\tD006973\n"
    "100\tCID\tD000082\tD007022\n"
)
DOC_200 = (
    "200|t|Asthma after acetaminophen.\n"
    "200|a|Acetaminophen.\n"
    "200\t0\t6\tAsthma\tDisease\tD001249\n"
    "200\t13\t26\tacetaminophen\tChemical\tD000082\n"
    "200\t28\t41\tAcetaminophen\tChemical\tD000082\n"
    "200\tCID\tD000082\tD001249\n"
)

SAFEDRUG = "atc3_a\tatc3_b\nN02B\tC09A\nC09A\tN02B\nA02B\tZ99Z\n"
CHCH_HEADER = "drugbank_id_1,drugbank_id_2,smiles_1,smiles_2,label\n"
CHCH = {
    "train": CHCH_HEADER + "DB00722,DB00316,CC(=O)N,CCO,1.0\nDB00316,DB00722,CCO,CC(=O)N,1.0\nDB00455,DB00338,C,N,0.0\n",
    "valid": CHCH_HEADER + "DB00455,DB00338,C,N,1.0\nDB00455,DB08866,C,N,1.0\n",
    "test": CHCH_HEADER,
}

# paths relative to the data root -> content
FILES: dict[str, str] = {
    "mappings/atc_coding.csv.gz": ATC,
    "kg/drugbank/drugbank_vocabulary.csv": VOCAB,
    "kg/drugbank/drugbank.tsv": SLIM,
    "kg/disease-ontology/HumanDO.tsv": HUMANDO,
    "kg/disease-ontology/allXREFinDO.tsv": ALLXREF,
    "kg/disease-ontology/ICD10inDO.tsv": ICD10IN,
    "mappings/icd_cm_9_to_10_mapping.csv.gz": GEMS,
    "kg/pharmacotherapydb/indications.tsv": PHARMACO,
    "kg/drugcentral/indications.tsv": DRUGCENTRAL,
    "kg/medi/MEDI_01212013_0.csv.gz": MEDI,
    "kg/medi/MEDI_01212013_HPS_0.csv": MEDI_HPS,
    "kg/rxcui-unii-map.tsv": RXMAP,
    "trials/DrugBank-DO-slim.tsv": TRIALS,
    "literature/bc5cdr/CDR_TrainingSet.PubTator.txt": DOC_100 + "\n" + DOC_200 + "\n",
    "literature/bc5cdr/CDR_TestSet.PubTator.txt": DOC_200 + "\n",
    "ddi/safedrug-atc3/ddi_atc3_pairs.tsv": SAFEDRUG,
    **{f"ddi/chch-miner/ChChMiner_{k}.csv": v for k, v in CHCH.items()},
}


def write_file(root: Path, rel: str, text: str) -> Path:
    p = Path(root) / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8")
    p.write_bytes(gzip.compress(data) if rel.endswith(".gz") else data)
    return p


def write_sources(root: Path, overrides: dict[str, str] | None = None) -> Path:
    """Write every fixture source under ``root`` (the data folder); ``overrides`` replaces files."""
    for rel, text in {**FILES, **(overrides or {})}.items():
        write_file(root, rel, text)
    return Path(root)


def write_workspace(ws: Path, split: bool = True, report: dict | None = None) -> Path:
    """A two-patient MIMIC-III-demo-like cohort saved in ``ws/cohort``."""
    from kgrec.cohort.base import Cohort

    visits = pd.DataFrame(
        {
            "patient_id": ["1", "1", "2"],
            "visit_id": ["10", "11", "20"],
            "visit_order": [0, 1, 0],
            "time": pd.to_datetime(["2100-01-01", "2100-02-01", "2100-03-01"]),
            "diagnoses": [["ICD9CM:4019", "ICD9CM:E8791"], ["ICD9CM:4939"], ["ICD9CM:4019"]],
            "procedures": [["ICD9PROC:3605"], [], []],
            "drugs": [["C09A", "N02B"], ["L01F"], []],
        }
    )
    codes = pd.DataFrame(
        [
            ("ICD9CM:4019", "diagnosis", "Unspecified essential hypertension"),
            ("ICD9CM:E8791", "diagnosis", "Cardiac catheterization causing abnormal reaction"),
            ("ICD9CM:4939", "diagnosis", "Asthma, unspecified"),
            ("ICD9PROC:3605", "procedure", "Percutaneous coronary angioplasty"),
            ("C09A", "drug", "ace inhibitors, plain (cohort name)"),
            ("N02B", "drug", "other analgesics"),
            ("L01F", "drug", "L01F"),
        ],
        columns=["code", "kind", "name"],
    )
    rep = report if report is not None else {"tables": {"ADMISSIONS": "/data/mimic-iii-demo/ADMISSIONS.csv"}}
    sp = {"seed": 0, "train": ["1"], "val": [], "test": ["2"]} if split else None
    Cohort(visits, codes, "mimic3", rep, sp).save(Path(ws) / "cohort")
    return Path(ws)
