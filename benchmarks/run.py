"""Benchmark harness: runs every ``benchmarks/bench_*.py`` and writes ``benchmarks/RESULTS.md``.

Each module exposes ``run(quick: bool = False) -> list[dict]`` whose rows carry the keys
``benchmark``, ``case``, ``value``, ``unit`` and ``note``. Each module runs in its own Python process,
so that one module's imports and memory peak do not leak into another's measurements (e.g. torch's
compiled path is refused in a process that has imported dolfinx). Usage::

    python benchmarks/run.py            # full sizes
    python benchmarks/run.py --quick    # small sizes (smoke run)
    python benchmarks/run.py fem cli    # only bench_fem.py and bench_cli.py; the other modules'
                                        # sections of RESULTS.md are kept as they were
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import math
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEYS = ("benchmark", "case", "value", "unit", "note")


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def _child(path: Path, quick: bool) -> None:
    """Child-process mode: run one benchmark module and print its rows as JSON on the last line."""
    rows = list(_load(path).run(quick=quick))
    clean = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]
    print("\n" + json.dumps(clean, default=str))


def _run_isolated(path: Path, quick: bool) -> list[dict]:
    """Run ``path`` in a fresh interpreter; its rows, or RuntimeError with the child's stderr tail."""
    cmd = [sys.executable, __file__, "--child", str(path)] + (["--quick"] if quick else [])
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-4000:] or out.stdout[-4000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def table(rows: list[dict]) -> str:
    """Markdown table of benchmark rows."""
    lines = ["| " + " | ".join(KEYS) + " |", "|" + "---|" * len(KEYS)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(k, "")) for k in KEYS) + " |")
    return "\n".join(lines)


def _sections_of(text: str) -> dict[str, str]:
    """``{"bench_x": "## bench_x ..."}`` for each module section of a RESULTS.md text."""
    out: dict[str, str] = {}
    for chunk in text.split("\n## ")[1:]:
        name = chunk.split("\n", 1)[0].strip()
        out[name] = "## " + chunk.rstrip() + "\n"
    return out


def _merge_sections(path: Path, new: list[str]) -> list[str]:
    """The sections of ``path`` with those in ``new`` replaced or added (a partial run's table).

    Each section states when its module ran only through the file head, so a merged file names the
    modules of this run in a line of its own.
    """
    old = _sections_of(path.read_text()) if path.exists() else {}
    fresh = _sections_of("\n" + "\n".join(new))
    stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    for name, body in fresh.items():
        head, _, rest = body.partition("\n")
        topic = name.removeprefix("bench_")
        old[name] = f"{head}\n\n(run {stamp}, alone: `benchmarks/run.py {topic}`)\n{rest}"
    return [old[k] for k in sorted(old)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("only", nargs="*", help="topics to run (bench_<topic>.py); default all")
    ap.add_argument("--quick", action="store_true", help="small sizes")
    ap.add_argument("--out", default=str(HERE / "RESULTS.md"), help="markdown file to write")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(Path(args.child), args.quick)
        return 0
    files = sorted(HERE.glob("bench_*.py"))
    if args.only:
        files = [f for f in files if f.stem.removeprefix("bench_") in args.only]
    sections = []
    failed = 0
    for f in files:
        t0 = time.perf_counter()
        try:
            rows = _run_isolated(f, args.quick)
        except (RuntimeError, json.JSONDecodeError, IndexError) as exc:  # reported; the others still run
            failed += 1
            sections.append(f"## {f.stem}\n\nFAILED:\n\n```\n{exc}\n```\n")
            print(f"{f.stem}: FAILED", file=sys.stderr)
            continue
        took = time.perf_counter() - t0
        text = table(rows)
        print(f"\n== {f.stem} ({took:.1f} s)\n{text}")
        sections.append(f"## {f.stem}\n\n{text}\n\n({took:.1f} s for this module)\n")
    if args.only:
        sections = _merge_sections(Path(args.out), sections)
    head = (
        "# Benchmark results\n\n"
        f"Written by `benchmarks/run.py{' --quick' if args.quick else ''}` on "
        f"{dt.datetime.now().strftime('%Y-%m-%d %H:%M')}, {platform.node()}, "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}. "
        "Ratios are taken within one run; absolute times depend on the machine.\n\n"
    )
    Path(args.out).write_text(head + "\n".join(sections))
    print(f"\nwrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
