"""The synthetic cohort's settings: the graph sources it reads, the MIMIC-III v1.4 table headers, the
fallbacks used without the MIMIC-III demo, and the model's rates (:data:`P`)."""

from __future__ import annotations

from collections.abc import Callable

#: graph sources the generator reads (their dependencies are added by the builder)
GRAPH_SOURCES = ("pharmacotherapydb", "drugcentral", "medi", "trials", "gems")
GSN_MAP = "mappings/gsn_atc_ndc_mapping.csv.gz"
# files only the non-commercial part of a mixed source reads (skipped with exclude_nc)
NC_PART_FILES = frozenset({"kg/drugbank/drugbank.tsv"})
DEMO = "mimic-iii-demo"
MAX_DESCENDANT_CODES = 60
SUMMARY_FILE = "synth.json"
INDICATION_FILE = "SYNTH_INDICATIONS.csv"
TABLES = ("PATIENTS", "ADMISSIONS", "DIAGNOSES_ICD", "PROCEDURES_ICD", "PRESCRIPTIONS", "D_ICD_DIAGNOSES", "D_ICD_PROCEDURES")

# MIMIC-III v1.4 headers (as in the demo)
H_PATIENTS = ["ROW_ID", "SUBJECT_ID", "GENDER", "DOB", "DOD", "DOD_HOSP", "DOD_SSN", "EXPIRE_FLAG"]
H_ADMISSIONS = [
    "ROW_ID", "SUBJECT_ID", "HADM_ID", "ADMITTIME", "DISCHTIME", "DEATHTIME", "ADMISSION_TYPE", "ADMISSION_LOCATION",
    "DISCHARGE_LOCATION", "INSURANCE", "LANGUAGE", "RELIGION", "MARITAL_STATUS", "ETHNICITY", "EDREGTIME", "EDOUTTIME",
    "DIAGNOSIS", "HOSPITAL_EXPIRE_FLAG", "HAS_CHARTEVENTS_DATA",
]
H_CODES = ["ROW_ID", "SUBJECT_ID", "HADM_ID", "SEQ_NUM", "ICD9_CODE"]
H_DICT = ["ROW_ID", "ICD9_CODE", "SHORT_TITLE", "LONG_TITLE"]
H_PRESCRIPTIONS = [
    "ROW_ID", "SUBJECT_ID", "HADM_ID", "ICUSTAY_ID", "STARTDATE", "ENDDATE", "DRUG_TYPE", "DRUG", "DRUG_NAME_POE",
    "DRUG_NAME_GENERIC", "FORMULARY_DRUG_CD", "GSN", "NDC", "PROD_STRENGTH", "DOSE_VAL_RX", "DOSE_UNIT_RX",
    "FORM_VAL_DISP", "FORM_UNIT_DISP", "ROUTE",
]
# the product columns of a prescription row (everything but ids and dates)
PRODUCT_COLS = H_PRESCRIPTIONS[6:]

# Fallbacks when the MIMIC-III demo is absent: common ICU procedures (ICD-9-CM vol. 3) and fluids that
# no code map reaches (as MIMIC's most frequent unmapped orders are).
FALLBACK_PROCEDURES = {
    "3893": "Venous catheterization, not elsewhere classified",
    "9604": "Insertion of endotracheal tube",
    "9671": "Continuous invasive mechanical ventilation for less than 96 consecutive hours",
    "9672": "Continuous invasive mechanical ventilation for 96 consecutive hours or more",
    "3995": "Hemodialysis",
    "9915": "Parenteral infusion of concentrated nutritional substances",
    "3722": "Left heart cardiac catheterization",
    "8856": "Coronary arteriography using two catheters",
    "9904": "Transfusion of packed cells",
    "3891": "Arterial catheterization",
}
FALLBACK_FLUIDS = ["Iso-Osmotic Dextrose", "Sterile Water", "NS (Mini Bag Plus)", "D5W", "Sodium Chloride 0.9%  Flush"]

# Model parameters (rates per visit unless said otherwise).
P = {
    "chronic_per_patient": 1.2,  # Poisson mean of chronic treated conditions of a patient
    "chronic_present": 0.9,  # a chronic condition is coded at a visit
    "chronic_treated": 0.85,  # ... and its drug given
    "acute_extra": 2.0,  # acute treated conditions: 1 + Poisson(this)
    "acute_treated": 0.85,
    "recur": 0.3,  # an acute condition of the previous visit recurs (same drug)
    "second_drug": 0.4,  # a treated condition gets a second indicated drug
    "trial_partner": 0.25,  # ... and a trial partner of its drug where the graph has one
    "noise_dx": 9.0,  # Poisson mean of diagnoses unrelated to any drug
    "background": 16.0,  # Poisson mean of background products
    "noise_drugs": 0.7,  # Poisson mean of random indicated products
    "rows_per_drug": 0.5,  # extra order rows per product: Poisson(this)
    "no_drug_visit": 0.04,  # visits without any prescription
    "procedures": 2.0,  # Poisson mean of procedures
    "no_procedure_visit": 0.12,
}
SOURCE_WEIGHT = {"treats": 3.0, "palliates": 2.0, "indication": 2.0, "medi": 1.0}

Progress = Callable[[str, float], None]
