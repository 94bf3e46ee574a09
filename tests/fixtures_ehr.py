"""Fixture writers for the eICU / Synthea / drug-name tests: tiny tables in the exact public schemas.

``make_drug_mappings`` writes the four files the drug-name matcher reads (WHO ATC names, the GSN map,
the DrugBank slim table and the DrugBank open vocabulary) in the shared-data formats, with the quirks
the matcher must survive (loratadine carrying lisinopril's ATC code, acetaminophen without one).
"""

from __future__ import annotations

import functools
from pathlib import Path

from tests.conftest import real_data_dir, requires_real_data, write  # noqa: F401  (re-exported for the tests)


@functools.lru_cache(maxsize=1)
def real_mappings():
    """One :class:`Mappings` of the shared data for the whole session, so the drug-name dictionary
    (built once per Mappings) is built once."""
    from kgrec.cohort.codes import Mappings

    return Mappings(real_data_dir())


def csv_text(header: list[str], rows: list[dict]) -> str:
    """RFC-4180 CSV: fields quoted only when they hold , or quotes (as the eICU conversion writes them)."""

    def cell(v) -> str:
        s = "" if v is None else str(v)
        if any(ch in s for ch in ',"\r\n'):
            s = '"' + s.replace('"', '""') + '"'
        return s

    lines = [",".join(header)] + [",".join(cell(r.get(h, "")) for h in header) for r in rows]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- mapping files
ATC_NAMES = [
    ("A", "alimentary tract and metabolism"),
    ("A01A", "stomatological preparations"),
    ("B01A", "antithrombotic agents"),
    ("N02B", "other analgesics and antipyretics"),
    ("B01AA03", "warfarin"),
    ("A01AD05", "acetylsalicylic acid"),
    ("B01AC06", "acetylsalicylic acid"),
    ("N02BA01", "acetylsalicylic acid"),
    ("C05AE03", "diltiazem"),
    ("C08DB01", "diltiazem"),
    ("N02BE01", "paracetamol"),
    ("N02BE01", "paracetamol (acetaminophen)"),
    ("N02AA05", "oxycodone"),
    ("N02AJ17", "oxycodone and paracetamol"),
    ("J01CA04", "amoxicillin"),
    ("A10BA02", "metformin"),
    ("A10BD07", "metformin and sitagliptin"),
    ("C09AA03", "lisinopril"),
    ("C09BA03", "lisinopril and diuretics"),
    ("C03AA03", "hydrochlorothiazide"),
    ("C03CA01", "furosemide"),
    ("R06AX13", "loratadine"),
    ("R05DA03", "hydrocodone"),
    ("A12CA01", "sodium chloride"),
    ("B05XA03", "sodium chloride"),
    ("B01AB01", "heparin"),
    ("C07AB02", "metoprolol"),
    ("G03CA01", "ethinylestradiol"),
    ("G03AA13", "norelgestromin and ethinylestradiol"),
    ("A10AB01", "insulin (human)"),
    ("C01CA06", "phenylephrine"),
    ("R01AA04", "phenylephrine"),
]

# GSN map rows: which ATC-5 codes it uses, and so the class prior
GSN_ATC = [
    ("000001", "A01AD05"), ("000002", "A01AD05"), ("000003", "N02BA01"),  # aspirin -> A01A (code-level)
    ("000004", "C05AE03"),  # diltiazem -> C05A
    ("000005", "N02BE01"), ("000006", "N02BE01"), ("000007", "N02BE01"),
    ("000008", "R05DA03"),
    ("000009", "A12CA01"), ("000010", "B05XA03"), ("000011", "B05XA01"), ("000012", "B05XA02"),  # NaCl: tie, B05X prior
    ("000013", "B01AA03"), ("000014", "B01AB01"), ("000015", "C03CA01"), ("000016", "C07AB02"),
    ("000017", "R01AB01"), ("000018", "R01AA05"), ("000019", "C01CA24"),  # phenylephrine: no code used; R01A prior
]

DRUGBANK = [
    # id, name, atc codes
    ("DB00945", "Acetylsalicylic acid", "A01AD05|B01AC06|N02BA01"),
    ("DB00455", "Loratadine", "R06AX13|C09AA03"),  # the README quirk: lisinopril's code on loratadine
    ("DB00316", "Acetaminophen", ""),  # no ATC in the slim table
    ("DB00722", "Lisinopril", ""),
    ("DB00682", "Warfarin", "B01AA03"),
    ("DB00695", "Furosemide", "C03CA01"),
    ("DB00956", "Hydrocodone", "R05DA03"),
    ("DB00977", "Ethinylestradiol", "G03CA01"),
    ("DB06713", "Norelgestromin", ""),
    ("DB00016", "Epoetin alfa", "B03XA01"),  # not in the WHO fixture: kept unchecked
    ("DB00264", "Metoprolol", "C07AB02"),
]

VOCABULARY = [
    ("DB00945", "Acetylsalicylic acid", "Aspirin | ASA | Acetylsalicylic acid"),
    ("DB00455", "Loratadine", "Loratadina | Loratadine"),
    ("DB00316", "Acetaminophen", "APAP | Acetaminophen | Paracetamol"),
    ("DB00722", "Lisinopril", "Lisinopril"),
    ("DB00682", "Warfarin", "Warfarina | Warfarin"),
    ("DB00695", "Furosemide", "Frusemide | Furosemide"),
    ("DB00956", "Hydrocodone", "Hydrocodone"),
    ("DB00977", "Ethinyl Estradiol", "Ethinylestradiol | Ethinyl estradiol"),
    ("DB06713", "Norelgestromin", "Norelgestromin"),
    ("DB00016", "Epoetin alfa", "Epoetin alfa | EPO"),
    ("DB00264", "Metoprolol", "Metoprolol"),
]


def make_drug_mappings(root: Path) -> Path:
    """The mapping files the matcher reads, in the shared-data formats; returns the data root."""
    write(
        root / "mappings/atc_coding.csv.gz",
        csv_text(["atc_code", "atc_name"], [{"atc_code": c, "atc_name": n} for c, n in ATC_NAMES]),
        gz=True,
    )
    write(
        root / "mappings/gsn_atc_ndc_mapping.csv.gz",
        csv_text(["gsn", "atc", "ndc"], [{"gsn": g, "atc": a, "ndc": f"{i:011d}"} for i, (g, a) in enumerate(GSN_ATC, 1)]),
        gz=True,
    )
    header = ["drugbank_id", "name", "type", "groups", "atc_codes", "categories", "inchikey", "inchi", "description"]
    write(
        root / "kg/drugbank/drugbank.tsv",
        "\t".join(header) + "\n"
        + "".join(f"{d}\t{n}\tsmall molecule\tapproved\t{a}\t\t\t\tx\n" for d, n, a in DRUGBANK),
    )
    write(
        root / "kg/drugbank/drugbank_vocabulary.csv",
        csv_text(
            ["DrugBank ID", "Accession Numbers", "Common name", "CAS", "UNII", "Synonyms", "Standard InChI Key"],
            [{"DrugBank ID": d, "Common name": n, "Synonyms": s} for d, n, s in VOCABULARY],
        ),
    )
    return root


# ---------------------------------------------------------------- eICU
EICU_PATIENT_COLUMNS = (
    "patientunitstayid,patienthealthsystemstayid,gender,age,ethnicity,hospitalid,wardid,apacheadmissiondx,"
    "admissionheight,hospitaladmittime24,hospitaladmitoffset,hospitaladmitsource,hospitaldischargeyear,"
    "hospitaldischargetime24,hospitaldischargeoffset,hospitaldischargelocation,hospitaldischargestatus,unittype,"
    "unitadmittime24,unitadmitsource,unitvisitnumber,unitstaytype,admissionweight,dischargeweight,"
    "unitdischargetime24,unitdischargeoffset,unitdischargelocation,unitdischargestatus,uniquepid"
).split(",")
EICU_DIAGNOSIS_COLUMNS = "diagnosisid,patientunitstayid,activeupondischarge,diagnosisoffset,diagnosisstring,icd9code,diagnosispriority".split(",")
EICU_TREATMENT_COLUMNS = "treatmentid,patientunitstayid,treatmentoffset,treatmentstring,activeupondischarge".split(",")
EICU_MEDICATION_COLUMNS = (
    "medicationid,patientunitstayid,drugorderoffset,drugstartoffset,drugivadmixture,drugordercancelled,drugname,"
    "drughiclseqno,dosage,routeadmin,frequency,loadingdose,prn,drugstopoffset,gtc"
).split(",")
EICU_ADMISSIONDRUG_COLUMNS = (
    "admissiondrugid,patientunitstayid,drugoffset,drugenteredoffset,drugnotetype,specialtytype,usertype,"
    "rxincluded,writtenineicu,drugname,drugdosage,drugunit,drugadmitfrequency,drughiclseqno"
).split(",")

# uniquepid, health-system stay, unit stay, discharge year, unit visit number, hospital admit offset
EICU_STAYS = [
    ("002-1", 10, 102, 2015, 1, -30),
    ("002-1", 10, 101, 2015, 2, -3000),  # second unit stay of hospital stay 10, lower id
    ("002-1", 5, 103, 2014, 1, -10),  # an earlier discharge year: this patient's first visit
    ("002-2", 30, 201, 2015, 1, 0),
    ("002-2", 20, 202, 2015, 1, -5),  # same year: ordered by health-system stay id
    ("002-3", 40, 301, 2014, 1, -1),
]

# profile cells that differ from the defaults (age "70", Female, Med-Surg ICU, no admission sources)
EICU_PROFILES = {
    101: {"age": "> 89", "gender": "Male", "unitadmitsource": "Emergency Department", "hospitaladmitsource": "Emergency Department"},
    102: {"age": "", "gender": "Unknown", "unittype": "CCU-CTICU", "unitadmitsource": "Floor"},
    201: {"age": "0", "gender": "", "unitadmitsource": "Operating Room", "hospitaladmitsource": "Operating Room"},
}

EICU_DIAGNOSES = [
    # id, stay, offset, path, icd cell, priority
    (1, 101, 500, "cardiovascular|ventricular disorders|hypertension", "401.9, I10", "Other"),
    (2, 101, 600, "infectious diseases|systemic/other infections|sepsis", "038.9, 584.9, R65.20, N17", "Primary"),
    (3, 101, 100, "endocrine|glucose metabolism|diabetes mellitus", "", "Major"),
    (4, 102, 10, "gastrointestinal|anal disorders|abscess", "K61.1", "Major"),
    (5, 102, 20, "toxicology|drug overdose|opioid overdose", "E980.2, 965.00, T40.60", "Primary"),
    (6, 102, 30, "pulmonary|respiratory failure|Tracheostomy performed during this admission for ventilatory support", "31.1", "Other"),
    (7, 103, 5, "cardiovascular|chest pain / ASHD|s/p PCI", "V45.81, Z95.1", "Other"),
    (8, 103, 6, "renal|electrolyte imbalance|hyponatremia", "276.1, E87.0, E87.1", "Major"),
    (9, 201, 7, "cardiovascular|ventricular disorders|hypertension", "401.9, I10", "Primary"),
]

EICU_TREATMENTS = [
    (1, 101, 50, "cardiovascular|consultations|Cardiology consultation"),
    (2, 101, 10, "pulmonary|vascular disorders|VTE prophylaxis|low molecular weight heparin|enoxaparin"),
    (3, 102, 5, "cardiovascular|consultations|Cardiology consultation"),
]

EICU_MEDICATIONS = [
    # id, stay, cancelled, name, hicl
    (1, 101, "No", "WARFARIN SODIUM 5 MG PO TABS", "2812"),
    (2, 101, "No", "", "2812"),  # name from the HICL -> warfarin
    (3, 101, "Yes", "ASPIRIN EC 81 MG PO TBEC", "1820"),  # cancelled: not a drug of the visit
    (4, 102, "No", "5 ML VIAL : DILTIAZEM HCL 25 MG/5ML IV SOLN", "182"),
    (5, 102, "No", "LASIX", "3660"),  # brand: class through the HICL's other rows
    (6, 103, "No", "FUROSEMIDE 40 MG PO TABS", "3660"),
    (7, 103, "No", "", ""),  # nothing to go on
    (8, 103, "No", "TYLENOL", "1866"),  # brand, HICL with no other name
    (9, 201, "No", "", "9999"),  # named only in admissiondrug
    (10, 201, "No", "HYDROCODONE-ACETAMINOPHEN 5-325 MG PO TABS", "1731"),
    (11, 202, "No", "Aspirin", "1820"),
]


def make_eicu(root: Path, *, drop: dict[str, str] | None = None, skip: tuple[str, ...] = (), admissiondrug: bool = True) -> Path:
    """An eICU extract: ``patient.csv`` (CRLF, plain) and gzipped ``diagnosis``, ``treatment``,
    ``medication``, ``admissiondrug``. ``drop`` removes a column from a table; ``skip`` leaves tables out."""
    drop = drop or {}
    folder = root / "eicu-demo"

    def emit(name: str, header: list[str], rows: list[dict], **kw) -> None:
        if name in skip:
            return
        h = [c for c in header if c != drop.get(name)]
        write(folder / (name + (".csv.gz" if kw.get("gz") else ".csv")), csv_text(h, rows), **kw)

    emit(
        "patient",
        EICU_PATIENT_COLUMNS,
        [
            {
                "patientunitstayid": s, "patienthealthsystemstayid": hs, "uniquepid": pid, "hospitaldischargeyear": y,
                "unitvisitnumber": uvn, "hospitaladmitoffset": off, "gender": "Female", "age": "70", "hospitalid": 1,
                "wardid": 1, "unittype": "Med-Surg ICU", "unitstaytype": "admit", "apacheadmissiondx": "Sepsis, pulmonary",
                **EICU_PROFILES.get(s, {}),
            }
            for pid, hs, s, y, uvn, off in EICU_STAYS
        ],
        crlf=True,
    )
    emit(
        "diagnosis",
        EICU_DIAGNOSIS_COLUMNS,
        [
            {"diagnosisid": i, "patientunitstayid": s, "activeupondischarge": "False", "diagnosisoffset": o,
             "diagnosisstring": p, "icd9code": c, "diagnosispriority": pr}
            for i, s, o, p, c, pr in EICU_DIAGNOSES
        ],
        gz=True,
    )
    emit(
        "treatment",
        EICU_TREATMENT_COLUMNS,
        [{"treatmentid": i, "patientunitstayid": s, "treatmentoffset": o, "treatmentstring": t, "activeupondischarge": "False"}
         for i, s, o, t in EICU_TREATMENTS],
        gz=True,
    )
    emit(
        "medication",
        EICU_MEDICATION_COLUMNS,
        [
            {"medicationid": i, "patientunitstayid": s, "drugorderoffset": 1, "drugstartoffset": 2, "drugivadmixture": "No",
             "drugordercancelled": c, "drugname": n, "drughiclseqno": h, "prn": "No", "drugstopoffset": 100, "gtc": 0}
            for i, s, c, n, h in EICU_MEDICATIONS
        ],
        gz=True,
    )
    if admissiondrug:
        emit(
            "admissiondrug",
            EICU_ADMISSIONDRUG_COLUMNS,
            [{"admissiondrugid": 1, "patientunitstayid": 201, "drugoffset": -10, "drugenteredoffset": 5, "drugnotetype": "Admission",
              "specialtytype": "eCM Primary", "usertype": "eICU Physician", "rxincluded": "Yes", "writtenineicu": "True",
              "drugname": "METOPROLOL TARTRATE", "drugdosage": 0, "drughiclseqno": 9999}],
            gz=True,
        )
    return folder


# ---------------------------------------------------------------- Synthea
SYNTHEA_ENCOUNTER_COLUMNS = (
    "Id,START,STOP,PATIENT,ORGANIZATION,PROVIDER,PAYER,ENCOUNTERCLASS,CODE,DESCRIPTION,BASE_ENCOUNTER_COST,"
    "TOTAL_CLAIM_COST,PAYER_COVERAGE,REASONCODE,REASONDESCRIPTION"
).split(",")
SYNTHEA_CONDITION_COLUMNS = "START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION".split(",")
SYNTHEA_MEDICATION_COLUMNS = (
    "START,STOP,PATIENT,PAYER,ENCOUNTER,CODE,DESCRIPTION,BASE_COST,PAYER_COVERAGE,DISPENSES,TOTALCOST,REASONCODE,REASONDESCRIPTION"
).split(",")
SYNTHEA_PATIENT_COLUMNS = (
    "Id,BIRTHDATE,DEATHDATE,SSN,DRIVERS,PASSPORT,PREFIX,FIRST,LAST,SUFFIX,MAIDEN,MARITAL,RACE,ETHNICITY,GENDER,"
    "BIRTHPLACE,ADDRESS,CITY,STATE,COUNTY,FIPS,ZIP,LAT,LON,HEALTHCARE_EXPENSES,HEALTHCARE_COVERAGE,INCOME"
).split(",")
SYNTHEA_PROCEDURE_COLUMNS = "START,STOP,PATIENT,ENCOUNTER,SYSTEM,CODE,DESCRIPTION,BASE_COST,REASONCODE,REASONDESCRIPTION".split(",")

A, B, C = "pat-a", "pat-b", "pat-c"
SYNTHEA_ENCOUNTERS = [
    ("eA1", "2019-01-10T10:00:00Z", A, "wellness"),
    ("eA4", "2019-02-01T10:00:00Z", A, "wellness"),  # neither medication nor condition: dropped
    ("eA2", "2019-03-01T10:00:00Z", A, "ambulatory"),
    ("eA5", "2019-03-15T08:00:00Z", A, "ambulatory"),
    ("eA3", "2019-03-20T10:00:00Z", A, "ambulatory"),
    ("eB0", "2018-01-01T09:00:00Z", B, "wellness"),
    ("eB1", "2020-05-05T12:00:00Z", B, "ambulatory"),
    ("eC1", "2021-01-01T09:00:00Z", C, "wellness"),  # dropped: C has no visit
]
SYNTHEA_PATIENTS = [(A, "1960-01-01", "F"), (B, "1920-06-01", "M"), (C, "", "")]  # B is over 89 in 2020
SYNTHEA_CONDITIONS = [
    ("2019-01-10", "", A, "eA1", "59621000", "Essential hypertension (disorder)"),
    ("2019-03-01", "2019-03-15", A, "eA2", "10509002", "Acute bronchitis (disorder)"),
    ("2019-03-15", "2019-03-15", A, "eA5", "314529007", "Medication review due (situation)"),
    ("2017-12-31", "2019-12-31", B, "eB0", "15777000", "Prediabetes"),
    ("2020-05-05", "", B, "eB1", "44054006", "Diabetes mellitus type 2 (disorder)"),
]
SYNTHEA_MEDICATIONS = [
    ("2019-01-10T10:00:00Z", A, "eA1", "314076", "lisinopril 10 MG Oral Tablet"),
    ("2019-03-01T10:00:00Z", A, "eA2", "308192", "Amoxicillin 500 MG Oral Tablet"),
    ("2019-03-01T10:00:00Z", A, "eA2", "1049221", "Acetaminophen 325 MG / Oxycodone Hydrochloride 5 MG Oral Tablet"),
    ("2019-03-20T10:00:00Z", A, "eA3", "748856", "Jolivette 28 Day Pack"),
    ("2020-05-05T12:00:00Z", B, "eB1", "860975", "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet"),
]


def make_synthea(root: Path, *, drop: dict[str, str] | None = None, skip: tuple[str, ...] = (), procedures: bool = False,
                 bad_date: bool = False) -> Path:
    """A Synthea CSV export (plain .csv, LF; ``medications`` CRLF) with the rows above."""
    drop = drop or {}
    folder = root / "synthea"

    def emit(name: str, header: list[str], rows: list[dict], **kw) -> None:
        if name in skip:
            return
        h = [c for c in header if c != drop.get(name)]
        write(folder / f"{name}.csv", csv_text(h, rows), **kw)

    emit(
        "encounters",
        SYNTHEA_ENCOUNTER_COLUMNS,
        [{"Id": i, "START": "2019-13-45T10:00:00Z" if bad_date and i == "eA2" else t, "STOP": t, "PATIENT": p,
          "ENCOUNTERCLASS": k, "CODE": "185349003", "DESCRIPTION": "Encounter for check up (procedure)"}
         for i, t, p, k in SYNTHEA_ENCOUNTERS],
    )
    emit(
        "conditions",
        SYNTHEA_CONDITION_COLUMNS,
        [{"START": s, "STOP": e, "PATIENT": p, "ENCOUNTER": enc, "CODE": c, "DESCRIPTION": d} for s, e, p, enc, c, d in SYNTHEA_CONDITIONS],
    )
    emit(
        "medications",
        SYNTHEA_MEDICATION_COLUMNS,
        [{"START": t, "STOP": "", "PATIENT": p, "PAYER": "payer-1", "ENCOUNTER": enc, "CODE": c, "DESCRIPTION": d,
          "BASE_COST": "10.00", "PAYER_COVERAGE": "0.00", "DISPENSES": 1, "TOTALCOST": "10.00"}
         for t, p, enc, c, d in SYNTHEA_MEDICATIONS],
        crlf=True,
    )
    emit(
        "patients",
        SYNTHEA_PATIENT_COLUMNS,
        [{"Id": p, "BIRTHDATE": born, "GENDER": sex, "CITY": "Omaha", "STATE": "Nebraska"} for p, born, sex in SYNTHEA_PATIENTS],
    )
    if procedures:
        emit(
            "procedures",
            SYNTHEA_PROCEDURE_COLUMNS,
            [{"START": "2019-03-01T10:00:00Z", "STOP": "2019-03-01T10:15:00Z", "PATIENT": A, "ENCOUNTER": "eA2",
              "SYSTEM": "http://snomed.info/sct", "CODE": "23426006", "DESCRIPTION": "Measurement of respiratory function (procedure)"}],
        )
    return folder


# ---------------------------------------------------------------- MIMIC profiles (public schemas)
MIMIC3_ADMISSIONS_HEADER = (
    "ROW_ID,SUBJECT_ID,HADM_ID,ADMITTIME,DISCHTIME,DEATHTIME,ADMISSION_TYPE,ADMISSION_LOCATION,DISCHARGE_LOCATION,"
    "INSURANCE,LANGUAGE,RELIGION,MARITAL_STATUS,ETHNICITY,EDREGTIME,EDOUTTIME,DIAGNOSIS,HOSPITAL_EXPIRE_FLAG,"
    "HAS_CHARTEVENTS_DATA"
).split(",")
MIMIC3_PATIENTS_HEADER = "ROW_ID,SUBJECT_ID,GENDER,DOB,DOD,DOD_HOSP,DOD_SSN,EXPIRE_FLAG".split(",")
# the admissions of tests.conftest.MIMIC3_TABLES, with the profile columns filled
MIMIC3_PROFILE_ADMISSIONS = [
    (1, 10, 100, "10/23/64 21:09", "EMERGENCY", "EMERGENCY ROOM ADMIT", "Medicare"),
    (2, 10, 101, "2/3/65 08:00", "EMERGENCY", "TRANSFER FROM HOSP/EXTRAM", "Medicare"),
    (3, 20, 200, "2150-01-01 10:00:00", "ELECTIVE", "PHYS REFERRAL/NORMAL DELI", "Private"),
    (4, 30, 300, "3/4/99 00:00", "ELECTIVE", "", ""),  # empty cells stay missing
]
MIMIC3_PROFILE_PATIENTS = [
    (1, 10, "F", "3/5/94 0:00"),  # two-digit year: 2094, so 70.6 at 10/23/2164
    (2, 20, "M", "1850-01-01 00:00:00"),  # older than 89: DOB shifted ~300 years -> 90
    (3, 30, "", ""),  # no sex, no DOB: missing, not guessed
]
MIMIC4_PATIENTS = "subject_id,gender,anchor_age,anchor_year,anchor_year_group,dod\n1000,F,60,2180,2017 - 2019,\n2000,M,91,2150,2008 - 2010,\n"


def add_mimic3_profile(folder: Path) -> Path:
    """Rewrite a :func:`tests.conftest.make_mimic3` folder's ADMISSIONS with the public MIMIC-III columns
    (ADMISSION_TYPE, ADMISSION_LOCATION, INSURANCE...) and add PATIENTS (GENDER, DOB)."""
    adm = [{"ROW_ID": r, "SUBJECT_ID": s, "HADM_ID": h, "ADMITTIME": t, "DISCHTIME": t, "ADMISSION_TYPE": a,
            "ADMISSION_LOCATION": loc, "INSURANCE": ins, "LANGUAGE": "ENGL", "ETHNICITY": "WHITE",
            "DIAGNOSIS": "SEPSIS", "HOSPITAL_EXPIRE_FLAG": 0, "HAS_CHARTEVENTS_DATA": 1}
           for r, s, h, t, a, loc, ins in MIMIC3_PROFILE_ADMISSIONS]
    write(folder / "ADMISSIONS.csv", csv_text(MIMIC3_ADMISSIONS_HEADER, adm), crlf=True)
    pats = [{"ROW_ID": r, "SUBJECT_ID": s, "GENDER": g, "DOB": d, "EXPIRE_FLAG": 0} for r, s, g, d in MIMIC3_PROFILE_PATIENTS]
    write(folder / "PATIENTS.csv", csv_text(MIMIC3_PATIENTS_HEADER, pats), crlf=True)
    return folder


def add_mimic4_profile(folder: Path) -> Path:
    """Add ``hosp/patients.csv.gz`` (gender, anchor_age, anchor_year: MIMIC-IV v2.2) to a make_mimic4 folder."""
    write(folder / "hosp" / "patients.csv.gz", MIMIC4_PATIENTS, gz=True)
    return folder
