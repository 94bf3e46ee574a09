"""The one Typer app; command modules in this package register on it."""

import typer

app = typer.Typer(
    name="kgrec",
    help=(
        "kgrec: explainable medication recommendation over a biomedical knowledge graph.\n\n"
        "Typical study: `kgrec prepare` (EHR -> cohort), `kgrec evaluate` (baselines), "
        "then the graph, embedding, teacher and student stages. Every command takes -w/--workspace "
        "(the study folder) and --json (machine-readable stdout)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
