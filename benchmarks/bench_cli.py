"""Benchmarks of the ``symfp`` command: ``symfp derive`` wall time (goal < 3 s, import included) and the
import-time hot spots of ``symfp.app.cli`` and of a derive (``python -X importtime``)."""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = (
    str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
)
SPECS = ("quadratic", "double_well")
STARTUP = {"site", "encodings", "io", "zipimport", "codecs", "abc", "os", "stat", "posixpath", "genericpath"}


def _wall(cmd: list[str], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
        times.append(time.perf_counter() - t0)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr.strip()[-500:]}")
    return times


def importtime(code: str, top: int = 6) -> list[tuple[str, float]]:
    """The ``top`` modules by cumulative import time (s) under ``python -X importtime -c code``,
    keeping only top-level packages (the first dotted component) so that nested entries do not repeat."""
    r = subprocess.run(
        [PY, "-X", "importtime", "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    best: dict[str, float] = {}
    for line in r.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)", line)
        if not m:
            continue
        cumulative, depth, name = int(m.group(2)) * 1e-6, len(m.group(3)), m.group(4)
        root = name.split(".")[0]
        if depth <= 2 and root not in STARTUP and not root.startswith("_"):  # imported by the -c code
            best[root] = max(best.get(root, 0.0), cumulative)
    return sorted(best.items(), key=lambda kv: -kv[1])[:top]


def run(quick: bool = False) -> list[dict]:
    """Rows: derive wall time per gallery spec (median of runs), --help wall time, import hot spots."""
    repeat = 1 if quick else 3
    symfp = str(ROOT / ".venv" / "bin" / "symfp")
    cmd0 = [symfp] if Path(symfp).exists() else [PY, "-m", "symfp"]
    rows = []
    t = _wall(cmd0 + ["--help"], repeat)
    rows.append(
        {
            "benchmark": "cli",
            "case": "symfp --help",
            "value": statistics.median(t),
            "unit": "s",
            "note": f"median of {repeat}",
        }
    )
    for name in SPECS:
        for order in (1, 2):
            t = _wall(cmd0 + ["derive", f"derivations/{name}.py", "--order", str(order)], repeat)
            med = statistics.median(t)
            rows.append(
                {
                    "benchmark": "cli",
                    "case": f"symfp derive {name}.py --order {order}",
                    "value": med,
                    "unit": "s",
                    "note": f"median of {repeat}; goal < 3 s: {'ok' if med < 3 else 'SLOW'}",
                }
            )
    for label, code in (
        ("import symfp.app.cli", "import symfp.app.cli"),
        (
            "derive (in-process)",
            "from symfp.app.cli import main; main(['derive', 'derivations/double_well.py', '--json'])",
        ),
    ):
        for mod, secs in importtime(code):
            rows.append(
                {
                    "benchmark": "importtime",
                    "case": f"{label}: {mod}",
                    "value": secs,
                    "unit": "s",
                    "note": "cumulative, python -X importtime",
                }
            )
    return rows


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(row)
