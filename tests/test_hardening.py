"""Corrupt inputs on the real formats: every case of issue 16 items 1, 2 and 9 is an error naming the file
(and line or column), exit 2, and the previous workspace cohort stays as it was.

The MIMIC-III cases corrupt a copy of the real demo (``$KGREC_DATA/mimic-iii-demo``, CRLF, re-saved
dates); the MIMIC-IV, eICU and Synthea cases corrupt the public-schema fixtures.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tracemalloc
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kgrec.cli import app
from kgrec.errors import InputError
from kgrec.tables import find_table, read_source, read_table
from tests.conftest import make_mappings, make_mimic4, real_data_dir, requires_real_data, write
from tests.fixtures_ehr import make_eicu, make_synthea, real_mappings

runner = CliRunner()


def prepare(ws: Path, source: str, source_dir: Path, data_dir: Path):
    args = ["prepare", "-s", source, "-w", str(ws), "--source-dir", str(source_dir), "--data-dir", str(data_dir)]
    return runner.invoke(app, args)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def mimic3_ws(tmp_path_factory):
    """A workspace holding the cohort of the untouched real MIMIC-III demo (the 'previous' cohort)."""
    if real_data_dir() is None:
        pytest.skip("open data folder not present")
    ws = tmp_path_factory.mktemp("ws")
    res = prepare(ws, "mimic3", real_data_dir() / "mimic-iii-demo", real_data_dir())
    assert res.exit_code == 0, res.output
    return ws


@pytest.fixture
def demo(tmp_path) -> Path:
    """A writable copy of the real MIMIC-III demo."""
    dst = tmp_path / "mimic3"
    shutil.copytree(real_data_dir() / "mimic-iii-demo", dst)
    return dst


def _rename_header(path: Path, old: str, new: str) -> None:
    raw = path.read_bytes()
    head, rest = raw.split(b"\n", 1)
    path.write_bytes(head.replace(old.encode(), new.encode()) + b"\n" + rest)


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def _insert_after_line(path: Path, n: int, data: bytes) -> None:
    lines = path.read_bytes().split(b"\n")
    lines.insert(n, data)
    path.write_bytes(b"\n".join(lines))


MIMIC3_CASES = {
    # item 1: SEQ_NUM renamed to ICD9_CODE: two columns of one name (before: codes became ICD9CM:1..21)
    "duplicate column": (lambda d: _rename_header(d / "DIAGNOSES_ICD.csv", "SEQ_NUM", "ICD9_CODE"),
                         ["DIAGNOSES_ICD.csv", "line 1", "'icd9_code' appears twice"]),
    "duplicate column, other case": (lambda d: _rename_header(d / "ADMISSIONS.csv", "ADMITTIME", "hadm_id"),
                                     ["ADMISSIONS.csv", "'hadm_id' appears twice", "'HADM_ID', 'hadm_id'"]),
    # item 2: a row of commas (before: patient '' and visit '', 130 visits / 101 patients)
    "row of commas": (lambda d: _append(d / "ADMISSIONS.csv", b"," * 18 + b"\r\n"),
                      ["ADMISSIONS.csv", "line 131", "column 'subject_id'", "key column is empty"]),
    "empty visit id": (lambda d: _insert_after_line(d / "PRESCRIPTIONS.csv", 5, b"999,10006,,,,,,X,X,X,X,X,X,X,X,X,X,X,X\r"),
                       ["PRESCRIPTIONS.csv", "line 6", "column 'hadm_id'"]),
    "NUL bytes in a row": (lambda d: _insert_after_line(d / "ADMISSIONS.csv", 3, b"\0" * 40 + b"\r"),
                           ["ADMISSIONS.csv", "line 4", "NUL byte"]),
    "NUL junk after the data": (lambda d: _append(d / "ADMISSIONS.csv", b"\0" * (3 << 20)),
                                ["ADMISSIONS.csv", "line 131", "NUL byte"]),
    "truncated last row": (lambda d: _append(d / "DIAGNOSES_ICD.csv", b"999,10006,142345,1"),
                           ["DIAGNOSES_ICD.csv", "line 1763", "has 4 fields, the header 5"]),
    "extra field": (lambda d: _insert_after_line(d / "PROCEDURES_ICD.csv", 2, b"1,2,3,4,5,6\r"),
                    ["PROCEDURES_ICD.csv", "line 3", "has 6 fields"]),
    "header repeated (files concatenated)": (
        lambda d: _append(d / "ADMISSIONS.csv", (d / "ADMISSIONS.csv").read_bytes()),
        ["ADMISSIONS.csv", "line 131", "header repeats"]),
    "not UTF-8": (lambda d: _insert_after_line(d / "DIAGNOSES_ICD.csv", 9, b"1,10006,142345,9,\xff\xfe\r"),
                  ["DIAGNOSES_ICD.csv", "line 10", "not UTF-8"]),
    "table is a directory": (lambda d: ((d / "PRESCRIPTIONS.csv").unlink(), (d / "PRESCRIPTIONS.csv").mkdir()),
                             ["PRESCRIPTIONS.csv", "is a directory"]),
    "table is a FIFO": (lambda d: ((d / "PRESCRIPTIONS.csv").unlink(), os.mkfifo(d / "PRESCRIPTIONS.csv")),
                        ["PRESCRIPTIONS.csv", "FIFO"]),
    "symlink loop": (lambda d: ((d / "PRESCRIPTIONS.csv").unlink(), os.symlink("PRESCRIPTIONS.csv", d / "PRESCRIPTIONS.csv")),
                     ["PRESCRIPTIONS.csv", "symbolic link loop"]),
    "broken symlink": (lambda d: ((d / "PRESCRIPTIONS.csv").unlink(), os.symlink("gone.csv", d / "PRESCRIPTIONS.csv")),
                       ["PRESCRIPTIONS.csv", "broken symbolic link"]),
    "two tables differing in case": (lambda d: shutil.copy(d / "ADMISSIONS.csv", d / "admissions.csv"),
                                     ["ADMISSIONS.csv and admissions.csv", "ambiguous"]),
}


@requires_real_data
@pytest.mark.parametrize("case", list(MIMIC3_CASES))
def test_corrupt_mimic3_demo_is_exit_2_and_keeps_previous_cohort(case, demo, mimic3_ws):
    corrupt, expected = MIMIC3_CASES[case]
    corrupt(demo)
    before = snapshot(mimic3_ws / "cohort")
    res = prepare(mimic3_ws, "mimic3", demo, real_data_dir())
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    for part in expected:
        assert part in text, (part, text)
    assert "Traceback" not in res.output
    assert snapshot(mimic3_ws / "cohort") == before
    assert not [p for p in mimic3_ws.iterdir() if p.name.startswith(".")]


@requires_real_data
def test_real_demo_still_reads_and_counts(mimic3_ws):
    import json

    stats = json.loads((mimic3_ws / "cohort" / "meta.json").read_text())["stats"]
    assert (stats["n_visits"], stats["n_patients"]) == (129, 100)


def test_bom_and_blank_lines_are_accepted_with_true_line_numbers(tmp_path):
    p = write(tmp_path / "t.csv", "\ufeffSUBJECT_ID,HADM_ID,X\r\n1,10,a\r\n\r\n2,20,b\r\n\r\n3,,c\r\n")
    with pytest.raises(InputError, match=r"line 6, column 'hadm_id'"):
        read_table(p, ["subject_id", "hadm_id"], keys=["hadm_id"])
    df = read_table(p, ["subject_id", "hadm_id"])
    assert list(df["subject_id"]) == ["1", "2", "3"] and list(df["_line"]) == [2, 4, 6]


def test_nul_junk_stops_the_read_early(tmp_path):
    """Before: a file of NULs after valid data was read whole (200 MB file: 1.6 GB). Now the first 1 MiB
    chunk holding a NUL stops the read."""
    p = tmp_path / "ADMISSIONS.csv"
    p.write_bytes(b"subject_id,hadm_id\n1,10\n")
    with open(p, "ab") as f:
        f.write(b"\0" * (40 << 20))
    tracemalloc.start()
    with pytest.raises(InputError, match="line 3: NUL byte"):
        read_table(p, ["subject_id", "hadm_id"])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 << 20, peak


def test_gzip_junk_and_truncated_gzip(tmp_path):
    good = gzip.compress(b"subject_id,hadm_id\n1,10\n2,20\n")
    write(tmp_path / "a.csv.gz", "")
    (tmp_path / "a.csv.gz").write_bytes(good[: len(good) // 2])
    with pytest.raises(InputError, match="a.csv.gz: not a readable gzip file"):
        read_table(tmp_path / "a.csv.gz", ["subject_id"])
    (tmp_path / "b.csv.gz").write_bytes(gzip.compress(b"subject_id,hadm_id\n1,10\n" + b"\0" * 100))
    with pytest.raises(InputError, match="b.csv.gz, line 3: NUL byte"):
        read_table(tmp_path / "b.csv.gz", ["subject_id"])


def test_mimic4_duplicate_header_and_empty_key(tmp_path):
    from kgrec.cohort import get_loader
    from kgrec.cohort.codes import Mappings

    root = make_mappings(tmp_path / "data")
    folder = make_mimic4(root / "mimic-iv-demo")
    dx = folder / "hosp" / "diagnoses_icd.csv.gz"
    text = gzip.decompress(dx.read_bytes()).decode()
    write(dx, text.replace("seq_num,icd_code", "ICD_CODE,icd_code", 1), gz=True)
    with pytest.raises(InputError, match=r"diagnoses_icd.csv.gz, line 1: column 'icd_code' appears twice"):
        get_loader("mimic4")(folder, Mappings(root)).load()
    write(dx, text + "1000,,3,4019,9\n", gz=True)
    with pytest.raises(InputError, match=r"diagnoses_icd.csv.gz, line 6, column 'hadm_id': key column is empty"):
        get_loader("mimic4")(folder, Mappings(root)).load()


@requires_real_data
def test_eicu_and_synthea_phantom_rows(tmp_path):
    from kgrec.cohort import get_loader

    folder = make_eicu(tmp_path)
    med = folder / "medication.csv.gz"
    write(med, gzip.decompress(med.read_bytes()).decode() + "," * 14 + "\n", gz=True)
    with pytest.raises(InputError, match=r"medication.csv.gz, line \d+, column 'patientunitstayid': key column is empty"):
        get_loader("eicu")(folder, real_mappings()).load()

    folder = make_synthea(tmp_path)
    enc = folder / "encounters.csv"
    enc.write_text(enc.read_text() + "," * (enc.read_text().splitlines()[0].count(",")) + "\n")
    with pytest.raises(InputError, match=r"encounters.csv, line \d+, column 'id': key column is empty"):
        get_loader("synthea")(folder, real_mappings()).load()


@requires_real_data
def test_real_sources_read_with_every_check():
    """The checks hold on the real files: no real row is rejected."""
    data = real_data_dir()
    n = {t: len(read_source(data / "mimic-iii-demo", t, ["subject_id", "hadm_id"]))
         for t in ("ADMISSIONS", "DIAGNOSES_ICD", "PROCEDURES_ICD", "PRESCRIPTIONS")}
    assert n == {"ADMISSIONS": 129, "DIAGNOSES_ICD": 1761, "PROCEDURES_ICD": 506, "PRESCRIPTIONS": 10398}
    assert len(read_source(data / "eicu-demo", "medication", ["patientunitstayid"])) == 75604
    assert len(read_source(data / "synthea-111", "encounters", ["id", "patient"])) == 7584


def test_find_table_names_both_candidates(tmp_path):
    write(tmp_path / "Admissions.csv", "a\n1\n")
    write(tmp_path / "ADMISSIONS.csv.gz", "a\n1\n", gz=True)
    with pytest.raises(InputError, match="ADMISSIONS.csv.gz and Admissions.csv both match"):
        find_table(tmp_path, "admissions")


def test_patient_json_deeply_nested_and_bom(tmp_path):
    """Item 6: '[' x 100,000 was a RecursionError traceback (exit 1); item 9: a BOM was rejected."""
    from kgrec.explain.patient import load_patient, parse_patient

    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000)
    with pytest.raises(InputError, match="deep.json: not a patient: JSON nested too deeply"):
        load_patient(deep)
    with pytest.raises(InputError, match="nested too deeply"):
        parse_patient("{\"a\": " * 50_000)
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + b'{"icd_version": 9, "diagnoses": ["401.9"]}')
    assert load_patient(bom).diagnoses == ["401.9"]
    assert parse_patient('\ufeff{"icd_version": 9, "diagnoses": ["401.9"]}').icd_version == 9


def test_graph_source_reader_shares_the_checks(tmp_path):
    """The graph builder's own parser (read_rows) reads through the same checked bytes and header check."""
    from kgrec.graph.sources._base import read_rows

    p = write(tmp_path / "indications.tsv", "drugbank_id\tdoid\tDOID\nDB00001\tDOID:1\tx\n")
    with pytest.raises(InputError, match=r"indications.tsv, line 1: column 'doid' appears twice"):
        read_rows(p, ["drugbank_id", "doid"])
    p.write_bytes(b"drugbank_id\tdoid\nDB00001\tDOID:1\n" + b"\0" * 1000)
    with pytest.raises(InputError, match=r"indications.tsv, line 3: NUL byte"):
        read_rows(p, ["drugbank_id", "doid"])
    p.unlink()
    os.mkfifo(p)
    with pytest.raises(InputError, match="FIFO"):
        read_rows(p, ["drugbank_id", "doid"])


def test_gzip_under_a_plain_name_and_utf16(tmp_path):
    p = tmp_path / "ADMISSIONS.csv"
    p.write_bytes(gzip.compress(b"subject_id,hadm_id\n1,10\n"))
    with pytest.raises(InputError, match="gzip-compressed data in a file not named .gz: rename it to ADMISSIONS.csv.gz"):
        read_table(p, ["subject_id"])
    p.write_bytes("subject_id,hadm_id\n1,10\n".encode("utf-16"))
    with pytest.raises(InputError, match="UTF-16 text"):
        read_table(p, ["subject_id"])


def _header_only(path: Path) -> None:
    """Keep only the header line of a table (plain or gzipped, any line ending)."""
    raw = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
    head = raw.split(b"\n", 1)[0] + b"\n"
    path.write_bytes(gzip.compress(head) if path.name.endswith(".gz") else head)


@requires_real_data
@pytest.mark.parametrize("source,required,optional", [
    ("mimic3", ["ADMISSIONS", "DIAGNOSES_ICD", "PRESCRIPTIONS"], ["PROCEDURES_ICD", "PATIENTS"]),
    ("mimic4", ["admissions", "diagnoses_icd", "prescriptions"], ["procedures_icd", "patients"]),
    ("eicu", ["patient", "diagnosis", "medication"], ["treatment", "admissiondrug"]),
    ("synthea", ["encounters", "conditions", "medications"], ["patients", "procedures"]),
])
def test_a_table_with_a_header_and_no_rows(tmp_path, source, required, optional):
    """Before: required tables with a header and no rows (PRESCRIPTIONS, DIAGNOSES_ICD) gave exit 0 and a
    cohort with 0 drugs. Now a required one is an error naming the file; an optional one is recorded."""
    from kgrec.cohort import get_loader
    from kgrec.tables import find_table
    from tests.conftest import make_mimic3, make_mimic4
    from tests.fixtures_ehr import add_mimic3_profile, add_mimic4_profile

    def fresh(tag):
        root = tmp_path / tag
        if source == "mimic3":
            return add_mimic3_profile(make_mimic3(root / "m3")), make_mappings(root / "data")
        if source == "mimic4":
            return add_mimic4_profile(make_mimic4(root / "m4")), make_mappings(root / "data")
        if source == "eicu":
            return make_eicu(root), real_mappings()
        return make_synthea(root, procedures=True), real_mappings()

    def load(folder, mappings):
        from kgrec.cohort.codes import Mappings

        m = mappings if not isinstance(mappings, Path) else Mappings(mappings)
        return get_loader(source)(folder, m).load()

    for table in required:
        folder, mappings = fresh(f"req-{table}")
        path = find_table(folder / "hosp" if source == "mimic4" else folder, table)
        _header_only(path)
        with pytest.raises(InputError, match=rf"{path.name}.*header and no rows; it is required"):
            load(folder, mappings)
    for table in optional:
        folder, mappings = fresh(f"opt-{table}")
        path = find_table(folder / "hosp" if source == "mimic4" else folder, table)
        _header_only(path)
        cohort = load(folder, mappings)
        report = cohort.report if hasattr(cohort, "report") else cohort[1]
        assert path.name in json.dumps(report), (table, report)


@pytest.mark.parametrize("table,old,new,column", [
    ("ADMISSIONS.csv", "1,10,100,", "1,X10011,100,", "subject_id"),
    ("ADMISSIONS.csv", "1,10,100,", "1,10,1e5,", "hadm_id"),
    ("ADMISSIONS.csv", "1,10,100,", "1,10,-100,", "hadm_id"),
    ("DIAGNOSES_ICD.csv", "1,10,100,2,4019", "1,10,100.0,2,4019", "hadm_id"),
    ("DIAGNOSES_ICD.csv", "1,10,100,2,4019", "1,10,100,abc,4019", "seq_num"),
    ("DIAGNOSES_ICD.csv", "1,10,100,2,4019", "1,10,100,2," + "4" * 5000, "icd9_code"),
])
def test_malformed_ids_and_huge_cells_name_file_line_and_column(tmp_path, table, old, new, column):
    """Before: SUBJECT_ID X10011 made a phantom patient; HADM_ID 1e5, -142345, 142345.0 rows were dropped
    without a word; SEQ_NUM abc was accepted; a 10 MB code cell became a 10 MB code."""
    from kgrec.cohort import get_loader
    from kgrec.cohort.codes import Mappings
    from tests.conftest import make_mimic3

    root = make_mappings(tmp_path / "data")
    folder = make_mimic3(tmp_path / "m3", crlf=False)
    text = (folder / table).read_text()
    assert old in text
    (folder / table).write_text(text.replace(old, new, 1))
    with pytest.raises(InputError, match=rf"{table}, line 2, column '{column}'"):
        get_loader("mimic3")(folder, Mappings(root)).load()


def test_patient_folder_is_named_as_a_folder(tmp_path):
    from kgrec.explain.patient import load_patient

    with pytest.raises(InputError, match="is a folder: give the patient's JSON file"):
        load_patient(tmp_path)
