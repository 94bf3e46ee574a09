"""Cohort stage: EHR extracts -> patients -> visits -> diagnoses, procedures, drugs (ATC3)."""

from __future__ import annotations

from pathlib import Path

from kgrec.cohort.base import Cohort, CohortLoader
from kgrec.cohort.codes import Mappings
from kgrec.cohort.eicu import EicuLoader
from kgrec.cohort.mimic import Mimic3Loader, Mimic4Loader
from kgrec.cohort.omop import OmopLoader
from kgrec.cohort.omop_io import safe_url
from kgrec.cohort.synthea import SyntheaLoader
from kgrec.errors import InputError

LOADERS: dict[str, type[CohortLoader]] = {cls.name: cls for cls in (Mimic3Loader, Mimic4Loader, EicuLoader, SyntheaLoader, OmopLoader)}


def get_loader(name: str) -> type[CohortLoader]:
    """Resolve a source name (``mimic3``, ``mimic4``, ``eicu``, ``synthea``, ``omop``) to its loader class."""
    try:
        return LOADERS[name]
    except KeyError:
        raise ValueError(f"unknown source {name!r}; choose from {', '.join(sorted(LOADERS))}") from None


def open_loader(source: str, data_dir: Path, source_dir: Path | str | None, mappings: Mappings, **omop) -> tuple[CohortLoader, object]:
    """The loader of ``source`` over its folder (default ``<data_dir>/<default folder>``), and where it
    reads, for messages. ``omop``: :class:`OmopLoader`'s options (``db_url``, ``db_schema``,
    ``vocab_schema``, ``visit_settings``, ``cdm_version``); given for another source they are an error."""
    loader_cls = get_loader(source)
    given = {k: v for k, v in omop.items() if v is not None}
    if source != "omop":
        if given:
            raise InputError("--db-url, --db-schema, --vocab-schema, --visit-setting and --cdm-version are OMOP CDM options; "
                             f"source {source!r} reads a folder")
        src = Path(source_dir) if source_dir else data_dir / loader_cls.default_folder
        return loader_cls(src, mappings), src
    src = Path(source_dir) if source_dir else (None if given.get("db_url") else data_dir / loader_cls.default_folder)
    settings = given.pop("visit_settings", None)
    loader = OmopLoader(src, mappings, **given, **({"settings": tuple(settings)} if settings else {}))
    return loader, src if src is not None else safe_url(given["db_url"])


__all__ = ["Cohort", "CohortLoader", "LOADERS", "Mappings", "get_loader", "open_loader"]
