#!/usr/bin/env python3
"""Pool `dsdrive-eval` runs over several route seeds into one table (the means over all routes).

    python bench/closed_loop_table.py --row "CV=runs/eval/cv-s7,runs/eval/cv-s8" \
        --row "model=runs/eval/m-s7,runs/eval/m-s8" [--out bench/results/closed_loop_30.json]

Each row is LABEL=RUN[,RUN...]; a RUN is a `dsdrive-eval --out` folder or its results.json (as kept
in bench/results/closed_loop/). The routes of a row's runs are pooled:
DS, RC and IS are means over all of them (the LangAuto / CARLA-leaderboard mean), and the per-run DS
means are listed beside them to show the spread. Rows must cover the same route seeds; the script
refuses rows that do not, so that no table compares different routes.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dsdrive_ros.sim.score import aggregate  # noqa: E402


def load_row(spec: str) -> dict:
    label, _, dirs = spec.partition("=")
    if not dirs:
        raise SystemExit(f"--row {spec!r}: expected LABEL=DIR[,DIR...]")
    runs = [json.loads((Path(d) / "results.json" if Path(d).is_dir() else Path(d)).read_text())
            for d in dirs.split(",")]
    routes = [r for run in runs for r in run["routes"]]
    mean = aggregate(routes)
    status = Counter(r["status"] for r in routes)
    return {"label": label, "dirs": dirs.split(","), "route_seeds": sorted(r["seed"] for r in routes),
            "per_run_DS": [run["mean"]["DS"] for run in runs],
            "per_run_seed": [run["config"]["seed"] for run in runs],
            "mean": mean, "status": dict(status)}


def markdown(rows: list[dict]) -> str:
    seeds = ", ".join(str(s) for s in rows[0]["per_run_seed"])
    lines = [f"| agent | routes | RC % | IS | DS | DS per seed ({seeds}) | routes completed | infractions |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m = r["mean"]
        inf = ", ".join(f"{k} {v}" for k, v in sorted(m["infractions"].items())) or "none"
        lines.append(f"| {r['label']} | {m['routes']} | {m['RC']:.1f} | {m['IS']:.3f} | **{m['DS']:.1f}** | "
                     f"{' / '.join(f'{d:.1f}' for d in r['per_run_DS'])} | "
                     f"{r['status'].get('route_completed', 0)} | {inf} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--row", action="append", required=True, help="LABEL=DIR[,DIR...]")
    ap.add_argument("--out", type=Path, default=None, help="write the rows as JSON (and .md beside it)")
    args = ap.parse_args(argv)
    rows = [load_row(r) for r in args.row]
    for r in rows[1:]:
        if r["route_seeds"] != rows[0]["route_seeds"]:
            raise SystemExit(f"row {r['label']!r} covers other routes than row {rows[0]['label']!r}")
    md = markdown(rows)
    print(md)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=1))
        args.out.with_suffix(".md").write_text(md + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
