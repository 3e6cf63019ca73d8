"""The C sources pass the repository's .clang-format (skipped where clang-format is absent)."""
import os
import shutil
import subprocess

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
