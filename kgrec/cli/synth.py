"""`kgrec synth`: a synthetic MIMIC-III cohort whose diagnosis -> drug structure follows the open graph."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kgrec.cli.app import app
from kgrec.cli.common import (
    DataDir,
    JsonOut,
    console,
    emit_json,
    handle_errors,
    resolve_data_dir,
    show,
)


@app.command()
@handle_errors
def synth(
    visits: Annotated[
        int,
        typer.Option("--visits", "-n", help="Number of admissions (visits) to generate; must be positive.", show_default=False),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Folder for the MIMIC-III tables (created; an earlier synthetic cohort there is replaced, "
            "any other non-empty folder is refused).",
        ),
    ] = Path("synth-mimic3"),
    patients: Annotated[
        int | None,
        typer.Option(help="Number of patients (1..visits). Default: visits / --visits-per-patient.", show_default=False),
    ] = None,
    visits_per_patient: Annotated[
        float,
        typer.Option(help="Mean admissions per patient when --patients is not given (>= 1; each patient has at least one)."),
    ] = 2.0,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed, sizes and data give byte-identical files.")] = 0,
    exclude_nc: Annotated[
        bool,
        typer.Option("--exclude-nc", help="Do without the non-commercial sources (MEDI indications, DrugBank-slim ATC codes)."),
    ] = False,
    data_dir: DataDir = None,
    json_out: JsonOut = False,
) -> None:
    """Generate a synthetic cohort in the MIMIC-III v1.4 CSV format, for scale runs.

    Each visit's treated conditions get drugs the knowledge graph indicates for them (PharmacotherapyDB, DrugCentral, MEDI; trial-linked co-prescriptions), mixed with background orders, noise drugs and unrelated diagnoses. Patients have several admissions; chronic conditions and their drugs carry over. Prescriptions carry GSNs that map back to the drugs' ATC3 classes.

    Load the result with: kgrec prepare -s mimic3 --source-dir OUT --data-dir DATA -w WORKSPACE

    Not for accuracy claims: a model that reads the same graph finds the structure the data came from.
    """
    from kgrec.cohort.synth import check_request, synthesize_mimic3

    root = resolve_data_dir(data_dir)
    check_request(out, visits, patients, visits_per_patient, root, exclude_nc)  # fail fast, before the progress bar
    progress = Progress(
        TextColumn("[bold]{task.description:<40}"),
        BarColumn(bar_width=30),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=console,
        disable=json_out,
        transient=False,
    )
    with progress:
        task = progress.add_task("starting", total=100)

        def on_progress(stage: str, fraction: float) -> None:
            progress.update(task, description=stage, completed=round(100 * fraction, 1))

        res = synthesize_mimic3(
            out, visits, seed=seed, data_dir=root, patients=patients, visits_per_patient=visits_per_patient,
            exclude_nc=exclude_nc, progress=on_progress,
        )
    res["prepare_command"] = f"kgrec prepare -s mimic3 --source-dir {out} --data-dir {root} -w WORKSPACE"
    if json_out:
        emit_json(res)
        return
    table = Table(title=f"synthetic MIMIC-III cohort in {out}")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, n in res["rows"].items():
        table.add_row(name, f"{n:,}")
    show(table)
    k = res["knowledge"]
    console.print(
        f"{res['patients']:,} patients, {res['visits']:,} visits (max {res['visits_per_patient']['max']} per patient); "
        f"graph: {k['indication_pairs']:,} diagnosis->drug pairs over {k['treatable_codes']:,} ICD-9 codes and "
        f"{k['indicated_atc3']} ATC3 classes, {k['trial_partner_pairs']:,} trial partner pairs"
    )
    origin = ", ".join(f"{name} {n:,}" for name, n in res["drug_rows_by_origin"].items())
    console.print(f"prescription rows by origin: {origin}; {res['drug_rows_with_mappable_gsn']:.1%} carry a GSN that maps to ATC3")
    console.print(f"{res['seconds']['total']:.1f} s, peak memory {res['peak_rss_mb']:,.0f} MB")
    console.print(f"load it with: {res['prepare_command']}")
