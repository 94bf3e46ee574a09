"""Reading a new patient's codes that the model never saw, through the knowledge graph.

A model trained at one site knows that site's codes (ICD-9 in MIMIC-III). A patient coded elsewhere
(ICD-10, another site's local codes) is read code by code: a code the model knows is used as it is; an
unknown one is replaced, for the model's input only, by the known code the graph says stands for it
(:meth:`kgrec.graph.expand.CodeExpander.translate`: its GEM partner in the other ICD version, its
category, or a known code sharing its nearest Disease). Each replacement is reported (``read_as``, the
score and the concept they share); a code the graph links to nothing known stays listed as unknown.
Rationale paths still start from the codes the user gave, and from their stand-ins.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from kgrec.cohort.base import Cohort
from kgrec.explain.patient import PatientCodes
from kgrec.graph.expand import CodeExpander


class CodeGrounder:
    """Translates codes unknown to a model into codes it knows (built lazily: the graph tables load on first use)."""

    def __init__(self, workspace: Path | str, cohort: Cohort, known: set[str] | None):
        self.workspace, self.cohort = Path(workspace), cohort
        self.known: Mapping[str, int] = {}
        if known is not None:
            counts = Counter(c for col in ("diagnoses", "procedures") for cs in cohort.visits[col] for c in cs)
            self.known = {c: counts.get(c, 0) for c in known}
        self._expander: CodeExpander | None = None
        self.available = (self.workspace / "graph" / "tables" / "nodes").is_dir()

    @property
    def expander(self) -> CodeExpander:
        if self._expander is None:
            from kgrec.graph.tables import GraphTables

            self._expander = CodeExpander.from_tables(GraphTables.load(self.workspace / "graph" / "tables"), names=self.cohort.names())
        return self._expander

    def translate(self, code: str) -> dict | None:
        if not self.available or not self.known:
            return None
        hits = self.expander.translate(code, self.known, limit=1)
        return hits[0] if hits else None

    def ground(self, pc: PatientCodes) -> tuple[PatientCodes, dict[str, dict]]:
        """The patient with unknown codes replaced by their stand-ins, and ``{code: translation}``."""
        done: dict[str, dict] = {}

        def swap(codes: list[str]) -> list[str]:
            out: list[str] = []
            for c in codes:
                if c not in self.known:
                    t = done.get(c) if c in done else self.translate(c)
                    if t is not None:
                        done[c] = t
                        c = t["code"]
                if c not in out:
                    out.append(c)
            return out

        if not self.known:
            return pc, {}
        earlier = [{**e, "diagnoses": swap(e["diagnoses"]), "procedures": swap(e["procedures"])} for e in pc.earlier]
        return replace(pc, diagnoses=swap(pc.diagnoses), procedures=swap(pc.procedures), earlier=earlier), done
