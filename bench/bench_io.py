"""What every benchmark script does with its result: print the JSON and write it (parents created)."""
from __future__ import annotations

import json
from pathlib import Path


def emit(result: dict, path: Path) -> None:
    text = json.dumps(result, indent=2)
    print(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
