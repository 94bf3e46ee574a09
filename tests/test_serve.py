"""The HTTP service: FastAPI's TestClient for the request/response contract, then a real uvicorn
server on 127.0.0.1 driven by httpx (concurrent requests, bad input, the service keeps serving)."""

from __future__ import annotations

import json
import socket
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
    (json.dumps({"patient": {"diagnoses": ["401.9"]}}), 400, "needs an ICD version"),
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


def test_real_server_on_loopback(service):
    import uvicorn

    from kgrec.serve.app import create_app

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(service=service), host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
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
    finally:
        server.should_exit = True
        th.join(timeout=10)
