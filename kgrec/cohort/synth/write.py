"""Writing a drawn cohort as MIMIC-III v1.4 CSV tables (strings quoted, missing values empty), plus the
indication pairs the generator used (``SYNTH_INDICATIONS.csv``, ignored by the loader)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from kgrec.cohort.synth.draw import Drawn, _draw
from kgrec.cohort.synth.knowledge import Knowledge
from kgrec.cohort.synth.settings import INDICATION_FILE, PRODUCT_COLS, Progress

_CSV_OPTIONS = pacsv.WriteOptions(quoting_style="needed", include_header=True)


def _str(values) -> pa.Array:
    """Strings; an empty one is written as an empty field (as MIMIC's missing values)."""
    arr = np.asarray(values, dtype=object)
    return pa.array(arr, type=pa.string(), mask=(arr == "") | pd.isna(arr))


def _null(n: int) -> pa.Array:
    return pa.nulls(n, pa.string())


def _dict(indices, labels) -> pa.Array:
    """``labels[indices]`` as a dictionary array (fast to write); index -1 or an empty label: empty field."""
    idx = np.asarray(indices, dtype=np.int32)
    lab = _str(np.asarray(labels, dtype=object))
    return pa.DictionaryArray.from_arrays(pa.array(idx, mask=idx < 0), lab)


def _table(columns: dict) -> pa.Table:
    return pa.table({k: v if isinstance(v, (pa.Array, pa.ChunkedArray)) else pa.array(v) for k, v in columns.items()})


def _write_csv(path: Path, columns: dict) -> None:
    """One CSV: strings quoted, as in the MIMIC-III v1.4 release; missing values empty."""
    pacsv.write_csv(_table(columns), str(path), write_options=_CSV_OPTIONS)


def _day_codes(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dates as (index, labels ``2146-07-21 00:00:00``): each distinct day is formatted once."""
    d = np.asarray(t).astype("datetime64[D]")
    uniq, inv = np.unique(d, return_inverse=True)
    return inv.astype(np.int64), _fmt_days(uniq).astype(object)


def _fmt_times(t: np.ndarray) -> np.ndarray:
    """datetime64[s] -> ``2146-07-21 14:33:00``."""
    s = np.datetime_as_string(t.astype("datetime64[s]"), unit="s")
    return np.char.replace(s, "T", " ")


def _fmt_days(t: np.ndarray) -> np.ndarray:
    return np.char.add(np.datetime_as_string(t.astype("datetime64[D]"), unit="D"), " 00:00:00")


def write_tables(tmp: Path, d: Drawn, K: Knowledge, rng: np.random.Generator, chunk_rows: int, say: Progress) -> None:
    """The seven MIMIC-III tables and the indication file into ``tmp`` (demographics drawn from ``rng``)."""
    n_pat, visits, pat, first, n_vis = d.n_pat, d.visits, d.pat, d.first, d.n_vis
    admit, disch, dob, died, death_last = d.admit, d.disch, d.dob, d.died, d.death_last
    dx, proc, rx, code_str, t_code, t_prod = d.dx, d.proc, d.rx, d.code_str, d.t_code, d.t_prod
    subject = 100_000 + np.arange(n_pat)
    hadm = 200_000 + np.arange(visits)
    gender = np.where(rng.random(n_pat) < 0.56, "M", "F")
    last_v = first + n_vis - 1
    dod_idx, dod_lab = _day_codes(disch[last_v])
    dod = _dict(np.where(death_last, dod_idx, -1), dod_lab)
    dob_idx, dob_lab = _day_codes(dob)
    _write_csv(
        tmp / "PATIENTS.csv",
        {
            "ROW_ID": np.arange(1, n_pat + 1), "SUBJECT_ID": subject, "GENDER": _str(gender), "DOB": _dict(dob_idx, dob_lab),
            "DOD": dod, "DOD_HOSP": dod, "DOD_SSN": _null(n_pat), "EXPIRE_FLAG": death_last.astype(np.int64),
        },
    )
    primary = dx[dx["seq"] == 1].set_index("v")["code"]
    short = dict(zip(K.dx_dict["code"], K.dx_dict["short"]))
    diag_text = pd.Series(np.arange(visits)).map(primary).map(short).fillna("").str.upper().to_numpy(dtype=object)
    types = np.array(["EMERGENCY", "ELECTIVE", "URGENT"], dtype=object)
    adm_type = _draw(rng, np.array([0.75, 0.2, 0.05]), visits)
    insurance = _draw(rng, np.array([0.5, 0.3, 0.12, 0.05, 0.03]), visits)
    _write_csv(
        tmp / "ADMISSIONS.csv",
        {
            "ROW_ID": np.arange(1, visits + 1), "SUBJECT_ID": subject[pat], "HADM_ID": hadm,
            "ADMITTIME": _str(_fmt_times(admit)), "DISCHTIME": _str(_fmt_times(disch)),
            "DEATHTIME": _str(np.where(died, _fmt_times(disch), "")),
            "ADMISSION_TYPE": _dict(adm_type, types),
            "ADMISSION_LOCATION": _dict((adm_type == 1).astype(np.int64), ["EMERGENCY ROOM ADMIT", "PHYS REFERRAL/NORMAL DELI"]),
            "DISCHARGE_LOCATION": _dict(died.astype(np.int64), ["HOME", "DEAD/EXPIRED"]),
            "INSURANCE": _dict(insurance, ["Medicare", "Private", "Medicaid", "Government", "Self Pay"]),
            "LANGUAGE": _null(visits), "RELIGION": _null(visits), "MARITAL_STATUS": _null(visits),
            "ETHNICITY": _dict(np.zeros(visits, np.int64), ["UNKNOWN/NOT SPECIFIED"]),
            "EDREGTIME": _null(visits), "EDOUTTIME": _null(visits), "DIAGNOSIS": _str(diag_text),
            "HOSPITAL_EXPIRE_FLAG": died.astype(np.int64), "HAS_CHARTEVENTS_DATA": np.ones(visits, np.int64),
        },
    )
    say("writing DIAGNOSES_ICD, PROCEDURES_ICD", 0.6)
    for name, df in (("DIAGNOSES_ICD", dx), ("PROCEDURES_ICD", proc)):
        v = df["v"].to_numpy()
        ci, cl = np.unique(df["code"].to_numpy(dtype=object).astype(str), return_inverse=True)
        _write_csv(
            tmp / f"{name}.csv",
            {"ROW_ID": np.arange(1, len(df) + 1), "SUBJECT_ID": subject[pat[v]], "HADM_ID": hadm[v],
             "SEQ_NUM": df["seq"].to_numpy(dtype=np.int64), "ICD9_CODE": _dict(cl, ci)},
        )
    for name, dic, used in (("D_ICD_DIAGNOSES", K.dx_dict, dx), ("D_ICD_PROCEDURES", K.proc_dict, proc)):
        d = dic[dic["code"].isin(set(used["code"]))].sort_values("code")
        _write_csv(
            tmp / f"{name}.csv",
            {"ROW_ID": np.arange(1, len(d) + 1), "ICD9_CODE": _str(d["code"]), "SHORT_TITLE": _str(d["short"]), "LONG_TITLE": _str(d["long"])},
        )

    prod_cols = {c: K.products[c].to_numpy(dtype=object) for c in PRODUCT_COLS}
    n_rx = len(rx)
    days = np.concatenate([rx["start"].to_numpy(), rx["end"].to_numpy()])
    day_idx, day_lab = _day_codes(days)
    rx_p, rx_v = rx["p"].to_numpy(), rx["v"].to_numpy()
    writer = None
    try:
        for lo in range(0, max(n_rx, 1), chunk_rows):
            hi = min(n_rx, lo + chunk_rows)
            p, v = rx_p[lo:hi], rx_v[lo:hi]
            table = _table(
                {
                    "ROW_ID": np.arange(lo + 1, hi + 1), "SUBJECT_ID": subject[pat[v]], "HADM_ID": hadm[v],
                    "ICUSTAY_ID": pa.nulls(hi - lo, pa.int64()),
                    "STARTDATE": _dict(day_idx[lo:hi], day_lab), "ENDDATE": _dict(day_idx[n_rx + lo : n_rx + hi], day_lab),
                    **{c: _dict(p, prod_cols[c]) for c in PRODUCT_COLS},
                }
            )
            if writer is None:
                writer = pacsv.CSVWriter(str(tmp / "PRESCRIPTIONS.csv"), table.schema, write_options=_CSV_OPTIONS)
            writer.write_table(table)
            say("writing PRESCRIPTIONS", 0.62 + 0.36 * (hi / max(n_rx, 1)))
    finally:
        if writer is not None:
            writer.close()

    # the indication pairs the generator used (for checks; the MIMIC loader ignores this file)
    used_pairs = pd.DataFrame({"code": code_str[t_code], "p": t_prod}).drop_duplicates()
    tr = K.treat.assign(code=K.treat["code"].astype(str))
    tr = tr.merge(used_pairs.rename(columns={"p": "product"}), on=["code", "product"])
    tr = pd.DataFrame(
        {"ICD9_CODE": tr["code"], "ATC3": K.products["atc3"].to_numpy()[tr["product"].to_numpy()], "INGREDIENT": tr["ingredient"], "SOURCE": tr["source"]}
    ).sort_values(["ICD9_CODE", "ATC3", "INGREDIENT"])
    _write_csv(tmp / INDICATION_FILE, {c: _str(tr[c]) for c in tr.columns})
