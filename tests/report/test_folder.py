"""The report folder does not lie: lock, clean start, atomic files, manifest last, INCOMPLETE on failure.

Tested with real processes: a ``symfp run`` killed by SIGTERM, two runs into one folder at once, a
stale figure of an earlier run, and a full disk (ENOSPC injected at the file system call).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from symfp.errors import OutputError
from symfp.report.atomic import sha256, write_text
from symfp.report.folder import INCOMPLETE, LOCK, MANIFEST, RunFolder

ROOT = Path(__file__).resolve().parents[2]

OU_SPEC = """
import sympy as sp
import symfp

x = sp.Symbol("x", real=True)
sde = symfp.SDE(state=[x], drift=-2 * x, diffusion=sp.Rational(1, 2))
mesh = lambda: symfp.mesh.box([(-2.0, 2.0)], cells=(100,))
p0 = [0.5]
t_end = 0.5
dt = 0.01
particles = dict(n=2000, dt=0.01)
"""

HOLDER = """
import sys, time
from symfp.report.folder import RunFolder
with RunFolder(sys.argv[1], command="holder") as f:
    (f.out / "a.txt").write_text("from the holder")
    f.add(f.out / "a.txt")
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _env() -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    for var in ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMIX_RANK"):
        env.pop(var, None)
    return env


def _holder(tmp_path: Path, out: Path, seconds: float) -> subprocess.Popen:
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    proc = subprocess.Popen([sys.executable, str(script), str(out), str(seconds)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())
    assert proc.stdout.readline().strip() == "holding", proc.stderr.read()
    return proc


def test_manifest_is_written_last_and_lists_only_this_runs_files(tmp_path):
    out = tmp_path / "r"
    with RunFolder(out, options={"n": 3}, command="test") as f:
        assert (out / INCOMPLETE).exists() and (out / LOCK).exists()
        assert not (out / MANIFEST).exists()
        write_text(out / "observables.json", "{}")
        f.add(out / "observables.json")
        (out / "notes.txt").write_text("the user's own file, not this run's")
    man = json.loads((out / MANIFEST).read_text())
    assert man["status"] == "complete" and man["options"] == {"n": 3}
    assert [e["path"] for e in man["files"]] == ["observables.json"]
    assert man["files"][0]["bytes"] == 2 and man["files"][0]["sha256"] == sha256(out / "observables.json")
    assert "symfp" in man["versions"] and "python" in man["versions"]
    assert not (out / INCOMPLETE).exists() and not (out / LOCK).exists()
    assert (out / "notes.txt").exists()  # files symfp does not write are left alone


def test_an_error_leaves_an_incomplete_marker_with_the_reason_and_no_manifest(tmp_path):
    out = tmp_path / "r"
    with pytest.raises(ValueError, match="boom"):
        with RunFolder(out, command="test") as f:
            f.stage = "solve"
            raise ValueError("boom")
    text = (out / INCOMPLETE).read_text()
    assert "the run failed" in text and "ValueError: boom" in text and "stage: solve" in text
    assert not (out / MANIFEST).exists() and not (out / LOCK).exists()


def test_a_second_run_into_a_locked_folder_is_refused_naming_the_holder(tmp_path):
    out = tmp_path / "r"
    proc = _holder(tmp_path, out, 30)
    try:
        with pytest.raises(OutputError, match=rf"in use by another run: holder \(pid {proc.pid}, host"):
            with RunFolder(out, command="second"):
                pass
        assert (out / "a.txt").read_text() == "from the holder"  # the second run touched nothing
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    # the holder was terminated: its marker says so, the lock is released, a new run may start
    assert "terminated by SIGTERM" in (out / INCOMPLETE).read_text()
    assert not (out / LOCK).exists()
    with RunFolder(out, command="third"):
        assert not (out / "a.txt").exists()  # the holder's file was cleaned at the start


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    import socket

    (out / LOCK).write_text(json.dumps({"pid": int(dead), "host": socket.gethostname(), "command": "x"}))
    with RunFolder(out, command="new"):
        assert json.loads((out / LOCK).read_text())["pid"] == os.getpid()


@pytest.fixture
def ou_spec(tmp_path) -> Path:
    p = tmp_path / "ou.py"
    p.write_text(textwrap.dedent(OU_SPEC))
    return p


@pytest.mark.fem
@pytest.mark.torch
def test_symfp_run_killed_by_sigterm_and_two_concurrent_runs(tmp_path, ou_spec):
    out = tmp_path / "report"
    # an earlier, complete-looking run left a stale figure and report
    out.mkdir()
    (out / "weak_error.png").write_bytes(b"old figure")
    (out / "report.html").write_text("<html>old report with weak_error.png</html>")
    (out / MANIFEST).write_text(json.dumps({"status": "complete", "files": [{"path": "weak_error.png"}]}))
    cmd = [sys.executable, "-m", "symfp", "run", str(ou_spec), "--out", str(out), "--no-pdf"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    line = ""
    deadline = time.time() + 240
    while "solve" not in line and time.time() < deadline:  # the run has started its FE stage
        line = first.stderr.readline()
        assert line or first.poll() is None, "the run ended before its solve stage"
    # a second run into the same folder, while the first holds it: refused, exit 2, names the holder
    second = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=240)
    assert second.returncode == 2, second.stderr
    assert "in use by another run" in second.stderr and f"pid {first.pid}" in second.stderr
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 2, err
    assert "SIGTERM" in err
    marker = (out / INCOMPLETE).read_text()
    assert "terminated by SIGTERM" in marker and "stage:" in marker
    # nothing of the earlier run survives beside the killed one: no old report, figure or manifest
    assert not (out / "report.html").exists() and not (out / "weak_error.png").exists()
    assert not (out / MANIFEST).exists() and not (out / LOCK).exists()
    assert not list(out.glob(".*tmp*")) and not list(out.glob(".density.writing-*"))
    # a full run afterwards: complete, manifest lists exactly what is there, no stale figure embedded
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
    assert done.returncode in (0, 1), done.stderr
    man = json.loads((out / MANIFEST).read_text())
    listed = {e["path"] for e in man["files"]}
    present = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} - {MANIFEST}
    assert listed == present
    assert "weak_error.png" not in listed and "weak_error.png" not in (out / "report.html").read_text()
    assert not (out / INCOMPLETE).exists()
    assert man["spec_sha256"] == sha256(ou_spec)
    for e in man["files"]:
        assert e["bytes"] == (out / e["path"]).stat().st_size and e["sha256"] == sha256(out / e["path"])


@pytest.mark.fem
@pytest.mark.torch
def test_full_disk_gives_a_clean_error_and_an_incomplete_marker(tmp_path, ou_spec, monkeypatch, capsys):
    from symfp.app.cli import main
    from symfp.report import atomic

    real = os.fsync

    def fsync(fd: int) -> None:
        if "observables.json" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    out = tmp_path / "report"
    with pytest.raises(SystemExit) as exc:
        main(["run", str(ou_spec), "--out", str(out), "--no-pdf"])
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert "No space left on device" in err and "observables" in err and "disk is full" in err
    assert "No space left on device" in (out / INCOMPLETE).read_text()
    assert not (out / "observables.json").exists() and not list(out.glob(".observables.json.tmp-*"))
    assert not (out / MANIFEST).exists()
