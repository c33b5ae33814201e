"""Assemble ``derivations/README.md`` from the gallery entries: every number and figure comes from code.

Each entry module ``derivations/<name>.py`` exposes ``analyse(size, figure) -> dict`` (its key numbers,
and its figure saved to ``derivations/figures/<name>.png``) and ``readme_section(results) -> str``.
Usage::

    python derivations/make_readme.py            # small sizes (as in CI), a few minutes
    python derivations/make_readme.py --size large
    python derivations/make_readme.py quadratic_views   # re-run one entry, keep the others' sections

The sections are cached in ``derivations/figures/sections.json`` so that one entry can be re-run alone.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from types import SimpleNamespace

from symfp.app.spec import load

HERE = Path(__file__).resolve().parent
ENTRIES = [
    "quadratic_views",
    "double_well_regimes",
    "label_noise",
    "linear_network",
    "momentum_phase_space",
    "noisy_sgd_convergence",
    "implicit_regularisation",
    "schedule_double_well",
    "schedule_batch_size",
    "logistic_regression",
]
HEAD = """# Derivations gallery

Worked derivations, each end to end (derive → solve → simulate → compare → LaTeX). Every entry is
a spec file for the `symfp` command (`symfp run derivations/<name>.py --out results/<name>`) and a
regression test (`derivations/test_<name>.py`) that asserts its key numbers. This page is written by
`python derivations/make_readme.py` ({size} sizes): every number below comes from that run.

Also here: `tutorial.py` (a literate walk through every stage), and the two specs of the command's
own examples, `quadratic.py` and `double_well.py` (the README's demo).
"""


def _load(name: str) -> SimpleNamespace:
    """The entry as a namespace, loaded like the ``symfp`` command loads a spec."""
    return SimpleNamespace(**load(HERE / f"{name}.py").namespace)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("only", nargs="*", choices=[[], *ENTRIES], help="entries to re-run (default: all)")
    ap.add_argument("--size", default="small", choices=["small", "large"])
    args = ap.parse_args(argv)
    cache = HERE / "figures" / "sections.json"
    cache.parent.mkdir(exist_ok=True)
    sections: dict[str, str] = json.loads(cache.read_text()) if cache.exists() else {}
    for name in args.only or ENTRIES:
        if not (HERE / f"{name}.py").exists():
            print(f"{name}: not written yet, skipped")
            continue
        t0 = time.perf_counter()
        mod = _load(name)
        results = mod.analyse(size=args.size, figure=str(HERE / "figures" / f"{name}.png"))
        sections[name] = mod.readme_section(results).strip()
        print(f"{name}: {time.perf_counter() - t0:.1f} s")
    cache.write_text(json.dumps(sections, indent=1, ensure_ascii=False))
    body = [HEAD.format(size=args.size)]
    body += [sections[n] for n in ENTRIES if n in sections]
    (HERE / "README.md").write_text("\n\n".join(body) + "\n")
    print(f"wrote {HERE / 'README.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
