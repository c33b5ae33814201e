"""The ``symfp`` command: derive, solve, simulate, validate and report on a spec file.

Exit codes: 0 success, 1 validation failed (FE and particles disagree), 2 bad input (a missing or broken
spec, an unknown verb or option, an unwritable folder, any :class:`symfp.errors.SymfpError`): a
one-line message on stderr, the traceback only with ``--debug``; 3 an unexpected internal error (a bug:
one line, the traceback with ``--debug``).

Only ``argparse`` and the spec loader are imported at start-up; SymPy, dolfinx, torch and matplotlib
are imported by the verbs that need them, so ``symfp --help`` and ``symfp derive`` stay fast.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path
from typing import NoReturn

from .. import __version__
from ..errors import InputError, SymfpError

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_INTERNAL = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (``symfp: error: ...``) and exit 2."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("argument VERB: "):
            message = message.replace("argument VERB: ", "").replace("invalid choice", "unknown verb")
        sys.stderr.write(f"{self.prog}: error: {' '.join(message.split())} (see '{self.prog} --help')\n")
        raise SystemExit(EXIT_INPUT)


VERBS: dict[str, tuple[str, str]] = {
    "derive": (
        "derive the SDE and Fokker-Planck equation; print them and write the LaTeX derivation",
        "symfp derive derivations/quadratic.py --order 2 --tex quadratic.tex --pdf",
    ),
    "solve": (
        "solve the Fokker-Planck equation with finite elements (MPI-parallel)",
        "mpirun -n 2 symfp solve derivations/quadratic.py --json",
    ),
    "simulate": (
        "simulate the recursion (or the SDE) with particles",
        "symfp simulate derivations/quadratic.py",
    ),
    "validate": (
        "solve and simulate, compare them; exit code 1 when they disagree",
        "symfp validate derivations/double_well.py --json",
    ),
    "run": (
        "everything, written to a report folder (HTML, figures, JSON, LaTeX/PDF, XDMF)",
        "symfp run derivations/double_well.py --out results/double_well",
    ),
    "control": (
        "optimal learning-rate/batch schedules by the discrete adjoint, verified on particles",
        "symfp control derivations/schedule_double_well.py --out results/schedule_double_well",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``symfp`` command."""
    epilog = (
        "Examples:\n"
        + "\n".join(f"  {ex}" for _, ex in VERBS.values())
        + textwrap.dedent("""

        A spec is a Python file defining `model` (an SGD) or `sde`, `params`, `mesh`, `p0`, `t_end`,
        `dt`, `particles`; see symfp/app/spec.py. Exit codes: 0 ok, 1 validation failed, 2 bad input.""")
    )
    p = _Parser(
        prog="symfp",
        description="Derive, solve and simulate the Fokker-Planck equation of SGD-like recursions.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"symfp {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("spec", help="spec file (a Python derivation, e.g. derivations/quadratic.py)")
    common.add_argument(
        "--order", type=int, default=None, help="order of the modified equation (default: the spec's)"
    )
    common.add_argument("--json", action="store_true", help="print machine-readable results (JSON) on stdout")
    common.add_argument(
        "--size",
        choices=("small", "large"),
        default=None,
        help="problem size the spec reads (sets SYMFP_SIZE; default small)",
    )
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    sub = p.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    for verb, (help_text, example) in VERBS.items():
        sp = sub.add_parser(
            verb,
            parents=[common],
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ".",
            epilog=f"Example:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if verb == "derive":
            sp.add_argument("--tex", metavar="FILE", help="write the LaTeX derivation to FILE")
            sp.add_argument("--pdf", action="store_true", help="also compile it with pdflatex (FILE.pdf)")
        if verb in ("simulate", "validate", "run", "control"):
            sp.add_argument(
                "--particles", type=int, default=None, metavar="N", help="override the particle count"
            )
        if verb in ("simulate", "validate"):
            sp.add_argument(
                "--method",
                choices=("recursion", "sde"),
                default=None,
                help="simulate the exact recursion or the SDE (default: the spec's particles method)",
            )
        if verb in ("run", "control"):
            sp.add_argument(
                "--out", metavar="DIR", default=None, help="report folder (default results/<spec name>)"
            )
        if verb == "run":
            sp.add_argument("--no-pdf", action="store_true", help="skip compiling the LaTeX derivation")
    return p


# ------------------------------------------------------------------------------------------------ output
def _rank() -> int:
    from .pipeline import mpi_rank

    return mpi_rank()


def _emit(args: argparse.Namespace, data: dict, text: str) -> None:
    """Print the JSON (``--json``) or the text, on rank 0 only."""
    if _rank() != 0:
        return
    if args.json:
        from ..report.jsonable import dumps

        print(dumps({k: v for k, v in data.items() if not k.startswith("_") and k != "text"}))
    else:
        print(text)
    sys.stdout.flush()


def _moments_text(title: str, s: dict) -> str:
    mean = ", ".join(f"{m:.6g}" for m in s["mean"])
    var = ", ".join(f"{v:.6g}" for v in s["var"])
    line = f"{title}: mean [{mean}]"
    if "mean_stderr" in s:
        line += " ± [" + ", ".join(f"{e:.2g}" for e in s["mean_stderr"]) + "]"
    line += f", var [{var}]"
    if "var_stderr" in s:
        line += " ± [" + ", ".join(f"{e:.2g}" for e in s["var_stderr"]) + "]"
    if "mass" in s:
        line += f", mass {s['mass']:.8f}"
    return line


# ------------------------------------------------------------------------------------------------ verbs
def _load(args: argparse.Namespace):
    from .spec import load

    spec = load(args.spec, order=args.order)
    spec.validate()
    return spec


def cmd_derive(args: argparse.Namespace) -> int:
    """``symfp derive``: print the SDE and Fokker-Planck equation, write LaTeX/PDF."""
    from .pipeline import derive

    spec = _load(args)
    tex = args.tex
    if args.pdf and tex is None:
        tex = f"{spec.name}.tex"
    if tex is not None:
        _check_writable(Path(tex).resolve().parent)
    out = derive(spec, order=args.order, tex=tex, pdf=args.pdf)
    text = out["text"]
    for key in ("tex", "pdf"):
        if out.get(key):
            text += f"\nwrote {out[key]}"
    _emit(args, out, text)
    return EXIT_OK


def cmd_solve(args: argparse.Namespace) -> int:
    """``symfp solve``: FE solve, print the final moments (or all observables with --json)."""
    from .pipeline import solve

    _, out = solve(_load(args), order=args.order, progress=_rank() == 0)
    f = out["final"]
    _emit(args, out, _moments_text(f"FE at t = {f['t']:.4g}", f) + f"  ({out['seconds']:.2f} s)")
    return EXIT_OK


def cmd_simulate(args: argparse.Namespace) -> int:
    """``symfp simulate``: particles, print mean and variance with standard errors."""
    from .pipeline import simulate

    _, out = simulate(_load(args), order=args.order, n=args.particles, method=args.method,
                      progress=_rank() == 0)
    text = _moments_text(f"{out['n']} particles ({out['method']}) at t = {out['t_end']:.4g}", out)
    _emit(args, out, text + f"  ({out['seconds']:.2f} s)")
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    """``symfp validate``: solve, simulate and compare; exit 1 when the comparison fails."""
    from .pipeline import compare, simulate, solve

    spec = _load(args)
    from ..symbolic.stage import timed

    with timed("validate: FE solve"):
        sol, s_out = solve(spec, order=args.order, progress=_rank() == 0)
    with timed("validate: particles"):
        cloud, p_out = simulate(spec, order=args.order, n=args.particles, method=args.method,
                                progress=_rank() == 0)
    with timed("validate: compare"):
        _, c_out = compare(sol, cloud, sme_particles=True, spec=spec)  # exact SGD: SME particles beside
    data = {
        "spec": str(spec.path),
        "passed": c_out["passed"],
        "compare": c_out["metrics"],
        "solve": s_out,
        "simulate": p_out,
    }
    text = "\n".join(
        [
            _moments_text("finite elements", s_out["final"]),
            _moments_text(f"particles ({p_out['n']}, {p_out['method']})", p_out),
            "",
            c_out["text"],
            "PASSED" if c_out["passed"] else "FAILED: finite elements and particles disagree",
        ]
    )
    _emit(args, data, text)
    return EXIT_OK if c_out["passed"] else EXIT_FAILED


def cmd_run(args: argparse.Namespace) -> int:
    """``symfp run``: everything, into a report folder."""
    from .run import write_report

    spec = _load(args)
    out_dir = Path(args.out or Path("results") / spec.name)
    _check_writable(out_dir)
    data = write_report(
        spec,
        out_dir,
        order=args.order,
        n=args.particles,
        pdf=not args.no_pdf,
        progress=not args.json and _rank() == 0,
    )
    lines = [f"report: {out_dir / 'report.html'}"]
    lines += [f"  {f}" for f in data["files"]]
    if data.get("skipped"):
        lines += ["skipped:"] + [f"  {s}" for s in data["skipped"]]
    if data.get("passed") is not None:
        lines.append("PASSED" if data["passed"] else "FAILED: finite elements and particles disagree")
    _emit(args, data, "\n".join(lines))
    return EXIT_FAILED if data.get("passed") is False else EXIT_OK


def _control(args: argparse.Namespace) -> int:
    """``symfp control``: implemented in :mod:`symfp.app.control`."""
    from .control import cmd_control

    return cmd_control(args)


COMMANDS = {
    "derive": cmd_derive,
    "solve": cmd_solve,
    "simulate": cmd_simulate,
    "validate": cmd_validate,
    "run": cmd_run,
    "control": _control,
}


def _check_writable(folder: Path) -> None:
    """Create ``folder`` and check a file can be written there, or raise :class:`InputError`."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".symfp-write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise InputError(f"cannot write to the output folder {folder}: {exc.strerror or exc}") from exc


# ------------------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 1 validation failed, 2 bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        return EXIT_OK
    if args.size:
        os.environ["SYMFP_SIZE"] = args.size
    debug = bool(getattr(args, "debug", False))
    if _rank() == 0:  # stage timings and progress bars on stderr (stdout stays the result / JSON)
        from ..symbolic.stage import show_progress

        show_progress()
    try:
        return COMMANDS[args.verb](args)
    except SymfpError as exc:
        if debug:
            raise
        _fail(f"symfp {args.verb}: {' '.join(str(exc).split())}")
    except KeyboardInterrupt:
        _fail("interrupted")
    except Exception as exc:  # an engine bug: still one line, the traceback with --debug
        if debug:
            raise
        _fail(
            f"symfp {args.verb}: internal error {type(exc).__name__}: {' '.join(str(exc).split())} "
            "(re-run with --debug for the traceback)",
            code=EXIT_INTERNAL,
        )
    return EXIT_INPUT  # pragma: no cover


def _fail(message: str, code: int = EXIT_INPUT) -> NoReturn:
    sys.stderr.write(message + "\n")
    raise SystemExit(code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
