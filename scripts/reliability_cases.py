"""Reproduce every case of issue 16 against a checkout of kgrec and print one line per case.

    PYTHONPATH=<checkout> .venv/bin/python scripts/reliability_cases.py [case ...]

Run it once with the checkout as it was before the hardening (e.g. ``git worktree add /tmp/old ce1304c``,
PYTHONPATH=/tmp/old) and once with the current one: docs/reliability.md holds both outputs. Needs the
shared open data ($KGREC_DATA). Each case works on copies in a temporary folder; about 3 minutes in all.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

DATA = Path(os.environ.get("KGREC_DATA", "../shared/data"))
ROOT = Path(os.environ.get("PYTHONPATH", ".").split(os.pathsep)[0]).resolve()
TMP = Path(tempfile.mkdtemp(prefix="kgrec-reliability-"))
ENV = {**os.environ, "KGREC_DATA": str(DATA), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def kgrec(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    cmd = ["/usr/bin/time", "-f", "TIME %e %M", sys.executable, "-m", "kgrec", *args]
    return subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=timeout, cwd=TMP)


def summary(r: subprocess.CompletedProcess) -> str:
    lines = [x for x in r.stderr.splitlines() if x.strip() and not x.startswith(("TIME ", "Command exited"))]
    tb = any(x.startswith("Traceback") for x in lines)
    last = next((x for x in reversed(lines) if x.strip()), "")
    t = next((x.split()[1:] for x in r.stderr.splitlines() if x.startswith("TIME ")), ["?", "?"])
    return f"exit {r.returncode}, {'traceback (' + str(len(lines)) + ' lines), ' if tb else ''}{t[0]} s, {int(t[1]) // 1024} MB: {last.strip()[:220]}"


def demo() -> Path:
    d = TMP / f"mimic3-{time.monotonic_ns()}"
    shutil.copytree(DATA / "mimic-iii-demo", d)
    return d


def prepared(ws: Path) -> str:
    meta = json.loads((ws / "cohort" / "meta.json").read_text())["stats"]
    return f"cohort {meta['n_visits']} visits / {meta['n_patients']} patients"


def prepare_case(corrupt) -> str:
    d = demo()
    corrupt(d)
    ws = TMP / f"ws-{time.monotonic_ns()}"
    r = kgrec("prepare", "-s", "mimic3", "-w", str(ws), "--source-dir", str(d))
    out = summary(r)
    if r.returncode == 0:
        out += f" -> {prepared(ws)}"
        codes = __import__("pandas").read_parquet(ws / "cohort" / "codes.parquet")
        out += f"; diagnosis codes like {sorted(codes[codes['kind'] == 'diagnosis']['code'])[:3]}"
    return out


def _header(path: Path, old: str, new: str) -> None:
    raw = path.read_bytes()
    head, rest = raw.split(b"\n", 1)
    path.write_bytes(head.replace(old.encode(), new.encode()) + b"\n" + rest)


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def case_duplicate_column():
    return prepare_case(lambda d: _header(d / "DIAGNOSES_ICD.csv", "SEQ_NUM", "ICD9_CODE"))


def case_row_of_commas():
    return prepare_case(lambda d: _append(d / "ADMISSIONS.csv", b"," * 18 + b"\r\n"))


def case_nul_in_row():
    def corrupt(d):
        lines = (d / "ADMISSIONS.csv").read_bytes().split(b"\n")
        lines.insert(3, b"\0" * 40 + b"\r")
        (d / "ADMISSIONS.csv").write_bytes(b"\n".join(lines))
    return prepare_case(corrupt)


def case_200mb_nuls():
    def corrupt(d):
        with open(d / "ADMISSIONS.csv", "ab") as f:
            for _ in range(200):
                f.write(b"\0" * (1 << 20))
    return prepare_case(corrupt)


def case_table_is_directory():
    def corrupt(d):
        (d / "PRESCRIPTIONS.csv").unlink()
        (d / "PRESCRIPTIONS.csv").mkdir()
    return prepare_case(corrupt)


def case_table_is_fifo():
    def corrupt(d):
        (d / "PRESCRIPTIONS.csv").unlink()
        os.mkfifo(d / "PRESCRIPTIONS.csv")
    return prepare_case(corrupt)


def case_symlink_loop():
    def corrupt(d):
        (d / "PRESCRIPTIONS.csv").unlink()
        os.symlink("PRESCRIPTIONS.csv", d / "PRESCRIPTIONS.csv")
    return prepare_case(corrupt)


def case_two_tables_differing_in_case():
    def corrupt(d):
        text = (d / "ADMISSIONS.csv").read_bytes().split(b"\n")
        (d / "admissions.csv").write_bytes(b"\n".join(text[:11]) + b"\n")  # a 10-admission copy beside the real one
    return prepare_case(corrupt)


def case_deep_patient_json():
    p = TMP / "deep.json"
    p.write_text("[" * 100_000)
    return summary(kgrec("recommend", "-w", str(TMP / "nows"), "--patient", str(p)))


def case_bom_patient_json():
    p = TMP / "bom.json"
    p.write_bytes(b"\xef\xbb\xbf" + b'{"icd_version": 9, "diagnoses": ["401.9"]}')
    code = ("import sys; from kgrec.explain.recommend import load_patient\n"
            "try:\n    print('accepted', load_patient(sys.argv[1]).diagnoses)\nexcept Exception as e:\n    print('rejected:', e)")
    return subprocess.run([sys.executable, "-c", code, str(p)], env=ENV, capture_output=True, text=True).stdout.strip()


def case_help_time():
    out = []
    for args in (["--help"], ["prepare", "--help"], ["prepare", "-s", "mimic3", "-w", str(TMP / "x"), "--source-dir", str(TMP / "none")]):
        runs = [kgrec(*args) for _ in range(5)]
        ts = [float(next(x for x in r.stderr.splitlines() if x.startswith("TIME ")).split()[1]) for r in runs]
        mb = max(int(next(x for x in r.stderr.splitlines() if x.startswith("TIME ")).split()[2]) for r in runs) // 1024
        out.append(f"`kgrec {' '.join(a if '/' not in a else '…' for a in args)}`: {min(ts):.2f}-{max(ts):.2f} s, {mb} MB")
    return "; ".join(out)


def case_ctrl_c_during_import():
    p = subprocess.Popen([sys.executable, "-m", "kgrec", "prepare", "-s", "mimic3", "-w", str(TMP / "cc")], env=ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=TMP)
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    lines = [x for x in err.splitlines() if x.strip()]
    return f"exit {p.returncode}, {len(lines)} lines on stderr, traceback: {any('Traceback' in x for x in lines)}, last: {lines[-1][:80] if lines else ''}"


# ---------------------------------------------------------------- graph
def _graph_ws() -> Path:
    ws = TMP / "graphws"
    if not (ws / "graph" / "embedded.lbug").exists():
        assert kgrec("prepare", "-s", "mimic3", "-w", str(ws)).returncode == 0
        assert kgrec("load-graph", "-w", str(ws)).returncode == 0
    return ws


def case_tables_save_interrupted():
    """Ctrl-C at the swap step of GraphTables.save (the first rename it attempts raises KeyboardInterrupt)."""
    ws = _graph_ws()
    code = (
        "import os, sys, pathlib\nfrom kgrec.graph.tables import GraphTables\n"
        "folder = pathlib.Path(sys.argv[1]) / 'graph' / 'tables'\nt = GraphTables.load(folder)\n"
        "def stop(*a, **k):\n    raise KeyboardInterrupt\n"
        "pathlib.Path.rename = stop\nos.replace = stop\n"
        "try:\n    import kgrec.fsatomic as fa\n    fa.exchange = stop\nexcept ImportError:\n    pass\n"
        "try:\n    t.save(folder)\nexcept KeyboardInterrupt:\n    pass\n"
        "print('tables folder after the interrupted save:', 'intact' if (folder / 'nodes').is_dir() else 'GONE')"
    )
    return subprocess.run([sys.executable, "-c", code, str(ws)], env=ENV, capture_output=True, text=True).stdout.strip()


def _kill_when_building(ws: Path) -> bool:
    """Start load-graph and SIGKILL it as soon as its new database file appears (the build phase)."""
    p = subprocess.Popen([sys.executable, "-m", "kgrec", "load-graph", "-w", str(ws)], env=ENV, cwd=TMP,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    hit = False
    while p.poll() is None and time.monotonic() < deadline:
        if any(x.name.startswith(".embedded.lbug.build-") for x in (ws / "graph").iterdir()):
            time.sleep(0.5)
            hit = True
            break
        time.sleep(0.05)
    p.kill()
    p.wait()
    return hit


def _visits(ws: Path) -> str:
    code = ("import sys\nfrom kgrec.graph.stores.embedded import EmbeddedStore\n"
            "with EmbeddedStore(sys.argv[1], read_only=True) as st:\n    print(st.stats()['nodes']['Visit'])")
    r = subprocess.run([sys.executable, "-c", code, str(ws)], env=ENV, capture_output=True, text=True, cwd=TMP)
    return r.stdout.strip() or r.stderr.strip()[-100:]


def case_sigkill_load_graph():
    ws = _graph_ws()
    hits = [_kill_when_building(ws) for _ in range(2)]
    left = sorted(x.name for x in (ws / "graph").iterdir() if x.name.startswith("."))
    size = sum(x.stat().st_size for x in (ws / "graph").iterdir() if x.name.startswith(".") and x.is_file()) >> 20
    visits = _visits(ws)
    r = kgrec("load-graph", "-w", str(ws))
    after = sorted(x.name for x in (ws / "graph").iterdir() if x.name.startswith("."))
    return (f"2 loads SIGKILLed in their build phase ({sum(hits)} hit): {len(left)} leftover files ({size} MB), graph still answers "
            f"(Visit nodes: {visits}); the next load: exit {r.returncode}, leftovers after it: {len(after)}")


# ---------------------------------------------------------------- service
def _service():
    sys.path.insert(0, str(ROOT))
    from tests.test_explain import build_workspace  # the test workspace of that checkout

    from kgrec.explain.recommend import RecommendService

    ws = build_workspace(TMP / "svc")
    return RecommendService(ws, "student", "embedded")


def case_service():
    from fastapi.testclient import TestClient

    from kgrec.serve.app import create_app

    svc = _service()
    out = []
    with TestClient(create_app(service=svc), raise_server_exceptions=False) as c:
        for name, body in [("threshold NaN", '{"visit_id": "100", "threshold": NaN}'), ("top_k NaN", '{"visit_id": "100", "top_k": NaN}'),
                           ("paths_per_drug -Infinity", '{"visit_id": "100", "paths_per_drug": -Infinity}'),
                           ("lone surrogate visit_id", '{"visit_id": "\\ud800"}'),
                           ("lone surrogate patient id", '{"patient": {"id": "\\ud800", "icd_version": 9, "diagnoses": ["401.9"]}}'),
                           ("lone surrogate code", '{"patient": {"icd_version": 9, "diagnoses": ["\\ud800"]}}')]:
            e0 = c.get("/health").json()["errors"]
            r = c.post("/recommend", content=body, headers={"content-type": "application/json"})
            e1 = c.get("/health").json()["errors"]
            out.append(f"{name}: {r.status_code} (/health errors +{e1 - e0})")
        spec = c.get("/openapi.json").json()
        resp = spec["paths"]["/recommend"]["post"]["responses"]
        ref422 = resp.get("422", {}).get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", "")
        r = c.post("/recommend", json={"visit_id": "100", "top_k": 0})
        detail = type(r.json().get("detail")).__name__
        req = spec["components"]["schemas"]["RecommendRequest"]
        docs = c.get("/docs").text
        out.append(f"OpenAPI 422 schema {ref422.rsplit('/', 1)[-1]} vs detail sent as {detail}; 400 documented: {'400' in resp}; "
                   f"oneOf in RecommendRequest: {'oneOf' in req}; /docs loads from a CDN: {'cdn.' in docs}")
    # half a body, on a real server
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(service=svc), host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    time.sleep(2)
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(30)
        t0 = time.monotonic()
        s.sendall(b"POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"visit_id\":")
        try:
            data = s.recv(200)
            status = data.split(b"\r\n")[0].decode()
            out.append(f"half a body: answered after {time.monotonic() - t0:.1f} s: {status}")
        except TimeoutError:
            out.append("half a body: no answer after 30 s (connection held open)")
    server.should_exit = True
    svc.close()
    return "; ".join(out)


CASES = {k[5:]: v for k, v in dict(globals()).items() if k.startswith("case_")}

if __name__ == "__main__":
    names = sys.argv[1:] or list(CASES)
    print(f"# kgrec at {ROOT}")
    for name in names:
        t0 = time.monotonic()
        try:
            res = CASES[name]()
        except Exception as exc:  # noqa: BLE001 - a case that cannot run is reported as such
            res = f"could not run: {type(exc).__name__}: {str(exc)[:200]}"
        print(f"{name}: {res}  [{time.monotonic() - t0:.0f} s]", flush=True)
    shutil.rmtree(TMP, ignore_errors=True)
