"""The service's one error path: every error body is built by :func:`error_response`, and the
:class:`Guard` middleware in front of every route reads the body (size and time limits), rejects JSON that
is not strict (NaN, Infinity, out-of-range numbers, lone surrogates, deep nesting) and counts requests
and error responses once each for ``/health``.

Before (issue 16, item 3): ``{"threshold": NaN}`` or a lone surrogate in ``visit_id`` answered 500,
because the 422 handler echoed the input into a body that could not be encoded (and counted the error
twice on the way).
"""

from __future__ import annotations

import asyncio
import json
import math
import logging
import time
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

log = logging.getLogger("kgrec.serve")

MAX_JSON_DEPTH = 200


class ErrorBody(BaseModel):
    """Every error response: a readable message."""

    detail: str


class ValidationIssue(BaseModel):
    loc: list[str | int] = Field(description="where: body.patient.diagnoses.2.code")
    msg: str
    type: str


class ValidationErrorBody(ErrorBody):
    """422: the request does not fit the schema; ``errors`` lists each problem (the input is never echoed)."""

    errors: list[ValidationIssue]


_ERROR_TEXT = {
    400: "Malformed JSON, or a well-formed request the service cannot answer (unknown visit, no known code)",
    408: "The request body did not arrive in full in time",
    413: "Request body too large",
    422: "The request does not fit the schema",
}


def error_responses(*codes: int) -> dict:
    """OpenAPI ``responses`` for the error statuses a route can answer."""
    return {c: {"model": ValidationErrorBody if c == 422 else ErrorBody, "description": _ERROR_TEXT[c]} for c in codes}


def _clean(v: Any) -> Any:
    """JSON-encodable copy: a lone surrogate becomes '?', a non-finite float a string."""
    if isinstance(v, str):
        return v.encode("utf-8", "replace").decode("utf-8")
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, dict):
        return {_clean(str(k)): _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    if v is None or isinstance(v, bool | int | float):
        return v
    return _clean(str(v))


def error_response(status: int, detail: str, errors: list[dict] | None = None, headers: dict | None = None) -> JSONResponse:
    """The one way the service answers an error: ``{"detail"}`` (and ``errors`` for 422), always encodable."""
    body: dict[str, Any] = {"detail": _clean(detail)}
    if errors is not None:
        body["errors"] = [
            {"loc": _clean([x if isinstance(x, int) else str(x) for x in e.get("loc", ())]), "msg": _clean(str(e.get("msg", ""))),
             "type": _clean(str(e.get("type", "")))}
            for e in errors
        ]
    return JSONResponse(body, status_code=status, headers=headers)


class _NotStrictJSON(ValueError):
    pass


def _reject_constant(name: str):
    raise _NotStrictJSON(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    x = float(text)
    if not math.isfinite(x):
        raise _NotStrictJSON(f"number {text[:20]} is out of range")
    return x


def _int(text: str) -> int:
    if len(text) > 30:
        raise _NotStrictJSON(f"integer of {len(text)} digits is out of range")
    return int(text)


def _check_json(v: Any, depth: int = 0) -> None:
    if depth > MAX_JSON_DEPTH:
        raise _NotStrictJSON(f"nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(v, str):
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            raise _NotStrictJSON("a string holds a lone surrogate (\\ud800-\\udfff), which is not Unicode text") from None
    elif isinstance(v, dict):
        for k, x in v.items():
            _check_json(k, depth + 1)
            _check_json(x, depth + 1)
    elif isinstance(v, list):
        for x in v:
            _check_json(x, depth + 1)


def strict_json_problem(body: bytes) -> str | None:
    """Why ``body`` is not strict JSON (RFC 8259 text of finite numbers and Unicode strings), or None."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"the body is not UTF-8 (byte {exc.start})"
    try:
        _check_json(json.loads(text, parse_constant=_reject_constant, parse_float=_finite, parse_int=_int))
    except _NotStrictJSON as exc:
        return str(exc)
    except json.JSONDecodeError as exc:
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    except RecursionError:
        return f"nested deeper than {MAX_JSON_DEPTH} levels"
    except ValueError as exc:
        return f"cannot be parsed ({type(exc).__name__})"
    return None


class Guard:
    """ASGI middleware in front of every route: counts requests and error responses (each once, for
    ``/health``), reads the whole body before the app sees it (413 over ``limit`` bytes, 408 when it does
    not arrive within ``timeout`` seconds), and rejects a JSON body that is not strict JSON (400)."""

    def __init__(self, app, limit: int, timeout: float, state: dict):
        self.app, self.limit, self.timeout, self.state = app, limit, timeout, state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        counted = scope.get("path") != "/health"
        if counted:
            self.state["requests"] += 1
        t0 = time.perf_counter()

        async def counting_send(msg):
            if msg["type"] == "http.response.start":
                if counted and msg["status"] >= 400:
                    self.state["errors"] += 1
                # one line per request: method, path (no query string, no body: no patient data), status, time
                log.info("%s %s %d %.0f ms", scope.get("method", ""), scope.get("path", ""), msg["status"], 1000 * (time.perf_counter() - t0))
            await send(msg)

        early = await self._read(scope, receive)
        if isinstance(early, JSONResponse):
            return await early(scope, receive, counting_send)
        if early is None:  # client gone
            return
        body = early
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, counting_send)

    async def _read(self, scope, receive) -> bytes | JSONResponse | None:
        headers = dict(scope.get("headers") or [])
        cl = headers.get(b"content-length")
        if cl is not None:
            try:
                n = int(cl)
            except ValueError:
                return error_response(400, "bad Content-Length")
            if n > self.limit:
                return error_response(413, f"request body larger than {self.limit} bytes")
        body = b""
        deadline = time.monotonic() + self.timeout
        more = True
        while more:
            try:
                msg = await asyncio.wait_for(receive(), timeout=max(deadline - time.monotonic(), 0.001))
            except TimeoutError:
                return error_response(408, f"the request body did not arrive in full within {self.timeout:g} s",
                                      headers={"Connection": "close"})
            if msg["type"] == "http.disconnect":
                return None
            body += msg.get("body", b"")
            more = bool(msg.get("more_body", False))
            if len(body) > self.limit:
                return error_response(413, f"request body larger than {self.limit} bytes")
        ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if body and (ctype == b"application/json" or ctype.endswith(b"+json")):
            problem = strict_json_problem(body)
            if problem:
                return error_response(400, f"malformed JSON: {problem}")
        return body


def _readable(errors: list[dict]) -> str:
    parts = []
    for e in errors[:10]:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x not in ("body",))
        msg = str(e.get("msg", "")).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts) + (f"; and {len(errors) - 10} more" if len(errors) > 10 else "")




__all__ = ["ErrorBody", "Guard", "ValidationErrorBody", "ValidationIssue", "error_response", "error_responses", "strict_json_problem"]
