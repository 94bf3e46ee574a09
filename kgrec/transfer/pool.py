"""Sites and pooled cohorts for cross-cohort transfer (protocol: docs/protocol.md, "Across sites").

A *site* is a workspace made by ``kgrec prepare``. Pooling joins the visit tables of a target site and
one or more source sites into one in-memory :class:`~kgrec.cohort.Cohort`:

- patient and visit ids are prefixed with the site name (``eicu:002-1234``), so sites never collide;
  a ``site`` column says where each visit comes from;
- the output space is the **target's ATC3 vocabulary** (its formulary): source drugs outside it are
  dropped from the source visits' labels, and a source visit left with no drug of the vocabulary is no
  prediction target; the overlap is reported, and a source sharing no drug with the target is an error;
- the DDI pairs are the target's; code names are merged (the target's name wins).

Every :class:`~kgrec.models.base.Recommender` trains on a pooled cohort unchanged; site-aware models
read ``cohort.visits["site"]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from kgrec.cohort.base import VISIT_COLUMNS, Cohort
from kgrec.errors import WorkspaceError


@dataclass
class Site:
    """One workspace's cohort under a site name."""

    name: str
    workspace: Path
    cohort: Cohort

    @property
    def patients(self) -> list[str]:
        return sorted(set(self.cohort.visits["patient_id"].astype(str)))


def load_site(workspace: Path | str, name: str | None = None) -> Site:
    """The cohort of a workspace, checked for what transfer needs; errors name the workspace."""
    ws = Path(workspace)
    folder = ws / "cohort"
    if not (folder / "visits.parquet").exists():
        raise WorkspaceError(f"workspace {ws}: no cohort (run `kgrec prepare -w {ws}` first)")
    try:
        cohort = Cohort.load(folder)
    except WorkspaceError:
        raise
    except Exception as exc:  # a cohort written by an older kgrec, or damaged
        raise WorkspaceError(f"workspace {ws}: cannot read its cohort ({type(exc).__name__}: {exc}); re-run `kgrec prepare -w {ws}`") from None
    missing = [c for c in VISIT_COLUMNS if c not in cohort.visits.columns]
    if missing or cohort.codes is None or "kind" not in cohort.codes.columns:
        raise WorkspaceError(f"workspace {ws}: its cohort was prepared by an older kgrec (missing {missing or ['codes.kind']}); re-run `kgrec prepare -w {ws}`")
    return Site(name or cohort.source, ws, cohort)


def site_names(sites: Sequence[Site]) -> list[Site]:
    """Unique site names: a repeated source name gets ``-2``, ``-3`` ... (two MIMIC-III hospitals)."""
    seen: dict[str, int] = {}
    out = []
    for s in sites:
        n = seen.get(s.name, 0) + 1
        seen[s.name] = n
        out.append(Site(s.name if n == 1 else f"{s.name}-{n}", s.workspace, s.cohort))
    return out


def drug_overlap(target: Site, source: Site) -> dict:
    t, s = set(target.cohort.vocab("drug")), set(source.cohort.vocab("drug"))
    return {"target_drugs": len(t), "source_drugs": len(s), "shared": len(t & s), "share_of_target": round(len(t & s) / len(t), 4) if t else 0.0}


def prefixed(site: str, ids) -> list[str]:
    return [f"{site}:{i}" for i in ids]


def pool(target: Site, sources: Sequence[Site]) -> tuple[Cohort, dict]:
    """The pooled cohort (target first) and a report (per site: visits, targets, drug overlap)."""
    sites = site_names([target, *sources])
    target, sources = sites[0], sites[1:]
    vocab = set(target.cohort.vocab("drug"))
    if not vocab:
        raise WorkspaceError(f"workspace {target.workspace}: the target cohort has no mapped drug, nothing to recommend")
    if not target.cohort.eval_mask().any():
        raise WorkspaceError(f"workspace {target.workspace}: the target cohort has no evaluable visit (≥1 drug and ≥1 diagnosis or procedure)")
    report: dict = {"target": target.name, "vocabulary": "target ATC3 vocabulary", "n_drugs": len(vocab), "sites": {}}
    frames, codes = [], [target.cohort.codes]
    for i, s in enumerate(sites):
        v = s.cohort.visits.copy()
        if i > 0:
            ov = drug_overlap(target, s)
            if ov["shared"] == 0:
                raise WorkspaceError(f"workspace {s.workspace}: its drugs share no ATC3 class with the target's ({target.workspace}); nothing to learn from")
            v["drugs"] = v["drugs"].map(lambda ds: [d for d in ds if d in vocab])
            codes.append(s.cohort.codes)
        else:
            ov = None
        v["patient_id"] = prefixed(s.name, v["patient_id"].astype(str))
        v["visit_id"] = prefixed(s.name, v["visit_id"].astype(str))
        v["site"] = s.name
        frames.append(v)
        tmp = Cohort(v, s.cohort.codes, s.cohort.source)
        report["sites"][s.name] = {"workspace": str(s.workspace), "source": s.cohort.source, "n_patients": int(v["patient_id"].nunique()),
                                   "n_visits": int(len(v)), "n_eval_visits": int(tmp.eval_mask().sum()), **({"drug_overlap": ov} if ov else {})}
    visits = pd.concat(frames, ignore_index=True)
    code_table = pd.concat(codes, ignore_index=True).drop_duplicates("code", keep="first").reset_index(drop=True)
    pooled = Cohort(visits, code_table, f"{target.name}+{'+'.join(s.name for s in sources)}", {"pooled": report}, None, target.cohort.ddi)
    return pooled, report
