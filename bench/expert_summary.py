"""Collect run_expert JSON files into one summary (bench/results/expert_eval.json).

    .venv/bin/python bench/expert_summary.py RESULT.json [RESULT.json ...] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "expert_eval.json"))
    a = ap.parse_args()
    runs = []
    for f in a.files:
        d = json.loads(Path(f).read_text())
        runs.append({"town": d["town"], "split": d.get("split"), "seed": d["seed"],
                     "mean": d["mean"],
                     "routes": [{k: r.get(k) for k in ("route", "seed", "RC", "IS", "DS", "status",
                                                      "infractions", "off_route_share",
                                                      "route_length", "time_s", "ego_reinserted")}
                                for r in d["routes"]]})
    runs.sort(key=lambda r: (r["split"] != "train", r["town"], r["seed"]))
    out = {"runs": runs,
           "note": "python -m dsdrive_ros.eval.run_expert --town T --routes 10 --seed S; route i "
                   "uses episode seed S*1000+i"}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(f"{'town':>9} {'split':>8} {'seed':>4} {'RC':>6} {'IS':>5} {'DS':>6}  infractions")
    for r in runs:
        m = r["mean"]
        inf = ", ".join(f"{k}x{v}" for k, v in sorted(m["infractions"].items())) or "-"
        print(f"{r['town']:>9} {r['split']:>8} {r['seed']:>4} {m['RC']:6.1f} {m['IS']:5.2f} "
              f"{m['DS']:6.1f}  {inf}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
