"""Command-line interface: a thin layer over :mod:`kgrec.api`. One module per command group."""

from kgrec.cli.app import app

# Each import registers its commands on ``app``.
from kgrec.cli import cohort as _cohort  # noqa: F401,E402
from kgrec.cli import fetch as _fetch  # noqa: F401,E402
from kgrec.cli import graph as _graph  # noqa: F401,E402
from kgrec.cli import run as _run  # noqa: F401,E402
from kgrec.cli import train as _train  # noqa: F401,E402
from kgrec.cli import explain as _explain  # noqa: F401,E402
from kgrec.cli import synth as _synth  # noqa: F401,E402
from kgrec.cli import benchmark as _benchmark  # noqa: F401,E402
from kgrec.cli import transfer as _transfer  # noqa: F401,E402


def main() -> None:
    app()


__all__ = ["app", "main"]
