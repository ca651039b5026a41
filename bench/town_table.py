#!/usr/bin/env python3
"""One table of closed-loop runs: a row per town, a column per agent (DS with RC / IS).

    python bench/town_table.py --col model=runs/eval/model-test-00,runs/eval/model-test-01 \
        --col "constant velocity=runs/eval/cv-test-00,..." --col expert=... [--json OUT.json]

Each RUN is a `dsdrive-eval --out` folder or its results.json. A column's runs are matched to rows by
their town; every column must have run the same route seeds on a town, so that a row compares the
same routes. The last row is the mean over towns (each town weighs the same).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _load(run: str) -> dict:
    p = Path(run)
    return json.loads((p / "results.json" if p.is_dir() else p).read_text())


def build(cols: list[tuple[str, list[str]]]) -> dict:
    table: dict[str, dict[str, dict]] = {}
    for label, runs in cols:
        for run in runs:
            res = _load(run)
            town, seeds = res["config"]["town"], res["config"]["route_seeds"]
            cell = {"DS": res["mean"]["DS"], "RC": res["mean"]["RC"], "IS": res["mean"]["IS"],
                    "routes": len(res["routes"]), "seeds": seeds, "infractions": res["mean"]["infractions"],
                    "status": res["mean"].get("status", {}), "run": run}
            row = table.setdefault(town, {})
            other = next(iter(row.values()), None)
            if other is not None and other["seeds"] != seeds:
                raise SystemExit(f"{town}: {label} ran seeds {seeds}, another column {other['seeds']}")
            row[label] = cell
    labels = [c[0] for c in cols]
    mean = {lab: sum(table[t][lab]["DS"] for t in table if lab in table[t]) /
            max(sum(1 for t in table if lab in table[t]), 1) for lab in labels}
    return {"columns": labels, "towns": table, "mean_DS": mean}


def markdown(t: dict) -> str:
    labels = t["columns"]
    out = ["| town | routes | " + " | ".join(f"{c} DS (RC / IS)" for c in labels) + " |",
           "|---|---|" + "---|" * len(labels)]
    for town, row in sorted(t["towns"].items()):
        n = next(iter(row.values()))["routes"]
        cells = [f"{row[c]['DS']:.1f} ({row[c]['RC']:.1f} / {row[c]['IS']:.2f})" if c in row else "–"
                 for c in labels]
        out.append(f"| {town} | {n} | " + " | ".join(cells) + " |")
    out.append("| **mean over towns** | | " + " | ".join(f"**{t['mean_DS'][c]:.1f}**" for c in labels) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--col", action="append", required=True, help="LABEL=RUN[,RUN...]")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    cols = []
    for spec in a.col:
        label, _, runs = spec.partition("=")
        if not runs:
            ap.error(f"--col {spec!r}: expected LABEL=RUN[,RUN...]")
        cols.append((label, runs.split(",")))
    t = build(cols)
    print(markdown(t))
    if a.json:
        a.json.write_text(json.dumps(t, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
