"""The one Typer app; command modules in this package register on it.

The command modules are imported when the app's commands are first looked at (running or testing
the app), not when :mod:`kgrec.cli` is imported, so that the ``kgrec`` entry point is inside its
Ctrl-C handler (:func:`kgrec.__main__.main`) before anything but Typer is imported.
"""

import importlib

import typer

# Each module registers its commands on ``app``.
COMMAND_MODULES = ("cohort", "fetch", "graph", "run", "train", "explain", "synth", "benchmark", "transfer")


class _Typer(typer.Typer):
    """A Typer whose command list fills itself from :data:`COMMAND_MODULES` on first read."""

    _loaded = False

    @property
    def registered_commands(self):
        if not _Typer._loaded:
            _Typer._loaded = True  # before the imports: they append through this property
            for name in COMMAND_MODULES:
                importlib.import_module(f"kgrec.cli.{name}")
        return self._commands

    @registered_commands.setter
    def registered_commands(self, value):
        self._commands = value


app = _Typer(
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


def _print_version(value: bool) -> None:
    if value:
        from kgrec import __version__

        typer.echo(f"kgrec {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show the Python traceback of a failure instead of one line (also KGREC_DEBUG=1)."),
    version: bool = typer.Option(False, "--version", help="Print kgrec's version and exit.", is_eager=True, callback=_print_version),
) -> None:
    """kgrec: explainable medication recommendation over a biomedical knowledge graph."""
    if debug:
        import os

        os.environ["KGREC_DEBUG"] = "1"
