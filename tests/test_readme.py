"""The README stays short (the rest is in docs/), and its Python example runs as written and
keeps what it says."""
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs(tmp_path, monkeypatch):
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    assert len(code.strip().splitlines()) <= 20
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert len(scope["keep"]) == 750 and len(scope["pruned_set"]) == 750
    assert scope["dyn"].epochs == 15


def test_readme_is_short():
    assert len(README.read_text().splitlines()) <= 150
