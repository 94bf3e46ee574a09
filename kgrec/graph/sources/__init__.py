"""The graph's sources: one module per open source, each turning its files into node/edge tables.

``REGISTRY`` maps a source name (``kgrec load-graph --sources``) to its :class:`SourceSpec`. Its order
is the merge priority: when several sources define the same node, the earliest one gives the node's
``source`` and each property is taken from the earliest source that has it (see
:mod:`kgrec.graph.build`). Derived sources (``icd``) run after all others, since they read their output.

``nc``: the whole source is non-commercial and is skipped with ``--exclude-nc``. ``nc_parts``: what of a
mixed source is non-commercial and is left out with ``--exclude-nc`` (the rest stays).
"""

from __future__ import annotations

from dataclasses import dataclass

from kgrec.graph.sources._base import Context, Source, SourceTables, is_nc
from kgrec.graph.sources.atc import AtcSource
from kgrec.graph.sources.bc5cdr import Bc5cdrSource
from kgrec.graph.sources.ddi import DdiSource
from kgrec.graph.sources.disease_ontology import DiseaseOntologySource
from kgrec.graph.sources.drugbank import DrugBankSource
from kgrec.graph.sources.drugcentral import DrugCentralSource
from kgrec.graph.sources.ehr import EhrSource
from kgrec.graph.sources.gems import GemsSource
from kgrec.graph.sources.icd import IcdSource
from kgrec.graph.sources.medi import MediSource
from kgrec.graph.sources.pharmacotherapydb import PharmacotherapyDBSource
from kgrec.graph.sources.trials import TrialsSource


@dataclass(frozen=True)
class SourceSpec:
    name: str
    module: str
    cls: type[Source]
    licence: str
    nc: bool
    nc_parts: str
    requires: tuple[str, ...]
    derived: bool
    files: tuple[str, ...]
    description: str

    def create(self) -> Source:
        return self.cls()


_ORDER = (
    AtcSource,
    DrugBankSource,
    DiseaseOntologySource,
    IcdSource,
    GemsSource,
    PharmacotherapyDBSource,
    DrugCentralSource,
    MediSource,
    TrialsSource,
    Bc5cdrSource,
    DdiSource,
    EhrSource,
)

REGISTRY: dict[str, SourceSpec] = {
    c.name: SourceSpec(
        name=c.name,
        module=c.__module__,
        cls=c,
        licence=c.licence,
        nc=c.nc,
        nc_parts=c.nc_parts,
        requires=c.requires,
        derived=c.derived,
        files=c.files,
        description=c.description,
    )
    for c in _ORDER
}

# The cohort source needs a workspace; it is part of the default selection only when one is given.
WORKSPACE_SOURCES = ("ehr",)


def source_names() -> list[str]:
    return list(REGISTRY)


__all__ = ["REGISTRY", "WORKSPACE_SOURCES", "Context", "Source", "SourceSpec", "SourceTables", "is_nc", "source_names"]
