"""A new patient's input: the validated JSON schema (:class:`PatientIn`), parsing and loading, and code
normalisation (``"401.9"`` + version 9 -> ``ICD9CM:4019``). See :mod:`kgrec.explain.recommend` for the
JSON form and docs/explain.md for the limits."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from kgrec.cohort.codes import atc3, icd_id, versions_by_form
from kgrec.errors import InputError

MAX_CODES = 200
MAX_VISITS = 50
MAX_DRUGS = 100
MAX_CODE_LEN = 40

_CODE_CHARS = re.compile(r"^[A-Za-z0-9.\-:]+$")
_PREFIXED = re.compile(r"^([A-Za-z][A-Za-z0-9]*):([A-Za-z0-9.\-]+)$")

CodeText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_CODE_LEN)]


class CodeIn(BaseModel):
    """One ICD code with its version: ``{"code": "401.9", "version": 9}``."""

    model_config = ConfigDict(extra="forbid")
    code: CodeText
    version: Literal[9, 10] | None = Field(None, description="ICD version (9 or 10); default: the patient's icd_version")

    @field_validator("version", mode="before")
    @classmethod
    def _int_version(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip() in ("9", "10"):
            return int(v)
        return v


CodeEntry = CodeText | CodeIn


# a whole ATC code of level 3, 4 or 5 (B01A, B01AC, B01AC06), any case; the HTTP schema uses the same pattern
ATC_PATTERN = r"^[A-Za-z][0-9]{2}[A-Za-z]([A-Za-z]([0-9]{2})?)?$"
_ATC_WHOLE = re.compile(ATC_PATTERN)


def _check_atc(codes: list[str]) -> list[str]:
    out = []
    for c in codes:
        a = atc3(c) if _ATC_WHOLE.match(str(c).strip()) else None  # a whole code: "B01A' OR 1=1" is not B01A
        if a is None:
            raise ValueError(f"{c!r} is not an ATC code of level 3 or deeper (e.g. B01A or B01AC06)")
        if a not in out:
            out.append(a)
    return out


class VisitIn(BaseModel):
    """An earlier visit of a new patient."""

    model_config = ConfigDict(extra="forbid")
    diagnoses: list[CodeEntry] = Field(default_factory=list, max_length=MAX_CODES)
    procedures: list[CodeEntry] = Field(default_factory=list, max_length=MAX_CODES)
    drugs: list[CodeText] = Field(default_factory=list, max_length=MAX_DRUGS, description="ATC codes (level 3 or deeper)")

    _atc = field_validator("drugs")(classmethod(lambda cls, v: _check_atc(v)))


class PatientIn(BaseModel):
    """A new patient: the current visit's codes, optional earlier visits, the drugs taken now."""

    model_config = ConfigDict(extra="forbid")
    id: Annotated[str, StringConstraints(max_length=100)] | None = None
    icd_version: Literal[9, 10] | None = Field(None, description="version of plain codes such as '401.9'")
    diagnoses: list[CodeEntry] = Field(default_factory=list, max_length=MAX_CODES)
    procedures: list[CodeEntry] = Field(default_factory=list, max_length=MAX_CODES)
    earlier_visits: list[VisitIn] = Field(default_factory=list, max_length=MAX_VISITS)
    current_drugs: list[CodeText] = Field(default_factory=list, max_length=MAX_DRUGS, description="ATC codes the patient takes now (DDI screening)")
    age: float | None = Field(None, ge=0, le=130, description="age in years at the visit (the cohort protocol caps it at 90)")
    sex: Literal["F", "M"] | None = Field(None, description="F or M (female/male accepted)")

    @field_validator("sex", mode="before")
    @classmethod
    def _sex(cls, v: Any) -> Any:
        if isinstance(v, str):
            return {"f": "F", "female": "F", "m": "M", "male": "M"}.get(v.strip().lower(), v)
        return v

    _atc = field_validator("current_drugs")(classmethod(lambda cls, v: _check_atc(v)))

    @field_validator("icd_version", mode="before")
    @classmethod
    def _int_version(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip() in ("9", "10"):
            return int(v)
        return v

    @model_validator(mode="after")
    def _not_empty(self) -> PatientIn:
        if not self.diagnoses and not self.procedures:
            raise ValueError("empty patient: the current visit needs at least one diagnosis or procedure code")
        return self


def validation_message(exc: ValidationError) -> str:
    """A pydantic error as readable lines: ``diagnoses.2.code: String should have at most 40 characters``."""
    lines = []
    for e in exc.errors()[:20]:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x not in ("str", "CodeIn", "constrained-str"))
        msg = str(e.get("msg", "")).removeprefix("Value error, ")
        lines.append(f"{loc}: {msg}" if loc else msg)
    more = len(exc.errors()) - 20
    return "; ".join(lines) + (f"; and {more} more" if more > 0 else "")


def parse_patient(data: Any) -> PatientIn:
    """Validate a patient dict (or JSON text); errors as :class:`InputError` with readable messages."""
    import json

    if isinstance(data, str | bytes):
        try:
            data = json.loads(data.removeprefix("\ufeff") if isinstance(data, str) else data)
        except json.JSONDecodeError as exc:
            raise InputError(f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from exc
        except RecursionError:  # e.g. "[" x 100,000: the parser's recursion limit, not a crash
            raise InputError("not a patient: JSON nested too deeply") from None
    if isinstance(data, PatientIn):
        return data
    if not isinstance(data, dict):
        raise InputError("a patient must be a JSON object with diagnoses/procedures (see docs/explain.md)")
    try:
        return PatientIn.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"invalid patient: {validation_message(exc)}") from None


def load_patient(path: Path | str, max_bytes: int = 1 << 20) -> PatientIn:
    p = Path(path)
    if p.is_dir():
        raise InputError("is a folder: give the patient's JSON file (schema: docs/explain.md)", path=p)
    if not p.is_file():
        raise InputError("patient file not found", path=p)
    if p.stat().st_size > max_bytes:
        raise InputError(f"patient file larger than {max_bytes // 1024} KiB", path=p)
    try:
        text = p.read_text(encoding="utf-8-sig")  # a UTF-8 BOM (Windows editors) is fine
    except UnicodeDecodeError as exc:
        raise InputError("not UTF-8 text", path=p) from exc
    try:
        return parse_patient(text)
    except InputError as exc:
        raise InputError(str(exc), path=p) from None


# The version of a code written without one comes from its form (kgrec.cohort.codes.versions_by_form).
def normalise_code(entry: str | CodeIn, kind: str, default_version: int | None, known: set[str] | None = None) -> str:
    """``"401.9"`` (version 9) -> ``ICD9CM:4019``; ``"ICD10CM:I10"`` kept (dots dropped, upper case)."""
    if isinstance(entry, CodeIn):
        code, version = entry.code, entry.version or default_version
    else:
        code, version = entry, default_version
    code = code.strip()
    if not _CODE_CHARS.match(code):
        raise InputError(f"{code!r}: a code has letters, digits, '.', '-' only")
    m = _PREFIXED.match(code)
    if m:
        system, rest = m.group(1).upper(), m.group(2)
        if isinstance(entry, CodeIn) and entry.version:
            raise InputError(f"{code!r}: give either a prefixed id or a version, not both")
        return f"{system}:{rest.replace('.', '').upper()}"
    fits = versions_by_form(code, kind)
    system = "ICD-9-CM or ICD-10-CM" if kind == "diagnosis" else "ICD-9-CM procedure or ICD-10-PCS"
    if not fits:
        raise InputError(f"{code!r} is not a valid {system} code")
    if version is not None:
        if version not in fits:
            raise InputError(f"{code!r} is not an ICD-{version} {kind} code (its form is ICD-{fits[0]}); drop the version to have it detected")
        return icd_id(code, version, kind)
    if len(fits) == 1:
        return icd_id(code, fits[0], kind)
    ids = [icd_id(code, v, kind) for v in fits]
    hits = [i for i in ids if known is not None and i in known]
    if len(hits) == 1:  # only one reading is a code kgrec knows
        return hits[0]
    raise InputError(f"{code!r} reads as ICD-9 and as ICD-10 ({' or '.join(ids)}): give its version "
                     f"(--icd-version, \"icd_version\" or {{\"code\": \"{code}\", \"version\": 9}})")


@dataclass
class PatientCodes:
    """A patient with normalised code ids (``inputs`` maps each id back to what the user wrote)."""

    diagnoses: list[str]
    procedures: list[str]
    earlier: list[dict]
    current_drugs: list[str]
    inputs: dict[str, str] = field(default_factory=dict)
    label: str = "patient"
    age: float | None = None
    sex: str | None = None


def normalise_patient(p: PatientIn, known: set[str] | None = None) -> PatientCodes:
    """Normalised ids; a plain code's version comes from the code, its entry, ``icd_version``, or its
    form (:func:`versions_by_form`; ``known`` ids settle a form both versions share)."""
    errors: list[str] = []
    inputs: dict[str, str] = {}

    def norm(entries: Sequence, kind: str, where: str) -> list[str]:
        out = []
        for i, e in enumerate(entries):
            try:
                c = normalise_code(e, kind, p.icd_version, known)
            except (InputError, ValueError) as exc:
                errors.append(f"{where}.{i}: {exc}")
                continue
            inputs.setdefault(c, e.code if isinstance(e, CodeIn) else e)
            if c not in out:
                out.append(c)
        return out

    dx = norm(p.diagnoses, "diagnosis", "diagnoses")
    px = norm(p.procedures, "procedure", "procedures")
    earlier = [
        {"diagnoses": norm(v.diagnoses, "diagnosis", f"earlier_visits.{k}.diagnoses"),
         "procedures": norm(v.procedures, "procedure", f"earlier_visits.{k}.procedures"), "drugs": list(v.drugs)}
        for k, v in enumerate(p.earlier_visits)
    ]
    if errors:
        raise InputError("invalid patient: " + "; ".join(errors[:20]) + (f"; and {len(errors) - 20} more" if len(errors) > 20 else ""))
    return PatientCodes(dx, px, earlier, list(p.current_drugs), inputs, p.id or "patient", p.age, p.sex)


__all__ = ["ATC_PATTERN", "MAX_CODES", "MAX_DRUGS", "MAX_VISITS", "CodeIn", "PatientCodes", "PatientIn", "VisitIn", "load_patient", "normalise_code",
           "normalise_patient", "parse_patient", "validation_message", "versions_by_form"]
