"""One patient coded twice, in ICD-9-CM and in ICD-10-CM: do both codings get the same drugs from a workspace?

    python scripts/icd_twin.py -w WS [--model student] [--json]

Default patient: heart failure, type 2 diabetes, hypertension, acute kidney failure (ICD-9 428.0, 250.00,
401.9, 584.9; ICD-10 I50.9, E11.9, I10, N17.9). Prints both top-10 lists, their overlap, how each ICD-10
code was read (``read_as``), the codes left unknown and the number of rationale paths per list.
"""

from __future__ import annotations

import argparse
import json

ICD9 = ["428.0", "250.00", "401.9", "584.9"]
ICD10 = ["I50.9", "E11.9", "I10", "N17.9"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-w", "--workspace", required=True)
    ap.add_argument("--model", default="student")
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    from kgrec.explain.recommend import RecommendService

    out = {}
    with RecommendService(args.workspace, args.model, "embedded") as svc:
        for name, version, codes in (("icd9", 9, ICD9), ("icd10", 10, ICD10)):
            r = svc.recommend(patient={"icd_version": version, "diagnoses": codes}, top_k=args.top_k, threshold=0.0).to_dict()
            out[name] = {"drugs": [d["drug"] for d in r["drugs"]], "probabilities": [round(d["probability"], 3) for d in r["drugs"]],
                         "n_paths": sum(len(d.get("paths") or []) for d in r["drugs"]), "read_as": r["visit"].get("read_as", {}),
                         "unknown": [u["code"] for u in r["unknown_codes"]]}
    a, b = out["icd9"]["drugs"], out["icd10"]["drugs"]
    out["overlap"] = {"shared": len(set(a) & set(b)), "of": len(a), "jaccard": round(len(set(a) & set(b)) / len(set(a) | set(b)), 3) if a or b else None}
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    for name in ("icd9", "icd10"):
        o = out[name]
        print(f"{name}: {', '.join(f'{d} {p:.2f}' for d, p in zip(o['drugs'], o['probabilities']))} ({o['n_paths']} paths)")
        for c, t in o["read_as"].items():
            print(f"  {c} read as {t['code']} (via {t['via']}, score {t['score']})")
        if o["unknown"]:
            print(f"  unknown: {', '.join(o['unknown'])}")
    print(f"top-{args.top_k} overlap: {out['overlap']['shared']}/{out['overlap']['of']} (Jaccard {out['overlap']['jaccard']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
