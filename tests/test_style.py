"""The C sources pass the repository's .clang-format and the Python ones its ruff rules
(pyproject.toml); each check is skipped where its tool is absent."""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_c_sources_are_formatted():
    exe = shutil.which("clang-format")
    if exe is None:
        pytest.skip("clang-format is not installed (apt install clang-format)")
    files = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(ROOT, "csrc"))
             for f in sorted(fs) if f.endswith((".c", ".h"))]
    p = subprocess.run([exe, "--dry-run", "--Werror", "--style=file"] + files, cwd=ROOT,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]


def test_python_sources_pass_ruff():
    exe = shutil.which("ruff") or shutil.which("ruff", path=os.path.dirname(sys.executable))
    if exe is None:
        pytest.skip("ruff is not installed (pip install ruff)")
    p = subprocess.run([exe, "check", "alexnet_cpu", "tests", "benchmarks", "setup.py"],
                       cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout[-3000:]
