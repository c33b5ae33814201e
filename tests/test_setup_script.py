"""scripts/setup refuses clearly when it cannot install the Debian packages."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("runuser"), reason="needs root to drop to nobody")
def test_setup_without_root_names_the_packages():
    tmp_path = Path(tempfile.mkdtemp(prefix="symfp-setup-"))  # pytest's tmp is 0700 (root only)
    # A copy of the script in a folder 'nobody' can read, with a dpkg-query that reports every
    # package missing: setup must stop before touching anything and say what to install.
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "setup", tmp_path / "scripts" / "setup")
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "dpkg-query").write_text("#!/bin/sh\nexit 1\n")
    (stub / "dpkg-query").chmod(0o755)
    os.chmod(tmp_path, 0o755)
    env = {"PATH": f"{stub}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run(
        ["runuser", "-u", "nobody", "--", "bash", str(tmp_path / "scripts" / "setup")],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert out.returncode != 0
    assert "no root/sudo" in out.stderr and "python3-dolfinx-real" in out.stderr, out.stderr
    assert not (tmp_path / ".venv").exists(), "setup half-installed a venv before failing"
    shutil.rmtree(tmp_path)
