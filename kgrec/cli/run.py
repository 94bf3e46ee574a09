"""`kgrec run`: the main job end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from kgrec import api
from kgrec.cli.app import app
from kgrec.cli.common import DEFAULT_WORKSPACE, DataDir, JsonOut, Workspace, console, emit_json, handle_errors, resolve_data_dir
from kgrec.cli.cohort import metrics_table
from kgrec.cohort import LOADERS


@app.command()
@handle_errors
def run(
    source: Annotated[str, typer.Option("--source", "-s", help=f"EHR source: {', '.join(sorted(LOADERS))}.")] = "mimic3",
    workspace: Workspace = DEFAULT_WORKSPACE,
    data_dir: DataDir = None,
    source_dir: Annotated[Path | None, typer.Option(help="Folder of the EHR tables (default: the demo folder in --data-dir).", show_default=False)] = None,
    folds: Annotated[int, typer.Option(help="Patient-level cross-validation folds for the evaluation.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the split and the folds.")] = 42,
    json_out: JsonOut = False,
) -> None:
    """Run the main job end to end: prepare the cohort, build and load the knowledge graph into the
    embedded store, then evaluate the baselines with K-fold CV.

    Everything lands in the workspace (cohort/, graph/, reports/). The model stages follow with
    `kgrec train --stage ...`.
    """
    with console.status("running ...") as status:
        res = api.run(source, workspace, resolve_data_dir(data_dir), source_dir, folds=folds, seed=seed, progress=lambda m: status.update(m))
    if json_out:
        emit_json({"stats": res.prepare.stats, "graph": res.graph.to_dict()["counts"], "evaluation": res.evaluation.to_json(), "seconds": res.seconds})
        return
    stats = res.prepare.stats
    console.print(
        f"cohort {source}: {stats['n_patients']} patients, {stats['n_visits']} visits "
        f"({stats['n_eval_visits']} with a mapped drug), drug mapping coverage {stats['drug_mapping_coverage']:.1%}"
    )
    g = res.graph.to_dict()["counts"]
    console.print(f"knowledge graph (embedded store): {g['n_nodes']:,} nodes, {g['n_edges']:,} edges")
    table = metrics_table(res.evaluation, f"{source}: {folds}-fold patient-level CV, mean ± std")
    console.print(table)
    console.print(f"done in {res.seconds['total']:.1f} s; reports in {api.reports_dir(workspace)}")
