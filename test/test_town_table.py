"""bench/town_table.py: closed-loop runs as towns x agents, refusing rows over different routes."""
import importlib.util
import json
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("town_table", Path(__file__).parents[1] / "bench" / "town_table.py")
town_table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(town_table)


def _run(tmp_path, name, town, ds, seeds=(7000, 7001)):
    d = tmp_path / name
    d.mkdir()
    (d / "results.json").write_text(json.dumps({
        "config": {"town": town, "route_seeds": list(seeds)}, "routes": [{}] * len(seeds),
        "mean": {"DS": ds, "RC": 2 * ds, "IS": 0.5, "infractions": {}, "status": {}}}))
    return str(d)


def test_rows_per_town_and_the_mean_over_towns(tmp_path, capsys):
    m = [_run(tmp_path, "m0", "test-00", 40.0), _run(tmp_path, "m1", "test-01", 20.0)]
    cv = [_run(tmp_path, "c0", "test-00", 10.0), _run(tmp_path, "c1", "test-01", 30.0)]
    out = tmp_path / "t.json"
    assert town_table.main(["--col", "model=" + ",".join(m), "--col", "cv=" + ",".join(cv), "--json", str(out)]) == 0
    t = json.loads(out.read_text())
    assert t["mean_DS"] == {"model": 30.0, "cv": 20.0}
    text = capsys.readouterr().out
    assert "| test-00 | 2 | 40.0 (80.0 / 0.50) | 10.0 (20.0 / 0.50) |" in text
    assert "**30.0**" in text and "**20.0**" in text


def test_different_routes_on_one_town_are_refused(tmp_path):
    a = _run(tmp_path, "a", "test-00", 40.0)
    b = _run(tmp_path, "b", "test-00", 10.0, seeds=(8000, 8001))
    with pytest.raises(SystemExit, match="seeds"):
        town_table.main(["--col", f"model={a}", "--col", f"cv={b}"])
