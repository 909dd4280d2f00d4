"""The README's "Embedding from Python" example runs as written (so the documentation cannot drift
from the module)."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[3] / "README.md"


def test_readme_python_example_runs(capsys):
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, f"no python example in {README}"
    exec(compile(blocks[0], f"{README}:python example", "exec"), {"__name__": "readme_example"})
    out = capsys.readouterr().out
    assert "missing [4, 5, 6]" in out and "block 1 b'entry 1'" in out, out
