"""Cohort stage: EHR extracts -> patients -> visits -> diagnoses, procedures, drugs (ATC3)."""

from __future__ import annotations

from kgrec.cohort.base import Cohort, CohortLoader
from kgrec.cohort.codes import Mappings
from kgrec.cohort.eicu import EicuLoader
from kgrec.cohort.mimic import Mimic3Loader, Mimic4Loader
from kgrec.cohort.synthea import SyntheaLoader

LOADERS: dict[str, type[CohortLoader]] = {cls.name: cls for cls in (Mimic3Loader, Mimic4Loader, EicuLoader, SyntheaLoader)}


def get_loader(name: str) -> type[CohortLoader]:
    """Resolve a source name (``mimic3``, ``mimic4``, ``eicu``, ``synthea``) to its loader class."""
    try:
        return LOADERS[name]
    except KeyError:
        raise ValueError(f"unknown source {name!r}; choose from {', '.join(sorted(LOADERS))}") from None


__all__ = ["Cohort", "CohortLoader", "LOADERS", "Mappings", "get_loader"]
