"""Benchmark recommend + explain: end-to-end latency, and a bounded local load test of the service.

    python scripts/bench_recommend.py --workspace WS [--visits 100] [--top-k 10] [--paths 3]
                                      [--requests 200] [--concurrency 4] [--json]

Wall-clock and CPU time (``time.process_time``) are both reported: on a machine shared with other
jobs the wall clock includes the time the process waits for a core.

1. Python API: one :class:`~kgrec.explain.recommend.RecommendService` (model and embedded store loaded
   once), then ``recommend(visit)`` for ``--visits`` evaluation visits of the workspace (top-k drugs
   at the model's threshold, DDI screening, attributions, rationale paths for every recommended drug
   ranked by them, rationale texts), and the same call without attributions, the two alternating. p50/p95/max of the whole call and of its parts (predict, paths), over warm runs (three
   visits are run first to warm the store's caches). Target (issue): p95 < 100 ms on the embedded store.
   Then the same visits sent as new patients (their codes, no Visit node: the ``explain_codes_*``
   queries).
2. Service: ``kgrec.serve`` on 127.0.0.1 (an ephemeral port, in this process), ``--requests`` POSTs
   to /recommend (the same visits, cycled) from ``--concurrency`` client threads with httpx; requests
   per second, latency p50/p95, and the status codes. Traffic goes to the loopback address only, the
   request count is fixed and every request has a timeout: the test ends by itself.

Run single-threaded on a shared machine (``OMP_NUM_THREADS=1``): numbers are for the machine as it is
at the time, and the output says how loaded it was (1-minute load average).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary(ms: list[float]) -> dict:
    return {"n": len(ms), "p50_ms": round(pct(ms, 0.5), 2), "p95_ms": round(pct(ms, 0.95), 2), "max_ms": round(max(ms), 2) if ms else None,
            "mean_ms": round(sum(ms) / len(ms), 2) if ms else None}


def bench_api(svc, visits: list[str], top_k: int, paths: int) -> tuple[dict, dict]:
    """``recommend`` with attributions (the default) and without, the two alternating visit by visit
    (so that both see the same load on a shared machine)."""
    for v in visits[:3]:
        svc.recommend(v, top_k=top_k, paths_per_drug=paths)
    runs = {True: {k: [] for k in ("total", "cpu", "predict", "attribution", "paths", "drugs", "n_paths")}, False: None}
    runs[False] = {k: [] for k in runs[True]}
    for i, v in enumerate(visits):
        for attr in ((True, False) if i % 2 == 0 else (False, True)):
            r = runs[attr]
            t, c = time.perf_counter(), time.process_time()
            res = svc.recommend(v, top_k=top_k, paths_per_drug=paths, attributions=attr)
            r["total"].append((time.perf_counter() - t) * 1000)
            r["cpu"].append((time.process_time() - c) * 1000)
            r["predict"].append(res.timings_ms["predict"])
            r["attribution"].append(res.timings_ms.get("attribution", 0.0))
            r["paths"].append(res.timings_ms["paths"])
            r["drugs"].append(len(res.drugs))
            r["n_paths"].append(sum(len(d.paths) for d in res.drugs))
    out = []
    for attr in (True, False):
        r = runs[attr]
        out.append({"attributions": attr, "total": summary(r["total"]), "cpu": summary(r["cpu"]), "predict": summary(r["predict"]),
                    "attribution": summary(r["attribution"]), "paths": summary(r["paths"]),
                    "drugs_per_visit": round(sum(r["drugs"]) / len(r["drugs"]), 2), "paths_per_visit": round(sum(r["n_paths"]) / len(r["n_paths"]), 2)})
    return out[0], out[1]


def bench_patients(svc, visits: list[str], top_k: int, paths: int) -> dict:
    """The same visits sent as new patients (their codes, no history): paths from the codes."""
    v = svc.cohort.visits.set_index("visit_id")
    pats = [{"diagnoses": list(v.loc[x, "diagnoses"]), "procedures": list(v.loc[x, "procedures"])} for x in visits]
    pats = [p for p in pats if p["diagnoses"] or p["procedures"]]
    for p in pats[:3]:
        svc.recommend(patient=p, top_k=top_k, paths_per_drug=paths)
    total, cpu = [], []
    for p in pats:
        t, c = time.perf_counter(), time.process_time()
        svc.recommend(patient=p, top_k=top_k, paths_per_drug=paths)
        total.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    return {"total": summary(total), "cpu": summary(cpu)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_service(svc, visits: list[str], n_requests: int, concurrency: int, top_k: int, paths: int) -> dict:
    import httpx
    import uvicorn

    from kgrec.serve.app import create_app

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(service=svc), host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        lat: list[float] = []
        codes: dict[int, int] = {}
        lock = threading.Lock()
        with httpx.Client(base_url=base, timeout=30, limits=httpx.Limits(max_connections=concurrency)) as client:
            def one(i: int) -> None:
                t = time.perf_counter()
                try:
                    code = client.post("/recommend", json={"visit_id": visits[i % len(visits)], "top_k": top_k, "paths_per_drug": paths}).status_code
                except httpx.HTTPError:
                    code = -1
                with lock:
                    lat.append((time.perf_counter() - t) * 1000)
                    codes[code] = codes.get(code, 0) + 1

            for i in range(min(3, n_requests)):
                one(i)
            lat.clear()
            codes.clear()
            t0 = time.perf_counter()
            with ThreadPoolExecutor(concurrency) as pool:
                list(pool.map(one, range(n_requests)))
            wall = time.perf_counter() - t0
        return {"requests": n_requests, "concurrency": concurrency, "seconds": round(wall, 2), "requests_per_s": round(n_requests / wall, 1),
                "latency": summary(lat), "status_codes": {str(k): v for k, v in sorted(codes.items())}}
    finally:
        server.should_exit = True
        th.join(timeout=10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workspace", "-w", required=True)
    ap.add_argument("--model", default="student")
    ap.add_argument("--visits", type=int, default=100)
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--paths", type=int, default=3)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--no-service", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.requests > 10000 or args.concurrency > 64:
        ap.error("bounded load test: at most 10000 requests and 64 client threads")

    from kgrec.explain.recommend import RecommendService

    t0 = time.perf_counter()
    svc = RecommendService(args.workspace, args.model, "embedded")
    load_s = time.perf_counter() - t0
    mask = svc.cohort.eval_mask()
    visits = [str(v) for v, m in zip(svc.cohort.visits["visit_id"], mask) if m][: args.visits]
    out = {"workspace": str(args.workspace), "model": args.model, "top_k": args.top_k, "paths_per_drug": args.paths,
           "threshold": svc.model.threshold, "load_seconds": round(load_s, 2), "load_average_1min": round(os.getloadavg()[0], 2),
           "cpu_count": os.cpu_count()}
    out["api"], out["api_no_attributions"] = bench_api(svc, visits, args.top_k, args.paths)
    out["api_new_patients"] = bench_patients(svc, visits, args.top_k, args.paths)
    if not args.no_service:
        out["service"] = bench_service(svc, visits, args.requests, args.concurrency, args.top_k, args.paths)
    out["load_average_1min_after"] = round(os.getloadavg()[0], 2)
    svc.close()
    if args.json:
        print(json.dumps(out, indent=2))
        return
    a = out["api"]
    print(f"loaded in {out['load_seconds']} s; load average {out['load_average_1min']} on {out['cpu_count']} CPUs")
    print(f"recommend + paths over {a['total']['n']} visits (top {args.top_k}, {a['drugs_per_visit']} drugs and {a['paths_per_visit']} paths per visit): "
          f"p50 {a['total']['p50_ms']} ms, p95 {a['total']['p95_ms']} ms, max {a['total']['max_ms']} ms; CPU time p50 {a['cpu']['p50_ms']} ms, p95 {a['cpu']['p95_ms']} ms "
          f"(predict p50 {a['predict']['p50_ms']} ms, attribution p50 {a['attribution']['p50_ms']} ms / p95 {a['attribution']['p95_ms']} ms, "
          f"paths p50 {a['paths']['p50_ms']} ms / p95 {a['paths']['p95_ms']} ms); target p95 < 100 ms")
    n = out["api_no_attributions"]
    print(f"the same without attributions (alternating with the above): p50 {n['total']['p50_ms']} ms, p95 {n['total']['p95_ms']} ms; "
          f"CPU time p50 {n['cpu']['p50_ms']} ms, p95 {n['cpu']['p95_ms']} ms")
    b = out["api_new_patients"]
    print(f"the same visits as new patients (paths from their codes): p50 {b['total']['p50_ms']} ms, p95 {b['total']['p95_ms']} ms; "
          f"CPU p50 {b['cpu']['p50_ms']} ms, p95 {b['cpu']['p95_ms']} ms")
    if "service" in out:
        s = out["service"]
        print(f"service: {s['requests']} requests, {s['concurrency']} clients: {s['requests_per_s']} req/s, "
              f"latency p50 {s['latency']['p50_ms']} ms, p95 {s['latency']['p95_ms']} ms; status {s['status_codes']}")


if __name__ == "__main__":
    main()
