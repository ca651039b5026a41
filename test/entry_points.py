"""The console scripts that setup.py declares, read once for the packaging and install tests."""
from __future__ import annotations

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

# (name, module, function) for each "name = module:function" line
CONSOLE_SCRIPTS: list[tuple[str, str, str]] = re.findall(
    r'"([\w-]+) = ([\w.]+):(\w+)"', (REPO_ROOT / "setup.py").read_text())
