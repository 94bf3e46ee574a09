"""The HTTP service (FastAPI): ``POST /recommend``, ``POST /explain``, ``GET /health``, and a web page.

The page (``GET /``, assets under ``/static`` shipped in ``kgrec/serve/static``: plain HTML, CSS and JS,
nothing fetched from elsewhere) calls the API plus two look-ups: ``GET /codes?q=`` (code autocomplete
from the workspace cohort) and ``GET /visits`` (a few visits of the workspace).

``kgrec serve`` builds the app with :func:`create_app` and runs it with uvicorn on 127.0.0.1 by
default. The model, the cohort and the graph store are loaded once, at start-up (the app's lifespan);
requests share them under a lock (the embedded store's connection is not shared between threads).

Errors go through one path (:func:`error_response`) and are JSON ``{"detail": "..."}``: 400 for a
well-formed request the service cannot answer (unknown visit, no known code) and for malformed JSON
(including NaN/Infinity, numbers out of range, lone surrogates, nesting deeper than 200: strict JSON,
checked before FastAPI sees the body), 408 for a body not complete within ``body_timeout`` seconds,
413 for a body over ``max_body`` bytes (256 KiB by default), 422 for a request that fails the schema
(empty patient, wrong types, too many codes) with ``errors`` the list of ``{loc, msg, type}`` (never the
input: it may hold patient data or text that cannot be encoded). Every string in an error body is
encodable UTF-8. ``/health`` counts requests and error responses, each once, in one middleware.

The OpenAPI document (``/openapi.json``) describes exactly these bodies and statuses and states the
"exactly one of ``visit_id`` or ``patient``" rule as a ``oneOf``. ``/docs`` is Swagger UI served from the
installed ``swagger-ui-bundle-v2`` package (no CDN); without that package ``/docs`` is a plain page
listing the operations and linking the document.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, field_validator, model_validator

from kgrec.errors import KgrecError
from kgrec.explain.recommend import (
    MAX_DRUGS,
    MAX_PATHS_PER_DRUG,
    MAX_TOP_K,
    PatientIn,
    RecommendService,
)
from kgrec.explain.patient import ATC_PATTERN
from kgrec.serve.guard import ErrorBody, Guard, ValidationErrorBody, _readable, error_response, error_responses, strict_json_problem
from kgrec.serve.lookup import CodeIndex, list_visits

log = logging.getLogger("kgrec.serve")

MAX_BODY = 256 * 1024
BODY_TIMEOUT = 10.0  # seconds for a request body to arrive in full (a client sending half a body)
STATIC = Path(__file__).with_name("static")

def _json_number(v):
    """A JSON number only: true/false and strings are refused (they were read as 1 and as numbers)."""
    if isinstance(v, (bool, str)):
        raise ValueError("must be a JSON number, not true/false or a string")
    return v


_numbers = field_validator("threshold", "paths_per_drug", "top_k", mode="before", check_fields=False)(classmethod(lambda cls, v: _json_number(v)))
Atc = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=16, pattern=ATC_PATTERN)]


# "exactly one of visit_id or patient", as JSON Schema (the model validator below is the same rule)
_ONE_TARGET = {
    "oneOf": [
        {"required": ["visit_id"], "properties": {"visit_id": {"type": "string"}}},
        {"required": ["patient"], "properties": {"patient": {"type": "object"}}},
    ]
}


class _Target(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_ONE_TARGET)
    visit_id: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"\S")] | None = Field(
        None, description="a visit of the workspace cohort (e.g. '100375'); surrounding spaces are ignored")
    patient: PatientIn | None = Field(None, description="a new patient (see PatientIn)")
    threshold: float | None = Field(None, ge=0.0, le=1.0, description="minimum probability (default: the model's tuned threshold)")
    paths_per_drug: int = Field(3, ge=0, le=MAX_PATHS_PER_DRUG)
    _check_numbers = _numbers

    @model_validator(mode="after")
    def _one_target(self):
        if (self.visit_id is None) == (self.patient is None):
            raise ValueError("give exactly one of visit_id or patient")
        if self.visit_id is not None:
            self.visit_id = self.visit_id.strip()
        return self


class RecommendRequest(_Target):
    """``POST /recommend``: a visit id or a patient, and ranking options."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={**_ONE_TARGET, "examples": [
        {"patient": {"diagnoses": ["427.31", "428.0", "I10"], "age": 71, "sex": "F"}, "current_drugs": ["C07AB02"], "top_k": 5},
        {"visit_id": "100375", "top_k": 5},
    ]})

    top_k: int = Field(10, ge=1, le=MAX_TOP_K)
    current_drugs: list[Atc] = Field(default_factory=list, max_length=MAX_DRUGS, description="ATC codes taken now (DDI screening)")
    explain: StrictBool = Field(True, description="include rationale paths and texts")
    include_current: StrictBool = Field(False, description="list drugs taken now (current_drugs, the patient's own) too, marked current")


class ExplainRequest(_Target):
    """``POST /explain``: rationales for given drug classes (default: the top-k recommendations)."""

    drugs: list[Atc] | None = Field(None, max_length=50, description="ATC3 drug classes to explain")
    top_k: int = Field(5, ge=1, le=MAX_TOP_K)


def create_app(workspace: Path | str | None = None, model: str = "student", store: str | None = "embedded", store_kw: dict | None = None,
               service: RecommendService | None = None, max_body: int = MAX_BODY, body_timeout: float = BODY_TIMEOUT,
               allowed_hosts: list[str] | None = None) -> FastAPI:
    """The app; pass ``service`` to reuse an already loaded :class:`RecommendService` (``kgrec serve`` loads
    it before binding; tests). ``allowed_hosts``: the ``Host`` names it answers (others get 400;
    :func:`kgrec.serve.server.allowed_hosts`); None accepts any (in-process use)."""
    state: dict[str, Any] = {"service": service, "lock": threading.Lock(), "started": time.time(), "requests": 0, "errors": 0}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        own = state["service"] is None
        if own:
            state["service"] = RecommendService(workspace, model, store, store_kw)
        try:
            yield
        finally:
            if own and state["service"] is not None:
                state["service"].close()
                state["service"] = None

    app = FastAPI(
        title="kgrec",
        version=_version(),
        summary="Explainable knowledge-graph medication recommendation",
        description="Ranked ATC3 drug classes with probabilities, DDI warnings, rationale paths from the knowledge graph "
        "(each step with its source and licence) and natural-language rationales. See docs/explain.md.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(400, "malformed JSON: " + _readable(errors))
        return error_response(422, _readable(errors), errors)

    @app.exception_handler(KgrecError)
    async def _kgrec(request: Request, exc: KgrecError):
        return error_response(400, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        return error_response(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("internal error on %s", request.url.path)
        return error_response(500, f"internal error ({type(exc).__name__}); the service is still running")

    def svc() -> RecommendService:
        s = state["service"]
        if s is None:
            raise KgrecError("the service is not loaded")
        return s

    @app.get("/health", summary="Liveness and what is loaded")
    def health() -> dict:
        s = state["service"]
        return {
            "status": "ok" if s is not None else "loading",
            "model": s.model_name if s else None,
            "deployed": s.model_info if s else None,
            "store": s.store_name if s else None,
            "n_drugs": len(s.drug_vocab) if s else None,
            "threshold": float(s.model.threshold) if s else None,
            "load_seconds": round(s.load_seconds, 2) if s else None,
            "uptime_seconds": round(time.time() - state["started"], 1),
            "requests": state["requests"],
            "errors": state["errors"],
        }

    @app.post("/recommend", summary="Ranked drug classes with DDI warnings, rationale paths and rationales",
              responses=error_responses(400, 408, 413, 422))
    def post_recommend(req: RecommendRequest) -> dict:
        s = svc()
        with state["lock"]:
            res = s.recommend(req.visit_id, req.patient, top_k=req.top_k, threshold=req.threshold, paths_per_drug=req.paths_per_drug,
                              current_drugs=req.current_drugs, explain=req.explain, include_current=req.include_current)
        return res.to_dict()

    @app.post("/explain", summary="Natural-language rationales (deterministic realiser) with their paths",
              responses=error_responses(400, 408, 413, 422))
    def post_explain(req: ExplainRequest) -> dict:
        s = svc()
        with state["lock"]:
            res = s.recommend(req.visit_id, req.patient, top_k=req.top_k, threshold=req.threshold if req.drugs is None else 0.0,
                              paths_per_drug=req.paths_per_drug, drugs=req.drugs)
        return {
            "visit": res.visit, "model": {"name": res.model, **res.model_info}, "unknown_codes": res.unknown_codes, "notes": res.notes,
            "rationales": [{"drug": d.drug, "name": d.name, "probability": round(d.probability, 4), "rationale": d.rationale,
                            "paths": [p.to_dict() for p in d.paths], "cautions": [p.to_dict() for p in d.cautions]} for d in res.drugs],
            "timings_ms": res.timings_ms,
        }

    @app.get("/codes", summary="Code autocomplete: the workspace cohort's codes and every ICD-10-CM code, matching a code or words of a name",
             responses=error_responses(400, 422))
    def get_codes(
        q: Annotated[str, Query(min_length=1, max_length=64, description="code (427.31, 42731, ICD9CM:42731) or words of its name")],
        kind: Annotated[list[Literal["diagnosis", "procedure", "drug"]] | None, Query(description="only these kinds (repeat: kind=diagnosis&kind=procedure)")] = None,
        limit: Annotated[int, Query(ge=1, le=50)] = 15,
    ) -> dict:
        s = svc()
        if state.get("codes") is None:
            state["codes"] = CodeIndex(s)
        return {"q": q, "codes": state["codes"].search(q, kind, limit)}

    @app.get("/visits", summary="Visits of the workspace cohort (test split first), by visit or patient id prefix",
             responses=error_responses(400, 422))
    def get_visits(
        q: Annotated[str, Query(max_length=64, description="visit or patient id prefix")] = "",
        limit: Annotated[int, Query(ge=1, le=200)] = 20,
    ) -> dict:
        s = svc()
        total, visits = list_visits(s, q, limit)
        return {"source": s.cohort.source, "total": total, "visits": visits}

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/index.html", include_in_schema=False)
    def index_html() -> RedirectResponse:
        return RedirectResponse("/")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _docs(app)
    _state_rules(app)
    app.add_middleware(Guard, limit=max_body or 1 << 62, timeout=body_timeout, state=state)
    if allowed_hosts is not None:  # outermost: a foreign Host header is refused before anything else runs
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    return app


# Rules the patient models' validators enforce that pydantic's generated schema does not say (their
# validators run after whitespace is stripped, accept "9" for 9, and check ATC codes by shape).
# tests/test_hardening_api.py (Schemathesis: schema-valid requests accepted, schema-invalid rejected)
# fails when these drift from the validators.
_NON_BLANK = r"\S"
_ATC = r"^\s*" + ATC_PATTERN[1:-1] + r"\s*$"  # the validators strip the value first
_VERSION = {"anyOf": [{"enum": [9, 10]}, {"enum": ["9", "10"]}, {"type": "null"}]}


def _state_rules(app: FastAPI) -> None:
    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        spec = FastAPI.openapi(app)
        schemas = spec["components"]["schemas"]
        for name, atc_fields in (("PatientIn", ("current_drugs",)), ("VisitIn", ("drugs",)), ("RecommendRequest", ("current_drugs",)),
                                 ("ExplainRequest", ("drugs",))):
            props = schemas.get(name, {}).get("properties", {})
            for f in atc_fields:
                items = props.get(f, {}).get("items") or next((a.get("items") for a in props.get(f, {}).get("anyOf", []) if "items" in a), None)
                if items is not None:
                    items["pattern"] = _ATC
        for name in ("PatientIn", "VisitIn", "CodeIn"):
            for prop in schemas.get(name, {}).get("properties", {}).values():
                _non_blank(prop)
        for name, field in (("PatientIn", "icd_version"), ("CodeIn", "version")):
            prop = schemas.get(name, {}).get("properties", {}).get(field)
            if prop is not None:
                keep = {k: v for k, v in prop.items() if k in ("description", "title", "default")}
                prop.clear()
                prop.update({**keep, **_VERSION})
        if "PatientIn" in schemas:  # the current visit needs a diagnosis or a procedure
            schemas["PatientIn"]["anyOf"] = [
                {"required": ["diagnoses"], "properties": {"diagnoses": {"minItems": 1}}},
                {"required": ["procedures"], "properties": {"procedures": {"minItems": 1}}},
            ]
        app.openapi_schema = spec
        return spec

    app.openapi = openapi


def _non_blank(schema: Any) -> None:
    """Stripped strings with a minimum length: at least one non-space character."""
    if isinstance(schema, dict):
        if schema.get("type") == "string" and schema.get("minLength", 0) >= 1 and "pattern" not in schema:
            schema["pattern"] = _NON_BLANK
        for v in schema.values():
            _non_blank(v)
    elif isinstance(schema, list):
        for v in schema:
            _non_blank(v)


def _docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI from the installed ``swagger-ui-bundle-v2`` assets (nothing from a CDN), else a
    plain page listing the operations."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        swagger_ui_path = None

    if swagger_ui_path is not None:
        from fastapi.openapi.docs import get_swagger_ui_html

        app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

        @app.get("/docs", include_in_schema=False)
        def docs() -> HTMLResponse:
            return get_swagger_ui_html(openapi_url="/openapi.json", title="kgrec API", swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                       swagger_css_url="/docs-assets/swagger-ui.css", swagger_favicon_url="/docs-assets/favicon-32x32.png")
        return

    @app.get("/docs", include_in_schema=False)
    def docs_plain() -> HTMLResponse:
        from html import escape

        rows = "".join(
            f"<li><code>{escape(m.upper())} {escape(path)}</code>: {escape(op.get('summary', ''))}</li>"
            for path, ops in app.openapi()["paths"].items() for m, op in ops.items()
        )
        return HTMLResponse(
            "<!doctype html><meta charset=utf-8><title>kgrec API</title><h1>kgrec API</h1>"
            "<p>Interactive docs need the <code>swagger-ui-bundle-v2</code> package (<code>pip install kgrec[serve]</code>); "
            f"the OpenAPI document is at <a href=/openapi.json>/openapi.json</a>.</p><ul>{rows}</ul>"
        )


def _version() -> str:
    from kgrec import __version__

    return __version__


__all__ = ["BODY_TIMEOUT", "MAX_BODY", "STATIC", "ErrorBody", "ExplainRequest", "RecommendRequest", "ValidationErrorBody", "create_app",
           "error_response", "strict_json_problem"]
