"""The README's Python examples run as written (on the narrow net of tests/tiny.py: the
full nets' own tests are elsewhere, and a full net written to disk is 230 MB)."""
import os
import re

import alexnet_cpu as ac
from tiny import tiny_alexnet, use_in_cli

README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    with open(README) as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), re.S)
    assert blocks
    monkeypatch.chdir(tmp_path)
    use_in_cli(monkeypatch.setattr)
    monkeypatch.setattr(ac, "alexnet", lambda variant="owt", num_classes=1000, **_:
                        tiny_alexnet(num_classes, variant=variant))
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})
