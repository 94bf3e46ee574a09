"""The HTTP service: FastAPI's TestClient for the request/response contract, then a real uvicorn
server on 127.0.0.1 driven by httpx (concurrent requests, bad input, the service keeps serving)."""

from __future__ import annotations

import json
import socket
from contextlib import contextmanager
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.test_explain import build_workspace

fastapi = pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    from kgrec.explain.recommend import RecommendService

    ws = build_workspace(tmp_path_factory.mktemp("serve"))
    s = RecommendService(ws, "student", "embedded")
    yield s
    s.close()


@pytest.fixture(scope="module")
def client(service):
    from fastapi.testclient import TestClient

    from kgrec.serve.app import create_app

    with TestClient(create_app(service=service, max_body=64 * 1024)) as c:
        yield c


PATIENT = {"icd_version": 9, "diagnoses": ["427.31", "401.9"], "current_drugs": ["N02BE01"]}


def test_health_and_openapi(client):
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["model"] == "student" and h["n_drugs"] == 4
    spec = client.get("/openapi.json").json()
    assert {"/recommend", "/explain", "/health", "/codes", "/visits"} <= set(spec["paths"])
    assert "PatientIn" in spec["components"]["schemas"] and "RecommendRequest" in spec["components"]["schemas"]


def test_recommend_and_explain(client):
    r = client.post("/recommend", json={"visit_id": "100", "top_k": 3, "threshold": 0})
    assert r.status_code == 200, r.text
    out = r.json()
    assert len(out["drugs"]) == 3 and out["drugs"][0]["probability"] >= out["drugs"][1]["probability"]
    assert all(st["source"] and st["licence"] for d in out["drugs"] for p in d["paths"] for st in p["steps"])
    r = client.post("/recommend", json={"patient": PATIENT, "top_k": 4, "threshold": 0})
    assert r.status_code == 200 and any(w["between"].endswith("current drug") for w in r.json()["ddi_warnings"])
    r = client.post("/explain", json={"visit_id": "100", "drugs": ["B01A"]})
    assert r.status_code == 200 and "Warfarin" in r.json()["rationales"][0]["rationale"]
    r = client.post("/recommend", json={"visit_id": "100", "explain": False, "threshold": 0})
    assert r.status_code == 200 and all(not d["paths"] for d in r.json()["drugs"])


@pytest.mark.parametrize("body, status, words", [
    ('{"visit_id": "100"', 400, "malformed JSON"),
    ("[1, 2]", 422, "valid dictionary"),
    (json.dumps({"patient": {"diagnoses": []}}), 422, "empty patient"),
    (json.dumps({"patient": {"icd_version": 9, "diagnoses": ["999.99"]}}), 400, "none of the patient's codes"),
    (json.dumps({"patient": {"diagnoses": ["40Q.9"]}}), 400, "is not a valid ICD-9-CM or ICD-10-CM code"),
    (json.dumps({"visit_id": "nope"}), 400, "not in the workspace"),
    (json.dumps({"visit_id": "100", "patient": PATIENT}), 422, "exactly one"),
    (json.dumps({"visit_id": "100", "top_k": 1000}), 422, "top_k"),
    (json.dumps({"patient": {"icd_version": 9, "diagnoses": ["401.9"] * 201}}), 422, "at most 200"),
    (json.dumps({"visit_id": "100", "extra": 1}), 422, "Extra inputs"),
])
def test_bad_requests(client, body, status, words):
    r = client.post("/recommend", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]


def test_unknown_codes_reported_not_fatal(client):
    r = client.post("/recommend", json={"patient": {"icd_version": 9, "diagnoses": ["427.31", "999.99"]}})
    assert r.status_code == 200
    assert [u["code"] for u in r.json()["unknown_codes"]] == ["ICD9CM:99999"]


def test_huge_bodies_413(client):
    big = json.dumps({"patient": {"icd_version": 9, "diagnoses": ["401.9"] * 20000}})
    assert client.post("/recommend", content=big, headers={"content-type": "application/json"}).status_code == 413

    def chunks():  # no Content-Length: counted as it streams in
        for _ in range(100):
            yield b" " * 1024

    r = client.post("/recommend", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert client.get("/health").json()["status"] == "ok"


def test_codes_and_visits_lookups(client):
    r = client.get("/codes", params={"q": "atrial fib"})
    assert r.status_code == 200 and r.json()["codes"][0] == {
        "code": "ICD9CM:42731", "display": "427.31", "kind": "diagnosis", "name": "Atrial fibrillation", "version": 9, "known": True}
    by_code = client.get("/codes", params={"q": "427.31"}).json()["codes"]
    assert [c["code"] for c in by_code] == ["ICD9CM:42731"]
    assert client.get("/codes", params={"q": "ICD9PROC:36"}).json()["codes"][0]["display"] == "36.05"
    assert {c["kind"] for c in client.get("/codes", params={"q": "a", "kind": "drug", "limit": 50}).json()["codes"]} == {"drug"}
    assert len(client.get("/codes", params={"q": "e", "limit": 2}).json()["codes"]) == 2
    assert client.get("/codes", params={"q": "zzzz"}).json()["codes"] == []
    for params, words in [({"q": ""}, "at least 1"), ({"q": "x" * 65}, "at most 64"), ({"q": "a", "limit": 0}, "limit"),
                          ({"q": "a", "kind": "nope"}, "kind")]:
        r = client.get("/codes", params=params)
        assert r.status_code == 422 and words in r.json()["detail"], r.text
    v = client.get("/visits", params={"limit": 2}).json()
    assert v["source"] == "mimic3" and v["total"] > 40 and len(v["visits"]) == 2
    assert {x["patient_id"] for x in v["visits"]} <= {"10", "20"} and v["visits"][0]["split"] == "test"
    assert [x["visit_id"] for x in client.get("/visits", params={"q": "10"}).json()["visits"]] == ["100", "101"]
    assert client.get("/visits", params={"q": "mimic3:200"}).json()["visits"][0]["summary"]
    assert client.get("/visits", params={"limit": 1000}).status_code == 422


def test_web_page_and_assets(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert '<script src="/static/app.js"' in html and '<link rel="stylesheet" href="/static/style.css">' in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in html  # nothing from elsewhere
    for asset, kind in [("app.js", "javascript"), ("style.css", "text/css")]:
        r = client.get(f"/static/{asset}")
        assert r.status_code == 200 and kind in r.headers["content-type"]
        assert "https://" not in r.text and "http://" not in r.text.replace("http://www.w3.org/2000/svg", "")
    assert client.get("/static/nope.js").status_code == 404
    assert "/codes" in client.get("/openapi.json").json()["paths"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _running(app, **config):
    """A real uvicorn server for ``app`` on a free loopback port, answering /health; yields the port."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **config))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    try:
        for _ in range(100):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        yield port
    finally:
        server.should_exit = True
        th.join(timeout=10)


def test_real_server_on_loopback(service):
    from kgrec.serve.app import create_app

    with _running(create_app(service=service)) as port:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=30) as c:
            assert c.post("/recommend", content=b"{bad", headers={"content-type": "application/json"}).status_code == 400
            assert c.post("/recommend", json={"patient": {}}).status_code == 422

            def one(i):
                body = {"visit_id": "100"} if i % 2 else {"patient": PATIENT}
                return c.post("/recommend", json={**body, "top_k": 2, "threshold": 0}).status_code

            with ThreadPoolExecutor(4) as pool:
                codes = list(pool.map(one, range(12)))
            assert codes == [200] * 12
            h = c.get("/health").json()
            assert h["status"] == "ok" and h["requests"] >= 12 and h["errors"] >= 2


# ---------------------------------------------------------------- issue 16: no 500s, one error path, documented errors
def _encodable(r) -> dict:
    r.content.decode("utf-8")  # strict: no lone surrogates in the body
    return r.json()


@pytest.mark.parametrize("body, words", [
    ('{"visit_id": "100", "threshold": NaN}', "NaN is not a JSON number"),
    ('{"visit_id": "100", "top_k": NaN}', "NaN is not a JSON number"),
    ('{"visit_id": "100", "paths_per_drug": -Infinity}', "-Infinity is not a JSON number"),
    ('{"visit_id": "100", "threshold": 1e400}', "out of range"),
    ('{"visit_id": "100", "top_k": 1' + "0" * 5000 + "}", "out of range"),
    ('{"visit_id": "\\ud800"}', "lone surrogate"),
    ('{"patient": {"id": "\\udfff", "icd_version": 9, "diagnoses": ["401.9"]}}', "lone surrogate"),
    ('{"patient": {"icd_version": 9, "diagnoses": ["40\\ud8001.9"]}}', "lone surrogate"),
    ('{"visit_id": "100", "x": ' + "[" * 30000 + "]" * 30000 + "}", "nested deeper"),
    ('{"visit_id": "100"}'.encode("utf-8") + b"\xff", "not UTF-8"),
])
@pytest.mark.parametrize("path", ["/recommend", "/explain"])
def test_hostile_json_is_400_not_500(client, body, words, path):
    r = client.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text[:300]
    detail = _encodable(r)["detail"]
    assert detail.startswith("malformed JSON") and words in detail, detail


def test_422_body_matches_the_documented_shape(client):
    r = client.post("/recommend", json={"visit_id": "100", "top_k": "many", "threshold": 7})
    assert r.status_code == 422
    body = _encodable(r)
    assert set(body) == {"detail", "errors"} and isinstance(body["detail"], str)
    assert sorted(e["loc"] for e in body["errors"]) == [["body", "threshold"], ["body", "top_k"]]
    assert all(set(e) == {"loc", "msg", "type"} for e in body["errors"])  # the input is never echoed
    assert "many" not in r.text


def test_error_response_encodes_anything():
    from kgrec.serve.guard import error_response

    r = error_response(400, "visit '\ud800' is not in the workspace", [{"loc": ("body", "\udfff"), "msg": float("nan"), "type": "x"}])
    body = json.loads(r.body.decode("utf-8"))
    assert body["detail"] == "visit '?' is not in the workspace" and body["errors"][0]["loc"] == ["body", "?"]


def test_health_counts_each_error_once(client):
    before = client.get("/health").json()
    client.post("/recommend", content='{"threshold": NaN}', headers={"content-type": "application/json"})  # 400 strict JSON
    client.post("/recommend", json={"visit_id": "100", "top_k": 0})  # 422
    client.post("/recommend", json={"visit_id": "nope"})  # 400 service
    client.post("/recommend", content=b"x" * (70 * 1024), headers={"content-type": "application/json"})  # 413
    client.post("/recommend", json={"visit_id": "100", "top_k": 1, "explain": False})  # 200
    after = client.get("/health").json()
    assert after["errors"] - before["errors"] == 4
    assert after["requests"] - before["requests"] == 5


def test_openapi_documents_what_the_service_answers(client):
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for path in ("/recommend", "/explain"):
        responses = spec["paths"][path]["post"]["responses"]
        assert responses["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ValidationErrorBody")
        assert responses["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
        assert {"408", "413"} <= set(responses)
    assert schemas["ValidationErrorBody"]["properties"]["detail"]["type"] == "string"
    assert "HTTPValidationError" not in schemas  # FastAPI's list-shaped 422 is not what the service sends
    jsonschema_rs = pytest.importorskip("jsonschema_rs")  # installed with schemathesis (the test extra)
    validator = jsonschema_rs.Draft202012Validator({**schemas["RecommendRequest"], "components": spec["components"]})
    assert not validator.is_valid({})  # before: {} was valid by the schema and rejected by the service
    assert not validator.is_valid({"visit_id": "100", "patient": PATIENT})
    assert validator.is_valid({"visit_id": "100"}) and validator.is_valid({"patient": PATIENT})
    assert client.post("/recommend", json={}).status_code == 422


def test_docs_are_served_without_a_cdn(client):
    r = client.get("/docs")
    assert r.status_code == 200
    assert "cdn" not in r.text.lower() and "https://" not in r.text
    if "/docs-assets/" in r.text:  # Swagger UI from the installed swagger-ui-bundle-v2 package
        assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
        assert client.get("/docs-assets/swagger-ui.css").status_code == 200


def test_half_a_body_times_out(service):
    """Before: a client that sent half its body held the connection open indefinitely."""
    from kgrec.serve.app import create_app

    with _running(create_app(service=service, body_timeout=1.0)) as port:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            t0 = time.monotonic()
            s.sendall(b"POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
                      b'{"visit_id":')
            data = b""
            while chunk := s.recv(4096):
                data += chunk
            waited = time.monotonic() - t0
        assert data.startswith(b"HTTP/1.1 408"), data[:200]
        assert b"did not arrive in full" in data
        assert 0.9 < waited < 8, waited  # answered after the body timeout, and the connection closed


def test_slow_headers_are_cut_and_foreign_hosts_refused(service, monkeypatch):
    """The `kgrec serve` server: connections that send their headers a byte at a time are closed after the
    header deadline (before: 20 such connections were all open after 30 s); a request naming a host the
    service was not started for (DNS rebinding) gets 400 and no data; loopback names work."""
    from kgrec.serve.app import create_app
    from kgrec.serve.server import HeaderDeadlineProtocol, allowed_hosts

    monkeypatch.setattr(HeaderDeadlineProtocol, "header_timeout", 1.0)
    assert allowed_hosts("0.0.0.0", ["ward-pc"]) == ["127.0.0.1", "localhost", "::1", "[::1]", "ward-pc"]
    app = create_app(service=service, allowed_hosts=allowed_hosts("127.0.0.1"))
    with _running(app, http=HeaderDeadlineProtocol) as port:
        r = httpx.get(f"http://127.0.0.1:{port}/visits", headers={"Host": "evil.example:8000"}, timeout=5)
        assert r.status_code == 400 and "visit" not in r.text.lower()
        assert httpx.get(f"http://localhost:{port}/visits", timeout=5).status_code == 200
        conns = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(5)]
        t0 = time.monotonic()
        for s in conns:
            s.sendall(b"GET /visits HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a")  # headers never finished
        closed = 0
        for s in conns:
            s.settimeout(max(6 - (time.monotonic() - t0), 0.1))
            try:
                closed += s.recv(1) == b""
            except TimeoutError:
                pass
            s.close()
        assert closed == 5 and time.monotonic() - t0 < 6
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200  # the service itself is fine


def test_serve_a_workspace_it_cannot_serve_is_one_line(tmp_path):
    """Before: `kgrec serve -w` a workspace without a cohort printed the page address, then a uvicorn
    traceback (exit 3). Now the workspace is loaded before the port is opened."""
    from typer.testing import CliRunner

    from kgrec.cli import app

    r = CliRunner().invoke(app, ["serve", "-w", str(tmp_path / "empty"), "--port", str(_free_port())])
    assert r.exit_code == 2, r.output
    assert r.output.startswith("error: ") and "Traceback" not in r.output and "web page" not in r.output


def test_openapi_example_works_and_each_request_is_one_log_line(client, caplog):
    """Before: Swagger's default body (no example) returned 422, and `serve` logged nothing per request."""
    import logging

    schema = client.get("/openapi.json").json()["components"]["schemas"]["RecommendRequest"]
    example = schema["examples"][0]
    with caplog.at_level(logging.INFO, logger="kgrec.serve"):
        r = client.post("/recommend", json=example)
    assert r.status_code == 200, r.text
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "kgrec.serve"]
    assert any(line.startswith("POST /recommend 200 ") and line.endswith(" ms") for line in lines), lines
    assert not any("427.31" in line or "I10" in line for line in lines)  # no patient data


@pytest.mark.parametrize("body,field", [
    ({"visit_id": "100", "top_k": True}, "top_k"),
    ({"visit_id": "100", "threshold": "0.5"}, "threshold"),
    ({"visit_id": "100", "explain": 1}, "explain"),
    ({"visit_id": "100", "current_drugs": ["B01A' OR 1=1"]}, "current_drugs"),
    ({"patient": {"diagnoses": ["427.31"], "current_drugs": ["B01AC06x"]}}, "current_drugs"),
])
def test_request_types_are_strict(client, body, field):
    """Before: "top_k": true was read as 1, "threshold": "0.5" as a number, and "B01A' OR 1=1" as B01A."""
    r = client.post("/recommend", json=body)
    assert r.status_code in (400, 422) and field in r.text, r.text
