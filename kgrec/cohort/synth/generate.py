"""The generator's entry points: :func:`check_request` (sizes, output folder, data files: before any
work) and :func:`synthesize_mimic3` (knowledge → draw → write into a temporary folder → summary →
atomic replace)."""

from __future__ import annotations

import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from kgrec.cohort.base import _replace_dir
from kgrec.cohort.synth.draw import Drawn, draw_cohort
from kgrec.cohort.synth.knowledge import Knowledge, build_knowledge, check_data_dir
from kgrec.cohort.synth.settings import P, SUMMARY_FILE, Progress
from kgrec.cohort.synth.write import write_tables
from kgrec.errors import InputError, KgrecError


def _validate(visits, patients, visits_per_patient) -> tuple[int, int]:
    if isinstance(visits, bool) or not isinstance(visits, (int, np.integer)) or visits <= 0:
        raise KgrecError(f"--visits must be a positive whole number, got {visits!r}")
    if patients is not None:
        if isinstance(patients, bool) or not isinstance(patients, (int, np.integer)) or patients <= 0:
            raise KgrecError(f"--patients must be a positive whole number, got {patients!r}")
        if patients > visits:
            raise KgrecError(f"--patients ({patients}) cannot exceed --visits ({visits}): every patient has at least one visit")
        return int(visits), int(patients)
    if not np.isfinite(visits_per_patient) or visits_per_patient < 1:
        raise KgrecError(f"--visits-per-patient must be at least 1, got {visits_per_patient!r}")
    return int(visits), max(1, min(int(visits), int(round(visits / float(visits_per_patient)))))  # noqa: RUF046


def check_request(
    out_dir: Path | str,
    visits: int,
    patients: int | None = None,
    visits_per_patient: float = 2.0,
    data_dir: Path | str | None = None,
    exclude_nc: bool = False,
) -> tuple[int, int]:
    """Check a request before any work: sizes, the output folder and (given ``data_dir``) the data
    files. Returns ``(visits, patients)``; raises :class:`KgrecError` / :class:`InputError`."""
    sizes = _validate(visits, patients, visits_per_patient)
    _check_out_dir(Path(out_dir))
    if data_dir is not None:
        check_data_dir(Path(data_dir), exclude_nc)
    return sizes


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists():
        if not out_dir.is_dir():
            raise InputError("output path exists and is not a folder", path=out_dir)
        if any(out_dir.iterdir()) and not (out_dir / SUMMARY_FILE).exists():
            raise InputError(
                "output folder is not empty and holds no earlier synthetic cohort (synth.json); "
                "choose a new folder or empty this one",
                path=out_dir,
            )


def synthesize_mimic3(
    out_dir: Path | str,
    visits: int,
    seed: int = 0,
    data_dir: Path | str | None = None,
    patients: int | None = None,
    visits_per_patient: float = 2.0,
    exclude_nc: bool = False,
    knowledge: Knowledge | None = None,
    progress: Progress | None = None,
    chunk_rows: int = 250_000,
) -> dict:
    """Write a synthetic MIMIC-III cohort of ``visits`` admissions into ``out_dir``.

    Args:
        out_dir: folder to write (created; replaced atomically if it holds an earlier synthetic cohort;
            any other non-empty folder is refused).
        visits: number of admissions (> 0).
        seed: the random seed; the same seed, sizes and data give byte-identical files.
        data_dir: the open-data root (graph sources, GSN map; the MIMIC-III demo if present).
        patients: number of patients (1 .. visits); default ``round(visits / visits_per_patient)``.
        visits_per_patient: mean admissions per patient when ``patients`` is not given (>= 1).
        exclude_nc: do without the non-commercial sources (MEDI, DrugBank-slim ATC codes).
        knowledge: a prebuilt :class:`Knowledge` (tests and repeated runs), else built from ``data_dir``.
        progress: ``progress(stage, fraction_done)`` callback.
        chunk_rows: prescription rows written per chunk.

    Returns:
        A summary: sizes, row counts per table, drug rows by origin, files, timings, peak memory,
        the ``kgrec prepare`` command that loads the folder. Also written to ``out_dir/synth.json``.

    Raises:
        KgrecError: bad sizes. InputError: missing data files, or an output folder in the way.
    """
    t0 = time.perf_counter()
    visits, n_pat = _validate(visits, patients, visits_per_patient)
    out_dir = Path(out_dir)
    _check_out_dir(out_dir)
    say = progress or (lambda stage, frac: None)
    if knowledge is None:
        if data_dir is None:
            raise InputError("no data folder: pass data_dir (CLI: --data-dir or KGREC_DATA)")
        knowledge = build_knowledge(data_dir, exclude_nc=exclude_nc)
    K = knowledge
    t_know = time.perf_counter() - t0
    say("patients and admissions", 0.25)
    rng = np.random.default_rng([seed, 2])
    drawn = draw_cohort(K, visits, n_pat, rng, say, data_dir)
    say("writing tables", 0.55)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the cohort folder is an ordinary one
    try:
        write_tables(tmp, drawn, K, rng, chunk_rows, say)
        summary = _summary(drawn, K, seed, out_dir)
        t_gen = time.perf_counter() - t0 - t_know
        summary["seconds"] = {"knowledge": round(t_know, 3), "generate_and_write": round(t_gen, 3), "total": round(time.perf_counter() - t0, 3)}
        summary["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        summary["files"] = sorted(p.name for p in tmp.iterdir()) + [SUMMARY_FILE]
        (tmp / SUMMARY_FILE).write_text(json.dumps({k: v for k, v in summary.items() if k not in ("seconds", "peak_rss_mb", "out_dir", "prepare_command")}, indent=2, sort_keys=True) + "\n")
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    say("done", 1.0)
    return summary


def _summary(d: Drawn, K: Knowledge, seed: int, out_dir: Path) -> dict:
    """Sizes, row counts per table, drug rows by origin (written to ``synth.json`` without timings)."""
    n_pat, visits, n_vis, dx, proc, rx = d.n_pat, d.visits, d.n_vis, d.dx, d.proc, d.rx
    n_rx = len(rx)

    origin_names = ["indication (acute)", "indication (chronic)", "indication (second drug)", "trial partner", "background", "noise"]
    mapped = K.products["atc3"].notna().to_numpy()[rx["p"].to_numpy()]
    summary = {
        "format": "mimic3",
        "out_dir": str(out_dir),
        "seed": int(seed),
        "patients": int(n_pat),
        "visits": int(visits),
        "visits_per_patient": {"mean": round(visits / n_pat, 3), "max": int(n_vis.max()), "single_visit_patients": int((n_vis == 1).sum())},
        "rows": {
            "PATIENTS": int(n_pat), "ADMISSIONS": int(visits), "DIAGNOSES_ICD": len(dx),
            "PROCEDURES_ICD": len(proc), "PRESCRIPTIONS": int(n_rx),
        },
        "drug_rows_by_origin": {origin_names[k]: int(c) for k, c in sorted(rx["origin"].value_counts().items())},
        "drug_rows_with_mappable_gsn": round(float(mapped.mean()), 4) if n_rx else 0.0,
        "distinct_diagnosis_codes": int(dx["code"].nunique()),
        "distinct_products": int(rx["p"].nunique()),
        "knowledge": K.report,
        "parameters": dict(P),
        "prepare_command": f"kgrec prepare -s mimic3 --source-dir {out_dir} --data-dir DATA_DIR -w WORKSPACE",
    }
    return summary
