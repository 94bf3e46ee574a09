"""`kgrec prepare` and `kgrec evaluate`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from kgrec.cli.app import app
from kgrec.cli.common import (
    DEFAULT_WORKSPACE,
    DataDir,
    JsonOut,
    Workspace,
    console,
    emit_json,
    handle_errors,
    one_step,
    resolve_data_dir,
    show,
)
from kgrec.cli.lazy import SOURCES, api
from kgrec.errors import InputError


def metrics_table(res, title: str) -> Table:
    """Rows = metrics, columns = models (reads well in an 80-column terminal)."""
    from kgrec.evaluation import format_cells
    from kgrec.metrics import METRICS

    table = Table(title=title)
    table.add_column("metric")
    for name in res.models:
        table.add_column(name, justify="right")
    columns = [format_cells(ev.summary, sep="\n") for ev in res.models.values()]
    for i, m in enumerate(METRICS):
        table.add_row(m, *(col[i] for col in columns))
    return table


def omop_options(source: str, db_url: str | None, **given) -> dict:
    """The OMOP options given, for :func:`kgrec.prepare`. ``$KGREC_OMOP_URL`` counts only for ``--source
    omop`` (an environment set for an OMOP site must not stop a MIMIC run); the other options given with
    another source are refused by :func:`kgrec.prepare`."""
    import os

    if source != "omop" and db_url and db_url == os.environ.get("KGREC_OMOP_URL"):
        db_url = None
    return {k: v for k, v in {"db_url": db_url, **given}.items() if v}


@app.command()
@handle_errors
def prepare(
    source: Annotated[
        str,
        typer.Option("--source", "-s", help=f"EHR source: {', '.join(SOURCES)}.", show_default=False),
    ],
    workspace: Workspace = DEFAULT_WORKSPACE,
    data_dir: DataDir = None,
    source_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder of the EHR tables (e.g. your full MIMIC-III download). "
            "Default: the source's demo folder inside --data-dir (mimic-iii-demo, eicu-demo, ...).",
            show_default=False,
        ),
    ] = None,
    protocol: Annotated[
        str,
        typer.Option(help="'all': every visit, first visits included. 'safedrug': GAMENet/SafeDrug protocol "
                     "(patients with ≥2 visits that each have diagnoses, procedures and drugs)."),
    ] = "all",
    seed: Annotated[int, typer.Option(help="Seed of the 8:1:1 patient-level split.")] = 42,
    ddi: Annotated[
        list[str] | None,
        typer.Option("--ddi", help="DDI source(s): 'safedrug' (ATC3 pairs, default) and/or 'drugbank' (NC licence)."),
    ] = None,
    db_url: Annotated[
        str | None,
        typer.Option(envvar="KGREC_OMOP_URL", show_default=False,
                     help="OMOP only: read the CDM from a database instead of a folder, as a SQLAlchemy URL "
                     "(postgresql://user@host/db, sqlite:///cdm.db, duckdb:///cdm.duckdb). Put a password in "
                     "$KGREC_OMOP_URL or ~/.pgpass rather than on the command line; it is never printed."),
    ] = None,
    db_schema: Annotated[
        str | None, typer.Option(help="OMOP only: the schema holding the CDM tables (e.g. cdm).", show_default=False)
    ] = None,
    vocab_schema: Annotated[
        str | None,
        typer.Option(help="OMOP only: the schema of the vocabulary tables (concept, ...) where it differs from --db-schema.",
                     show_default=False),
    ] = None,
    visit_setting: Annotated[
        list[str] | None,
        typer.Option("--visit-setting", help="OMOP only: which visits count, repeatable: inpatient, emergency, "
                     "outpatient (default: all three). Each visit's setting is its encounter_class."),
    ] = None,
    cdm_version: Annotated[
        str | None,
        typer.Option(help="OMOP only: 5.3 or 5.4, where the CDM's cdm_source table does not state it.", show_default=False),
    ] = None,
    json_out: JsonOut = False,
) -> None:
    """Read an EHR extract into the workspace cohort and print its statistics.

    Visits become diagnoses + procedures (ICD, version kept in the id) + drugs (ATC level 3). The cohort,
    its patient-level split and the DDI pairs are written to WORKSPACE/cohort, replacing any earlier one
    only once everything was read without error.

    OMOP CDM v5.3/v5.4 (--source omop) is read from a folder of CSV, CSV.gz or Parquet files
    (--source-dir) or from a database (--db-url, --db-schema); see docs/cohort-omop.md.
    """
    if source not in SOURCES:
        raise typer.BadParameter(f"choose from {', '.join(SOURCES)}", param_hint="--source")
    from kgrec import fsatomic

    fsatomic.sweep(Path(workspace), ["cohort"])  # folders of prepares that were killed
    data = resolve_data_dir(data_dir)
    # the folders first: an answer at once, before the data stack is imported
    for folder, what in ((data, "data folder (--data-dir / $KGREC_DATA)"), (source_dir, "source folder (--source-dir)")):
        if folder is not None and not Path(folder).is_dir():
            raise InputError(f"{what} not found" if not Path(folder).exists() else f"{what} is not a folder", path=folder)
    omop = omop_options(source, db_url, db_schema=db_schema, vocab_schema=vocab_schema, visit_settings=visit_setting, cdm_version=cdm_version)

    def run(sink):
        go = lambda: api.prepare(source, workspace, data, source_dir, protocol=protocol, seed=seed,  # noqa: E731
                                 ddi_sources=tuple(ddi) if ddi else ("safedrug",), **omop)
        if sink is not None:  # no terminal: start, progress and end lines (kgrec.cli.common.one_step)
            return go()
        with console.status(f"reading {source} ..."):
            return go()

    res = one_step("prepare", f"reading {source} into {Path(workspace) / 'cohort'}", run)
    stats, report = res.stats, res.cohort.report
    if json_out:
        emit_json({**stats, "cohort_dir": str(res.path), "mapping": {k: v for k, v in report.items() if k != "tables"}})
        return
    table = Table(title=f"cohort: {source} ({res.path})")
    table.add_column("statistic")
    table.add_column("value", justify="right")
    for k, v in stats.items():
        table.add_row(k, str(v))
    show(table)
    unmapped = report.get("top_unmapped_drugs") or []
    if unmapped:
        console.print("most frequent unmapped drug names: " + ", ".join(f"{n} ({c})" for n, c in unmapped[:8]), markup=False)
    routes = report.get("mapping_route_coverage")
    if routes:
        console.print("drug exposures by mapping route: " + ", ".join(f"{k} {v:.1%}" for k, v in routes.items()), markup=False)
    reach = report.get("diagnosis_codes_reaching_disease") or {}
    if "codes" in reach:
        console.print(f"diagnosis codes reaching a Disease node of the graph: {reach['codes_direct_or_category']:,} of {reach['codes']:,} "
                      f"({reach['share_direct_or_category']:.1%}; {reach['occurrences_share_direct_or_category']:.1%} of occurrences)", markup=False)
    if "visits_with_diagnosis_and_drug_share" in report:
        console.print(f"visits with a diagnosis and a drug: {report['visits_with_diagnosis_and_drug']:,} "
                      f"({report['visits_with_diagnosis_and_drug_share']:.1%})", markup=False)


@app.command()
@handle_errors
def evaluate(
    workspace: Workspace = DEFAULT_WORKSPACE,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help="Model(s) to evaluate: frequency, logreg (repeat the option). Default: both."),
    ] = None,
    folds: Annotated[
        int | None,
        typer.Option(help="Patient-level K-fold cross-validation (recommended for small cohorts); "
                     "default: the saved 8:1:1 split."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the folds and the bootstrap.")] = 42,
    n_boot: Annotated[int, typer.Option(help="Patient-bootstrap resamples for the 95% intervals (single split).")] = 1000,
    json_out: JsonOut = False,
) -> None:
    """Train and test recommenders on the workspace cohort; print and save the metrics table.

    Thresholds and hyper-parameters are chosen on validation patients only. With --folds K the table
    shows mean ± std over folds and paired per-fold differences against logistic regression.
    """
    models = model or ["frequency", "logreg"]
    def run(sink):
        if sink is not None:  # no terminal: start, progress and end lines (kgrec.cli.common.one_step)
            return api.evaluate(workspace, models, folds=folds, seed=seed, n_boot=n_boot, progress=sink)
        with console.status("evaluating ...") as status:
            return api.evaluate(workspace, models, folds=folds, seed=seed, n_boot=n_boot, progress=lambda m: status.update(m))

    res = one_step("evaluate", f"{', '.join(models)}" + (f", {folds}-fold CV" if folds else ", saved split"), run)
    if json_out:
        emit_json(res.to_json())
        return
    table = metrics_table(res, f"{res.dataset}: " + (f"{folds}-fold CV, mean ± std" if folds else "test split, [95% CI]"))
    show(table)
    if res.paired:
        console.print(f"paired per-fold differences vs {res.reference}:")
        for name, per in res.paired.items():
            for m, d in per.items():
                console.print(f"  {name} {m}: {d['mean']:+.4f} ± {d['std']:.4f} (better in {d['n_better']}/{len(d['folds'])} folds)")
    console.print(f"saved under {api.reports_dir(workspace)}")
