"""The HTTP service (FastAPI): ``POST /recommend``, ``POST /explain``, ``GET /health``, and a web page.

The page (``GET /``, assets under ``/static`` shipped in ``kgrec/serve/static``: plain HTML, CSS and JS,
nothing fetched from elsewhere) calls the API plus two look-ups: ``GET /codes?q=`` (code autocomplete
from the workspace cohort) and ``GET /visits`` (a few visits of the workspace).

``kgrec serve`` builds the app with :func:`create_app` and runs it with uvicorn on 127.0.0.1 by
default. The model, the cohort and the graph store are loaded once, at start-up (the app's lifespan);
requests share them under a lock (the embedded store's connection is not shared between threads).

Errors are JSON ``{"detail": ...}``: 400 for a well-formed request the service cannot answer (unknown
visit, no known code, malformed JSON), 413 for a body over ``max_body`` bytes (256 KiB by default),
422 for a request that fails the schema (empty patient, wrong types, too many codes), with
``detail`` a readable message and ``errors`` pydantic's list. The OpenAPI schema is at
``/openapi.json`` (interactive: ``/docs``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from kgrec.errors import KgrecError
from kgrec.explain.recommend import (
    MAX_DRUGS,
    MAX_PATHS_PER_DRUG,
    MAX_TOP_K,
    PatientIn,
    RecommendService,
)
from kgrec.serve.lookup import CodeIndex, list_visits

log = logging.getLogger("kgrec.serve")

MAX_BODY = 256 * 1024
STATIC = Path(__file__).with_name("static")

Atc = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=16)]


class _Target(BaseModel):
    model_config = ConfigDict(extra="forbid")
    visit_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)] | None = Field(
        None, description="a visit of the workspace cohort (e.g. '100375')")
    patient: PatientIn | None = Field(None, description="a new patient (see PatientIn)")
    threshold: float | None = Field(None, ge=0.0, le=1.0, description="minimum probability (default: the model's tuned threshold)")
    paths_per_drug: int = Field(3, ge=0, le=MAX_PATHS_PER_DRUG)

    @model_validator(mode="after")
    def _one_target(self):
        if (self.visit_id is None) == (self.patient is None):
            raise ValueError("give exactly one of visit_id or patient")
        return self


class RecommendRequest(_Target):
    """``POST /recommend``: a visit id or a patient, and ranking options."""

    top_k: int = Field(10, ge=1, le=MAX_TOP_K)
    current_drugs: list[Atc] = Field(default_factory=list, max_length=MAX_DRUGS, description="ATC codes taken now (DDI screening)")
    explain: bool = Field(True, description="include rationale paths and texts")


class ExplainRequest(_Target):
    """``POST /explain``: rationales for given drug classes (default: the top-k recommendations)."""

    drugs: list[Atc] | None = Field(None, max_length=50, description="ATC3 drug classes to explain")
    top_k: int = Field(5, ge=1, le=MAX_TOP_K)


class _BodyLimit:
    """ASGI middleware: 413 for a request body over ``limit`` bytes (by Content-Length, or counted
    as it streams in when there is none)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        cl = headers.get(b"content-length")
        too_big = JSONResponse({"detail": f"request body larger than {self.limit} bytes"}, status_code=413)
        if cl is not None:
            try:
                if int(cl) > self.limit:
                    return await too_big(scope, receive, send)
            except ValueError:
                return await JSONResponse({"detail": "bad Content-Length"}, status_code=400)(scope, receive, send)
        if cl is not None:
            return await self.app(scope, receive, send)
        # no Content-Length (chunked): read the body up to the limit, then replay it
        body, more = b"", True
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            body += msg.get("body", b"")
            more = bool(msg.get("more_body", False))
            if len(body) > self.limit:
                return await too_big(scope, receive, send)
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _readable(errors: list[dict]) -> str:
    parts = []
    for e in errors[:10]:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x not in ("body",))
        msg = str(e.get("msg", "")).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts) + (f"; and {len(errors) - 10} more" if len(errors) > 10 else "")


def create_app(workspace: Path | str | None = None, model: str = "student", store: str | None = "embedded", store_kw: dict | None = None,
               service: RecommendService | None = None, max_body: int = MAX_BODY) -> FastAPI:
    """The app; pass ``service`` to reuse an already loaded :class:`RecommendService` (tests)."""
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
    )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            state["errors"] += 1
            return JSONResponse({"detail": "malformed JSON: " + _readable(errors)}, status_code=400)
        state["errors"] += 1
        return JSONResponse({"detail": _readable(errors), "errors": json.loads(json.dumps(errors, default=str))}, status_code=422)

    @app.exception_handler(KgrecError)
    async def _kgrec(request: Request, exc: KgrecError):
        state["errors"] += 1
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        state["errors"] += 1
        log.exception("internal error on %s", request.url.path)
        return JSONResponse({"detail": f"internal error ({type(exc).__name__}); the service is still running"}, status_code=500)

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
            "store": s.store_name if s else None,
            "n_drugs": len(s.drug_vocab) if s else None,
            "threshold": float(s.model.threshold) if s else None,
            "load_seconds": round(s.load_seconds, 2) if s else None,
            "uptime_seconds": round(time.time() - state["started"], 1),
            "requests": state["requests"],
            "errors": state["errors"],
        }

    @app.post("/recommend", summary="Ranked drug classes with DDI warnings, rationale paths and rationales")
    def post_recommend(req: RecommendRequest) -> dict:
        state["requests"] += 1
        s = svc()
        with state["lock"]:
            res = s.recommend(req.visit_id, req.patient, top_k=req.top_k, threshold=req.threshold, paths_per_drug=req.paths_per_drug,
                              current_drugs=req.current_drugs, explain=req.explain)
        return res.to_dict()

    @app.post("/explain", summary="Natural-language rationales (deterministic realiser) with their paths")
    def post_explain(req: ExplainRequest) -> dict:
        state["requests"] += 1
        s = svc()
        with state["lock"]:
            res = s.recommend(req.visit_id, req.patient, top_k=req.top_k, threshold=req.threshold if req.drugs is None else 0.0,
                              paths_per_drug=req.paths_per_drug, drugs=req.drugs)
        return {
            "visit": res.visit, "model": res.model, "unknown_codes": res.unknown_codes, "notes": res.notes,
            "rationales": [{"drug": d.drug, "name": d.name, "probability": round(d.probability, 4), "rationale": d.rationale,
                            "paths": [p.to_dict() for p in d.paths], "cautions": [p.to_dict() for p in d.cautions]} for d in res.drugs],
            "timings_ms": res.timings_ms,
        }

    @app.get("/codes", summary="Code autocomplete: the workspace cohort's codes matching a code or words of a name")
    def get_codes(
        q: Annotated[str, Query(min_length=1, max_length=64, description="code (427.31, 42731, ICD9CM:42731) or words of its name")],
        kind: Annotated[list[Literal["diagnosis", "procedure", "drug"]] | None, Query(description="only these kinds (repeat: kind=diagnosis&kind=procedure)")] = None,
        limit: Annotated[int, Query(ge=1, le=50)] = 15,
    ) -> dict:
        s = svc()
        if state.get("codes") is None:
            state["codes"] = CodeIndex(s)
        return {"q": q, "codes": state["codes"].search(q, kind, limit)}

    @app.get("/visits", summary="Visits of the workspace cohort (test split first), by visit or patient id prefix")
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

    if max_body:
        app.add_middleware(_BodyLimit, limit=max_body)
    return app


def _version() -> str:
    from kgrec import __version__

    return __version__


__all__ = ["MAX_BODY", "STATIC", "ExplainRequest", "RecommendRequest", "create_app"]
