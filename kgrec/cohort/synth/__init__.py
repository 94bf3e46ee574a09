"""Synthetic MIMIC-III cohorts whose diagnosis -> drug structure follows the open knowledge graph.

:func:`synthesize_mimic3` writes the tables kgrec's MIMIC-III loader reads (``ADMISSIONS``,
``DIAGNOSES_ICD``, ``PROCEDURES_ICD``, ``PRESCRIPTIONS``, ``D_ICD_DIAGNOSES``, ``D_ICD_PROCEDURES``)
plus ``PATIENTS``, with MIMIC-III v1.4 headers and ISO timestamps in MIMIC's shifted years (2100-2200).
It is for scale runs (time and memory against the number of visits), not for accuracy claims: a model
that reads the same graph will find the structure it was generated from.

Where the structure comes from (all open data under ``KGREC_DATA``):

* **Treatments**: the graph's indication edges, built by :func:`kgrec.graph.build.build_graph`:
  ``Ingredient -INDICATION(treats|palliates|indication)-> Disease`` (PharmacotherapyDB, DrugCentral)
  with the disease's ICD-9-CM codes (Disease Ontology ``MAPS_TO``; ICD-10-CM xrefs reach ICD-9 through
  the CMS GEMs; an indication also covers the disease's subtypes two ``DISEASE_PARENT`` levels down
  when that adds at most :data:`MAX_DESCENDANT_CODES` codes), and ``Ingredient -INDICATION_ICD->``
  ICD-9 (MEDI high-precision pairs; non-commercial, left out with ``exclude_nc``). A category code
  (``ICD9CM:250``) stands for its billable codes (``25000`` ... ``25093``).
* **Drug -> prescription row**: the ingredient's ATC class (``IN_CLASS``) and a GSN of the open GSN
  map (``mappings/gsn_atc_ndc_mapping.csv.gz``) whose ATC level-5 code is the ingredient's, so the row
  maps back to the ingredient's ATC3 class through the loader's own GSN route; ``DRUG`` is the
  ingredient's DrugBank name. Ingredients without such a GSN are not prescribed.
* **Trial-linked co-prescriptions**: ``Trial -STUDIES-> Ingredient`` twice plus ``Trial -TARGETS->
  Disease``: a treated condition sometimes also gets a drug studied together with the first one in a
  trial on that disease.
* **Background and noise**: most inpatient orders do not follow a diagnosis (heparin, docusate,
  saline...). With the MIMIC-III demo in ``KGREC_DATA/mimic-iii-demo`` the background formulary is
  its prescription products, weighted by how often the demo orders them (unmapped fluids included,
  as in MIMIC), and the ICD dictionaries, noise-diagnosis and procedure frequencies come from it too;
  without it, GSN-map products, a few unmapped fluids and a short built-in procedure list stand in.
  Noise drugs are random indicated products unrelated to the visit.

Patients and history: each patient has chronic conditions (a fixed drug each, continued at most
visits) and each visit adds acute conditions; a condition of the previous visit recurs sometimes, with
the same drug. Admissions of a patient follow each other in time (stay 1 h - 60 days, gaps of weeks to
years). Everything is drawn from one ``numpy`` generator seeded by ``seed``: the same inputs give
byte-identical files.

Modules: :mod:`~kgrec.cohort.synth.settings` (sources, MIMIC-III headers, the model's rates),
:mod:`~kgrec.cohort.synth.knowledge` (the graph's indication tables the generator samples from),
:mod:`~kgrec.cohort.synth.draw` (patients, admissions, conditions, codes and orders),
:mod:`~kgrec.cohort.synth.write` (the CSV tables), :mod:`~kgrec.cohort.synth.generate`
(:func:`synthesize_mimic3`, :func:`check_request`).
"""

from __future__ import annotations

from kgrec.cohort.synth.generate import check_request, synthesize_mimic3
from kgrec.cohort.synth.knowledge import Knowledge, build_knowledge, check_data_dir, required_files
from kgrec.cohort.synth.settings import GRAPH_SOURCES, INDICATION_FILE, P, SUMMARY_FILE, TABLES, Progress

__all__ = [
    "GRAPH_SOURCES", "INDICATION_FILE", "P", "SUMMARY_FILE", "TABLES", "Knowledge", "Progress", "build_knowledge",
    "check_data_dir", "check_request", "required_files", "synthesize_mimic3",
]
