"""`kgrec fetch-data`: download the open data sources into a local folder, verifying checksums."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from kgrec.cli.app import app
from kgrec.cli.common import JsonOut, console, emit_json, handle_errors, show
if TYPE_CHECKING:
    from kgrec.fetch import FetchResult, Manifest

DEFAULT_DEST = Path("kgrec-data")

_STYLE = {
    "downloaded": "green",
    "present": "dim",
    "excluded": "yellow",
    "refused": "yellow",
    "conflict": "bold yellow",
    "failed": "bold red",
}


@app.command("fetch-data")
@handle_errors
def fetch_data(
    dest: Annotated[
        Path | None,
        typer.Option(
            "--dest",
            "-d",
            help="Folder to download into (created if needed). Default: $KGREC_DATA, else ./kgrec-data. "
            "Afterwards point kgrec at it with --data-dir DIR or `export KGREC_DATA=DIR`.",
            show_default=False,
        ),
    ] = None,
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source",
            "-s",
            help="Fetch only this source (repeat for several). See the names with --list. Default: all.",
            show_default=False,
        ),
    ] = None,
    exclude_nc: Annotated[
        bool,
        typer.Option("--exclude-nc", help="Skip sources whose licence forbids commercial use (NC in --list)."),
    ] = False,
    allow_unverified: Annotated[
        bool,
        typer.Option(
            "--allow-unverified",
            help="Also fetch sources the manifest has no checksum for (their content cannot be checked; "
            "they are logged as unverified). Without it they are skipped, or refused when named by --source.",
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Download again even when an intact copy is present, and overwrite files in the way "
            "that fetch-data did not write.",
        ),
    ] = False,
    manifest: Annotated[
        Path | None,
        typer.Option(
            "--manifest",
            help="Use this manifest (YAML) instead of the one shipped with kgrec.",
            show_default=False,
        ),
    ] = None,
    list_only: Annotated[
        bool,
        typer.Option("--list", help="Show the sources in the manifest (name, licence, NC, checksum, URL); download nothing."),
    ] = False,
    json_out: JsonOut = False,
) -> None:
    """Download the open data sources (demo EHRs, code maps, DDI pairs, knowledge-graph tables) into a folder.

    Each file comes from the public URL listed in the manifest (see --list). Files with a known SHA-256 are verified; a mismatch stops that file and nothing partial is left behind. A second run downloads nothing that is already present and intact. DIR/fetch-log.json records where every file came from, its hash, licence and date.

    Credentialed data (full MIMIC-III / MIMIC-IV, DrugBank XML) is not downloaded: get it from PhysioNet or DrugBank with your own account and pass its folder to the commands that read it (e.g. prepare --source-dir).

    Examples: `kgrec fetch-data --list`; `kgrec fetch-data -d ~/kgrec-data --exclude-nc`; `kgrec fetch-data -d ~/kgrec-data --source mimic-iii-demo --allow-unverified`; then `export KGREC_DATA=~/kgrec-data`.
    """
    from kgrec.fetch import FetchError, fetch, load_manifest

    man = load_manifest(manifest)
    if list_only:
        _list(man, json_out)
        return

    dest_dir = _resolve_dest(dest)
    try:
        result = fetch(
            dest_dir,
            names=source or None,
            manifest=man,
            force=force,
            exclude_nc=exclude_nc,
            allow_unverified=allow_unverified,
            progress=not json_out and console.is_terminal,
        )
    except FetchError as exc:
        if exc.result is not None:
            if json_out:
                emit_json({"ok": False, "error": str(exc), **exc.result.to_dict()})
            else:
                _report(exc.result)
        raise

    if json_out:
        emit_json({"ok": True, **result.to_dict()})
    else:
        _report(result)


def _resolve_dest(dest: Path | None) -> Path:
    if dest is not None:
        return dest
    env = os.environ.get("KGREC_DATA")
    return Path(env) if env else DEFAULT_DEST


def _list(man: Manifest, json_out: bool) -> None:
    if json_out:
        emit_json({"manifest": str(man.path) if man.path else None, "sources": [s.to_dict() for s in man]})
        return
    table = Table(title=f"Open data sources ({len(man)}) - {man.path}", show_lines=False)
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("licence")
    table.add_column("NC")
    table.add_column("sha256")
    table.add_column("dest")
    table.add_column("url", overflow="fold")
    for s in man:
        table.add_row(
            s.name,
            s.licence,
            "[yellow]NC[/]" if s.nc else "",
            "yes" if s.verified else "[yellow]none[/]",
            s.dest + ("/" if s.archive == "zip" else ""),
            s.url,
        )
    show(table)
    console.print(
        "NC: non-commercial licence (skip with --exclude-nc). sha256 'none': no checksum, fetched only with "
        "--allow-unverified. Details and notes: docs/data-sources.md."
    )


def _report(result: FetchResult) -> None:
    table = Table(title=f"kgrec fetch-data -> {result.dest_dir}")
    table.add_column("source", style="bold", no_wrap=True)
    table.add_column("status")
    table.add_column("checked")
    table.add_column("files")
    for item in result.items:
        style = _STYLE.get(item.status, "")
        checked = "sha256 ok" if item.verified and item.status in ("downloaded", "present") else (
            "unverified" if item.status in ("downloaded", "present") else "")
        files = ", ".join(item.files[:3]) + (f" (+{len(item.files) - 3})" if len(item.files) > 3 else "")
        table.add_row(item.name, f"[{style}]{item.status}[/]" if style else item.status, checked, files)
    show(table)
    for item in result.items:
        if item.status == "conflict" and item.error:  # failures are reported once, by the error message
            console.print(f"[{_STYLE[item.status]}]{item.name}:[/] {item.error}", highlight=False)
    if result.refused:
        names = " ".join(f"--source {i.name}" for i in result.refused)
        console.print(
            f"[yellow]{len(result.refused)} source(s) have no checksum and were not fetched[/]; to fetch them "
            f"unverified: kgrec fetch-data -d {result.dest_dir} --allow-unverified {names}",
            highlight=False,
        )
    if result.ok:
        console.print(f"Done. Use it with: export KGREC_DATA={result.dest_dir.resolve()}", highlight=False)


__all__ = ["fetch_data"]
