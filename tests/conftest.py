"""Shared fixtures: a miniature open-data folder and MIMIC-III / MIMIC-IV extracts in their public schemas.

The files are written in the exact layouts of the real sources (headers, quoting, gzip, CRLF), with a
handful of rows chosen so that every mapping route and every protocol rule is exercised.
"""

from __future__ import annotations

import atexit
import gzip
import os
import shutil
import sys
import tempfile
from pathlib import Path

# Tests train tiny models: one intra-op thread is as fast on an idle machine and far faster on a
# busy one (two spinning OpenMP threads per process on 2 cores slowed them 10x here).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# the shared graph-vector cache (kgrec.embed.cache) of the suite: its own folder, never the user's ~/.cache/kgrec
os.environ["KGREC_CACHE"] = tempfile.mkdtemp(prefix="kgrec-test-cache-")
atexit.register(shutil.rmtree, os.environ["KGREC_CACHE"], ignore_errors=True)  # not left behind in /tmp

import pytest

REPO = Path(__file__).resolve().parents[1]


def real_data_dir() -> Path | None:
    """The shared open data (``$KGREC_DATA`` or ``../shared/data`` beside the checkout), if present."""
    for cand in (os.environ.get("KGREC_DATA"), REPO.parent / "shared" / "data"):
        if cand and (Path(cand) / "mappings").is_dir():
            return Path(cand)
    return None


requires_real_data = pytest.mark.skipif(real_data_dir() is None, reason="open data folder (../shared/data) not present")


def write(path: Path, text: str, crlf: bool = False, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if crlf:
        text = text.replace("\n", "\r\n")
    data = text.encode("utf-8")
    if gz:
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def make_mappings(root: Path) -> Path:
    """Mapping files in the shared-data formats, just big enough for the fixtures."""
    write(
        root / "mappings/gsn_atc_ndc_mapping.csv.gz",
        "gsn,atc,ndc\n"
        "002947,A06AB02,00536338101\n"  # bisacodyl
        "016599,B01AB01,63323026201\n"  # heparin
        "004489,N02BE01,00904198861\n"  # acetaminophen
        "009999,C0,00000000001\n"  # too short: unmapped
        "011111,C09AA02,55555555555\n",  # reached through NDC only in the fixture
        gz=True,
    )
    write(root / "mappings/ndc2rxnorm_mapping.txt", "{'12345678901': u'1191', '00000000002': u'9999'}")
    write(
        root / "mappings/atc_coding.csv.gz",
        "atc_code,atc_name\nA,alimentary tract and metabolism\nA06,drugs for constipation\n"
        "A06A,drugs for constipation\nB01A,antithrombotic agents\nN02B,other analgesics and antipyretics\n"
        "C09A,ace inhibitors plain\nC09AA02,enalapril\nB01AC06,acetylsalicylic acid\n",
        gz=True,
    )
    write(root / "kg/rxcui-unii-map.tsv", "rxnorm_id\tfdasrs_id\n1191\tR16CO5Y76E\n")
    write(
        root / "kg/drugbank/drugbank.tsv",
        "drugbank_id\tname\ttype\tgroups\tatc_codes\tcategories\tinchikey\tinchi\tdescription\n"
        "DB00945\tAcetylsalicylic acid\tsmall molecule\tapproved\tB01AC06|N02BA01\tSalicylates\t\t\tx\n",
    )
    write(
        root / "kg/drugbank/drugbank_vocabulary.csv",
        "DrugBank ID,Accession Numbers,Common name,CAS,UNII,Synonyms,Standard InChI Key\n"
        'DB00945,APRD00264,Acetylsalicylic acid,50-78-2,R16CO5Y76E,"Aspirin | ASA",BSYNRYMUTXBXSQ-UHFFFAOYSA-N\n',
    )
    write(root / "ddi/safedrug-atc3/ddi_atc3_pairs.tsv", "atc3_a\tatc3_b\nB01A\tN02B\nA06A\tB01A\n")
    return root


MIMIC3_TABLES = {
    "ADMISSIONS.csv": (
        "ROW_ID,SUBJECT_ID,HADM_ID,ADMITTIME,DISCHTIME,DEATHTIME,ADMISSION_TYPE\n"
        "1,10,100,10/23/64 21:09,11/1/64 17:15,,EMERGENCY\n"
        "2,10,101,2/3/65 08:00,2/9/65 10:00,,EMERGENCY\n"  # later visit of patient 10 (2165)
        "3,20,200,2150-01-01 10:00:00,2150-01-05 10:00:00,,ELECTIVE\n"  # ISO format
        "4,30,300,3/4/99 00:00,3/5/99 00:00,,ELECTIVE\n"  # no prescriptions
    ),
    "DIAGNOSES_ICD.csv": (
        "ROW_ID,SUBJECT_ID,HADM_ID,SEQ_NUM,ICD9_CODE\n"
        "1,10,100,2,4019\n1,10,100,1,99591\n2,10,101,1,4280\n3,20,200,1,V5861\n4,20,200,2,4019\n"
        "5,30,300,1,25000\n"
    ),
    "PROCEDURES_ICD.csv": "ROW_ID,SUBJECT_ID,HADM_ID,SEQ_NUM,ICD9_CODE\n1,10,100,1,3605\n2,20,200,1,0040\n",
    "PRESCRIPTIONS.csv": (
        "ROW_ID,SUBJECT_ID,HADM_ID,ICUSTAY_ID,STARTDATE,ENDDATE,DRUG_TYPE,DRUG,DRUG_NAME_POE,DRUG_NAME_GENERIC,"
        "FORMULARY_DRUG_CD,GSN,NDC,PROD_STRENGTH,DOSE_VAL_RX,DOSE_UNIT_RX,FORM_VAL_DISP,FORM_UNIT_DISP,ROUTE\n"
        "1,10,100,,2164-10-23 00:00:00,,MAIN,Bisacodyl,,,BISA5,002947,00536338101,5 mg Tab,10,mg,2,TAB,PO\n"
        "2,10,100,,2164-10-23 00:00:00,,MAIN,Bisacodyl,,,BISA5,002947,00536338101,5 mg Tab,10,mg,2,TAB,PO\n"
        "3,10,100,,2164-10-23 00:00:00,,MAIN,Heparin,,,HEPA5I,016599,63323026201,5000 U,5000,UNIT,1,ML,SC\n"
        "4,10,101,,2165-02-03 00:00:00,,MAIN,Enalapril,,,ENA5,,55555555555,5mg,5,mg,1,TAB,PO\n"  # NDC route
        "5,10,101,,2165-02-03 00:00:00,,MAIN,Aspirin,,,ASA81,,12345678901,81mg,81,mg,1,TAB,PO\n"  # NDC->RxNorm
        "6,20,200,,2150-01-01 00:00:00,,BASE,D5W,,,D5W1000,,0,1000 mL,1000,mL,1,BAG,IV\n"  # placeholder: unmapped
        "7,20,200,,2150-01-01 00:00:00,,MAIN,Acetaminophen,,,ACET325,004489,?,325mg,650,mg,2,TAB,PO\n"
        "8,20,200,,2150-01-01 00:00:00,,MAIN,Odd,,,ODD,009999,0,1,1,mg,1,TAB,PO\n"  # level-1 ATC: unmapped
    ),
    "D_ICD_DIAGNOSES.csv": (
        "ROW_ID,ICD9_CODE,SHORT_TITLE,LONG_TITLE\n1,4019,Hypertension NOS,Unspecified essential hypertension\n"
        '2,99591,Sepsis,Sepsis\n3,4280,CHF NOS,"Congestive heart failure, unspecified"\n'
        "4,V5861,Long-term use anticoagul,Long-term (current) use of anticoagulants\n5,25000,DMII wo cmp,Diabetes\n"
    ),
    "D_ICD_PROCEDURES.csv": (
        "ROW_ID,ICD9_CODE,SHORT_TITLE,LONG_TITLE\n1,3605,Insert coronary stent,Insertion of coronary artery stent\n"
        "2,0040,Procedure-one vessel,Procedure on single vessel\n"
    ),
}


def make_mimic3(folder: Path, crlf: bool = True) -> Path:
    for name, text in MIMIC3_TABLES.items():
        write(folder / name, text, crlf=crlf)
    return folder


# MIMIC-IV hosp module, column names as published (v2.2).
MIMIC4_TABLES = {
    "admissions": (
        "subject_id,hadm_id,admittime,dischtime,deathtime,admission_type,admit_provider_id,admission_location,"
        "discharge_location,insurance,language,marital_status,race,edregtime,edouttime,hospital_expire_flag\n"
        "1000,5000,2180-05-06 22:23:00,2180-05-07 17:15:00,,URGENT,P1,TRANSFER,HOME,Other,ENGLISH,WIDOWED,WHITE,,,0\n"
        "1000,5001,2181-01-01 10:00:00,2181-01-03 10:00:00,,EW EMER.,P1,EMERGENCY,HOME,Other,ENGLISH,WIDOWED,WHITE,,,0\n"
        "2000,6000,2150-03-03 03:03:00,2150-03-04 03:03:00,,ELECTIVE,P2,PHYSICIAN,HOME,Medicare,ENGLISH,SINGLE,BLACK,,,0\n"
    ),
    "diagnoses_icd": (
        "subject_id,hadm_id,seq_num,icd_code,icd_version\n"
        "1000,5000,1,4019,9\n1000,5001,1,I10,10\n1000,5001,2,E119,10\n2000,6000,1,4019,9\n"
    ),
    "procedures_icd": (
        "subject_id,hadm_id,seq_num,chartdate,icd_code,icd_version\n"
        "1000,5000,1,2180-05-07,3605,9\n1000,5001,1,2181-01-02,0DTJ4ZZ,10\n"
    ),
    "prescriptions": (
        "subject_id,hadm_id,pharmacy_id,poe_id,poe_seq,order_provider_id,starttime,stoptime,drug_type,drug,"
        "formulary_drug_cd,gsn,ndc,prod_strength,form_rx,dose_val_rx,dose_unit_rx,form_val_disp,form_unit_disp,"
        "doses_per_24_hrs,route\n"
        "1000,5000,1,1000-1,1,P1,2180-05-07 00:00:00,2180-05-08 00:00:00,MAIN,Bisacodyl,BISA5,002947,00536338101,5 mg Tab,,10,mg,2,TAB,1,PO\n"
        "1000,5001,2,1000-2,2,P1,2181-01-01 12:00:00,2181-01-02 00:00:00,MAIN,Heparin,HEPA5I,000000 016599,63323026201,5000 Unit,,5000,UNIT,1,mL,2,SC\n"
        "2000,6000,3,2000-1,1,P2,2150-03-03 04:00:00,2150-03-04 00:00:00,MAIN,Acetaminophen,ACET325,004489,0,325mg Tab,,650,mg,2,TAB,4,PO\n"
    ),
    "d_icd_diagnoses": (
        "icd_code,icd_version,long_title\n4019,9,Unspecified essential hypertension\nI10,10,Essential (primary) hypertension\n"
        "E119,10,Type 2 diabetes mellitus without complications\n"
    ),
    "d_icd_procedures": (
        "icd_code,icd_version,long_title\n3605,9,Insertion of coronary artery stent\n"
        "0DTJ4ZZ,10,\"Resection of Appendix, Percutaneous Endoscopic Approach\"\n"
    ),
}


def make_mimic4(folder: Path) -> Path:
    for name, text in MIMIC4_TABLES.items():
        write(folder / "hosp" / f"{name}.csv.gz", text, gz=True)
    return folder


@pytest.fixture
def mini_data(tmp_path: Path) -> Path:
    """An open-data root with the mapping files and a MIMIC-III demo-like folder."""
    root = make_mappings(tmp_path / "data")
    make_mimic3(root / "mimic-iii-demo")
    make_mimic4(root / "mimic-iv-demo")
    return root


# ---------------------------------------------------------------- a real Neo4j server (session)
@pytest.fixture(scope="session")
def neo4j_tools():
    """``scripts/neo4j_server.py`` as a module: ``neo4j_server()``, ``admin_import()``, ``prepare()``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("kgrec_neo4j_server", REPO / "scripts" / "neo4j_server.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def neo4j_server(neo4j_tools):
    """A real Neo4j 5 Community server for the suite: ``scripts/neo4j_server.py`` (Maven Central, Bolt
    on 127.0.0.1, a free port, authentication on), started once per session. Set
    ``KGREC_TEST_NEO4J_URI`` (and ``_USER``/``_PASSWORD``) to run against a server of your own instead:
    its default database is cleared by the tests. Without Java/Maven the tests that need it fail."""
    if os.environ.get("KGREC_TEST_NEO4J_URI"):
        yield {"uri": os.environ["KGREC_TEST_NEO4J_URI"], "user": os.environ.get("KGREC_TEST_NEO4J_USER", "neo4j"),
               "password": os.environ.get("KGREC_TEST_NEO4J_PASSWORD", "")}
        return
    try:
        cm = neo4j_tools.neo4j_server()
        srv = cm.__enter__()
    except neo4j_tools.Neo4jServerError as exc:
        pytest.fail(f"the Neo4j test server could not start: {exc}")
    try:
        yield {"uri": srv.uri, "user": srv.user, "password": srv.password, "started_s": srv.started_s,
               "prepared_s": srv.prepared_s}
    finally:
        cm.__exit__(None, None, None)
